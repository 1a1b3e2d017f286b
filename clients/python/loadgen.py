#!/usr/bin/env python3
"""Load generator for a Fluxgate gateway: N WebSocket subscribers and M HTTP writers.

    python3 loadgen.py http://127.0.0.1:8080 --subscribers 100 --writers 4 --rate 500 --duration 20 \
        [--deflate] [--out result.json] [--plot latency.png]

Writers append 1-event appends at a steady total rate (events/s); each payload carries the send time.
Subscribers (the `websockets` package) subscribe from the head and record, for every event, the
append→receive latency. At the end it checks that every subscriber received every appended event exactly once
and in position order, prints p50/p99/max latency and deliveries/s, writes a JSON result, and, when
matplotlib is installed, a PNG latency plot. Progress is shown once a second. Loopback targets only.
"""
import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.parse
import urllib.request


from gateway_checks import require_loopback
from requirements_check import import_websockets

websockets = import_websockets("loadgen.py")


def percentile(values, fraction):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Subscriber:
    def __init__(self):
        self.positions = []
        self.latencies_ms = []
        self.caught_up = asyncio.Event()
        self.error = None

    async def run(self, url, deflate, stop, token=None):
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else None
            async with websockets.connect(url, compression="deflate" if deflate else None, max_size=None, additional_headers=headers,
                                          open_timeout=30, ping_interval=None) as socket:
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(socket.recv(), timeout=0.5)
                    except asyncio.TimeoutError:
                        continue
                    received = time.time_ns()
                    message = json.loads(raw)
                    if message["type"] == "caught_up":
                        self.caught_up.set()
                    elif message["type"] == "events":
                        for event in message["events"]:
                            self.positions.append(event["position"])
                            sent = event.get("payload", {}).get("sent_ns")
                            if sent:
                                self.latencies_ms.append((received - sent) / 1e6)
        except Exception as error:  # reported in the result, not hidden
            self.error = repr(error)
            self.caught_up.set()


async def writer(base, rate, duration, stop, appended, index, token=None):
    """Appends at `rate` events/s over one keep-alive HTTP connection."""
    parsed = urllib.parse.urlparse(base)
    reader, stream = await asyncio.open_connection(parsed.hostname, parsed.port or 80)
    interval = 1.0 / rate
    next_send = time.monotonic()
    end = next_send + duration
    sequence = 0
    authorization = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
    while time.monotonic() < end and not stop.is_set():
        body = json.dumps({"aggregate_name": "Load", "expected_version": "any",
                           "events": [{"event_type": "load.Tick", "payload": {"sent_ns": time.time_ns(), "writer": index, "n": sequence}}]}).encode()
        stream.write(b"POST /streams/load-%d HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n"
                     % (index, parsed.netloc.encode(), authorization, len(body)) + body)
        await stream.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
        answer = json.loads(await reader.readexactly(length))
        if not head.startswith(b"HTTP/1.1 201"):
            raise RuntimeError(f"append failed: {head[:40]!r} {answer}")
        appended.append(answer["first_position"])
        sequence += 1
        next_send += interval
        delay = next_send - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    stream.close()


