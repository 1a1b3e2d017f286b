// The Fluxgate web UI: head position and event rate, the newest events live, a stream by aggregate id, and an
// event's payload on click. Plain DOM; every string from the store goes in through textContent.

import { FluxgateSubscription } from "./fluxgate.js";

// The gateway's root: this module is served at <root>/ui/app.js (also behind a proxy that adds a prefix).
const API = new URL("..", import.meta.url).href.replace(/\/+$/, "");
const LIVE_ROWS = 100;      // rows kept in the live table
const BACKLOG = 25;         // events shown from before the page opened
const RATE_WINDOW = 10;     // seconds the event rate is measured over

const $ = (id) => document.getElementById(id);

const state = {
  head: null,
  epoch: null,
  lastEventAt: null,
  samples: [],              // [{ time, head }], one a second
  subscription: null,
  paused: false,
  queue: [],                // events not on the page yet (the newest LIVE_ROWS)
  flushScheduled: false,
  pendingCount: 0,          // events that arrived while paused
  selectedId: null,
};

// --- small helpers ------------------------------------------------------------------------------

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const numberFormat = new Intl.NumberFormat();
const formatNumber = (value) => numberFormat.format(value);

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso || "";
  const pad = (value, width = 2) => String(value).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function formatAgo(milliseconds) {
  const seconds = Math.round(milliseconds / 1000);
  if (seconds < 2) return "just now";
  if (seconds < 90) return `${seconds} s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `${minutes} min ago`;
  return `${Math.round(minutes / 60)} h ago`;
}

// --- access token (gateways started with --token-file or --jwt-*) --------------------------------
// Taken from the page's fragment (#access_token=…, never sent to the server or its logs) or asked for when the
// gateway answers 401; kept in sessionStorage for this tab only.

const TOKEN_KEY = "fluxgate:access-token";

function accessToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || null; } catch { return null; }
}

function takeTokenFromFragment() {
  const match = /(?:^#|&)access_token=([^&]*)/.exec(location.hash);
  if (!match) return;
  try { sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1])); } catch { /* storage denied */ }
  const rest = location.hash.slice(1).split("&").filter((part) => !part.startsWith("access_token=")).join("&");
  history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
}

function askForToken(message) {
  $("token-message").textContent = message;
  $("token-panel").hidden = false;
  $("token-input").focus();
}

async function getJSON(path) {
  const headers = { Accept: "application/json" };
  const token = accessToken();
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(API + path, { cache: "no-store", headers });
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const error = new Error((body && body.message) || `${path} answered ${response.status}`);
    error.status = response.status;
    if (response.status === 401) askForToken(error.message);
    throw error;
  }
  return body;
}

function showNotice(text) {
  const notice = $("notice");
  notice.textContent = text;
  notice.hidden = !text;
}

// JSON, indented, with keys, strings, numbers and literals in their own spans.
function renderJSON(value) {
  const pre = element("pre", { class: "payload", id: "payload" });
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) { pre.textContent = String(value); return pre; }
  const token = /("(?:\\.|[^"\\])*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b/g;
  let last = 0;
  for (const match of text.matchAll(token)) {
    if (match.index > last) pre.append(text.slice(last, match.index));
    if (match[1] !== undefined) {
      pre.append(element("span", { class: match[2] ? "json-key" : "json-string" }, match[1]));
      if (match[2]) pre.append(match[2]);
    } else if (match[3] !== undefined) {
      pre.append(element("span", { class: "json-number" }, match[3]));
    } else {
      pre.append(element("span", { class: "json-literal" }, match[4]));
    }
    last = match.index + match[0].length;
  }
  if (last < text.length) pre.append(text.slice(last));
  return pre;
}

// --- the head and the rate ----------------------------------------------------------------------

function setHead(head) {
  if (typeof head !== "number" || (state.head !== null && head <= state.head)) return;
  state.head = head;
  $("head").textContent = formatNumber(head);
}

function tick() {
  const now = performance.now();
  if (state.head !== null) {
    state.samples.push({ time: now, head: state.head });
    while (state.samples.length > 1 && now - state.samples[0].time > RATE_WINDOW * 1000 + 500) state.samples.shift();
  }
  if (state.samples.length >= 2) {
    const first = state.samples[0];
    const last = state.samples[state.samples.length - 1];
    const rate = (last.head - first.head) / Math.max(1, (last.time - first.time) / 1000);
    $("rate").textContent = rate === 0 ? "0" : rate < 10 ? rate.toFixed(1) : formatNumber(Math.round(rate));
  }
  $("head-hint").textContent = state.lastEventAt
    ? `last event ${formatAgo(Date.now() - state.lastEventAt)}`
    : state.head === 0 ? "the store is empty" : "\u00a0";
}

// --- the connection pill ------------------------------------------------------------------------

const TRANSPORT_NAMES = { websocket: "WebSocket", sse: "server-sent events", polling: "polling" };

function setConnection(stateName) {
  const pill = $("connection");
  const text = $("connection-text");
  if (TRANSPORT_NAMES[stateName]) {
    pill.dataset.state = "live";
    pill.dataset.transport = stateName;
    text.textContent = `Live · ${TRANSPORT_NAMES[stateName]}`;
  } else if (stateName === "reconnecting") {
    pill.dataset.state = "reconnecting";
    text.textContent = "Reconnecting…";
  } else if (stateName === "stopped") {
    pill.dataset.state = "stopped";
    text.textContent = "Disconnected";
  } else {
    pill.dataset.state = stateName;
    text.textContent = stateName;
  }
}

// --- the live table -----------------------------------------------------------------------------

function aggregateCell(event) {
  const link = element("a", {
    class: "aggregate-link", href: "#stream=" + encodeURIComponent(event.aggregate_id), title: "Show this stream",
    onclick: (click) => { click.preventDefault(); click.stopPropagation(); openStream(event.aggregate_id); },
  }, event.aggregate_id);
  return element("td", { class: "aggregate" }, element("span", { class: "aggregate-name" }, event.aggregate_name + " "), link);
}

function eventRow(event, { fresh = false } = {}) {
  const row = element("tr", {
    class: fresh ? "fresh" : "",
    dataset: { eventId: event.event_id, position: String(event.position) },
    tabindex: "0",
    title: "Show this event's payload",
    onclick: () => selectEvent(event.event_id),
    onkeydown: (key) => { if (key.key === "Enter") selectEvent(event.event_id); },
  },
  element("td", { class: "num" }, formatNumber(event.position)),
  element("td", { class: "type" }, event.event_type),
  aggregateCell(event),
  element("td", { class: "num" }, event.aggregate_version),
  element("td", { class: "time", title: event.recorded_at }, formatTime(event.recorded_at)));
  if (event.event_id === state.selectedId) row.classList.add("selected");
  return row;
}

function addLiveEvent(event, live) {
  const recorded = Date.parse(event.recorded_at);
  if (!Number.isNaN(recorded)) state.lastEventAt = Math.max(state.lastEventAt || 0, recorded);
  setHead(event.position);
  // Rows are added in batches (a burst of events is one DOM update); only the newest can be shown anyway.
  state.queue.push({ event, live });
  if (state.queue.length > LIVE_ROWS) state.queue.splice(0, state.queue.length - LIVE_ROWS);
  if (state.paused) {
    state.pendingCount += 1;
    $("pause").textContent = `Resume (${formatNumber(state.pendingCount)} new)`;
    return;
  }
  if (!state.flushScheduled) {
    state.flushScheduled = true;
    setTimeout(flushLiveEvents, 0);
  }
}

function flushLiveEvents() {
  state.flushScheduled = false;
  if (state.paused || state.queue.length === 0) return;
  const rows = document.createDocumentFragment();
  const batch = state.queue.splice(0);
  for (let index = batch.length - 1; index >= 0; index -= 1) {
    rows.append(eventRow(batch[index].event, { fresh: batch[index].live }));
  }
  const body = $("live-events");
  body.prepend(rows);
  while (body.rows.length > LIVE_ROWS) body.deleteRow(body.rows.length - 1);
  $("live-panel").classList.remove("is-empty");
  $("live-count").textContent = `newest ${formatNumber(body.rows.length)}`;
}

function togglePause() {
  state.paused = !state.paused;
  const button = $("pause");
  button.setAttribute("aria-pressed", String(state.paused));
  button.textContent = state.paused ? "Resume" : "Pause";
  if (!state.paused) {
    state.pendingCount = 0;
    flushLiveEvents();
  }
}

// --- event detail -------------------------------------------------------------------------------

async function selectEvent(id) {
  state.selectedId = id;
  for (const row of document.querySelectorAll("tr.selected")) row.classList.remove("selected");
  for (const row of document.querySelectorAll("tr[data-event-id]")) {
    if (row.dataset.eventId === id) row.classList.add("selected");
  }
  updateHash();
  const detail = $("detail");
  detail.replaceChildren(element("p", { class: "placeholder" }, "Loading…"));
  try {
    const event = await getJSON("/events/" + encodeURIComponent(id) + "?envelope=true");
    if (state.selectedId !== id) return;
    const fields = element("dl", { class: "fields" });
    const add = (name, value, extra = null) => fields.append(element("dt", {}, name), element("dd", {}, value, extra));
    add("position", formatNumber(event.position));
    add("aggregate", `${event.aggregate_name} ${event.aggregate_id}`);
    add("version", event.aggregate_version);
    add("recorded", event.recorded_at);
    add("event id", event.event_id);
    detail.replaceChildren(
      element("h3", { class: "detail-title", id: "detail-type" }, event.event_type),
      fields,
      element("div", { class: "payload-label" }, "Payload"),
      renderJSON(event.payload),
    );
  } catch (error) {
    if (state.selectedId !== id) return;
    detail.replaceChildren(element("p", { class: "message error" }, error.status === 404 ? `No event with id ${id}.` : error.message));
  }
}

// --- stream view --------------------------------------------------------------------------------

let streamRequest = 0;

async function openStream(aggregateId, { append = null } = {}) {
  aggregateId = aggregateId.trim();
  if (!aggregateId) return;
  const request = ++streamRequest;
  $("stream-id").value = aggregateId;
  updateHash();
  const container = $("stream");
  if (!append) container.replaceChildren(element("p", { class: "message" }, "Loading…"));
  try {
    const path = append || "/streams/" + encodeURIComponent(aggregateId) + "?limit=100";
    const page = await getJSON(path);
    if (request !== streamRequest) return;
    let body = container.querySelector("tbody");
    if (!append || !body) {
      body = element("tbody", { id: "stream-events" });
      container.replaceChildren(
        element("div", { class: "stream-head" }, "Stream ", element("strong", {}, aggregateId),
          page.events.length ? ` · ${page.events[0].aggregate_name}` : ""),
        element("div", { class: "table-wrap" }, element("table", { class: "events" },
          element("thead", {}, element("tr", {},
            element("th", { class: "num" }, "Version"), element("th", {}, "Event type"),
            element("th", { class: "num" }, "Position"), element("th", {}, "Recorded"))),
          body)));
    }
    container.querySelector(".more")?.remove();
    for (const event of page.events) {
      body.append(element("tr", {
        dataset: { eventId: event.event_id, position: String(event.position) },
        class: event.event_id === state.selectedId ? "selected" : "",
        tabindex: "0",
        onclick: () => selectEvent(event.event_id),
        onkeydown: (key) => { if (key.key === "Enter") selectEvent(event.event_id); },
      },
      element("td", { class: "num" }, event.aggregate_version),
      element("td", { class: "type" }, event.event_type),
      element("td", { class: "num" }, formatNumber(event.position)),
      element("td", { class: "time", title: event.recorded_at }, formatTime(event.recorded_at))));
    }
    if (page.next) {
      const next = new URL(page.next, API + "/");
      container.append(element("button", {
        type: "button", class: "button-quiet more",
        onclick: () => openStream(aggregateId, { append: next.pathname.replace(/^.*(?=\/streams\/)/, "") + next.search }),
      }, "Load more"));
    }
  } catch (error) {
    if (request !== streamRequest) return;
    container.replaceChildren(element("p", { class: "message error" },
      error.status === 404 ? `No events for aggregate id “${aggregateId}”.` : error.message));
  }
}

// --- location hash: #stream=ID&event=ID ---------------------------------------------------------

function updateHash() {
  const params = new URLSearchParams();
  const stream = $("stream-id").value.trim();
  if (stream) params.set("stream", stream);
  if (state.selectedId) params.set("event", state.selectedId);
  const hash = params.toString();
  history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
}

function openFromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("stream")) openStream(params.get("stream"));
  if (params.get("event")) selectEvent(params.get("event"));
}

// --- start --------------------------------------------------------------------------------------

function appendExample() {
  return `curl -X POST ${API}/streams/acc-1 \\\n  -H 'Content-Type: application/json' \\\n  -d '{"aggregate_name": "Account", "expected_version": "any",\n       "events": [{"event_type": "account.AccountCredited", "payload": {"amount": 50}}]}'`;
}

async function connect() {
  let health;
  try {
    health = await getJSON("/health");
  } catch (error) {
    setConnection("reconnecting");
    showNotice(`The gateway does not answer (${error.message}); retrying…`);
    setTimeout(connect, 2000);
    return;
  }
  showNotice("");
  state.epoch = health.epoch;
  state.head = null;
  state.samples = [];
  setHead(health.head);
  $("epoch").textContent = health.epoch;
  $("epoch").title = health.epoch;
  tick();

  // ?transport=sse or ?transport=polling starts with that transport (to look at the fallbacks).
  const transport = new URLSearchParams(location.search).get("transport") || undefined;
  const subscription = new FluxgateSubscription(API, {
    after: Math.max(0, health.head - BACKLOG),
    epoch: health.epoch,
    transport,
    maxBackoff: 4000,         // a person is watching: come back soon after a restart
    accessToken: accessToken() || undefined,
    onEvent: (event) => addLiveEvent(event, event.position > health.head),
    onCaughtUp: (head) => setHead(head),
    onState: (name) => { if (state.subscription === subscription) setConnection(name); },
    onError: (error) => {
      if (state.subscription !== subscription) return;
      if (/access token/.test(error.message)) {
        setConnection("error");
        askForToken(error.message);
        return;
      }
      // The store was replaced (another epoch): start over against the new one.
      setConnection("error");
      showNotice(`${error.message}. Starting over…`);
      $("live-events").replaceChildren();
      state.queue = [];
      $("live-panel").classList.add("is-empty");
      $("live-count").textContent = "";
      setTimeout(connect, 1500);
    },
  });
  state.subscription = subscription;
  subscription.start();
}

function main() {
  $("append-example").textContent = appendExample();
  $("pause").addEventListener("click", togglePause);
  $("stream-form").addEventListener("submit", (submit) => {
    submit.preventDefault();
    openStream($("stream-id").value);
  });
  $("token-panel").addEventListener("submit", (submit) => {
    submit.preventDefault();
    try { sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim()); } catch { /* storage denied */ }
    $("token-input").value = "";
    $("token-panel").hidden = true;
    if (state.subscription) state.subscription.stop();
    connect();
  });
  setInterval(tick, 1000);
  takeTokenFromFragment();
  openFromHash();
  connect();
}

main();
