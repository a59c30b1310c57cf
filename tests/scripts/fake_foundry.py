#!/usr/bin/env python3
"""A local HTTPS stand-in for a Foundry project API, Entra's token endpoint and
an App Service managed identity endpoint, answering the documented shapes:

- GET  /api/projects/<p>/connections?api-version=v1   {value, nextLink} (Azure.Core list)
- GET  /api/projects/<p>/deployments?api-version=v1   {value, nextLink}
- GET  /api/projects/<p>/agents?api-version=v1&limit&after   {object, data, first_id, last_id, has_more}
- GET  /api/projects/<p>/assistants?api-version=v1&limit&after   same list shape, classic agents
- POST /<tenant>/oauth2/v2.0/token   client_credentials + jwt-bearer client assertion
- GET  /msi/token?api-version=2019-08-01&resource=...   header X-IDENTITY-HEADER

Pages are small on purpose (agents: 2 per page over 3 pages; connections: 3
then 2 through an absolute nextLink). Every request is appended to --log so the
test can check paging and api-version. Listens on a loopback address only
(--addr, 127.0.0.1 unless a test gives a namespace's own).
"""
import argparse
import json
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
TENANT = "contoso-tenant"
GOOD_ASSERTION = "federated-sa-token"
STALE_ASSERTION = "stale-sa-token"
IDENTITY_HEADER = "identity-header-secret"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCOPE = "https://ai.azure.com/.default"
VALID_TOKENS = {"wi-access-token", "mi-access-token", "good-token"}
PROJECTS = {"proj", "_project"}

AGENTS_PAGE = 2
CONNECTIONS_PAGE = 3

CONNECTIONS = [
    {"name": "corp-apim", "type": "ApiManagement", "target": "https://contoso-apim.azure-api.net/openai"},
    {"name": "corp-gw", "type": "ModelGateway", "target": "https://llm-gateway.contoso.example/v1"},
    {"name": "other-foundry", "type": "ModelGateway",
     "target": "https://other-resource.services.ai.azure.com/api/projects/p"},
    {"name": "aoai", "type": "AzureOpenAI", "target": "https://contoso.openai.azure.com/"},
    {"name": "search", "type": "CognitiveSearch", "target": "https://contoso.search.windows.net"},
]


def connection(c):
    return {
        "name": c["name"],
        "id": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/contoso/"
              "projects/proj/connections/" + c["name"],
        "type": c["type"],
        "target": c["target"],
        "isDefault": False,
        "credentials": {"type": "ApiKey"},
        "metadata": {"deploymentInPath": "true"},
    }


def prompt_agent(name, model, version="1"):
    return {"object": "agent", "id": name, "name": name, "state": "enabled",
            "versions": {"latest": {"object": "agent.version", "id": f"{name}:{version}", "name": name,
                                    "version": version, "created_at": 1750000000,
                                    "definition": {"kind": "prompt", "model": model, "instructions": "", "tools": []}}}}


AGENTS = [
    prompt_agent("apim-agent", "corp-apim/gpt-4.1-mini", "3"),
    prompt_agent("direct-agent", "gpt-4.1-mini"),
    prompt_agent("gw-agent", "corp-gw/llama-3.3-70b"),
    {"object": "agent", "id": "hosted-agent", "name": "hosted-agent", "state": "enabled",
     "versions": {"latest": {"object": "agent.version", "id": "hosted-agent:1", "name": "hosted-agent",
                             "version": "1", "definition": {"kind": "hosted", "cpu": "1", "memory": "2Gi"}}}},
    prompt_agent("aoai-agent", "aoai/gpt-4o"),
    prompt_agent("ghost-agent", "missing-conn/gpt-4o"),
]

ASSISTANTS = [
    {"id": "asst_abc123", "object": "assistant", "created_at": 1740000000, "name": "classic-helper",
     "description": None, "model": "gpt-4o", "instructions": "", "tools": [], "metadata": {}},
]

DEPLOYMENTS = [
    {"type": "ModelDeployment", "name": "gpt-4.1-mini", "modelName": "gpt-4.1-mini", "modelVersion": "2025-04-14",
     "modelPublisher": "OpenAI", "capabilities": {"chat_completion": "true"},
     "sku": {"name": "GlobalStandard", "capacity": 10}},
    {"type": "ModelDeployment", "name": "gpt-4o", "modelName": "gpt-4o", "modelVersion": "2024-11-20",
     "modelPublisher": "OpenAI", "capabilities": {"chat_completion": "true"},
     "sku": {"name": "GlobalStandard", "capacity": 10}},
]


