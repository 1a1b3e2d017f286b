#!/usr/bin/env python3
"""Checks that a slow subscriber costs the gateway bounded memory and does not slow the others down.

    python3 slow_subscriber_check.py http://127.0.0.1:8080 --gateway-pid PID [--events 100000] [--rate 2000] [--writers 4]

Run A: one fast subscriber while a writer appends --events/5 events at --rate events/s (baseline latency).
Run B: the same fast subscriber plus a slow one that reads one message per second, while the writer appends
--events events. Prints the fast subscriber's p50/p99 in both runs, the ratio of the p99s, and the growth of
the gateway's resident memory (VmRSS of --gateway-pid) during run B, as JSON. Targets (issue 4): RSS growth
< 64 MiB and p99(B) ≤ 2 × p99(A). Loopback only.
"""
import argparse
import asyncio
import json
import sys
import urllib.parse
import urllib.request


from gateway_checks import require_loopback, rss_kib

from loadgen import Subscriber, percentile, writer
from requirements_check import import_websockets

websockets = import_websockets("slow_subscriber_check.py")




async def slow_reader(url, stop, counts):
    async with websockets.connect(url, max_size=None, max_queue=4) as socket:
        while not stop.is_set():
            try:
                await asyncio.wait_for(socket.recv(), timeout=1)
                counts[0] += 1
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(1)


async def run(args, count, with_slow):
    with urllib.request.urlopen(args.base_url.rstrip("/") + "/health", timeout=10) as response:
        head = json.load(response)["head"]
    url = args.base_url.rstrip("/").replace("http", "ws", 1) + f"/events/subscribe?after={head}"
    stop = asyncio.Event()
    fast = Subscriber()
    tasks = [asyncio.create_task(fast.run(url + "&event_type=load.Tick", False, stop))]
    slow_counts = [0]
    if with_slow:
        tasks.append(asyncio.create_task(slow_reader(url, stop, slow_counts)))
    await asyncio.wait_for(fast.caught_up.wait(), timeout=60)
    await asyncio.sleep(0.5)
    rss_before = rss_kib(args.gateway_pid)
    rss_peak = rss_before
    appended = []
    writers = [asyncio.create_task(writer(args.base_url, args.rate / args.writers, count / args.rate, stop, appended, index))
               for index in range(args.writers)]
    while not all(task.done() for task in writers):
        await asyncio.sleep(0.2)
        rss_peak = max(rss_peak, rss_kib(args.gateway_pid))
    for task in writers:
        task.result()
    deadline = asyncio.get_running_loop().time() + 30
    while len(fast.positions) < len(appended) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        rss_peak = max(rss_peak, rss_kib(args.gateway_pid))
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "appended": len(appended), "fast_received": len(fast.positions),
        "fast_exactly_once_in_order": fast.positions == sorted(set(fast.positions)) and len(fast.positions) == len(appended),
        "fast_p50_ms": percentile(fast.latencies_ms, 0.5), "fast_p99_ms": percentile(fast.latencies_ms, 0.99),
        "rss_growth_mib": (rss_peak - rss_before) / 1024, "slow_messages_read": slow_counts[0],
    }


async def main_async(args):
    baseline = await run(args, args.events // 5, with_slow=False)
    print("run A (no slow subscriber):", json.dumps(baseline), file=sys.stderr)
    loaded = await run(args, args.events, with_slow=True)
    print("run B (with a slow subscriber):", json.dumps(loaded), file=sys.stderr)
    ratio = loaded["fast_p99_ms"] / baseline["fast_p99_ms"] if baseline["fast_p99_ms"] else None
    result = {"baseline": baseline, "with_slow_subscriber": loaded, "p99_ratio": ratio,
              "memory_target_met": loaded["rss_growth_mib"] < 64, "latency_target_met": ratio is not None and ratio <= 2}
    print(json.dumps(result, indent=2))
    return 0 if result["memory_target_met"] and result["latency_target_met"] and loaded["fast_exactly_once_in_order"] else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--gateway-pid", type=int, required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2000, help="total appends per second")
    parser.add_argument("--writers", type=int, default=4, help="concurrent HTTP writers sharing the rate")
    args = parser.parse_args()
    require_loopback(parser, args.base_url)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
