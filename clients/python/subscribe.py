#!/usr/bin/env python3
"""A read model over Fluxgate's WebSocket push channel, keeping its offset in a file.

    python3 subscribe.py ws://127.0.0.1:8080 --offset-file subscribe.offset [--event-type T]... [--deflate]
                         [--exit-after N] [--token TOKEN]

Prints each event as one JSON line. After handling an event it stores the position (and the store's epoch)
in the offset file, so a restart resumes right after the last handled event: nothing is skipped, nothing
handled twice. Reconnects with exponential backoff and jitter when the connection drops or the gateway
restarts (close 1001). If the gateway answers 4409 (the offsets belong to another store) it stops with an
error instead of starting over. A gateway with access control needs a token with the read scope: --token, or the
FLUXGATE_TOKEN environment variable (sent as Authorization: Bearer). Needs the `websockets` package (requirements.txt).
"""
import argparse
import asyncio
import json
import os
import random
import sys
import urllib.parse


from offsets import load_offset, save_offset
from requirements_check import import_websockets

websockets = import_websockets("subscribe.py")




class EpochMismatch(Exception):
    pass


async def run(args):
    position, epoch = load_offset(args.offset_file)
    handled = 0
    backoff = 0.2
    while True:
        query = [("after", position)] + ([("epoch", epoch)] if epoch else [])
        query += [("event_type", t) for t in args.event_type]
        url = args.base_url.rstrip("/") + "/events/subscribe?" + urllib.parse.urlencode(query)
        try:
            headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
            async with websockets.connect(url, compression="deflate" if args.deflate else None, additional_headers=headers,
                                          max_size=64 * 1024 * 1024, open_timeout=10) as socket:
                backoff = 0.2
                async for raw in socket:
                    message = json.loads(raw)
                    if message["type"] == "caught_up":
                        print(f"subscribe.py: caught up at {message['head']}", file=sys.stderr, flush=True)
                        continue
                    if message["type"] != "events":
                        continue
                    epoch = message["epoch"]
                    for event in message["events"]:
                        if event["position"] <= position:
                            continue  # never handle an event twice
                        print(json.dumps(event, separators=(",", ":")), flush=True)
                        position = event["position"]
                        save_offset(args.offset_file, position, epoch)  # after handling: at-least-once
                        handled += 1
                        if args.exit_after and handled >= args.exit_after:
                            return 0
                    await socket.send(json.dumps({"type": "ack", "position": position}))
                # A normal close (1000, or 1001 when the gateway stops) ends the loop without an exception.
                print(f"subscribe.py: connection closed ({socket.close_code} {socket.close_reason}); "
                      f"reconnecting from {position}", file=sys.stderr, flush=True)
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            reason = closed.rcvd.reason if closed.rcvd else ""
            if code == 4409:
                raise EpochMismatch(reason)
            if code in (4400, 1008):
                print(f"subscribe.py: the gateway refused the subscription ({code}): {reason}", file=sys.stderr)
                return 2
            print(f"subscribe.py: connection closed ({code} {reason}); reconnecting from {position}", file=sys.stderr, flush=True)
        except websockets.InvalidStatus as error:
            status = error.response.status_code
            if status in (401, 403):
                body = error.response.body.decode("utf-8", "replace") if error.response.body else ""
                print(f"subscribe.py: the gateway refused the token ({status}): {body}", file=sys.stderr)
                return 2
            print(f"subscribe.py: {error}; retrying in {backoff:.1f} s", file=sys.stderr, flush=True)
        except (OSError, websockets.InvalidHandshake, asyncio.TimeoutError) as error:
            print(f"subscribe.py: {error}; retrying in {backoff:.1f} s", file=sys.stderr, flush=True)
        await asyncio.sleep(random.uniform(0, backoff))
        backoff = min(backoff * 2, 15)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url", help="the gateway, e.g. ws://127.0.0.1:8080")
    parser.add_argument("--offset-file", default="subscribe.offset")
    parser.add_argument("--event-type", action="append", default=[], help="only these event types (repeatable)")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--exit-after", type=int, default=0, help="stop after handling N events (for tests)")
    parser.add_argument("--token", default=os.environ.get("FLUXGATE_TOKEN"),
                        help="bearer token for a gateway with access control (default: $FLUXGATE_TOKEN)")
    args = parser.parse_args()
    try:
        return asyncio.run(run(args))
    except EpochMismatch as error:
        print(f"subscribe.py: the offsets in {args.offset_file} belong to another store than this gateway's, so resuming "
              f"from them could skip or repeat events. Delete {args.offset_file} to start over from the beginning.\n"
              f"  (the gateway said: {str(error).strip() or 'close 4409'})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
