#!/usr/bin/env python3
"""Checks a Fluxgate cluster through nginx (run by deploy/local-cluster.sh test).

1. Cross-node: a WebSocket subscriber on node B receives, in order and once each, 200 events appended on node A;
   prints the append → receive latency (p50/p99).
2. Consumer group across nodes: four HTTP pull members share a group through the balanced port; nginx routes each
   member to one node (`hash $arg_member`), the nodes split the group's partitions through PostgreSQL, and every
   event is acknowledged once, in order per aggregate, with no settlement refused for landing on the wrong node.
3. Fail-over: subscribers on node A; a writer appends through the balanced port; node A is killed with SIGKILL
   halfway. The writer retries failed appends with the same event ids (appends are idempotent by event id); the
   subscribers reconnect through the balanced port (nginx sends them to node B) from the last position they
   handled. Every acknowledged append must be in the store, and every subscriber must have seen positions 1..N
   exactly once, in order.
The balanced URL is nginx's TLS listener of deploy/nginx/fluxgate.conf (`--ca-file` trusts its certificate); the
check also reads an event's `url` through it (https, nginx's host: the nodes trust nginx's X-Forwarded-* headers)
and, with `--redirect`, that plain http:// answers 301 to https://.
Loopback targets only. Exit status 0 when everything held.
"""
import argparse
import asyncio
import json
import os
import signal
import ssl
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import websockets


def require_loopback(parser, url):
    host = urllib.parse.urlparse(url).hostname or ""
    if not (host in ("localhost", "::1") or host.startswith("127.")):
        parser.error(f"only loopback targets, got {url}")


TLS = None  # the ssl.SSLContext trusting --ca-file, for https:// and wss:// URLs


def http_json(method, url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout, context=TLS if url.startswith("https:") else None) as response:
        return json.loads(response.read())


def append(base, stream, event_id, payload):
    body = {"aggregate_name": "Cluster", "expected_version": "any",
            "events": [{"event_id": event_id, "event_type": "cluster.Tick", "payload": payload}]}
    return http_json("POST", f"{base}/streams/{stream}", body)


def head(base):
    return http_json("GET", f"{base}/events?after=0&limit=1")["head"]


def ws_url(base, after):
    return base.replace("http", "ws", 1) + f"/events/subscribe?after={after}"


class Subscriber:
    """Follows the feed from `after`, reconnecting (to `fallback` once `primary` fails) from its last position."""

    def __init__(self, primary, fallback, after):
        self.urls = [primary, fallback]
        self.positions = []
        self.last = after
        self.received_at = {}
        self.reconnects = 0

    async def run(self, until):
        url = self.urls[0]
        while self.last < until.get("position", float("inf")):
            try:
                target = ws_url(url, self.last)
                secure = {"ssl": TLS} if target.startswith("wss:") else {}
                async with websockets.connect(target, open_timeout=10, ping_interval=None, **secure) as socket:
                    while self.last < until.get("position", float("inf")):
                        try:
                            raw = await asyncio.wait_for(socket.recv(), timeout=0.5)
                        except asyncio.TimeoutError:
                            continue
                        message = json.loads(raw)
                        if message.get("type") == "events":
                            now = time.time()
                            for event in message["events"]:
                                self.positions.append(event["position"])
                                self.last = event["position"]
                                self.received_at[event["position"]] = now
            except (OSError, websockets.exceptions.WebSocketException, asyncio.TimeoutError):
                self.reconnects += 1
                url = self.urls[1]
                await asyncio.sleep(0.2)


