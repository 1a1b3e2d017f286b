#!/usr/bin/env python3
"""Checks the gateway's web UI in a real browser (headless Debian chromium through /usr/bin/chromedriver).

    python3 ui_check.py GATEWAY_URL SCREENSHOT.png [--refuse-push [--refuse-sse]] [--timeout SECONDS]

It opens GATEWAY_URL/, waits for the page to show the store's head and to be live, appends an event over HTTP
(POST /streams/{id}), checks that the event appears on the page within two seconds, clicks it and checks that
its payload is shown, opens its stream, and saves a PNG screenshot. With --refuse-push the browser goes
through a small proxy in this script that refuses WebSocket upgrades (502, as some corporate proxies do), so
the page must fall back to server-sent events; with --refuse-sse as well, the proxy refuses those too and the
page must fall back to long-polling the feed.

Exit status: 0 when every check held; 1 when one failed (the reason on stderr, and a screenshot of the page as
it was, when there is one); 2 for bad arguments or a missing browser. Loopback addresses only.
"""
import argparse
import asyncio
import ipaddress
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
APPEAR_WITHIN = 2.0  # seconds between the append's answer and the row on the page


class CheckFailed(Exception):
    pass


def log(message):
    print(f"ui_check: {message}", flush=True)


def loopback_url(text):
    url = urllib.parse.urlsplit(text)
    host = url.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if url.scheme != "http" or not loopback or not url.port:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// URL on a loopback address with a port (e.g. http://127.0.0.1:8080)")
    return f"http://{url.netloc}"


# --- a proxy that refuses WebSocket upgrades --------------------------------------------------------

class RefusingProxy:
    """Relays HTTP to the gateway byte for byte, but answers every WebSocket upgrade (and, when asked, every
    request for server-sent events) with 502."""

    def __init__(self, upstream_port, refuse_sse=False):
        self.upstream_port = upstream_port
        self.refuse_sse = refuse_sse
        self.port = None
        self.refused = 0
        self._ready = threading.Event()
        self._loop = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise CheckFailed("the refusing proxy did not start")
        return self

    def _run(self):
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())

    async def _serve(self):
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await server.serve_forever()

    @staticmethod
    async def _relay(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader, client_writer):
        try:
            head = await client_reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            client_writer.close()
            return
        lowered = head.lower()
        if b"\nupgrade: websocket" in lowered or (self.refuse_sse and b"\naccept: text/event-stream" in lowered):
            self.refused += 1
            body = b'{"error":"bad_gateway","message":"this proxy does not pass WebSocket upgrades or event streams"}'
            client_writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            await client_writer.drain()
            client_writer.close()
            return
        # One request per connection, so that each request's head is seen here (a browser reuses connections).
        lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(b"connection:")]
        head = b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n"
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        upstream_writer.write(head)
        await asyncio.gather(self._relay(client_reader, upstream_writer), self._relay(upstream_reader, client_writer))


# --- the checks ----------------------------------------------------------------------------------

ACCESS_TOKEN = None  # --token: the gateway needs one (the page gets it in its fragment, appends in a header)


def append_event(gateway, aggregate_id, event_type, payload):
    body = json.dumps({
        "aggregate_name": "UICheck",
        "expected_version": -1,
        "events": [{"event_type": event_type, "payload": payload}],
    }).encode()
    request = urllib.request.Request(f"{gateway}/streams/{urllib.parse.quote(aggregate_id)}", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {ACCESS_TOKEN}"} if ACCESS_TOKEN else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 201:
                raise CheckFailed(f"the append answered {response.status}, expected 201")
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise CheckFailed(f"the append answered {error.code}: {error.read()[:300]!r}") from None
    except urllib.error.URLError as error:
        raise CheckFailed(f"could not append to {gateway}: {error.reason}") from None


def check_gateway(gateway, patience=60):
    # A gateway that refuses the connection is not there; one that is slow to answer may be on a loaded machine
    # (the test suite runs in parallel beside builds): ask again until `patience` seconds have passed.
    deadline = time.monotonic() + patience
    while True:
        try:
            with urllib.request.urlopen(f"{gateway}/health", timeout=20) as response:
                health = json.load(response)
            break
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionRefusedError) or time.monotonic() >= deadline:
                raise CheckFailed(f"the gateway at {gateway} does not answer GET /health ({error}); start it first") from None
        except (OSError, ValueError) as error:
            if time.monotonic() >= deadline:
                raise CheckFailed(f"the gateway at {gateway} does not answer GET /health ({error}); start it first") from None
        time.sleep(0.5)
    log(f"gateway {gateway} is up: head {health.get('head')}, epoch {health.get('epoch')}")


