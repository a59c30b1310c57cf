#!/usr/bin/env python3
"""HTTP/3 test peer on aioquic: answers every request with a fixed body.

    python3 h3_server.py --cert cert.pem --key key.pem --host 127.0.1.1 [--host ...] --port 443

Prints "ready" once every address listens; serves until killed. The server
offers h3 and 100 made-up ALPN ids, so a client offering many ids (a
ClientHello over two Initials) still negotiates h3.
"""
import argparse
import asyncio

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicProtocolVersion

EXTRA_ALPN = [f"x-gatewatch-fixture-{i:09d}" for i in range(100)]


class H3Server(QuicConnectionProtocol):
    body = b""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._h3 = None

    def quic_event_received(self, event):
        if self._h3 is None:
            self._h3 = H3Connection(self._quic)
        for h3_event in self._h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived) and h3_event.stream_ended:
                sid = h3_event.stream_id
                self._h3.send_headers(
                    sid,
                    [(b":status", b"200"), (b"content-length", str(len(self.body)).encode())],
                )
                self._h3.send_data(sid, self.body, end_stream=True)
                self.transmit()


async def main(a):
    config = QuicConfiguration(
        is_client=False,
        alpn_protocols=H3_ALPN + EXTRA_ALPN,
        supported_versions=[QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2],
    )
    config.load_cert_chain(a.cert, a.key)
    H3Server.body = b"x" * a.body_bytes
    for host in a.host:
        await serve(host, a.port, configuration=config, create_protocol=H3Server)
    print("ready", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--host", action="append", required=True)
    p.add_argument("--port", type=int, default=443)
    p.add_argument("--body-bytes", type=int, default=5000)
    asyncio.run(main(p.parse_args()))
