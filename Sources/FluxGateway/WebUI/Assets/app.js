// The Fluxgate web UI: head position, event rate, subscribers and their lag; the newest events live and older pages
// of the global history; the stream list (prefix search, paging); a stream's events, following its appends live;
// an event's payload on click. Plain DOM; every string from the store goes in through textContent.

import { FluxgateSubscription } from "./fluxgate.js";

// The gateway's root: this module is served at <root>/ui/app.js (also behind a proxy that adds a prefix).
const API = new URL("..", import.meta.url).href.replace(/\/+$/, "");
const LIVE_ROWS = 100;      // rows kept in the live table
const BACKLOG = 25;         // events shown from before the page opened
const RATE_WINDOW = 10;     // seconds the event rate is measured over
const HISTORY_PAGE = 50;    // events per older page of the global history
const STREAMS_PAGE = 20;    // streams per page of the stream list
const METRICS_EVERY = 5000; // ms between reads of /metrics (subscribers, lag)

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
  selectedGroup: null,      // the group shown in the detail panel
  selectedSink: null,       // the webhook sink shown in the detail panel
  history: null,            // the older page shown instead of the live rows: { from, to } (positions), or null
  stream: null,             // the open stream: { id, lastVersion, loading, pending: [events], complete }
  streamsNext: null,        // the stream list's next page (a path), or null
  metrics: null,            // the last /metrics sample: { time, lagSum, lagCount }
};

// --- small helpers ------------------------------------------------------------------------------

// `activate: fn` makes a row act as a button: focusable, run by a click or by Enter.
function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name === "activate") {
      node.tabIndex = 0;
      node.addEventListener("click", value);
      node.addEventListener("keydown", (key) => { if (key.key === "Enter") value(); });
    }
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
// gateway answers 401; kept in sessionStorage for this tab only. The prompt is shown once for every request that
// waits for a token (they wait together, then go on with it); it comes back only when the gateway refuses the
// token it was given, and then says why.

const TOKEN_KEY = "fluxgate:access-token";
const token = { waiters: [], asked: 0 };

function accessToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || null; } catch { return token.memory || null; }
}

function storeToken(value) {
  token.memory = value || null;
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage denied: kept in memory */ }
}