def cursor_page(items, query):
    after = query.get("after", [None])[0]
    start = 0
    if after is not None:
        ids = [i["id"] for i in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    limit = min(int(query.get("limit", ["20"])[0]), 100)
    chunk = items[start:start + min(limit, AGENTS_PAGE)]
    return {"object": "list", "data": chunk,
            "first_id": chunk[0]["id"] if chunk else None,
            "last_id": chunk[-1]["id"] if chunk else None,
            "has_more": start + len(chunk) < len(items)}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet; the request log is the record
        pass

    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def record(self):
        with open(self.server.log_path, "a") as f:
            f.write(f"{self.command} {self.path}\n")

    def do_POST(self):
        self.record()
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        one = lambda k: form.get(k, [None])[0]
        if url.path != f"/{TENANT}/oauth2/v2.0/token":
            return self.reply(404, {"error": "not_found"})
        if (one("grant_type") != "client_credentials" or one("client_assertion_type") != JWT_BEARER
                or one("scope") != SCOPE or one("client_id") != CLIENT_ID):
            return self.reply(400, {"error": "invalid_request",
                                    "error_description": "AADSTS900144: bad request fields " + json.dumps(form)})
        if one("client_assertion") == STALE_ASSERTION:
            return self.reply(401, {
                "error": "invalid_client",
                "error_description": "AADSTS700024: Client assertion is not within its valid time range.\r\n"
                                     "Trace ID: 00000000-0000-0000-0000-000000000000",
                "error_codes": [700024]})
        if one("client_assertion") != GOOD_ASSERTION:
            return self.reply(400, {"error": "invalid_client",
                                    "error_description": "AADSTS700211: No matching federated identity record found"})
        return self.reply(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                "access_token": "wi-access-token"})

    def do_GET(self):
        self.record()
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/msi/token":
            if self.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
                return self.reply(400, {"statusCode": 400, "message": "Required header X-IDENTITY-HEADER missing or wrong"})
            if query.get("resource") != ["https://ai.azure.com"] or query.get("api-version") != ["2019-08-01"]:
                return self.reply(400, {"statusCode": 400, "message": "bad resource or api-version"})
            return self.reply(200, {"access_token": "mi-access-token", "expires_on": str(int(time.time()) + 3600),
                                    "resource": "https://ai.azure.com", "token_type": "Bearer",
                                    "client_id": "mi-client"})
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["api", "projects"] or parts[2] not in PROJECTS:
            return self.reply(404, {"error": {"code": "NotFound", "message": f"no route {url.path}"}})
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if token == "expired-token":
            return self.reply(401, {"error": {"code": "Unauthorized", "message": "Access token is expired."}},
                              {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token expired"'})
        if token == "noperm-token":
            return self.reply(401, {"error": {"code": "PermissionDenied", "message":
                "The principal `00000000` lacks the required data action "
                "`Microsoft.CognitiveServices/accounts/AIServices/agents/read` to perform "
                "`GET /api/projects/{projectName}/agents` operation."}})
        if token not in VALID_TOKENS:
            return self.reply(401, {"error": {"code": "Unauthorized", "message": "Invalid token."}},
                              {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if query.get("api-version") != ["v1"]:
            return self.reply(400, {"error": {"code": "BadRequest", "message": "api-version must be v1 here"}})
        what = parts[3]
        if what == "connections":
            skip = int(query.get("skipToken", ["0"])[0])
            chunk = CONNECTIONS[skip:skip + CONNECTIONS_PAGE]
            body = {"value": [connection(c) for c in chunk]}
            if skip + CONNECTIONS_PAGE < len(CONNECTIONS):
                # Absolute, as Azure.Core lists send it (the generated Python
                # client joins a relative one onto the endpoint path), with a
                # stale api-version the client must replace.
                body["nextLink"] = (f"https://{self.headers.get('Host')}/api/projects/{parts[2]}/connections"
                                    f"?api-version=2025-05-01&skipToken={skip + CONNECTIONS_PAGE}")
            return self.reply(200, body)
        if what == "deployments":
            return self.reply(200, {"value": DEPLOYMENTS})
        if what == "agents":
            return self.reply(200, cursor_page(AGENTS, query))
        if what == "assistants":
            return self.reply(200, cursor_page(ASSISTANTS, query))
        return self.reply(404, {"error": {"code": "NotFound", "message": f"no route {url.path}"}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--addr", default="127.0.0.1")
    # Stops by itself even if the test that started it dies.
    ap.add_argument("--lifetime", type=float, default=120.0)
    args = ap.parse_args()
    server = ThreadingHTTPServer((args.addr, args.port), Handler)
    server.log_path = args.log
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Timer(args.lifetime, server.shutdown).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