def make_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            print(f"ui_check: {path} is missing; run scripts/setup.sh (apt-get install chromium chromium-driver)", file=sys.stderr)
            sys.exit(2)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1150", "--no-first-run", "--no-default-browser-check",
                     "--disable-extensions", "--disable-background-networking", "--disable-sync",
                     "--disable-component-update", "--password-store=basic"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def wait_for(description, condition, timeout, interval=0.02):
    """Polls `condition` until it returns something truthy; fails with `description` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # a stale element while the page updates: try again
            last_error = error
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise CheckFailed(f"{description} within {timeout:g} s{detail}")
        time.sleep(interval)


def run_checks(driver, page_url, gateway, expected_transport):
    from selenium.webdriver.common.by import By

    def text_of(selector):
        return driver.find_element(By.CSS_SELECTOR, selector).text.strip()

    started = time.monotonic()
    driver.get(page_url + "/" + (f"#access_token={urllib.parse.quote(ACCESS_TOKEN)}" if ACCESS_TOKEN else ""))
    if "Fluxgate" not in driver.title:
        raise CheckFailed(f"the page at {page_url}/ has the title {driver.title!r}, not the Fluxgate UI's")

    head_text = wait_for("the page did not show the head position",
                         lambda: (lambda t: t if t.replace(",", "").replace(".", "").replace("\u202f", "").replace("\u00a0", "").isdigit() else None)(text_of("#head")),
                         timeout=15)
    log(f"page shows head {head_text} after {time.monotonic() - started:.2f} s")

    connection = driver.find_element(By.ID, "connection")
    wait_for("the page did not go live (the connection pill never said Live)",
             lambda: connection.get_attribute("data-state") == "live", timeout=15)
    transport = connection.get_attribute("data-transport")
    log(f"page is live over {transport} ({text_of('#connection-text')})")
    if transport != expected_transport:
        raise CheckFailed(f"the page is live over {transport}, expected {expected_transport}")

    token = uuid.uuid4().hex[:12]
    aggregate_id = f"ui-check-{token}"
    event_type = "uicheck.Appended"
    payload = {"token": token, "amount": 42, "note": "appended by ui_check.py", "tags": ["browser", "check"]}
    appended = append_event(gateway, aggregate_id, event_type, payload)
    appended_at = time.monotonic()
    position = appended["first_position"]
    log(f"appended {event_type} to {aggregate_id} at position {position}")

    row_selector = f'#live-events tr[data-position="{position}"]'
    row = wait_for(f"event {position} did not appear in the live table",
                   lambda: driver.find_elements(By.CSS_SELECTOR, row_selector), timeout=APPEAR_WITHIN)[0]
    log(f"event {position} appeared on the page {time.monotonic() - appended_at:.3f} s after the append")
    row_text = row.text
    for expected in (event_type, aggregate_id):
        if expected not in row_text:
            raise CheckFailed(f"the row of event {position} does not show {expected!r}: {row_text!r}")
    wait_for(f"the head did not reach {position}",
             lambda: int("".join(c for c in text_of("#head") if c.isdigit()) or "0") >= position, timeout=2)

    row.find_element(By.CSS_SELECTOR, "td.type").click()
    shown = wait_for("the clicked event's payload was not shown",
                     lambda: (lambda t: t if token in t else None)(text_of("#payload")), timeout=5)
    try:
        shown_payload = json.loads(shown)
    except json.JSONDecodeError as error:
        raise CheckFailed(f"the payload shown is not the event's JSON ({error}): {shown[:300]!r}") from None
    if shown_payload != payload:
        raise CheckFailed(f"the payload shown {shown_payload!r} is not the one appended {payload!r}")
    if text_of("#detail-type") != event_type:
        raise CheckFailed(f"the detail panel names {text_of('#detail-type')!r}, not {event_type!r}")
    log("clicking the event shows its payload")

    row.find_element(By.CSS_SELECTOR, "a.aggregate-link").click()
    stream_row = wait_for(f"the stream view of {aggregate_id} did not list its event",
                          lambda: driver.find_elements(By.CSS_SELECTOR, f'#stream-events tr[data-position="{position}"]'),
                          timeout=5)[0]
    if event_type not in stream_row.text:
        raise CheckFailed(f"the stream view's row does not show {event_type!r}: {stream_row.text!r}")
    log(f"the stream view lists {aggregate_id}")

    # Let the highlight of the new row fade before the picture.
    time.sleep(1.7)
    rate = text_of("#rate")
    if not rate.replace(",", "").replace(".", "").isdigit():
        raise CheckFailed(f"the event rate shown is {rate!r}, not a number")
    errors = [entry for entry in driver.get_log("browser")
              if entry.get("level") == "SEVERE" and "Uncaught" in entry.get("message", "")]
    if errors:
        raise CheckFailed("the page threw: " + "; ".join(entry["message"] for entry in errors[:5]))
    return transport


def save_screenshot(driver, path):
    if not driver.save_screenshot(path):
        raise CheckFailed(f"could not save the screenshot to {path}")
    with open(path, "rb") as file:
        if file.read(8) != b"\x89PNG\r\n\x1a\n":
            raise CheckFailed(f"{path} is not a PNG")
    log(f"screenshot saved to {path} ({os.path.getsize(path)} bytes)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gateway", type=loopback_url, help="the gateway's base URL, e.g. http://127.0.0.1:8080 (loopback only)")
    parser.add_argument("screenshot", help="where to save the PNG screenshot")
    parser.add_argument("--refuse-push", action="store_true", help="browse through a proxy that refuses WebSocket upgrades")
    parser.add_argument("--refuse-sse", action="store_true", help="with --refuse-push: the proxy refuses server-sent events too")
    parser.add_argument("--timeout", type=float, default=90, help="give up after this many seconds (default 90)")
    parser.add_argument("--token", help="an access token with read and write scopes, for a gateway with access control")
    arguments = parser.parse_args()
    global ACCESS_TOKEN
    ACCESS_TOKEN = arguments.token
    if arguments.refuse_sse and not arguments.refuse_push:
        parser.error("--refuse-sse goes with --refuse-push (the page only tries SSE when the push channel fails)")
    expected_transport = "polling" if arguments.refuse_sse else "sse" if arguments.refuse_push else "websocket"

    try:
        import selenium  # noqa: F401
    except ImportError:
        print("ui_check: the Python selenium package is missing; run scripts/setup.sh (pip install selenium)", file=sys.stderr)
        return 2

    def give_up(signum, frame):
        raise CheckFailed(f"the whole check took longer than {arguments.timeout:g} s")
    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(max(1, int(arguments.timeout)))

    started = time.monotonic()
    driver = None
    status = 1
    try:
        check_gateway(arguments.gateway)
        page_url = arguments.gateway
        if arguments.refuse_push:
            proxy = RefusingProxy(urllib.parse.urlsplit(arguments.gateway).port, refuse_sse=arguments.refuse_sse).start()
            page_url = f"http://127.0.0.1:{proxy.port}"
            refused = "WebSocket upgrades and server-sent events" if arguments.refuse_sse else "WebSocket upgrades"
            log(f"browsing through {page_url}, a proxy that refuses {refused}")
        driver = make_driver()
        transport = run_checks(driver, page_url, arguments.gateway, expected_transport)
        save_screenshot(driver, arguments.screenshot)
        log(f"ok: head, live event, payload and stream shown over {transport} in {time.monotonic() - started:.1f} s")
        status = 0
    except CheckFailed as failure:
        print(f"ui_check: FAILED: {failure}", file=sys.stderr)
    except Exception as error:  # selenium or the browser broke: say what, not a bare traceback
        print(f"ui_check: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
    finally:
        signal.alarm(0)
        if driver is not None:
            if status != 0:
                # Keep a picture of the page as it was, for whoever reads the failure.
                try:
                    driver.save_screenshot(arguments.screenshot)
                    print(f"ui_check: the page as it was is in {arguments.screenshot}", file=sys.stderr)
                except Exception:
                    pass
            driver.quit()
    return status


if __name__ == "__main__":
    sys.exit(main())