async def cross_node(args):
    start = head(args.node_b)
    subscriber = Subscriber(args.node_b, args.node_b, start)
    until = {}
    task = asyncio.create_task(subscriber.run(until))
    await asyncio.sleep(0.5)
    sent = {}
    for index in range(200):
        sent_at = time.time()
        answer = await asyncio.to_thread(append, args.node_a, "cross", f"cross-{os.getpid()}-{index}", {"i": index})
        sent[answer["first_position"]] = sent_at
        await asyncio.sleep(0.005)
    until["position"] = max(sent)
    await asyncio.wait_for(task, timeout=30)
    expected = list(range(start + 1, max(sent) + 1))
    if subscriber.positions != expected:
        raise SystemExit(f"cluster_check: FAILED: node B's subscriber saw {len(subscriber.positions)} events, expected {len(expected)} in order")
    latencies = sorted((subscriber.received_at[p] - sent[p]) * 1000 for p in sent)
    print(f"cluster_check: cross-node ok: 200 events appended on node A reached a subscriber on node B in order; "
          f"latency p50 {statistics.median(latencies):.1f} ms, p99 {latencies[int(0.99 * len(latencies)) - 1]:.1f} ms")


async def fail_over(args):
    start = head(args.balanced)
    subscribers = [Subscriber(args.node_a, args.balanced, start) for _ in range(3)]
    until = {}
    tasks = [asyncio.create_task(s.run(until)) for s in subscribers]
    await asyncio.sleep(0.5)
    acknowledged = {}
    failures = 0
    total = 400
    for index in range(total):
        if index == total // 2:
            os.kill(args.node_a_pid, signal.SIGKILL)
            print(f"cluster_check: killed node A (pid {args.node_a_pid}) after {index} appends")
        event_id = f"failover-{os.getpid()}-{index}"
        for attempt in range(50):
            try:
                answer = await asyncio.to_thread(append, args.balanced, f"failover-{index % 5}", event_id, {"i": index})
                acknowledged[event_id] = answer["first_position"]
                break
            except (urllib.error.URLError, OSError, ValueError):
                failures += 1
                await asyncio.sleep(0.1)
        else:
            raise SystemExit(f"cluster_check: FAILED: append {index} was never acknowledged")
    final = head(args.balanced)
    until["position"] = final
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    positions = sorted(acknowledged.values())
    if len(set(positions)) != total:
        raise SystemExit("cluster_check: FAILED: two acknowledged appends share a position")
    stored = []
    after = start
    while after < final:
        page = http_json("GET", f"{args.balanced}/events?after={after}&limit=500")
        stored += page["events"]
        after = stored[-1]["position"] if page["events"] else final
    stored_positions = [event["position"] for event in stored]
    if stored_positions != list(range(start + 1, final + 1)):
        raise SystemExit("cluster_check: FAILED: the feed is not dense after the kill")
    missing = set(positions) - set(stored_positions)
    if missing:
        raise SystemExit(f"cluster_check: FAILED: {len(missing)} acknowledged appends are not in the store")
    if final - start != total:
        raise SystemExit(f"cluster_check: FAILED: {final - start} events stored for {total} appends (a retry was stored twice)")
    for number, subscriber in enumerate(subscribers):
        if subscriber.positions != list(range(start + 1, final + 1)):
            raise SystemExit(f"cluster_check: FAILED: subscriber {number} saw {len(subscriber.positions)} events "
                             f"({len(set(subscriber.positions))} distinct), expected {final - start} in order")
        if subscriber.reconnects == 0:
            raise SystemExit(f"cluster_check: FAILED: subscriber {number} never lost node A")
    # The nodes trust nginx's X-Forwarded-Proto and X-Forwarded-Host (--trusted-proxy 127.0.0.1 in the unit):
    # an event read through nginx names nginx's https:// address, and that URL answers.
    event = http_json("GET", f"{args.balanced}/events?after={start}&limit=1")["events"][0]
    if not event["url"].startswith(args.balanced + "/events/"):
        raise SystemExit(f"cluster_check: FAILED: an event read through nginx has url {event['url']}, not under {args.balanced}")
    with urllib.request.urlopen(event["url"], timeout=10, context=TLS) as response:
        if response.status != 200:
            raise SystemExit(f"cluster_check: FAILED: {event['url']} answered {response.status}")
    print(f"cluster_check: fail-over ok: {total} acknowledged appends all stored once ({failures} retried during the kill); "
          f"{len(subscribers)} subscribers moved from node A to node B and saw every event once, in order")


