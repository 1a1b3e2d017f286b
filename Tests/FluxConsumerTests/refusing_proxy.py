#!/usr/bin/env python3
"""A reverse proxy that refuses WebSocket upgrades (502), as some corporate proxies do, and relays
everything else to the gateway byte for byte. Used by the consumer's fallback test.

    python3 refusing_proxy.py LISTEN_PORT UPSTREAM_PORT     (prints "listening" when ready)
"""
import asyncio
import sys


async def relay(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer, upstream_port):
    head = await client_reader.readuntil(b"\r\n\r\n")
    if b"\nupgrade: websocket" in head.lower():
        body = b'{"error":"bad_gateway","message":"this proxy does not pass WebSocket upgrades"}'
        client_writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        await client_writer.drain()
        client_writer.close()
        return
    upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
    upstream_writer.write(head)
    await asyncio.gather(relay(client_reader, upstream_writer), relay(upstream_reader, client_writer))


async def main():
    listen_port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    server = await asyncio.start_server(lambda r, w: handle(r, w, upstream_port), "127.0.0.1", listen_port)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
