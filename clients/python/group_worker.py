#!/usr/bin/env python3
"""A worker of a Fluxgate consumer group: shares the group's events with the group's other workers.

    python3 group_worker.py http://127.0.0.1:8080 GROUP [--member NAME] [--credit N]      # WebSocket member
    python3 group_worker.py http://127.0.0.1:8080 GROUP --pull [--max N] [--wait S]      # HTTP pull member

The gateway keeps the group's checkpoint, so workers keep no offset file: start as many as you like, stop or kill
any of them, and the events it held go to the others. An aggregate's events reach one worker at a time, in order.
Each handled event is printed as one JSON line ({"attempt": A, "worker": W, "event": ENVELOPE, "started": T,
"ended": T} with monotonic clock times) and then acknowledged; an event whose type is given with --fail-on-type is
rejected instead (nack), so the gateway retries it and parks it after the group's attempts (see
`fluxgate groups parked GROUP`); the aggregate's later events of the same batch are then left alone (the gateway
takes them back with the rejected one, and hands them out after it). Reconnects with exponential backoff and jitter when the connection drops or the
gateway restarts. A gateway with access control needs a token with the groups and read scopes: --token, or the
FLUXGATE_TOKEN environment variable. WebSocket mode needs the `websockets` package (requirements.txt); --pull
needs only the standard library.
"""
import argparse
import asyncio
import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class Refused(Exception):
    """The gateway refused the worker for good (unknown group, bad token): retrying would not help."""


class Worker:
    def __init__(self, args):
        self.args = args
        self.member = args.member or f"worker-{os.getpid()}-{random.randrange(1 << 32):08x}"
        self.handled = 0

    def handle(self, item):
        """Handles one leased event; returns None to acknowledge it, or the reason to reject it."""
        event = item["event"]
        started = time.monotonic()
        if self.args.handler_delay:
            time.sleep(self.args.handler_delay)
        ended = time.monotonic()
        failed = event["event_type"] in self.args.fail_on_type
        print(json.dumps({"attempt": item["attempt"], "worker": self.member, "event": event, "started": started,
                          "ended": ended, "rejected": failed}, separators=(",", ":")), flush=True)
        if failed:
            return f"group_worker.py rejects {event['event_type']} (--fail-on-type)"
        self.handled += 1
        return None

    def done(self):
        return self.args.exit_after and self.handled >= self.args.exit_after

    def handle_batch(self, items):
        """Handles a batch of leased events in order; returns the settlements to send, in order: {"type": "ack",
        "positions": [...]} and {"type": "nack", "position": p, "reason": r} (the group's WebSocket messages; the
        HTTP API takes the same fields). After a rejection the aggregate's later events of the batch are left alone:
        the gateway took them back with the rejected one."""
        settlements, acknowledged, rejected = [], [], set()
        for item in items:
            event = item["event"]
            if event["aggregate_id"] in rejected:
                continue
            reason = self.handle(item)
            if reason is None:
                acknowledged.append(event["position"])
            else:
                rejected.add(event["aggregate_id"])
                if acknowledged:
                    settlements.append({"type": "ack", "positions": acknowledged})
                    acknowledged = []
                settlements.append({"type": "nack", "position": event["position"], "reason": reason})
            if self.done():
                break
        if acknowledged:
            settlements.append({"type": "ack", "positions": acknowledged})
        return settlements


def headers(args):
    return {"Authorization": f"Bearer {args.token}"} if args.token else {}


def http(args, method, path, body=None, timeout=90):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(args.base_url.rstrip("/") + path, data=data, method=method, headers=headers(args))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        if error.code in (401, 403, 404):
            raise Refused(f"{method} {path}: {error.code}: {text}")
        raise OSError(f"{method} {path}: {error.code}: {text}")


def run_pull(args, worker):
    group = urllib.parse.quote(args.group, safe="")
    backoff = 0.2
    while not worker.done():
        try:
            query = urllib.parse.urlencode({"member": worker.member, "max": args.max, "wait": args.wait})
            answer = http(args, "POST", f"/groups/{group}/fetch?{query}")
            backoff = 0.2
            for settlement in worker.handle_batch(answer["events"]):
                kind = settlement.pop("type")
                # The member in the query too: a proxy in front of several nodes routes by it (the node that leased
                # the events settles them; deploy/nginx/fluxgate.conf).
                member = urllib.parse.urlencode({"member": worker.member})
                http(args, "POST", f"/groups/{group}/{kind}?{member}", {"member": worker.member, **settlement})
        except (OSError, ValueError) as error:
            print(f"group_worker.py: {error}; retrying in {backoff:.1f} s", file=sys.stderr, flush=True)
            time.sleep(random.uniform(0, backoff))
            backoff = min(backoff * 2, 15)
    return 0


