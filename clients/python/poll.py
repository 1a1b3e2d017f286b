#!/usr/bin/env python3
"""A read model that polls Fluxgate's JSON feed and keeps its offset in a file.

    python3 poll.py http://127.0.0.1:8080 --offset-file poll.offset [--event-type T]... [--once] [--token TOKEN]

Prints each event as one JSON line. The offset file holds the last position handled and the store's epoch;
after a restart the poller resumes right after it. If the gateway's epoch differs from the stored one, the
offsets belong to another store: the poller stops with an error instead of silently starting over.
A gateway with access control needs a token with the read scope: --token or FLUXGATE_TOKEN.
Uses only the standard library (urllib), so it runs anywhere Python 3.8+ does.
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from offsets import load_offset, save_offset




def fetch_page(base, after, limit, wait, event_types, timeout, token=None):
    query = [("after", after), ("limit", limit), ("embed", "payload"), ("wait", wait)]
    query += [("event_type", t) for t in event_types]
    url = base.rstrip("/") + "/events?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url", help="the gateway, e.g. http://127.0.0.1:8080")
    parser.add_argument("--offset-file", default="poll.offset", help="where the last handled position is kept")
    parser.add_argument("--event-type", action="append", default=[], help="only these event types (repeatable)")
    parser.add_argument("--limit", type=int, default=500, help="events per page (at most 1000)")
    parser.add_argument("--wait", type=int, default=20, help="long-poll seconds at the head")
    parser.add_argument("--once", action="store_true", help="stop when caught up instead of waiting for more")
    parser.add_argument("--token", default=os.environ.get("FLUXGATE_TOKEN"),
                        help="bearer token for a gateway with access control (default: $FLUXGATE_TOKEN)")
    args = parser.parse_args()

    position, epoch = load_offset(args.offset_file)
    backoff = 0.5
    while True:
        try:
            page = fetch_page(args.base_url, position, args.limit, 0 if args.once else args.wait, args.event_type, args.wait + 10, args.token)
        except urllib.error.HTTPError as error:
            if error.code in (401, 403):
                print(f"poll.py: the gateway refused the token ({error.code}): {error.read().decode('utf-8', 'replace')}", file=sys.stderr)
                return 2
            print(f"poll.py: {error}; retrying in {backoff:.1f} s", file=sys.stderr)
            time.sleep(backoff)
            backoff = min(backoff * 2, 30)
            continue
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as error:
            print(f"poll.py: {error}; retrying in {backoff:.1f} s", file=sys.stderr)
            time.sleep(backoff)
            backoff = min(backoff * 2, 30)
            continue
        backoff = 0.5
        if epoch is not None and page["epoch"] != epoch:
            print(f"poll.py: the gateway's epoch {page['epoch']} is not the one in {args.offset_file} ({epoch}): "
                  "these offsets belong to another store; delete the offset file to start over", file=sys.stderr)
            return 2
        epoch = page["epoch"]
        for event in page["events"]:
            print(json.dumps(event, separators=(",", ":")), flush=True)
            position = event["position"]
            save_offset(args.offset_file, position, epoch)  # after handling: at-least-once
        if not page["events"]:
            # Nothing matched up to the head: skip what was scanned (the next page starts after it).
            next_after = int(urllib.parse.parse_qs(urllib.parse.urlparse(page["next"]).query)["after"][0])
            if next_after > position:
                position = next_after
                save_offset(args.offset_file, position, epoch)
            if args.once:
                return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C: the offset file already holds the last handled position
        sys.exit(130)
