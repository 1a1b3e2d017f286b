#!/usr/bin/env python3
"""An independent WebSocket peer (the `websockets` package) checking `fluxgate echo-server`.

    python3 websockets_echo_client.py ws://127.0.0.1:PORT [--deflate]

Sends text and binary messages of every length class (7-bit, 16-bit, 64-bit lengths; empty; 16 MiB),
non-ASCII text, pings; expects each echoed exactly; then closes with 1000 and expects the server's close.
Prints "ok" and exits 0 on success; prints what differed and exits 1 otherwise.
"""
import asyncio
import os
import sys

import websockets


async def main(url, deflate):
    messages = ["", "hello", "x" * 125, "y" * 126, "z" * 65535, "w" * 65536, "zürich ✓ 🚀 " * 1000,
                b"", b"\x00\xff" * 70000, os.urandom(1 << 20), "a" * (16 << 20) if not deflate else "ab" * (8 << 20)]
    async with websockets.connect(url, compression="deflate" if deflate else None, max_size=None) as socket:
        if deflate and "permessage-deflate" not in (socket.response.headers.get("Sec-WebSocket-Extensions") or ""):
            print("the server did not accept permessage-deflate")
            return 1
        for message in messages:
            await socket.send(message)
            echoed = await socket.recv()
            if echoed != message:
                print(f"echo differs for a {type(message).__name__} of {len(message)}")
                return 1
        pong = await socket.ping(b"are you there")
        await asyncio.wait_for(pong, timeout=5)
        await socket.close(code=1000, reason="done")
        if socket.close_code != 1000:
            print(f"the server answered our close with {socket.close_code}")
            return 1
    print("ok")
    return 0


sys.exit(asyncio.run(main(sys.argv[1], "--deflate" in sys.argv[2:])))
