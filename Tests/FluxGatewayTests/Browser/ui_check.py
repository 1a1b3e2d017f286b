#!/usr/bin/env python3
"""Checks the gateway's web UI in a real browser (headless Debian chromium through /usr/bin/chromedriver).

    python3 ui_check.py GATEWAY_URL SCREENSHOT.png [--refuse-push [--refuse-sse]] [--token T] [--extended]
                        [--timeout SECONDS]
    python3 ui_check.py GATEWAY_URL SCREENSHOT.png --prompt-token GOOD_TOKEN [--timeout SECONDS]

It opens GATEWAY_URL/, waits for the page to show the store's head and to be live, appends an event over HTTP
(POST /streams/{id}), checks that the event appears on the page within two seconds, clicks it and checks that
its payload is shown, opens its stream, and saves a PNG screenshot. With --refuse-push the browser goes
through a small proxy in this script that refuses WebSocket upgrades (502, as some corporate proxies do), so
the page must fall back to server-sent events; with --refuse-sse as well, the proxy refuses those too and the
page must fall back to long-polling the feed.

--extended then checks the rest of the page against a gateway that holds streams list-00 … list-24 (aggregate name
UICheck) and more than 50 events: the subscriber and lag figures from /metrics; the stream list searched by the prefix "list-", its next
page, and a click opening a stream; an append to that open stream showing in its table; an older page of the
global history and the way back to live; and, at 360 px wide, no horizontal scrolling of the page.

--prompt-token checks the token prompt against a gateway with access control holding exactly one event: the page,
opened without a token, asks once (however many of its requests were refused), does not claim "No events yet"
while the head is 1, asks again with the reason after a wrong token, and, given GOOD_TOKEN, shows event 1 and
never asks again (not after a reload either: the token is kept for the tab's session).

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
APPEAR_WITHIN = 10.0  # seconds between the append's answer and the row on the page: a bound for a loaded machine
# (the full suite runs hostile-client floods beside it), not a latency target; the check prints the time it took


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


def append_event(gateway, aggregate_id, event_type, payload, expected_version=-1):
    body = json.dumps({
        "aggregate_name": "UICheck",
        "expected_version": expected_version,
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
                     lambda: (lambda t: t if token in t else None)(text_of("#payload")), timeout=15)
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
                          timeout=15)[0]
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


def digits(text):
    return int("".join(c for c in text if c.isdigit()) or "-1")


def run_extended_checks(driver, gateway, screenshot):
    from selenium.webdriver.common.by import By

    def text_of(selector):
        return driver.find_element(By.CSS_SELECTOR, selector).text.strip()

    # Metrics at a glance: this page is a WebSocket subscriber itself.
    wait_for("the subscriber count from /metrics was not shown", lambda: digits(text_of("#subscribers")) >= 1, timeout=12)
    wait_for("the subscriber lag from /metrics was not shown",
             lambda: text_of("#lag").replace(".", "").replace(",", "").isdigit(), timeout=12)
    log(f"metrics shown: {text_of('#subscribers')} subscribers ({text_of('#subscribers-hint')}), lag {text_of('#lag')} ({text_of('#lag-hint')})")

    # Consumer groups: a group made now shows with its lag (from 0: the head), and a click shows it in the detail panel.
    put = urllib.request.Request(f"{gateway}/groups/ui-orders", data=json.dumps({"start": "0"}).encode(), method="PUT",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {ACCESS_TOKEN}"} if ACCESS_TOKEN else {})})
    with urllib.request.urlopen(put, timeout=30) as response:
        head = json.load(response)["head"]
    row = wait_for("the groups panel did not list the group ui-orders with its lag",
                   lambda: (lambda rows: rows[0] if rows and rows[0].get_attribute("data-lag") == str(head) else None)(
                       driver.find_elements(By.CSS_SELECTOR, '#groups-rows tr[data-group="ui-orders"]')), timeout=15)
    row.find_element(By.CSS_SELECTOR, "td").click()
    wait_for("clicking the group did not show it in the detail panel",
             lambda: text_of("#detail-group") == "Group ui-orders" if driver.find_elements(By.ID, "detail-group") else False, timeout=15)
    log(f"the groups panel lists ui-orders with lag {head}, and a click shows it")

    # Webhook sinks: a sink made now (its receiver is nowhere, so nothing is delivered) shows with its lag, and a click
    # shows it in the detail panel, its secret as a fingerprint only.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    put = urllib.request.Request(f"{gateway}/sinks/ui-hook", data=json.dumps({"url": "http://127.0.0.1:9/hooks", "secret": secret, "start": "head"}).encode(),
                                 method="PUT", headers={"Content-Type": "application/json",
                                                        **({"Authorization": f"Bearer {ACCESS_TOKEN}"} if ACCESS_TOKEN else {})})
    with urllib.request.urlopen(put, timeout=30) as response:
        json.load(response)
    row = wait_for("the sinks panel did not list the sink ui-hook",
                   lambda: (lambda rows: rows[0] if rows else None)(
                       driver.find_elements(By.CSS_SELECTOR, '#sinks-rows tr[data-sink="ui-hook"]')), timeout=15)
    row.find_element(By.CSS_SELECTOR, "td").click()
    wait_for("clicking the sink did not show it in the detail panel",
             lambda: text_of("#detail-sink") == "Sink ui-hook" if driver.find_elements(By.ID, "detail-sink") else False, timeout=15)
    if secret in driver.page_source:
        raise CheckFailed("the sink's secret is shown in the page")
    log("the sinks panel lists ui-hook, and a click shows it (its secret as a fingerprint)")

    # fluxgate.js's group member in the browser, over WebSocket: it handles the group's events and acknowledges them.
    driver.set_script_timeout(30)
    outcome = driver.execute_async_script("""
        const [wanted, done] = [arguments[0], arguments[arguments.length - 1]];
        import(new URL("ui/fluxgate.js", location.href).href).then(({ FluxgateGroupMember }) => {
          const seen = [];
          const member = new FluxgateGroupMember(location.origin, "ui-orders", {
            credit: 7,
            handler: (event, attempt) => { seen.push(event.position); },
            onError: (error) => done({ error: error.message }),
          });
          member.start();
          const check = () => member.handled >= wanted
            ? (member.stop(), done({ seen, transport: member.transport }))
            : setTimeout(check, 50);
          check();
        }, (error) => done({ error: String(error) }));
    """, head)
    if outcome.get("error"):
        raise CheckFailed(f"the browser's group member failed: {outcome['error']}")
    if outcome.get("transport") != "websocket" or sorted(outcome["seen"]) != list(range(1, head + 1)):
        raise CheckFailed(f"the browser's group member handled {outcome.get('seen', [])[:10]}… over {outcome.get('transport')}")

    def checkpoint():
        with urllib.request.urlopen(f"{gateway}/groups/ui-orders", timeout=30) as response:
            return json.load(response)["checkpoint"]
    wait_for("the browser's group member's acknowledgements did not bring the checkpoint to the head",
             lambda: checkpoint() >= head, timeout=15)
    log(f"fluxgate.js's group member handled and acknowledged {head} events over WebSocket in the browser")

    # The group's operations in the detail panel: "Reset to 0" acts on its second click (the first asks), and the
    # group's checkpoint goes back to 0 with its lag at the head again.
    # The page re-renders its panels as it updates: every click is retried on a fresh element (wait_for).
    def click(selector):
        driver.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait_for("the group's detail has no reset button",
             lambda: click('#groups-rows tr[data-group="ui-orders"] td') and driver.find_elements(By.ID, "group-reset-start"), timeout=15)
    wait_for("the reset button did not ask before acting",
             lambda: "?" in text_of("#group-reset-start") or (click("#group-reset-start") and False), timeout=15)
    if checkpoint() != head:
        raise CheckFailed("the reset acted on its first click")

    def confirm_reset():
        if "?" in text_of("#group-reset-start"):
            click("#group-reset-start")
        elif checkpoint() != 0:
            click("#group-reset-start")  # the panel was drawn again meanwhile: ask again
        return checkpoint() == 0
    wait_for("the reset did not bring the group's checkpoint back to 0", confirm_reset, timeout=15)
    wait_for("the reset's outcome was not shown", lambda: "Reset to 0" in text_of("#group-action-result")
             if driver.find_elements(By.ID, "group-action-result") else False, timeout=15)
    log("the group's detail resets it to 0 on a confirmed click")

    # The stream list: a prefix search, its next page, a click opening the stream.
    prefix = driver.find_element(By.ID, "stream-prefix")
    prefix.clear()
    prefix.send_keys("list-")
    driver.find_element(By.CSS_SELECTOR, "#streams-form button[type=submit]").click()

    def listed():
        ids = [row.get_attribute("data-aggregate-id") for row in driver.find_elements(By.CSS_SELECTOR, "#streams-rows tr")]
        return ids
    first = wait_for("the stream list did not show a first page of 20 list-… streams",
                     lambda: (lambda ids: ids if len(ids) == 20 and all(i.startswith("list-") for i in ids) else None)(listed()), timeout=15)
    if first != sorted(first):
        raise CheckFailed(f"the stream list is not in aggregate id order: {first}")
    driver.find_element(By.ID, "streams-more").click()
    expected = [f"list-{index:02d}" for index in range(25)]
    wait_for("the stream list's next page did not add list-20 … list-24", lambda: listed() == expected, timeout=15)
    if driver.find_elements(By.ID, "streams-more"):
        raise CheckFailed("the stream list offers another page after its last one")
    log("the stream list shows list-00 … list-24 in two pages")

    target = "list-07"
    driver.find_element(By.CSS_SELECTOR, f'#streams-rows tr[data-aggregate-id="{target}"] td').click()
    count = wait_for(f"clicking {target} in the list did not open its stream",
                     lambda: len(driver.find_elements(By.CSS_SELECTOR, "#stream-events tr"))
                     if driver.find_element(By.ID, "stream-id").get_attribute("value") == target else 0, timeout=15)
    log(f"clicking {target} opened its stream ({count} events)")

    # The open stream follows live appends.
    appended = append_event(gateway, target, "uicheck.Followed", {"followed": True}, expected_version="any")
    appended_at = time.monotonic()
    position = appended["first_position"]
    wait_for(f"event {position}, appended to the open stream {target}, did not appear in its table",
             lambda: driver.find_elements(By.CSS_SELECTOR, f'#stream-events tr[data-position="{position}"]'), timeout=APPEAR_WITHIN)
    log(f"the open stream showed its new event {position} {time.monotonic() - appended_at:.3f} s after the append")
    rows = driver.find_elements(By.CSS_SELECTOR, "#stream-events tr")
    versions = [int(row.get_attribute("data-version")) for row in rows]
    if versions != list(range(len(versions))):
        raise CheckFailed(f"the open stream's versions are not 0, 1, 2, … once each: {versions}")

    # Older pages of the global history, and back to live.
    live_positions = [int(row.get_attribute("data-position")) for row in driver.find_elements(By.CSS_SELECTOR, "#live-events tr")]
    oldest = min(live_positions)
    driver.find_element(By.ID, "older").click()
    older = wait_for("the Older button did not show the page before the live rows",
                     lambda: [int(row.get_attribute("data-position")) for row in driver.find_elements(By.CSS_SELECTOR, "#history-events tr")]
                     if driver.find_element(By.ID, "live-panel").get_attribute("data-mode") == "history" else None, timeout=15)
    if older[0] != oldest - 1 or older != sorted(older, reverse=True) or len(older) != min(50, oldest - 1):
        raise CheckFailed(f"the older page holds {older[:3]}…{older[-3:]} ({len(older)} events); expected {oldest - 1} down, 50 of them")
    if any(row.is_displayed() for row in driver.find_elements(By.CSS_SELECTOR, "#live-events tr")):
        raise CheckFailed("the live rows are still shown beside the older page")
    log(f"Older shows positions {older[-1]}–{older[0]} (the live rows started at {oldest})")
    driver.find_element(By.ID, "to-live").click()
    wait_for("Back to live did not show the live rows again",
             lambda: driver.find_element(By.ID, "live-panel").get_attribute("data-mode") == "live"
             and driver.find_elements(By.CSS_SELECTOR, "#live-events tr")[0].is_displayed(), timeout=3)

    # A narrow screen: no horizontal scrolling of the page; wide tables scroll inside their boxes.
    driver.set_window_size(360, 800)
    time.sleep(0.5)
    for step in ("as it is", "with an older page", "scrolled to the stream"):
        if step == "with an older page":
            driver.find_element(By.ID, "older").click()
            wait_for("the older page did not show at 360 px",
                     lambda: driver.find_element(By.ID, "live-panel").get_attribute("data-mode") == "history", timeout=15)
        if step == "scrolled to the stream":
            driver.execute_script("document.getElementById('stream-panel').scrollIntoView()")
        width, inner = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        if width > inner:
            narrow = screenshot.replace(".png", "-360.png")
            driver.save_screenshot(narrow)
            raise CheckFailed(f"at 360 px the page is {width} px wide ({step}): it scrolls sideways (picture: {narrow})")
    log(f"at {inner} px wide the page does not scroll sideways")
    driver.save_screenshot(screenshot.replace(".png", "-360.png"))
    driver.find_element(By.ID, "to-live").click()
    driver.set_window_size(1400, 1150)
    driver.execute_script("window.scrollTo(0, 0)")


def run_prompt_checks(driver, page_url, good_token):
    from selenium.webdriver.common.by import By

    def text_of(selector):
        return driver.find_element(By.CSS_SELECTOR, selector).text.strip()

    def asked():
        return int(driver.find_element(By.ID, "token-panel").get_attribute("data-asked") or "0")

    driver.get(page_url + "/")
    panel = driver.find_element(By.ID, "token-panel")
    wait_for("the page did not ask for a token", panel.is_displayed, timeout=15)
    wait_for("the page did not show head 1", lambda: digits(text_of("#head")) == 1, timeout=10)
    time.sleep(3)  # the subscription, the stream list and the metrics have all been refused by now
    if asked() != 1:
        raise CheckFailed(f"the page asked for a token {asked()} times before one was given, not once")
    if driver.find_element(By.CSS_SELECTOR, "#live-panel .empty-none").is_displayed():
        raise CheckFailed("the page says \"No events yet\" while the head is 1")
    log(f"the page asks once and says {text_of('#live-waiting')!r} while the head is 1")

    field = driver.find_element(By.ID, "token-input")
    field.send_keys("wrong-token-0123456789")
    driver.find_element(By.CSS_SELECTOR, "#token-panel button[type=submit]").click()
    wait_for("a refused token was not asked for again, with the reason",
             lambda: panel.is_displayed() and asked() == 2 and "refused" in text_of("#token-message"), timeout=10)
    log(f"a wrong token is asked for again: {text_of('#token-message')!r}")

    field.send_keys(good_token)
    driver.find_element(By.CSS_SELECTOR, "#token-panel button[type=submit]").click()
    wait_for("the page did not show event 1 after the good token",
             lambda: driver.find_elements(By.CSS_SELECTOR, '#live-events tr[data-position="1"]'), timeout=10)
    wait_for("the page did not go live after the good token",
             lambda: driver.find_element(By.ID, "connection").get_attribute("data-state") == "live", timeout=10)
    wait_for("the stream list did not show the one stream after the good token",
             lambda: len(driver.find_elements(By.CSS_SELECTOR, "#streams-rows tr")) == 1, timeout=10)
    time.sleep(6)  # a read of /metrics (403: no metrics scope) must not bring the prompt back
    if panel.is_displayed() or asked() != 2:
        raise CheckFailed(f"the prompt came back after a good token (asked {asked()} times)")
    if driver.find_element(By.CSS_SELECTOR, "#live-panel .empty-none").is_displayed():
        raise CheckFailed("the page says \"No events yet\" beside event 1")
    log("after the good token: event 1 shown, live, the prompt gone for good")

    driver.refresh()
    wait_for("after a reload, the page did not show event 1 with the remembered token",
             lambda: driver.find_elements(By.CSS_SELECTOR, '#live-events tr[data-position="1"]'), timeout=15)
    if driver.find_element(By.ID, "token-panel").is_displayed():
        raise CheckFailed("after a reload the page asked for the token again")
    log("after a reload the token is remembered: no prompt")


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
    parser.add_argument("--extended", action="store_true",
                        help="check the stream list, the open stream following appends, older history, metrics and a 360 px layout too")
    parser.add_argument("--prompt-token", help="check only the token prompt (the page opened without a token), this being the good token")
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
        if arguments.prompt_token:
            run_prompt_checks(driver, page_url, arguments.prompt_token)
            save_screenshot(driver, arguments.screenshot)
            log(f"ok: the token prompt asked once, again only for a refused token, in {time.monotonic() - started:.1f} s")
            status = 0
            return status
        transport = run_checks(driver, page_url, arguments.gateway, expected_transport)
        if arguments.extended:
            run_extended_checks(driver, arguments.gateway, arguments.screenshot)
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