def groups_over_nginx(args):
    """Four pull members of one group through nginx: each fetches and settles on its own node."""
    name = f"cluster-check-{os.getpid()}"
    http_json("PUT", f"{args.balanced}/groups/{name}", {"start": "head", "lease_timeout_ms": 10000})
    aggregates, per_aggregate = 20, 10
    for number in range(per_aggregate):
        for aggregate in range(aggregates):
            append(args.balanced, f"group-{os.getpid()}-{aggregate}", f"{os.getpid():08x}-{aggregate:04x}-{number:04x}-8000-000000000000"[:36], {"n": number})
    total = aggregates * per_aggregate
    members = [f"member-{index}" for index in range(4)]
    handled = {}
    deadline = time.monotonic() + 60
    while sum(len(versions) for versions in handled.values()) < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster_check: FAILED: the group's members acknowledged {sum(len(v) for v in handled.values())} of {total} events within 60 s")
        for member in members:
            query = urllib.parse.urlencode({"member": member, "max": 25, "wait": 0.2})
            events = http_json("POST", f"{args.balanced}/groups/{name}/fetch?{query}")["events"]
            if not events:
                continue
            for leased in events:
                event = leased["event"]
                versions = handled.setdefault(event["aggregate_id"], [])
                if versions and event["aggregate_version"] != versions[-1] + 1:
                    raise SystemExit(f"cluster_check: FAILED: {member} got {event['aggregate_id']} version {event['aggregate_version']} after {versions[-1]}")
                versions.append(event["aggregate_version"])
            positions = [leased["event"]["position"] for leased in events]
            try:
                http_json("POST", f"{args.balanced}/groups/{name}/ack?member={member}", {"member": member, "positions": positions})
            except urllib.error.HTTPError as error:
                raise SystemExit(f"cluster_check: FAILED: {member}'s ack answered {error.code} {error.read()[:300]!r} (routed to another node?)")
    group = http_json("GET", f"{args.balanced}/groups/{name}")
    deadline = time.monotonic() + 10
    while group["lag"] != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        group = http_json("GET", f"{args.balanced}/groups/{name}")
    if group["lag"] != 0:
        raise SystemExit(f"cluster_check: FAILED: the group's checkpoint {group['checkpoint']} is not the head {group['head']}")
    nodes = [len(http_json("GET", f"{url}/groups/{name}").get("members", [])) for url in (args.node_a, args.node_b)]
    print(f"cluster_check: consumer group ok: {total} events acknowledged once each by {len(members)} pull members "
          f"through nginx, in order per aggregate (members per node: {nodes[0]} on A, {nodes[1]} on B)")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *arguments):
        return None


def check_redirect(args):
    try:
        urllib.request.build_opener(NoRedirect).open(f"{args.redirect}/health", timeout=10)
        raise SystemExit(f"cluster_check: FAILED: {args.redirect} answered without redirecting")
    except urllib.error.HTTPError as error:
        location = error.headers.get("Location", "")
        if error.code != 301 or not location.startswith("https://"):
            raise SystemExit(f"cluster_check: FAILED: {args.redirect}/health answered {error.code} Location {location!r}, not 301 to https://")
    print(f"cluster_check: redirect ok: {args.redirect} answers 301 to https://")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--balanced", required=True, help="nginx, balancing both nodes")
    parser.add_argument("--node-a", required=True, help="nginx, to node A only")
    parser.add_argument("--node-b", required=True, help="nginx, to node B only")
    parser.add_argument("--node-a-pid", type=int, required=True, help="node A's process id (killed with SIGKILL)")
    parser.add_argument("--ca-file", help="the CA certificate (PEM) that https:// URLs are verified against")
    parser.add_argument("--redirect", help="nginx's plain http:// listener, which must redirect to --balanced")
    args = parser.parse_args()
    for url in filter(None, (args.balanced, args.node_a, args.node_b, args.redirect)):
        require_loopback(parser, url)
    global TLS
    if args.ca_file:
        TLS = ssl.create_default_context(cafile=args.ca_file)
    if args.redirect:
        check_redirect(args)
    asyncio.run(cross_node(args))
    groups_over_nginx(args)
    asyncio.run(fail_over(args))
    print("cluster_check: ok")


if __name__ == "__main__":
    main()
