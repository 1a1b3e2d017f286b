#!/usr/bin/env python3
"""Measures the gateway's resident memory per idle push-channel subscriber.

    python3 idle_subscribers_check.py http://127.0.0.1:8080 --gateway-pid PID [--count 10000]

Opens --count WebSocket subscriptions at the head (no events flow), waits until each got `caught_up`, then
reports the growth of the gateway's VmRSS divided by the number of subscribers, as JSON. Target (issue 4):
≤ 16 KiB per subscriber. Run the gateway as a separate process: one process holding both ends of 10,000
connections would need more than the 20,000 descriptors allowed here. Loopback only.
"""
import argparse
import asyncio
import json
import sys
import urllib.parse
import urllib.request


from gateway_checks import require_loopback, rss_kib
from requirements_check import import_websockets

websockets = import_websockets("idle_subscribers_check.py")




async def subscriber(url, ready, hold, failures):
    try:
        async with websockets.connect(url, open_timeout=60, ping_interval=None, compression=None) as socket:
            while True:
                message = json.loads(await socket.recv())
                if message["type"] == "caught_up":
                    break
            ready.release()
            await hold.wait()
    except Exception as error:
        failures.append(repr(error))
        ready.release()


async def main_async(args):
    with urllib.request.urlopen(args.base_url.rstrip("/") + "/health", timeout=10) as response:
        head = json.load(response)["head"]
    url = args.base_url.rstrip("/").replace("http", "ws", 1) + f"/events/subscribe?after={head}"
    before = rss_kib(args.gateway_pid)
    ready = asyncio.Semaphore(0)
    hold = asyncio.Event()
    failures = []
    tasks = []
    for index in range(args.count):
        tasks.append(asyncio.create_task(subscriber(url, ready, hold, failures)))
        if index % 200 == 199:
            await asyncio.sleep(0.05)  # do not overrun the listen backlog
    for number in range(args.count):
        await ready.acquire()
        if number % 2000 == 1999:
            print(f"  {number + 1} subscribers ready", file=sys.stderr, flush=True)
    await asyncio.sleep(2)
    after = rss_kib(args.gateway_pid)
    connected = args.count - len(failures)
    hold.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    result = {"subscribers": connected, "failures": len(failures), "first_failures": failures[:3],
              "rss_before_mib": before / 1024, "rss_after_mib": after / 1024,
              "kib_per_subscriber": (after - before) / max(connected, 1)}
    result["target_met"] = result["kib_per_subscriber"] <= 16 and not failures
    print(json.dumps(result, indent=2))
    return 0 if result["target_met"] else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--gateway-pid", type=int, required=True)
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    require_loopback(parser, args.base_url)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
