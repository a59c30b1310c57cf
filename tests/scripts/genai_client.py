"""A real GenAI client for the --tls-probes tests: the `openai` SDK making
the calls named on the command line against BASE_URL, trusting the lab's CA
in $CERT. Prints one line per call: the operation and "ok" or the error.

  genai_client.py BASE_URL chat|bigchat|stream|embeddings [...]
"""
import os
import sys

import httpx
import openai


def main() -> None:
    base_url, calls = sys.argv[1], sys.argv[2:]
    client = openai.OpenAI(
        base_url=base_url,
        api_key="test",
        timeout=30,
        max_retries=0,
        http_client=httpx.Client(verify=os.environ["CERT"]),
    )
    messages = [{"role": "user", "content": "hi"}]
    for call in calls:
        try:
            if call == "chat":
                r = client.chat.completions.create(model="gpt-4o", messages=messages)
                ok = r.choices[0].message.content == "hi"
            elif call == "stream":
                text = ""
                for chunk in client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                ):
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
                ok = text == "hi"
            elif call == "bigchat":
                # A 12 KiB prompt before the model: the body spans many
                # of the kernel's 2 KiB chunks.
                r = client.chat.completions.create(
                    model="gpt-4o-long",
                    messages=[{"role": "user", "content": "x" * 12288}],
                )
                ok = r.choices[0].message.content == "hi"
            elif call == "embeddings":
                r = client.embeddings.create(model="text-embedding-3-small", input="hi")
                ok = len(r.data) == 1
            else:
                raise SystemExit(f"unknown call {call}")
            print(call, "ok" if ok else "wrong-answer", flush=True)
        except openai.OpenAIError as e:
            print(call, type(e).__name__, flush=True)


if __name__ == "__main__":
    main()
