#!/usr/bin/env python3
"""HTTP/3 test client on aioquic: one GET, prints status, body size and version.

    python3 h3_client.py --host 127.0.1.1 --port 443 --sni api.openai.com [--version 2] [--alpn-count 40]

aioquic sends from an unconnected dual-stack UDP socket (sendto per
datagram), as many QUIC clients do. The certificate is not verified (test
peers are self-signed). `--alpn-count N` adds N made-up 30-byte ALPN ids after
"h3"; with 40 the ClientHello (~1.7 KiB) spans two Initial packets.
"""
import argparse
import asyncio
import ssl

from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicProtocolVersion


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._h3 = H3Connection(self._quic)
        self._done = asyncio.get_running_loop().create_future()
        self.status = None
        self.body = bytearray()

    def quic_event_received(self, event):
        for h3_event in self._h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                self.status = dict(h3_event.headers).get(b":status")
            elif isinstance(h3_event, DataReceived):
                self.body += h3_event.data
            if getattr(h3_event, "stream_ended", False) and not self._done.done():
                self._done.set_result(None)

    async def get(self, authority, path):
        sid = self._quic.get_next_available_stream_id()
        self._h3.send_headers(
            sid,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", path.encode()),
            ],
            end_stream=True,
        )
        self.transmit()
        await self._done


async def main(a):
    version = {1: QuicProtocolVersion.VERSION_1, 2: QuicProtocolVersion.VERSION_2}[a.version]
    config = QuicConfiguration(
        is_client=True,
        server_name=a.sni,
        alpn_protocols=H3_ALPN + [f"x-gatewatch-fixture-{i:09d}" for i in range(a.alpn_count)],
        verify_mode=ssl.CERT_NONE,
        original_version=version,
        supported_versions=[version],
    )
    async with connect(a.host, a.port, configuration=config, create_protocol=H3Client) as client:
        await asyncio.wait_for(client.get(a.sni, "/v1/models"), timeout=5)
        print(f"status {client.status.decode()} body {len(client.body)} version {client._quic._version:#x}")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=443)
    p.add_argument("--sni", required=True)
    p.add_argument("--version", type=int, choices=[1, 2], default=1)
    p.add_argument("--alpn-count", type=int, default=0)
    asyncio.run(main(p.parse_args()))
