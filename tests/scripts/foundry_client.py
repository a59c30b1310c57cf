"""A Foundry resource's two APIs on one host, from their real SDKs: the
Azure AI Agents SDK creating an agent, a thread and a run (the Agent
Service's API), then the `openai` SDK's AzureOpenAI client making a chat
call (model inference). Trusts the lab's CA in $CERT. Prints "ok".

  foundry_client.py HOST
"""
import os
import sys
import time

import httpx
import openai
from azure.ai.agents import AgentsClient
from azure.core.credentials import AccessToken


class StaticToken:
    """A TokenCredential for the lab's fake resource."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("good-token", int(time.time()) + 3600)


def main() -> None:
    host, cert = sys.argv[1], os.environ["CERT"]
    agents = AgentsClient(
        endpoint=f"https://{host}/api/projects/proj",
        credential=StaticToken(),
        connection_verify=cert,
    )
    agent = agents.create_agent(model="gpt-4o", name="helper", instructions="be brief")
    thread = agents.threads.create()
    agents.runs.create(thread_id=thread.id, agent_id=agent.id)
    agents.close()
    aoai = openai.AzureOpenAI(
        azure_endpoint=f"https://{host}",
        api_version="2024-10-21",
        api_key="test",
        max_retries=0,
        http_client=httpx.Client(verify=cert),
    )
    r = aoai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    print("ok" if r.choices[0].message.content == "hi" else "wrong-answer")


if __name__ == "__main__":
    main()
