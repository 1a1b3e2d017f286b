#!/usr/bin/env python3
"""Checks CORS and fluxgate.js from a page of another origin, in a real browser (headless Debian chromium).

    python3 cors_check.py PAGE_ORIGIN GATEWAY_URL --expect allowed|refused [--token TOKEN] [--timeout SECONDS]

PAGE_ORIGIN is any web server on another loopback port (the test uses a second gateway); the browser opens its
/health and runs everything from that page, so every request to GATEWAY_URL is cross-origin.

--expect allowed (the gateway runs with --allow-origin PAGE_ORIGIN):
  fetch() reads the feed and appends (a JSON POST with Authorization: the browser sends a preflight first), the
  browser's own EventSource gets every event in onmessage (event_names=message), and fluxgate.js delivers the
  stored events and a live one over server-sent events and over long-polling.
--expect refused (the gateway allows no other origin):
  fetch() of the feed fails, and fluxgate.js, started with its defaults (WebSocket, then SSE, then polling),
  calls its error callback with a message that says how to allow the origin, and stops, instead of looping.

Exit status 0 when every check held, 1 when one failed (the reason on stderr), 2 for bad arguments.
"""
import argparse
import json
import signal
import sys
import time
import urllib.request
import uuid

from ui_check import CheckFailed, loopback_url, make_driver

# Runs in the page: subscribes to the gateway with fluxgate.js (imported from the page's own origin) and reports
# what happened. Arguments: gateway URL, options (transport, token, events wanted, an append to make once caught
# up), time limit in ms.
SUBSCRIBE = """
const [gateway, settings, limit, done] = arguments;
const report = { events: [], states: [], caughtUp: null, error: null, append: null };
let finished = false;
const finish = (sub) => { if (!finished) { finished = true; sub.stop(); done(report); } };
// Done when every wanted event arrived and the append (when one is asked for) has its answer.
const complete = (sub) => {
  if (report.events.length >= settings.wanted && (!settings.append || report.append)) finish(sub);
};
import("/ui/fluxgate.js").then(({ FluxgateSubscription }) => {
  const sub = new FluxgateSubscription(gateway, {
    transport: settings.transport, accessToken: settings.token || undefined, maxBackoff: 1000,
    onEvent: (event) => {
      report.events.push({ position: event.position, id: event.event_id, payload: event.payload });
      complete(sub);
    },
    onCaughtUp: async (head) => {
      report.caughtUp = head;
      if (!settings.append) return;
      const response = await fetch(gateway + "/streams/" + settings.append.stream, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + settings.token },
        body: JSON.stringify({ aggregate_name: "Browser", expected_version: "any",
          events: [{ event_type: "browser.Appended", event_id: settings.append.id, payload: { from: location.origin } }] }),
      });
      // A response the page may read at all is one the gateway allowed (CORS); its status says the rest.
      report.append = { status: response.status };
      complete(sub);
    },
    onState: (state) => report.states.push(state),
    onError: (error) => { report.error = String(error.message || error); finish(sub); },
  });
  sub.start();
  setTimeout(() => finish(sub), limit);
}).catch((error) => { report.error = "import failed: " + error; done(report); });
"""

# Runs in the page: a browser's own EventSource with event_names=message, cross-origin (CORS), the token as
# access_token (EventSource sends no headers); reports the positions onmessage received and whether caught_up came.
EVENT_SOURCE = """
const [gateway, token, wanted, limit, done] = arguments;
const report = { positions: [], caughtUp: null, error: null };
const query = "after=0&event_names=message" + (token ? "&access_token=" + encodeURIComponent(token) : "");
const source = new EventSource(gateway + "/events/subscribe?" + query);
const finish = () => { source.close(); done(report); };
source.onmessage = (message) => {
  report.positions.push(JSON.parse(message.data).position);
  if (report.positions.length >= wanted && report.caughtUp !== null) finish();
};
source.addEventListener("caught_up", (message) => {
  report.caughtUp = JSON.parse(message.data).head;
  if (report.positions.length >= wanted) finish();
});
source.onerror = () => { report.error = "EventSource error (readyState " + source.readyState + ")"; };
setTimeout(finish, limit);
"""

# Runs in the page: a plain cross-origin fetch of the feed; reports its status or the error.
FETCH_FEED = """
const [gateway, token, done] = arguments;
fetch(gateway + "/events?after=0&limit=10", { headers: token ? { Authorization: "Bearer " + token } : {} })
  .then(async (response) => done({ status: response.status, body: await response.json() }))
  .catch((error) => done({ error: error.name + ": " + error.message }));
"""


def log(message):
    print(f"cors_check: {message}", flush=True)