function takeTokenFromFragment() {
  const match = /(?:^#|&)access_token=([^&]*)/.exec(location.hash);
  if (!match) return;
  storeToken(decodeURIComponent(match[1]));
  const rest = location.hash.slice(1).split("&").filter((part) => !part.startsWith("access_token=")).join("&");
  history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
}

// Resolves once there is a token to try. `used`: the token the refused request carried (null: it carried none).
// A request that left before the current token was given tries again at once with it; else the refused token is
// forgotten and the prompt asks for one (once, however many requests wait).
function waitForToken(reason, used) {
  if ((accessToken() || null) !== (used || null)) return Promise.resolve();
  if (used) storeToken(null);
  const promise = new Promise((resolve) => token.waiters.push(resolve));
  const panel = $("token-panel");
  if (panel.hidden) {
    token.asked += 1;
    panel.dataset.asked = String(token.asked);
    $("token-message").textContent = used
      ? `The gateway refused the access token: ${String(reason).replace(/[.\s]*$/, ".")} Enter another one.`
      : "This gateway needs an access token to read events.";
    panel.hidden = false;
    $("token-input").focus();
    setLiveWaiting();
  }
  return promise;
}

function submitToken(value) {
  if (!value) return;
  storeToken(value);
  $("token-input").value = "";
  $("token-panel").hidden = true;
  setLiveWaiting();
  for (const resolve of token.waiters.splice(0)) resolve();
}

function apiHeaders() {
  const headers = { Accept: "application/json" };
  const current = accessToken();
  if (current) headers.Authorization = "Bearer " + current;
  return headers;
}

// GETs a JSON resource of the gateway. A 401 waits for a token and tries again (as many times as the user gives
// tokens); other failures throw an Error with the gateway's message and the status.
async function getJSON(path) {
  return requestJSON("GET", path);
}

// A request with an optional JSON body, answered with JSON (or nothing: 204), as getJSON.
async function requestJSON(method, path, document) {
  for (;;) {
    const headers = apiHeaders();
    if (document !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(API + path, {
      method, cache: "no-store", headers, body: document === undefined ? undefined : JSON.stringify(document) });
    let body = null;
    try { body = await response.json(); } catch { /* not JSON */ }
    if (response.ok) return body;
    const message = (body && body.message) || `${path} answered ${response.status}`;
    if (response.status === 401) {
      await waitForToken(message, headers.Authorization ? headers.Authorization.slice(7) : null);
      continue;
    }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
}

// The gateway's path of a URL it handed out (`next` links are absolute, and may carry a proxy's prefix).
function apiPath(url, endpoint) {
  const parsed = new URL(url, API + "/");
  const index = parsed.pathname.lastIndexOf(endpoint);
  return (index < 0 ? parsed.pathname : parsed.pathname.slice(index)) + parsed.search;
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
  setLiveWaiting();
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
    title: "Show this event's payload",
    activate: () => selectEvent(event.event_id),
  },
  element("td", { class: "num" }, formatNumber(event.position)),
  element("td", { class: "type" }, event.event_type),
  aggregateCell(event),
  element("td", { class: "num" }, event.aggregate_version),
  element("td", { class: "time", title: event.recorded_at }, formatTime(event.recorded_at)));
  if (event.event_id === state.selectedId) row.classList.add("selected");
  return row;
}

// The live panel's empty state: "No events yet" only when the store is empty; else what the page waits for.
function setLiveWaiting() {
  const panel = $("live-panel");
  const empty = state.head === 0;
  panel.classList.toggle("store-empty", empty);
  $("live-waiting").textContent = !$("token-panel").hidden
    ? "The newest events show once the gateway has an access token."
    : "Loading the newest events…";
}

function addLiveEvent(event, live) {
  const recorded = Date.parse(event.recorded_at);
  if (!Number.isNaN(recorded)) state.lastEventAt = Math.max(state.lastEventAt || 0, recorded);
  setHead(event.position);
  followStream(event);
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
  if (!state.history) {
    $("live-panel").classList.remove("is-empty");
    $("live-count").textContent = `newest ${formatNumber(body.rows.length)}`;
  }
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

// --- older pages of the global history ------------------------------------------------------------
// "Older" replaces the live rows with the page of events before the oldest shown (the live rows keep coming, out of
// sight); "Newer" pages forward; "Back to live" shows the live rows again. Pages are ranges of positions, read with
// /events?after=…&limit=… (a token limited to some aggregates sees only theirs, so a page may show fewer rows).

function oldestShown() {
  if (state.history) return state.history.from;
  const rows = $("live-events").rows;
  if (rows.length) return Number(rows[rows.length - 1].dataset.position);
  return state.head === null ? null : state.head + 1;
}

async function showHistory(from, to) {
  if (to < from || from < 1) return;
  const request = ++historyRequest;
  const panel = $("live-panel");
  try {
    const page = await getJSON(`/events?after=${from - 1}&limit=${to - from + 1}`);
    if (request !== historyRequest) return;
    const rows = document.createDocumentFragment();
    const events = page.events.filter((event) => event.position >= from && event.position <= to);
    for (let index = events.length - 1; index >= 0; index -= 1) rows.append(eventRow(events[index]));
    $("history-events").replaceChildren(rows);
    state.history = { from, to };
    panel.dataset.mode = "history";
    panel.classList.remove("is-empty");
    $("live-title").textContent = "Event history";
    $("live-count").textContent = `positions ${formatNumber(from)}–${formatNumber(to)}` + (events.length < to - from + 1 ? ` · ${formatNumber(events.length)} readable` : "");
    $("older").disabled = from <= 1;
    $("newer").hidden = false;
    $("to-live").hidden = false;
    $("pause").hidden = true;
    panel.querySelector(".table-wrap").scrollTop = 0;
  } catch (error) {
    if (request === historyRequest) showNotice(`Could not read the older events: ${error.message}`);
  }
}

let historyRequest = 0;

function showOlder() {
  const oldest = oldestShown();
  if (oldest === null || oldest <= 1) return;
  const to = oldest - 1;
  showHistory(Math.max(1, to - HISTORY_PAGE + 1), to);
}

function showNewer() {
  if (!state.history) return;
  const from = state.history.to + 1;
  const liveRows = $("live-events").rows;
  const liveOldest = liveRows.length ? Number(liveRows[liveRows.length - 1].dataset.position) : (state.head || 0) + 1;
  if (from >= liveOldest) return showLive();
  showHistory(from, Math.min(from + HISTORY_PAGE - 1, liveOldest - 1));
}

function showLive() {
  historyRequest += 1;
  state.history = null;
  const panel = $("live-panel");
  panel.dataset.mode = "live";
  $("history-events").replaceChildren();
  $("live-title").textContent = "Newest events";
  $("older").disabled = false;
  $("newer").hidden = true;
  $("to-live").hidden = true;
  $("pause").hidden = false;
  const rows = $("live-events").rows.length;
  panel.classList.toggle("is-empty", rows === 0);
  $("live-count").textContent = rows ? `newest ${formatNumber(rows)}` : "";
  flushLiveEvents();
}

// --- event detail -------------------------------------------------------------------------------

// Marks the row whose data-`key` attribute is `name` as the selected one (and no other row): events, groups, sinks.
function markSelected(key, name) {
  for (const row of document.querySelectorAll("tr.selected")) row.classList.remove("selected");
  for (const row of document.querySelectorAll(`tr[data-${key}]`)) {
    if (row.getAttribute(`data-${key}`) === name) row.classList.add("selected");
  }
}

// A detail panel's list of fields, and the function that adds one (a label, then what its value shows).
function fieldList() {
  const fields = element("dl", { class: "fields" });
  return [fields, (label, ...value) => fields.append(element("dt", {}, label), element("dd", {}, ...value))];
}

async function selectEvent(id) {
  state.selectedId = id;
  state.selectedGroup = null;
  state.selectedSink = null;
  markSelected("event-id", id);
  updateHash();
  const detail = $("detail");
  detail.replaceChildren(element("p", { class: "placeholder" }, "Loading…"));
  try {
    const event = await getJSON("/events/" + encodeURIComponent(id) + "?envelope=true");
    if (state.selectedId !== id) return;
    const [fields, add] = fieldList();
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
// The open stream follows live appends: events of its aggregate that reach the page's subscription are added to its
// table (those that arrive while its first page loads are kept and added after it, without repeats).

let streamRequest = 0;

function streamRow(event) {
  return element("tr", {
    dataset: { eventId: event.event_id, position: String(event.position), version: String(event.aggregate_version) },
    class: event.event_id === state.selectedId ? "selected" : "",
    activate: () => selectEvent(event.event_id),
  },
  element("td", { class: "num" }, event.aggregate_version),
  element("td", { class: "type" }, event.event_type),
  element("td", { class: "num" }, formatNumber(event.position)),
  element("td", { class: "time", title: event.recorded_at }, formatTime(event.recorded_at)));
}

// Adds the open stream's next events (in version order, each once) to its table; only when its last page is shown
// (while a "Load more" is pending, those events come with the next page).
function appendToStream(events, { fresh = false } = {}) {
  const stream = state.stream;
  const body = $("stream-events");
  if (!stream || !body || !stream.complete) return;
  for (const event of events) {
    if (event.aggregate_version !== stream.lastVersion + 1) continue;
    const row = streamRow(event);
    if (fresh) row.classList.add("fresh");
    body.append(row);
    stream.lastVersion = event.aggregate_version;
  }
  const count = $("stream-count");
  if (count) count.textContent = `${formatNumber(stream.lastVersion + 1)} events`;
}

function followStream(event) {
  const stream = state.stream;
  if (!stream || event.aggregate_id !== stream.id) return;
  if (stream.loading) { stream.pending.push(event); return; }
  appendToStream([event], { fresh: true });
}

async function openStream(aggregateId, { append = null } = {}) {
  aggregateId = aggregateId.trim();
  if (!aggregateId) return;
  const request = ++streamRequest;
  $("stream-id").value = aggregateId;
  updateHash();
  const container = $("stream");
  if (!append) {
    container.replaceChildren(element("p", { class: "message" }, "Loading…"));
    state.stream = { id: aggregateId, lastVersion: -1, loading: true, pending: [], complete: false };
  } else if (state.stream) {
    state.stream.loading = true;
  }
  try {
    const path = append || "/streams/" + encodeURIComponent(aggregateId) + "?limit=100";
    const page = await getJSON(path);
    if (request !== streamRequest) return;
    let body = container.querySelector("tbody");
    if (!append || !body) {
      body = element("tbody", { id: "stream-events" });
      container.replaceChildren(
        element("div", { class: "stream-head" }, "Stream ", element("strong", {}, aggregateId),
          page.events.length ? ` · ${page.events[0].aggregate_name} · ` : " · ",
          element("span", { id: "stream-count" }, ""),
          element("span", { class: "following", title: "New events of this stream are added as they are stored" }, " · following live")),
        element("div", { class: "table-wrap" }, element("table", { class: "events" },
          element("thead", {}, element("tr", {},
            element("th", { class: "num" }, "Version"), element("th", {}, "Event type"),
            element("th", { class: "num" }, "Position"), element("th", {}, "Recorded"))),
          body)));
    }
    container.querySelector(".more")?.remove();
    const stream = state.stream;
    stream.complete = true;  // appendToStream adds this page's events in order
    appendToStream(page.events);
    stream.complete = !page.next;
    stream.loading = false;
    if (page.next) {
      const next = apiPath(page.next, "/streams/");
      container.append(element("button", {
        type: "button", class: "button-quiet more",
        onclick: () => openStream(aggregateId, { append: next }),
      }, "Load more"));
    } else {
      appendToStream(stream.pending.splice(0).sort((a, b) => a.aggregate_version - b.aggregate_version), { fresh: true });
    }
  } catch (error) {
    if (request !== streamRequest) return;
    if (state.stream) state.stream.loading = false;
    container.replaceChildren(element("p", { class: "message error" },
      error.status === 404 ? `No events for aggregate id “${aggregateId}”.` : error.message));
  }
}

// --- stream list ----------------------------------------------------------------------------------
// GET /streams: aggregate ids in byte order, a page at a time, narrowed by a prefix; a click opens the stream.

let streamsRequest = 0;
let streamsTyping = null;   // the search that typing schedules (a load of any kind replaces it)

async function loadStreams({ more = false } = {}) {
  clearTimeout(streamsTyping);
  const prefix = $("stream-prefix").value;
  const request = ++streamsRequest;
  const container = $("streams");
  const path = more && state.streamsNext
    ? state.streamsNext
    : `/streams?${prefix ? "prefix=" + encodeURIComponent(prefix) + "&" : ""}limit=${STREAMS_PAGE}`;
  if (!more) container.replaceChildren(element("p", { class: "message" }, "Loading…"));
  try {
    const page = await getJSON(path);
    if (request !== streamsRequest) return;
    let body = $("streams-rows");
    if (!more || !body) {
      body = element("tbody", { id: "streams-rows" });
      container.replaceChildren(element("div", { class: "table-wrap" }, element("table", { class: "events streams" },
        element("thead", {}, element("tr", {},
          element("th", {}, "Aggregate id"), element("th", {}, "Name"),
          element("th", { class: "num" }, "Events"), element("th", {}, "Last event"))),
        body)));
    }
    container.querySelector(".more")?.remove();
    for (const stream of page.streams) {
      body.append(element("tr", {
        dataset: { aggregateId: stream.aggregate_id },
        title: "Show this stream",
        activate: () => openStream(stream.aggregate_id),
      },
      element("td", { class: "aggregate mono" }, stream.aggregate_id),
      element("td", { class: "name" }, stream.aggregate_name),
      element("td", { class: "num" }, formatNumber(stream.event_count)),
      element("td", { class: "time", title: stream.last_recorded_at }, formatTime(stream.last_recorded_at))));
    }
    const shown = body.rows.length;
    if (shown === 0) {
      container.replaceChildren(element("p", { class: "message" },
        prefix ? `No stream has an aggregate id starting with “${prefix}”.` : "No streams yet."));
    }
    state.streamsNext = page.next ? apiPath(page.next, "/streams") : null;
    $("streams-count").textContent = shown ? `${formatNumber(shown)}${page.next ? "+" : ""} shown` : "";
    if (page.next) {
      container.append(element("button", {
        type: "button", class: "button-quiet more", id: "streams-more",
        onclick: () => loadStreams({ more: true }),
      }, "More streams"));
    }
  } catch (error) {
    if (request !== streamsRequest) return;
    container.replaceChildren(element("p", { class: "message error" }, error.message));
  }
}

// --- list panels of the groups scope (consumer groups, webhook sinks) -------------------------------------------

// GETs `path` and returns its `key` array for the panel `id` (count in `id`-count), or null when there is nothing to
// show: the panel then says why (the scope, a store without them: `unsupported`, an error) or that there is none
// (`none`). `isCurrent` tells whether a newer load started meanwhile (its answer wins).
async function loadPanelList(id, path, key, isCurrent, unsupported, none) {
  const container = $(id);
  let answer;
  try {
    answer = await getJSON(path);
  } catch (error) {
    if (!isCurrent()) return null;
    const why = error.status === 403 ? "Needs a token with the groups scope."
      : error.status === 501 ? unsupported : error.message;
    container.replaceChildren(element("p", { class: "message" }, why));
    $(id + "-count").textContent = "";
    return null;
  }
  if (!isCurrent()) return null;
  const items = answer[key] || [];
  $(id + "-count").textContent = items.length ? `${formatNumber(items.length)}` : "";
  if (!items.length) {
    container.replaceChildren(element("p", { class: "message" }, none));
    return null;
  }
  return items;
}

// A panel's table: `headers` as [label, class] pairs, then the rows.
function panelTable(headers, body) {
  return element("div", { class: "table-wrap" }, element("table", { class: "events streams" },
    element("thead", {}, element("tr", {}, ...headers.map(([label, cls]) => element("th", cls ? { class: cls } : {}, label)))),
    body));
}

// --- consumer groups (GET /groups) ---------------------------------------------------------------
// Each group's checkpoint, lag (head − checkpoint), members and events in flight on this node, and parked events;
// read with the metrics. A click shows the group and its parked events. Tokens need the groups scope.

let groupsRequest = 0;

async function loadGroups() {
  const request = ++groupsRequest;
  const groups = await loadPanelList("groups", "/groups", "groups", () => request === groupsRequest,
    "This gateway's store keeps no consumer groups.", "No groups. Create one with: fluxgate groups create NAME --start 0");
  if (!groups) return;
  const container = $("groups");
  const count = (value) => (value === undefined ? "–" : formatNumber(value));
  const body = element("tbody", { id: "groups-rows" });
  for (const group of groups) {
    body.append(element("tr", {
      dataset: { group: group.name, lag: String(group.lag), parked: String(group.parked) },
      class: group.name === state.selectedGroup ? "selected" : "",
      title: "Show this group and its parked events",
      activate: () => selectGroup(group.name),
    },
    element("td", { class: "aggregate mono" }, group.name),
    element("td", { class: "num" }, formatNumber(group.checkpoint)),
    element("td", { class: "num group-lag" }, formatNumber(group.lag)),
    element("td", { class: "num" }, group.members === undefined ? "–" : formatNumber(group.members.length)),
    element("td", { class: "num" }, count(group.in_flight)),
    element("td", { class: "num" + (group.parked ? " warn" : "") }, formatNumber(group.parked))));
  }
  container.replaceChildren(panelTable([["Group"], ["Checkpoint", "num"], ["Lag", "num"], ["Members", "num"],
    ["In flight", "num"], ["Parked", "num"]], body));
}

async function selectGroup(name) {
  state.selectedGroup = name;
  state.selectedSink = null;
  state.selectedId = null;
  markSelected("group", name);
  const detail = $("detail");
  detail.replaceChildren(element("p", { class: "placeholder" }, "Loading…"));
  try {
    const path = "/groups/" + encodeURIComponent(name);
    const [group, parked] = await Promise.all([getJSON(path), getJSON(path + "/parked")]);
    if (state.selectedGroup !== name) return;
    const [fields, add] = fieldList();
    add("checkpoint", formatNumber(group.checkpoint));
    add("lag", formatNumber(group.lag));
    add("members", group.members && group.members.length ? group.members.join(", ") : "none on this node");
    add("in flight", group.in_flight === undefined ? "–" : formatNumber(group.in_flight));
    add("redeliveries", group.redeliveries === undefined ? "–" : formatNumber(group.redeliveries));
    add("parked", formatNumber(group.parked));
    // Operations (the groups:admin scope): each asks for a second click before it acts.
    const actions = element("div", { class: "group-actions" },
      confirmingButton("group-replay-all", "Replay parked", "Replay all parked?", !parked.parked.length,
        () => requestJSON("POST", path + "/replay", {}), "Parked events handed out again."),
      confirmingButton("group-reset-start", "Reset to 0", "Reset to 0: replay everything?", false,
        () => requestJSON("POST", path + "/reset", { position: "0" }), "Reset to 0: the group handles every event again."),
      confirmingButton("group-reset-head", "Skip to head", "Skip everything stored?", false,
        () => requestJSON("POST", path + "/reset", { position: "head" }), "Reset to the head: stored events are skipped."));
    const parkedList = element("ul", { class: "parked-list" });
    for (const event of parked.parked) {
      parkedList.append(element("li", {},
        element("span", { class: "mono" }, `#${event.position} after ${formatNumber(event.attempts)} attempts: ${event.reason}`), " ",
        confirmingButton(`group-replay-${event.position}`, "Replay", "Replay it?", false,
          () => requestJSON("POST", `${path}/parked/${event.position}/replay`, {}), `Event ${event.position} handed out again.`)));
    }
    detail.replaceChildren(
      element("h3", { class: "detail-title", id: "detail-group" }, `Group ${group.name}`),
      fields,
      actions,
      element("p", { class: "message", id: "group-action-result", hidden: true }),
      element("div", { class: "payload-label" }, parked.parked.length ? "Parked events" : "No parked events"),
      parkedList,
      renderJSON(parked.parked.length ? parked.parked : { filter: group.filter, start: group.start, parked_events: group.parked_events }),
    );
  } catch (error) {
    if (state.selectedGroup !== name) return;
    detail.replaceChildren(element("p", { class: "message error" }, error.message));
  }
}

// A button that acts on its second click (within 5 s; the first shows `question`), then shows what happened and
// reloads the group.
function confirmingButton(id, label, question, disabled, act, done) {
  let armed = null;
  const button = element("button", { type: "button", class: "button-quiet", id }, label);
  button.disabled = disabled;
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = question;
      armed = setTimeout(() => { armed = null; button.textContent = label; }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.disabled = true;
    const name = state.selectedGroup;
    let message;
    try {
      await act();
      message = { text: done, error: false };
    } catch (error) {
      message = { text: error.status === 403 ? "Needs a token with the groups:admin scope." : error.message, error: true };
    }
    await Promise.all([selectGroup(name), loadGroups()]);
    const result = $("group-action-result");
    if (result) {
      result.textContent = message.text;
      result.className = "message" + (message.error ? " error" : "");
      result.hidden = false;
    }
  });
  return button;
}

// --- webhook sinks (GET /sinks) -------------------------------------------------------------------
// Each sink's receiver URL, whether it delivers (a 410 from its receiver disables it), checkpoint, lag and parked
// events; read with the metrics. A click shows the sink and its parked events. Tokens need the groups scope.

let sinksRequest = 0;

async function loadSinks() {
  const request = ++sinksRequest;
  const sinks = await loadPanelList("sinks", "/sinks", "sinks", () => request === sinksRequest,
    "This gateway's store keeps no webhook sinks.", "No sinks. Create one with: fluxgate sinks create NAME --target https://…");
  if (!sinks) return;
  const container = $("sinks");
  const body = element("tbody", { id: "sinks-rows" });
  for (const sink of sinks) {
    body.append(element("tr", {
      dataset: { sink: sink.name, lag: String(sink.lag), parked: String(sink.parked), enabled: String(sink.enabled) },
      class: sink.name === state.selectedSink ? "selected" : "",
      title: "Show this sink and its parked events",
      activate: () => selectSink(sink.name),
    },
    element("td", { class: "aggregate mono" }, sink.name),
    element("td", { class: "mono" }, sink.url),
    element("td", { class: sink.enabled ? "" : "warn" }, sink.enabled ? "yes" : "disabled"),
    element("td", { class: "num" }, formatNumber(sink.checkpoint)),
    element("td", { class: "num" }, formatNumber(sink.lag)),
    element("td", { class: "num" + (sink.parked ? " warn" : "") }, formatNumber(sink.parked))));
  }
  container.replaceChildren(panelTable([["Sink"], ["URL"], ["Enabled"], ["Checkpoint", "num"], ["Lag", "num"], ["Parked", "num"]], body));
}

async function selectSink(name) {
  state.selectedSink = name;
  state.selectedGroup = null;
  state.selectedId = null;
  markSelected("sink", name);
  const detail = $("detail");
  detail.replaceChildren(element("p", { class: "placeholder" }, "Loading…"));
  try {
    const path = "/sinks/" + encodeURIComponent(name);
    const [sink, parked] = await Promise.all([getJSON(path), getJSON(path + "/parked")]);
    if (state.selectedSink !== name) return;
    const [fields, add] = fieldList();
    add("url", sink.url);
    add("enabled", sink.enabled ? "yes" : "no: " + (sink.disabled_reason || ""));
    add("checkpoint", formatNumber(sink.checkpoint));
    add("lag", formatNumber(sink.lag));
    add("in flight", sink.in_flight === undefined ? "–" : formatNumber(sink.in_flight));
    add("redeliveries", sink.redeliveries === undefined ? "–" : formatNumber(sink.redeliveries));
    add("parked", formatNumber(sink.parked));
    add("secrets", (sink.secret_fingerprints || []).join(", ") + " (fingerprints)");
    detail.replaceChildren(
      element("h3", { class: "detail-title", id: "detail-sink" }, `Sink ${sink.name}`),
      fields,
      element("div", { class: "payload-label" }, parked.parked.length
        ? "Parked events (replay with: fluxgate sinks replay " + sink.name + ")" : "No parked events"),
      renderJSON(parked.parked.length ? parked.parked : {
        filter: sink.filter, concurrency: sink.concurrency, timeout_ms: sink.timeout_ms, maximum_attempts: sink.maximum_attempts,
        backoff_ms: sink.backoff_ms, maximum_backoff_ms: sink.maximum_backoff_ms,
      }),
    );
  } catch (error) {
    if (state.selectedSink !== name) return;
    detail.replaceChildren(element("p", { class: "message error" }, error.message));
  }
}

// --- subscribers and lag (GET /metrics) -------------------------------------------------------------
// Subscribers: the fluxgate_subscribers gauges (WebSocket and server-sent events; pollers are not connected).
// Lag: the mean of fluxgate_subscriber_lag_events over the last interval (head minus the position a subscriber
// acknowledged or was sent from the store), or since the start when there is no earlier sample. A gateway with access control
// shows these to tokens with the metrics scope only.

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] || "").matchAll(/(\w+)="((?:\\.|[^"\\])*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