async def main_async(args):
    with urllib.request.urlopen(args.base_url.rstrip("/") + "/health", timeout=10) as response:
        head = json.load(response)["head"]
    ws_url = args.base_url.rstrip("/").replace("http", "ws", 1) + f"/events/subscribe?after={head}&event_type=load.Tick"
    stop = asyncio.Event()
    subscribers = [Subscriber() for _ in range(args.subscribers)]
    tasks = [asyncio.create_task(s.run(ws_url, args.deflate, stop, args.token)) for s in subscribers]
    await asyncio.wait_for(asyncio.gather(*(s.caught_up.wait() for s in subscribers)), timeout=120)
    print(f"loadgen: {args.subscribers} subscribers connected; {args.writers} writers at {args.rate} events/s for {args.duration} s",
          file=sys.stderr)
    appended = []
    started = time.monotonic()
    writers = [asyncio.create_task(writer(args.base_url, args.rate / args.writers, args.duration, stop, appended, i, args.token))
               for i in range(args.writers)]
    while not all(w.done() for w in writers):
        await asyncio.sleep(1)
        delivered = sum(len(s.positions) for s in subscribers)
        print(f"  {time.monotonic() - started:5.1f} s  appended {len(appended):7d}  delivered {delivered:9d}", file=sys.stderr)
    for w in writers:
        w.result()  # raise a writer's error
    write_elapsed = time.monotonic() - started
    # Let the last events arrive.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(len(s.positions) < len(appended) for s in subscribers if not s.error):
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)

    expected = sorted(appended)
    problems = []
    for number, subscriber in enumerate(subscribers):
        if subscriber.error:
            problems.append(f"subscriber {number}: {subscriber.error}")
        elif subscriber.positions != expected:
            missing = len(set(expected) - set(subscriber.positions))
            duplicates = len(subscriber.positions) - len(set(subscriber.positions))
            problems.append(f"subscriber {number}: {len(subscriber.positions)} events, {missing} missing, {duplicates} duplicated, "
                            f"in order: {subscriber.positions == sorted(subscriber.positions)}")
    latencies = [value for s in subscribers for value in s.latencies_ms]
    deliveries = sum(len(s.positions) for s in subscribers)
    result = {
        "subscribers": args.subscribers, "writers": args.writers, "rate": args.rate, "duration_s": args.duration,
        "deflate": args.deflate, "appended": len(appended), "deliveries": deliveries,
        "deliveries_per_s": deliveries / elapsed if elapsed else 0, "append_rate_achieved": len(appended) / write_elapsed,
        "latency_ms": {"p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99), "max": max(latencies) if latencies else None,
                       "mean": statistics.fmean(latencies) if latencies else None},
        "exactly_once_in_order": not problems, "problems": problems[:20],
    }
    print(json.dumps(result, indent=2))
    achieved = result["append_rate_achieved"]
    reached = achieved >= 0.95 * args.rate
    if not reached:
        print(f"loadgen: the writers reached {achieved:.0f} appends/s, not the {args.rate:g}/s asked for: the gateway "
              f"(or this machine) could not take more with {args.writers} writers; the figures are for {achieved:.0f}/s",
              file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"loadgen: the JSON result is in {os.path.abspath(args.out)}", file=sys.stderr)
    if args.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            figure, axis = plt.subplots(figsize=(8, 4.5))
            axis.hist(latencies, bins=100, log=True)
            axis.set_xlabel("append → receive latency (ms)")
            axis.set_ylabel("deliveries")
            rate = f"{achieved:.0f} events/s" + ("" if reached else f" (asked {args.rate:g}/s)")
            axis.set_title(f"{args.subscribers} subscribers, {rate}: p50 {result['latency_ms']['p50']:.1f} ms, "
                           f"p99 {result['latency_ms']['p99']:.1f} ms")
            figure.tight_layout()
            figure.savefig(args.plot, dpi=100)
            print(f"loadgen: the latency plot is in {os.path.abspath(args.plot)}", file=sys.stderr)
        except ImportError:
            print("loadgen: matplotlib is not installed, so no plot: make clients (or .venv/bin/pip install -r "
                  "clients/python/requirements.txt), then run loadgen.py with .venv/bin/python3", file=sys.stderr)
    return 0 if not problems else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url", help="the gateway, e.g. http://127.0.0.1:8080 (loopback only)")
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=200, help="total appends per second")
    parser.add_argument("--duration", type=float, default=10, help="seconds of appending")
    parser.add_argument("--deflate", action="store_true")
    parser.add_argument("--out", help="write the JSON result here")
    parser.add_argument("--plot", help="write a PNG latency histogram here")
    parser.add_argument("--token", default=os.environ.get("FLUXGATE_TOKEN"),
                        help="bearer token with read and write scopes for a gateway with access control (default: $FLUXGATE_TOKEN)")
    args = parser.parse_args()
    require_loopback(parser, args.base_url)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
