"""Test peer: an HTTPS server (self-signed, IPv4 and IPv6) that answers like a
model provider or gateway, and a plain-HTTP server for in-cluster gateways.

Runs inside a test's network namespace; it is not in the watched cgroup, so
only the clients' side is observed. Stops when its parent test kills it.
"""
import argparse
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMPLETION = {
    "id": "chatcmpl-test",
    "object": "chat.completion",
    "created": 0,
    "model": "test-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
}
# A streamed chat's usage (stream_options.include_usage: the last event).
STREAM_USAGE = {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24}
EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 1.0]}],
    "model": "test-embedding",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}


def agent_service(path: str) -> dict:
    """What the Foundry Agent Service API answers a create call."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last in ("assistants", "agents"):
        return {"id": "asst_1", "object": "assistant", "created_at": 0, "name": "helper",
                "model": "gpt-4o", "instructions": "", "tools": [], "metadata": {}}
    if last == "threads":
        return {"id": "thread_1", "object": "thread", "created_at": 0, "metadata": {}}
    if last == "runs":
        return {"id": "run_1", "object": "thread.run", "created_at": 0, "thread_id": "thread_1",
                "assistant_id": "asst_1", "status": "queued", "model": "gpt-4o", "instructions": "",
                "tools": [], "metadata": {}}
    return {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, body: bytes, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(b"ok\n", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            request = {}
        if "/api/projects/" in self.path:
            self._reply(json.dumps(agent_service(self.path.split("?")[0])).encode(), "application/json")
        elif self.path.endswith("/embeddings"):
            self._reply(json.dumps(EMBEDDINGS).encode(), "application/json")
        elif request.get("stream"):
            self._stream()
        else:
            self._reply(json.dumps(COMPLETION).encode(), "application/json")

    def _stream(self) -> None:
        """Server-sent events in chunked encoding, as OpenAI streams."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": "test-model"}
        events = [
            dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": "h"}}], usage=None),
            dict(base, choices=[{"index": 0, "delta": {"content": "i"}, "finish_reason": "stop"}], usage=None),
            dict(base, choices=[], usage=STREAM_USAGE),
        ]
        for data in [json.dumps(e) for e in events] + ["[DONE]"]:
            piece = f"data: {data}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args) -> None:
        pass


class DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--tls-port", type=int, default=443)
    p.add_argument("--http-port", type=int, default=4000)
    args = p.parse_args()

    tls = DualStackServer(("::", args.tls_port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    plain = DualStackServer(("::", args.http_port), Handler)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    print("ready", flush=True)
    tls.serve_forever()


if __name__ == "__main__":
    main()
