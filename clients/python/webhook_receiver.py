#!/usr/bin/env python3
"""A receiver of a Fluxgate webhook sink: verifies each delivery's signature, drops repeats, logs new events.

    python3 webhook_receiver.py --secret whsec_... --log events.jsonl [--host 127.0.0.1] [--port 8000]
    fluxgate sinks create NAME --url http://127.0.0.1:8000/ --secret whsec_...     (or PUT /sinks/NAME)

Each POST is checked with the `standardwebhooks` package (requirements.txt) against the secret (and --previous-secret
while a secret is rotated): a bad or missing signature, or a timestamp more than 5 minutes off, is answered 401. The
gateway delivers at least once, so a delivery may come again (after a timeout, a dropped connection or a restart):
the receiver deduplicates by the `webhook-id` header (the event's id) and appends each new event's envelope as one
JSON line to --log; the ids already in the log are read at start, so a restarted receiver skips them too. It answers
204 for a new event and for a repeat alike (a repeat must be acknowledged, or the gateway would retry it).

For tests, --fail-rate R makes it fail that share of requests at random (--seed for a repeatable run): an HTTP 500,
an answer slower than --slow SECONDS (past the sink's timeout), or a connection closed without an answer
(--fail-modes picks among them). --tls-cert and --tls-key serve HTTPS. --status
CODE answers every request with CODE (500: the sink parks its events; 410: the sink disables itself); the file named
by --status-file, when it exists, holds the code instead (write 204 there to "fix" the receiver while it runs).
--answer-bytes N answers each accepted delivery 200 with a JSON body of N bytes instead of 204 (a receiver that says
a lot: the gateway reads 64 KiB of an answer at most).
It prints "listening on PORT" once it listens (--port 0 takes a free port).
"""
import argparse
import json
import os
import random
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# The largest delivery body read (a Fluxgate event envelope is far smaller).
MAX_BODY = 16 << 20


class Receiver:
    def __init__(self, args):
        self.args = args
        self.verifiers = [Webhook(secret) for secret in [args.secret, args.previous_secret] if secret]
        self.lock = threading.Lock()
        self.random = random.Random(args.seed)
        self.seen = set()
        if os.path.exists(args.log):
            with open(args.log, encoding="utf-8") as log:
                for line in log:
                    line = line.strip()
                    if line:
                        self.seen.add(json.loads(line)["event_id"])
        self.log = open(args.log, "a", encoding="utf-8")
        self.counts = {"new": 0, "repeat": 0, "bad_signature": 0, "failed": 0, "cut_short": 0}
        padding = max(0, args.answer_bytes - len('{"pad":""}'))
        self.long_answer = ('{"pad":"' + "x" * padding + '"}').encode()

    def status_override(self):
        if self.args.status_file and os.path.exists(self.args.status_file):
            with open(self.args.status_file, encoding="utf-8") as file:
                text = file.read().strip()
            if text:
                return int(text)
        return self.args.status

    def chaos(self):
        """None, or how this request fails: "500", "slow" or "drop"."""
        with self.lock:
            if self.random.random() >= self.args.fail_rate:
                return None
            return self.random.choice(self.args.fail_modes.split(","))

    def verify(self, body, headers):
        last = None
        for verifier in self.verifiers:
            try:
                return verifier.verify(body, headers)
            except WebhookVerificationError as error:
                last = error
        raise last

    def accept(self, event_id, body):
        """Logs the event unless its id was seen; whether it was new."""
        with self.lock:
            if event_id in self.seen:
                self.counts["repeat"] += 1
                return False
            self.seen.add(event_id)
            self.log.write(body.decode("utf-8").replace("\n", " ") + "\n")
            self.log.flush()
            self.counts["new"] += 1
            return True


def make_handler(receiver):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            if receiver.args.verbose:
                sys.stderr.write("receiver: " + (format % args) + "\n")

        def answer(self, status, body=b""):
            try:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                if body:
                    self.send_header("content-type", "application/json")
                self.end_headers()
                if body:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The sender stopped reading (it had what it needed: the status) and closed the connection.
                self.close_connection = True

        def do_POST(self):
            try:
                length = int(self.headers.get("content-length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                self.answer(413 if length > MAX_BODY else 400, b'{"error":"content-length must be 0 to 16 MiB"}')
                return
            body = self.rfile.read(length)
            if len(body) < length:
                # The sender gave up mid-request (its timeout, a restart): there is nothing whole to verify or answer;
                # it sends the delivery again.
                receiver.counts["cut_short"] += 1
                self.close_connection = True
                return
            override = receiver.status_override()
            if override is not None:
                receiver.counts["failed"] += 1
                self.answer(override, json.dumps({"status": override}).encode())
                return
            failure = receiver.chaos()
            if failure == "500":
                receiver.counts["failed"] += 1
                self.answer(500, b'{"error":"chaos"}')
                return
            if failure == "slow":
                receiver.counts["failed"] += 1
                time.sleep(receiver.args.slow)
                self.answer(503, b'{"error":"too slow"}')
                return
            if failure == "drop":
                receiver.counts["failed"] += 1
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                receiver.verify(body, headers)
            except WebhookVerificationError as error:
                receiver.counts["bad_signature"] += 1
                sys.stderr.write(f"receiver: bad signature on {headers.get('webhook-id')}: {error}\n")
                self.answer(401, json.dumps({"error": str(error)}).encode())
                return
            receiver.accept(headers["webhook-id"], body)
            if receiver.args.answer_bytes > 0:
                self.answer(200, receiver.long_answer)
            else:
                self.answer(204)

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--secret", required=True, help="the sink's signing secret, whsec_...")
    parser.add_argument("--previous-secret", help="the secret being rotated out: deliveries signed with it pass too")
    parser.add_argument("--log", required=True, help="the file each new event's envelope is appended to, one JSON line each")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of requests failed at random (tests)")
    parser.add_argument("--fail-modes", default="500,slow,drop", help="how requests fail at random: any of 500, slow, drop (comma-separated)")
    parser.add_argument("--slow", type=float, default=3.0, help="seconds a 'slow' failure waits before answering")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (and --tls-key)")
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--status", type=int, default=None, help="answer every request with this status (tests)")
    parser.add_argument("--status-file", help="a file whose content, while it exists, is the status to answer")
    parser.add_argument("--answer-bytes", type=int, default=0, help="answer accepted deliveries 200 with a body this long (tests)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    receiver = Receiver(args)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(receiver))
    server.daemon_threads = True
    if args.tls_cert:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sys.stderr.write(f"receiver: {json.dumps(receiver.counts)}\n")


if __name__ == "__main__":
    main()