def seeded_head(gateway, token):
    request = urllib.request.Request(f"{gateway}/events?after=0&limit=1000",
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return len(json.load(response)["events"])


def check_allowed(driver, page, gateway, token):
    stored = seeded_head(gateway, token)
    if stored == 0:
        raise CheckFailed("the gateway has no events; seed some first")
    feed = driver.execute_async_script(FETCH_FEED, gateway, token)
    if feed.get("status") != 200:
        raise CheckFailed(f"a cross-origin fetch of the feed from {page} failed: {feed}")
    log(f"fetch() read {len(feed['body']['events'])} events from {page}")
    source = driver.execute_async_script(EVENT_SOURCE, gateway, token, stored, 20000)
    if source["positions"] != list(range(1, stored + 1)) or source["caughtUp"] != stored:
        raise CheckFailed(f"EventSource.onmessage with event_names=message got {source}, wanted positions 1…{stored} and caught_up")
    log(f"EventSource.onmessage got positions 1…{stored} and caught_up {source['caughtUp']}")
    for transport in ("sse", "polling"):
        append = {"stream": f"browser-{transport}", "id": str(uuid.uuid4())}
        report = driver.execute_async_script(
            SUBSCRIBE, gateway, {"transport": transport, "token": token, "wanted": stored + 1, "append": append}, 20000)
        if report["error"]:
            raise CheckFailed(f"{transport}: fluxgate.js reported an error: {report['error']}")
        if transport not in report["states"]:
            raise CheckFailed(f"{transport}: fluxgate.js never ran over {transport} (states {report['states']})")
        if not report["append"] or report["append"]["status"] != 201:
            raise CheckFailed(f"{transport}: the cross-origin append (a preflighted POST) answered {report['append']}")
        positions = [event["position"] for event in report["events"]]
        if positions != list(range(1, stored + 2)):
            raise CheckFailed(f"{transport}: delivered positions {positions}, wanted 1…{stored + 1} once each, in order")
        if report["events"][-1]["id"] != append["id"]:
            raise CheckFailed(f"{transport}: the last event is not the page's own append: {report['events'][-1]}")
        stored += 1
        log(f"{transport}: {len(positions)} events, the page's own append last; states {report['states']}")


def check_refused(driver, page, gateway, token):
    feed = driver.execute_async_script(FETCH_FEED, gateway, token)
    if "error" not in feed:
        raise CheckFailed(f"a gateway that allows no other origin let {page} read its feed: {feed}")
    log(f"fetch() of the feed failed as it should: {feed['error']}")
    started = time.monotonic()
    report = driver.execute_async_script(
        SUBSCRIBE, gateway, {"transport": "websocket", "token": token, "wanted": 1, "append": None}, 30000)
    if report["events"]:
        raise CheckFailed(f"fluxgate.js delivered events from a gateway that refuses {page}: {report['events'][:3]}")
    if not report["error"]:
        raise CheckFailed(f"fluxgate.js never reported the refusal in 30 s (states {report['states']})")
    if f"--allow-origin {page}" not in report["error"]:
        raise CheckFailed(f"fluxgate.js's error does not say how to allow {page}: {report['error']!r}")
    log(f"fluxgate.js reported in {time.monotonic() - started:.1f} s: {report['error']} (states {report['states']})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=loopback_url, help="a web server of another origin (loopback), e.g. http://127.0.0.1:8081")
    parser.add_argument("gateway", type=loopback_url, help="the gateway's base URL (loopback)")
    parser.add_argument("--expect", choices=["allowed", "refused"], required=True)
    parser.add_argument("--token", help="an access token with read and write scopes, for a gateway with access control")
    parser.add_argument("--timeout", type=float, default=120, help="give up after this many seconds (default 120)")
    arguments = parser.parse_args()
    if arguments.page == arguments.gateway:
        parser.error("the page must be of another origin than the gateway")
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(CheckFailed(f"not done in {arguments.timeout:g} s")))
    signal.alarm(int(arguments.timeout))
    driver = None
    status = 1
    try:
        driver = make_driver()
        driver.set_script_timeout(60)
        driver.get(arguments.page + "/health")
        if arguments.expect == "allowed":
            check_allowed(driver, arguments.page, arguments.gateway, arguments.token)
        else:
            check_refused(driver, arguments.page, arguments.gateway, arguments.token)
        log("ok")
        status = 0
    except CheckFailed as failure:
        print(f"cors_check: FAILED: {failure}", file=sys.stderr)
    except Exception as error:  # selenium or the browser broke: say what, not a bare traceback
        print(f"cors_check: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
    finally:
        signal.alarm(0)
        if driver is not None:
            driver.quit()
    return status


if __name__ == "__main__":
    sys.exit(main())
