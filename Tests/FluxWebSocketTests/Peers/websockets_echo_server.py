#!/usr/bin/env python3
"""An independent WebSocket server (the `websockets` package) checking `fluxgate echo-client`.

    python3 websockets_echo_server.py     (prints "listening PORT"; serves one client, then prints the verdict)

It sends text and binary messages of every length class (empty, 7-bit, 16-bit and 64-bit lengths, non-ASCII),
expects each echoed exactly, pings, then closes with 1000. Prints "ok" (exit 0) or what differed (exit 1).
"""
import asyncio
import os
import sys

import websockets

verdict = asyncio.Queue()


async def check(socket):
    messages = ["", "hello", "x" * 125, "y" * 126, "z" * 65536, "zürich ✓ 🚀 " * 500, b"", b"\x00\xff" * 40000, os.urandom(1 << 20)]
    try:
        for message in messages:
            await socket.send(message)
            echoed = await asyncio.wait_for(socket.recv(), timeout=20)
            if echoed != message:
                await verdict.put(f"echo differs for a {type(message).__name__} of {len(message)}")
                return
        await asyncio.wait_for(await socket.ping(b"ping"), timeout=5)
        await socket.close(code=1000, reason="done")
        await verdict.put("ok")
    except Exception as error:
        await verdict.put(f"failed: {error!r}")


async def main():
    async with websockets.serve(check, "127.0.0.1", 0, max_size=None) as server:
        print("listening", server.sockets[0].getsockname()[1], flush=True)
        result = await asyncio.wait_for(verdict.get(), timeout=120)
        await asyncio.sleep(0.2)
    print(result, flush=True)
    return 0 if result == "ok" else 1


sys.exit(asyncio.run(main()))