async def run_websocket(args, worker):
    from requirements_check import import_websockets
    websockets = import_websockets("group_worker.py")
    base = args.base_url.rstrip("/")
    base = "ws" + base[4:] if base.startswith("http") else base
    query = urllib.parse.urlencode({"member": worker.member, "credit": args.credit})
    url = f"{base}/groups/{urllib.parse.quote(args.group, safe='')}/subscribe?{query}"
    backoff = 0.2
    while not worker.done():
        try:
            async with websockets.connect(url, additional_headers=headers(args) or None, max_size=64 * 1024 * 1024,
                                          open_timeout=10) as socket:
                backoff = 0.2
                async for raw in socket:
                    message = json.loads(raw)
                    if message.get("type") == "error":
                        print(f"group_worker.py: the gateway refused a settlement: {message.get('message')}",
                              file=sys.stderr, flush=True)
                        continue
                    if message.get("type") != "events":
                        continue
                    for settlement in worker.handle_batch(message["events"]):
                        await socket.send(json.dumps(settlement))
                    if worker.done():
                        await socket.close()
                        return 0
                print(f"group_worker.py: connection closed ({socket.close_code} {socket.close_reason}); reconnecting",
                      file=sys.stderr, flush=True)
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            reason = closed.rcvd.reason if closed.rcvd else ""
            if code == 1008:
                raise Refused(f"closed with 1008: {reason}")
            print(f"group_worker.py: connection closed ({code} {reason}); reconnecting", file=sys.stderr, flush=True)
        except websockets.InvalidStatus as error:
            status = error.response.status_code
            body = error.response.body.decode("utf-8", "replace") if error.response.body else ""
            if status in (400, 401, 403, 404):
                raise Refused(f"{status}: {body}")
            print(f"group_worker.py: {status} {body}; retrying in {backoff:.1f} s", file=sys.stderr, flush=True)
        except (OSError, websockets.InvalidHandshake, asyncio.TimeoutError) as error:
            print(f"group_worker.py: {error}; retrying in {backoff:.1f} s", file=sys.stderr, flush=True)
        await asyncio.sleep(random.uniform(0, backoff))
        backoff = min(backoff * 2, 15)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url", help="the gateway, e.g. http://127.0.0.1:8080")
    parser.add_argument("group", help="the consumer group's name (create it with `fluxgate groups create`)")
    parser.add_argument("--member", help="this worker's member name (default: made up; keep it to resume its leases)")
    parser.add_argument("--credit", type=int, default=100, help="WebSocket: events held at most at once (1-1000)")
    parser.add_argument("--pull", action="store_true", help="fetch over HTTP instead of a WebSocket")
    parser.add_argument("--max", type=int, default=100, help="--pull: events per fetch (1-1000)")
    parser.add_argument("--wait", type=float, default=20, help="--pull: seconds a fetch waits for events (0-60)")
    parser.add_argument("--fail-on-type", action="append", default=[], help="reject events of this type (repeatable)")
    parser.add_argument("--handler-delay", type=float, default=0, help="seconds each event takes to handle (for tests)")
    parser.add_argument("--exit-after", type=int, default=0, help="stop after acknowledging N events (for tests)")
    parser.add_argument("--token", default=os.environ.get("FLUXGATE_TOKEN"),
                        help="bearer token for a gateway with access control (default: $FLUXGATE_TOKEN)")
    args = parser.parse_args()
    if not 1 <= args.credit <= 1000 or not 1 <= args.max <= 1000 or not 0 <= args.wait <= 60:
        parser.error("--credit and --max are 1 to 1000, --wait 0 to 60")
    if not args.pull:
        from requirements_check import import_websockets
        import_websockets("group_worker.py")  # says what to install before anything else
    worker = Worker(args)
    try:
        return run_pull(args, worker) if args.pull else asyncio.run(run_websocket(args, worker))
    except Refused as error:
        print(f"group_worker.py: the gateway refused this worker: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