async function readMetrics() {
  let response;
  try {
    response = await fetch(API + "/metrics", { cache: "no-store", headers: { ...apiHeaders(), Accept: "text/plain" } });
  } catch {
    return;  // the gateway is away: the connection pill says so
  }
  if (!response.ok) {
    $("subscribers").textContent = "–";
    $("lag").textContent = "–";
    const why = response.status === 401 || response.status === 403 ? "needs a token with the metrics scope" : `/metrics answered ${response.status}`;
    $("subscribers-hint").textContent = why;
    $("lag-hint").textContent = why;
    return;
  }
  const samples = parseMetrics(await response.text());
  const sum = (name, match = () => true) => samples.filter((s) => s.name === name && match(s.labels)).reduce((total, s) => total + s.value, 0);
  const byTransport = (transport) => sum("fluxgate_subscribers", (labels) => labels.transport === transport);
  const websocket = byTransport("websocket");
  const sse = byTransport("sse");
  $("subscribers").textContent = formatNumber(websocket + sse);
  $("subscribers-hint").textContent = `WebSocket ${formatNumber(websocket)} · SSE ${formatNumber(sse)}`;
  // Both observations of fluxgate_subscriber_lag_events: at each WebSocket ack, and at each page a catching-up
  // subscriber (WebSocket or SSE) reads from the store.
  const now = { time: performance.now(), lagSum: sum("fluxgate_subscriber_lag_events_sum"), lagCount: sum("fluxgate_subscriber_lag_events_count") };
  const last = state.metrics;
  state.metrics = now;
  let mean = null;
  let hint;
  if (last && now.lagCount >= last.lagCount) {
    const seen = now.lagCount - last.lagCount;
    mean = seen > 0 ? (now.lagSum - last.lagSum) / seen : 0;
    hint = seen > 0 ? `mean of ${formatNumber(seen)} in the last ${Math.round((now.time - last.time) / 1000)} s` : "nothing delivered in the last interval";
  } else {
    mean = now.lagCount > 0 ? now.lagSum / now.lagCount : 0;
    hint = now.lagCount > 0 ? "mean since the gateway started" : "nothing delivered yet";
  }
  $("lag").textContent = mean < 10 ? String(Math.round(mean * 10) / 10) : formatNumber(Math.round(mean));
  $("lag-hint").textContent = hint;
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
  const used = accessToken();
  const subscription = new FluxgateSubscription(API, {
    after: Math.max(0, health.head - BACKLOG),
    epoch: health.epoch,
    transport,
    maxBackoff: 4000,         // a person is watching: come back soon after a restart
    accessToken: used || undefined,
    onEvent: (event) => addLiveEvent(event, event.position > health.head),
    onCaughtUp: (head) => setHead(head),
    onState: (name) => { if (state.subscription === subscription) setConnection(name); },
    onError: (error) => {
      if (state.subscription !== subscription) return;
      if (/access token/.test(error.message)) {
        // Wait for a token (asked once, shared with every request waiting for one), then subscribe with it.
        setConnection("error");
        $("connection-text").textContent = "Waiting for a token";
        const reason = error.message.replace(/^[^:]*: /, "");
        waitForToken(reason || error.message, used).then(() => { if (state.subscription === subscription) connect(); });
        return;
      }
      // The store was replaced (another epoch): start over against the new one.
      setConnection("error");
      showNotice(`${error.message}. Starting over…`);
      $("live-events").replaceChildren();
      state.queue = [];
      showLive();
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
  $("older").addEventListener("click", showOlder);
  $("newer").addEventListener("click", showNewer);
  $("to-live").addEventListener("click", showLive);
  $("stream-form").addEventListener("submit", (submit) => {
    submit.preventDefault();
    openStream($("stream-id").value);
  });
  $("streams-form").addEventListener("submit", (submit) => {
    submit.preventDefault();
    loadStreams();
  });
  $("stream-prefix").addEventListener("input", () => {
    clearTimeout(streamsTyping);
    streamsTyping = setTimeout(() => loadStreams(), 300);
  });
  $("streams-refresh").addEventListener("click", () => loadStreams());
  $("token-panel").addEventListener("submit", (submit) => {
    submit.preventDefault();
    submitToken($("token-input").value.trim());
  });
  setInterval(tick, 1000);
  takeTokenFromFragment();
  setLiveWaiting();
  openFromHash();
  connect();
  loadStreams();
  readMetrics();
  loadGroups();
  loadSinks();
  setInterval(readMetrics, METRICS_EVERY);
  setInterval(loadGroups, METRICS_EVERY);
  setInterval(loadSinks, METRICS_EVERY);
}

main();
