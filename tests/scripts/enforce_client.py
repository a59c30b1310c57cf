"""Clients for the --enforce tests. Each call prints its outcome ("ok", or
the error: an exception class or an errno name) and the seconds it took,
one call per line, so the test can assert both what the client saw and how
soon it saw it.

  enforce_client.py sdk BASE_URL COMM [N]      the openai SDK, chat N times (1)
  enforce_client.py sdk-key BASE_URL COMM KEY  the openai SDK with KEY, chat once
  enforce_client.py tls ADDR NAME [NAME ...]   TLS to ADDR:443 with each SNI
  enforce_client.py http ADDR:PORT NAME [...]  plain HTTP to ADDR:PORT, Host NAME

`COMM` renames the process first (its comm is what --gateway-workload
process= and --allow-direct process= match). The CA is in $CERT.
"""
import ctypes
import errno
import os
import socket
import ssl
import sys
import time

PR_SET_NAME = 15
# The lab's non-AI name (tests/src/lab.rs NON_AI).
WARM_UP_URL = "https://www.example.org/v1"


def rename(comm: str) -> None:
    ctypes.CDLL(None).prctl(PR_SET_NAME, comm.encode(), 0, 0, 0)


def sdk_client(base_url: str, api_key: str = "test"):
    import httpx
    import openai

    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key,
        timeout=30,
        max_retries=0,
        http_client=httpx.Client(verify=os.environ["CERT"]),
    )


def chat(client) -> str:
    try:
        r = client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
        return "ok" if r.choices[0].message.content == "hi" else "wrong-answer"
    except Exception as e:  # the class is the outcome
        return type(e).__name__


def tls(addr: str, name: str) -> str:
    ctx = ssl.create_default_context(cafile=os.environ["CERT"])
    try:
        with socket.create_connection((addr, 443), timeout=30) as s:
            with ctx.wrap_socket(s, server_hostname=name) as t:
                t.sendall(b"GET / HTTP/1.1\r\nHost: " + name.encode() + b"\r\nConnection: close\r\n\r\n")
                return "ok" if t.recv(100).startswith(b"HTTP/1.1 200") else "bad-answer"
    except OSError as e:
        if e.errno:
            return errno.errorcode.get(e.errno, type(e).__name__)
        return type(e).__name__


def http(target: str, name: str) -> str:
    addr, port = target.rsplit(":", 1)
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {name}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    try:
        with socket.create_connection((addr, int(port)), timeout=30) as s:
            s.sendall(head.encode() + body)
            answer = s.recv(100)
            if not answer:
                return "closed"
            return "ok" if answer.startswith(b"HTTP/1.") else "bad-answer"
    except OSError as e:
        if e.errno:
            return errno.errorcode.get(e.errno, type(e).__name__)
        return type(e).__name__


def timed(call) -> None:
    start = time.monotonic()
    out = call()
    print(out, round(time.monotonic() - start, 3), flush=True)


def main() -> None:
    mode = sys.argv[1]
    if mode == "sdk":
        rename(sys.argv[3])
        # The SDK's first request builds its models lazily (seconds):
        # warm it up against a name no policy touches, so the timing
        # below is the call's own.
        warm = chat(sdk_client(WARM_UP_URL))
        if warm != "ok":
            sys.exit(f"warm-up call failed: {warm}")
        for _ in range(int(sys.argv[4]) if len(sys.argv) > 4 else 1):
            # A client per call: each call is a new connection.
            client = sdk_client(sys.argv[2])
            timed(lambda: chat(client))
    elif mode == "sdk-key":
        # One call through a gateway that wants its own key.
        rename(sys.argv[3])
        client = sdk_client(sys.argv[2], sys.argv[4])
        timed(lambda: chat(client))
    elif mode == "tls":
        for name in sys.argv[3:]:
            timed(lambda: tls(sys.argv[2], name))
    elif mode == "http":
        for name in sys.argv[3:]:
            timed(lambda: http(sys.argv[2], name))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
