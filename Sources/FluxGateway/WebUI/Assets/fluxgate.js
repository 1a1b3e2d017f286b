// fluxgate.js — a dependency-free browser client for a Fluxgate gateway (ES module).
//
// It subscribes over WebSocket first; when the push channel is not available (a proxy refuses the upgrade,
// the browser or network blocks it) it falls back to server-sent events, then to long-polling the JSON
// feed. Whatever the transport, it resumes from the last position it delivered, so a reconnect neither
// skips nor repeats an event. Positions are kept in localStorage when a storageKey is given.
//
//   import { FluxgateSubscription } from "./fluxgate.js";
//   const sub = new FluxgateSubscription("http://127.0.0.1:8080", {
//     storageKey: "my-view", filters: { event_type: ["account.AccountCredited"] },
//     onEvent: (event) => console.log(event.position, event.event_type, event.payload),
//     onCaughtUp: (head) => console.log("live from", head),
//     onState: (state) => console.log(state),             // "websocket" | "sse" | "polling" | "reconnecting" | "stopped"
//     onError: (error) => console.error(error),            // fatal (the subscription stops): epoch mismatch, bad
//                                                          // query, refused token, this page's origin refused (CORS)
//   });
//   sub.start();  …  sub.stop();
//
// Other options: `after` (the position to start after when nothing is stored, default 0), `epoch` (the
// store the positions belong to; a different store is a fatal error), `transport` ("websocket", "sse" or
// "polling": the first one to try), `maxBackoff` (the longest wait between reconnection attempts, in ms,
// default 15000; each wait is random up to a bound that doubles from 250 ms), `accessToken` (a bearer token for a
// gateway with access control: sent as Authorization on fetch() and as access_token on the WebSocket URL, the only
// way a browser can send one there; a refused token (401/403) is a fatal error). `sub.position`, `sub.epoch` and `sub.transport` tell where it stands.
//
// Server-sent events are read with fetch() rather than EventSource: EventSource cannot send an Authorization
// header, and fetch() lets this module tell a refused token or origin from a network failure.
//
// In Node (18 or newer) save this file as fluxgate.mjs and import it from there; Node before 22 has no WebSocket
// and subscribes over server-sent events. TypeScript declarations: clients/js/fluxgate.d.ts.

const TRANSPORTS = ["websocket", "sse", "polling"];

export class FluxgateSubscription {
  constructor(baseUrl, options = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.options = options;
    this.filters = options.filters || {};
    this.storageKey = options.storageKey || null;
    const saved = this._load();
    this.position = saved ? saved.position : (options.after || 0);
    this.epoch = saved ? saved.epoch : (options.epoch || null);
    this.preferredIndex = Math.max(0, options.transport ? TRANSPORTS.indexOf(options.transport) : 0);
    this.transportIndex = this.preferredIndex;
    this.stopped = true;
    this.backoff = 250;
    this.maxBackoff = options.maxBackoff || 15000;
    this._socket = null;
    this._source = null;
    this._poll = null;
    this._timer = null;
  }

  // The transport in use or being tried: "websocket", "sse" or "polling".
  get transport() { return TRANSPORTS[this.transportIndex]; }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this._connect();
  }

  stop() {
    this.stopped = true;
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    if (this._socket) { this._socket.close(1000, "client stopped"); this._socket = null; }
    if (this._source) { this._source.abort(); this._source = null; }
    if (this._poll) { this._poll.abort(); this._poll = null; }
    this._state("stopped");
  }

  // --- internals -------------------------------------------------------------------------------

  _query(extra = {}) {
    const params = new URLSearchParams();
    params.set("after", String(this.position));
    if (this.epoch) params.set("epoch", this.epoch);
    for (const name of ["event_type", "aggregate_name", "aggregate_id"]) {
      for (const value of [].concat(this.filters[name] || [])) params.append(name, value);
    }
    for (const [name, value] of Object.entries(extra)) params.set(name, String(value));
    return params.toString();
  }

  _headers(headers) {
    if (this.options.accessToken) headers.Authorization = "Bearer " + this.options.accessToken;
    return headers;
  }

  async _refused(response) {
    if (response.status !== 401 && response.status !== 403) return false;
    let message = "";
    try { message = (await response.json()).message || ""; } catch { /* not JSON */ }
    this._fatal((response.status === 401 ? "the gateway needs a valid access token: " : "the access token may not read this: ") + message);
    return true;
  }

  _load() {
    if (!this.storageKey || typeof localStorage === "undefined") return null;
    try { return JSON.parse(localStorage.getItem("fluxgate:" + this.storageKey)); } catch { return null; }
  }

  _save() {
    if (!this.storageKey || typeof localStorage === "undefined") return;
    try {
      localStorage.setItem("fluxgate:" + this.storageKey, JSON.stringify({ position: this.position, epoch: this.epoch }));
    } catch { /* storage full or denied: positions stay in memory */ }
  }

  _state(state) { if (this.options.onState) this.options.onState(state); }

  _caughtUp(head) { if (this.options.onCaughtUp) this.options.onCaughtUp(head); }

  _fatal(message) {
    this.stop();
    const error = new Error(message);
    if (this.options.onError) this.options.onError(error); else console.error(error);
  }

  // The feed could not be fetched at all. From a page of another origin that is either the network or the gateway
  // refusing this origin (CORS), and a browser does not say which: a no-cors request tells them apart, since it
  // reaches a gateway that refuses the origin (the answer is opaque, but it is an answer) and fails like the first
  // when the gateway is down. A refusal is fatal (retrying cannot help); a network failure is retried.
  async _crossOriginRefused() {
    if (typeof location === "undefined" || typeof fetch === "undefined") return false;  // Node: no CORS
    let target;
    try { target = new URL(this.baseUrl, location.href); } catch { return false; }
    if (target.origin === location.origin) return false;
    try {
      await fetch(this.baseUrl + "/health", { mode: "no-cors", cache: "no-store" });
    } catch { return false; }
    this._fatal("the gateway at " + target.origin + " does not let pages from " + location.origin + " read it (CORS); " +
      "its operator can allow them: fluxgate serve --allow-origin " + location.origin);
    return true;
  }

  _deliver(event, epoch) {
    if (event.position <= this.position) return;   // already delivered (never twice)
    if (epoch) this.epoch = epoch;
    this.position = event.position;
    if (this.options.onEvent) this.options.onEvent(event);
    this._save();
  }

  _retry(sameTransport) {
    if (this.stopped) return;
    if (!sameTransport && this.transportIndex < TRANSPORTS.length - 1) this.transportIndex += 1;
    const delay = Math.random() * this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.maxBackoff);
    this._state("reconnecting");
    this._timer = setTimeout(() => { this._timer = null; if (!this.stopped) this._connect(); }, delay);
  }

  _connect() {
    const transport = TRANSPORTS[this.transportIndex];
    if (transport === "websocket" && typeof WebSocket !== "undefined") return this._websocket();
    if (transport !== "polling" && typeof fetch !== "undefined" && typeof TextDecoderStream !== "undefined") {
      this.transportIndex = 1;
      return this._sse();
    }
    this.transportIndex = TRANSPORTS.length - 1;
    return this._polling();
  }

  _websocket() {
    const token = this.options.accessToken ? { access_token: this.options.accessToken } : {};
    const url = this.baseUrl.replace(/^http/, "ws") + "/events/subscribe?" + this._query(token);
    let socket;
    try {
      socket = new WebSocket(url);
    } catch (error) {
      // A bad URL or a content security policy that forbids it: the push channel is not available here.
      return this._retry(false);
    }
    let opened = false;
    this._socket = socket;
    socket.onopen = () => { opened = true; this.backoff = 250; this._state("websocket"); };
    socket.onmessage = (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      if (data.type === "events") {
        for (const event of data.events) this._deliver(event, data.epoch);
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ack", position: this.position }));
      } else if (data.type === "caught_up") {
        this._caughtUp(data.head);
      }
    };
    socket.onclose = (close) => {
      if (this._socket === socket) this._socket = null;
      if (this.stopped) return;
      if (close.code === 4409) return this._fatal("the gateway's store is not the one these positions came from: " + close.reason);
      if (close.code === 4400 || close.code === 1008) return this._fatal("the gateway refused the subscription: " + close.reason);
      // Never opened: the push channel is unavailable here, fall back. Opened: reconnect the same way.
      this._retry(opened);
    };
  }

  async _sse() {
    const controller = new AbortController();
    this._source = controller;
    let opened = false;
    try {
      const response = await fetch(this.baseUrl + "/events/subscribe?" + this._query(), {
        headers: this._headers({ Accept: "text/event-stream" }), cache: "no-store", signal: controller.signal,
      });
      if (await this._refused(response)) return;
      if (response.status === 409) return this._fatal("the gateway's store is not the one these positions came from: " + (await response.text()));
      if (response.status === 400) return this._fatal("the gateway refused the subscription: " + (await response.text()));
      const type = response.headers.get("Content-Type") || "";
      if (!response.ok || !type.startsWith("text/event-stream") || !response.body) {
        throw new Error("server-sent events answered " + response.status + " " + type);
      }
      opened = true;
      this.backoff = 250;
      this._state("sse");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const frame = { event: "", data: [] };
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.stopped) break;
        buffer += value;
        for (;;) {
          const end = /\r\n|\r|\n/.exec(buffer);
          if (!end || (end[0] === "\r" && end.index === buffer.length - 1)) break;  // a CR LF may be split
          const line = buffer.slice(0, end.index);
          buffer = buffer.slice(end.index + end[0].length);
          this._sseLine(line, frame);
        }
      }
    } catch (error) {
      if (this.stopped || controller.signal.aborted) return;
    } finally {
      if (this._source === controller) this._source = null;
    }
    // The stream ended (the server stopped, the network dropped): reconnect from our own position.
    if (!this.stopped && !controller.signal.aborted) this._retry(opened);
  }

  // One line of an SSE stream (HTML Living Standard, "Interpreting an event stream").
  _sseLine(line, frame) {
    if (line === "") {
      if (frame.data.length > 0) {
        const data = frame.data.join("\n");
        const name = frame.event || "message";
        try {
          if (name === "caught_up") this._caughtUp(JSON.parse(data).head);
          else this._deliver(JSON.parse(data), null);
        } catch { /* not JSON: not ours to deliver */ }
      }
      frame.event = "";
      frame.data = [];
      return;
    }
    if (line.startsWith(":")) return;  // a keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") frame.event = value;
    else if (field === "data") frame.data.push(value);
  }

  async _polling() {
    this._state("polling");
    let caughtUp = false;
    let failed = false;
    while (!this.stopped) {
      const controller = new AbortController();
      this._poll = controller;
      try {
        const limit = 500;
        // The first page after (re)connecting does not wait: its epoch tells at once whether the store is ours.
        const wait = caughtUp && !failed ? 20 : 0;
        const response = await fetch(this.baseUrl + "/events?" + this._query({ limit, embed: "payload", wait }), { signal: controller.signal, cache: "no-store", headers: this._headers({}) });
        if (await this._refused(response)) return;
        if (response.status === 400) return this._fatal("the gateway refused the query: " + (await response.text()));
        if (!response.ok) throw new Error("feed answered " + response.status);
        const page = await response.json();
        if (this.epoch && page.epoch !== this.epoch) return this._fatal("the gateway's store (epoch " + page.epoch + ") is not the one these positions came from (" + this.epoch + ")");
        this.backoff = 250;
        for (const event of page.events) this._deliver(event, page.epoch);
        if (!this.epoch) { this.epoch = page.epoch; this._save(); }
        if (failed && this.preferredIndex < this.transportIndex) {
          // The gateway is back after an outage (which is what may have brought us down to polling):
          // try the preferred transport again; a proxy that refuses it sends us back here.
          this._poll = null;
          this.transportIndex = this.preferredIndex;
          return this._connect();
        }
        if (failed) { failed = false; this._state("polling"); }
        if (!caughtUp && page.events.length < limit) { caughtUp = true; this._caughtUp(page.head); }
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof TypeError && await this._crossOriginRefused()) return;
        failed = true;
        this._state("reconnecting");
        await new Promise((resolve) => setTimeout(resolve, Math.random() * this.backoff));
        this.backoff = Math.min(this.backoff * 2, this.maxBackoff);
      }
    }
  }
}

// --- consumer groups ---------------------------------------------------------------------------------
//
// A worker of a consumer group the gateway keeps (README "Consumer groups"): the group's events are shared among its
// members, an aggregate's events go to one member at a time and in order, and the gateway keeps the checkpoint.
//
//   import { FluxgateGroupMember } from "./fluxgate.js";
//   const member = new FluxgateGroupMember("http://127.0.0.1:8080", "billing", {
//     handler: async (event, attempt) => { await project(event); },   // resolve: ack; throw: nack (retried later)
//     onState: (state) => console.log(state),   // "websocket" | "pull" | "reconnecting" | "stopped"
//     onError: (error) => console.error(error), // fatal (it stops): unknown group, refused token
//   });
//   member.start();  …  member.stop();
//
// Options: `member` (its name; made up when not given), `credit` (events held at once over WebSocket, 1–1000,
// default 100), `transport` ("websocket", the default where WebSocket exists, or "pull": HTTP fetch of up to `max`
// events, waiting up to `wait` seconds), `accessToken`, `maxBackoff`. Events are handled one at a time in the order
// leased; after a rejection the aggregate's later events of the same batch are left alone (the gateway took them back
// with the rejected one and hands them out after it).

export class FluxgateGroupMember {
  constructor(baseUrl, group, options = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.group = group;
    this.options = options;
    this.member = options.member || "js-" + Math.random().toString(36).slice(2, 12);
    this.credit = options.credit || 100;
    this.transport = options.transport || (typeof WebSocket === "undefined" ? "pull" : "websocket");
    this.stopped = true;
    this.backoff = 250;
    this.maxBackoff = options.maxBackoff || 15000;
    this.handled = 0;
    this._socket = null;
    this._pull = null;
    this._timer = null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.transport === "pull" ? this._pullLoop() : this._openSocket();
  }

  stop() {
    this.stopped = true;
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    if (this._socket) { this._socket.close(1000, "member stopped"); this._socket = null; }
    if (this._pull) { this._pull.abort(); this._pull = null; }
    this._state("stopped");
  }

  // --- internals -------------------------------------------------------------------------------

  _path(suffix) { return this.baseUrl + "/groups/" + encodeURIComponent(this.group) + suffix; }
  _state(state) { if (this.options.onState) this.options.onState(state); }
  _fatal(message) {
    this.stop();
    const error = new Error(message);
    if (this.options.onError) this.options.onError(error); else console.error(error);
  }
  _retry(connect) {
    if (this.stopped) return;
    this._state("reconnecting");
    const wait = Math.random() * this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.maxBackoff);
    this._timer = setTimeout(() => { this._timer = null; connect(); }, wait);
  }

  // Handles a batch of leases in order; returns { acknowledged: [positions], rejected: [[position, reason]] }.
  async _handle(leases) {
    const acknowledged = [];
    const rejected = [];
    const skipped = new Set();
    for (const { event, attempt } of leases) {
      if (this.stopped) break;
      if (skipped.has(event.aggregate_id)) continue;
      try {
        if (this.options.handler) await this.options.handler(event, attempt);
        acknowledged.push(event.position);
        this.handled += 1;
      } catch (error) {
        skipped.add(event.aggregate_id);
        rejected.push([event.position, String((error && error.message) || error).slice(0, 1000)]);
      }
    }
    return { acknowledged, rejected };
  }

  _openSocket() {
    const url = new URL(this._path("/subscribe"));
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("member", this.member);
    url.searchParams.set("credit", String(this.credit));
    if (this.options.accessToken) url.searchParams.set("access_token", this.options.accessToken);
    let socket;
    try { socket = new WebSocket(url); } catch (error) { return this._fatal("cannot open " + url.origin + ": " + error.message); }
    this._socket = socket;
    let opened = false;
    let work = Promise.resolve();
    socket.onopen = () => { opened = true; this.backoff = 250; this._state("websocket"); };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type !== "events") return;
      // One batch after another, in order: settlements go out once the batch is handled.
      work = work.then(async () => {
        const { acknowledged, rejected } = await this._handle(data.events);
        if (socket.readyState !== WebSocket.OPEN) return;
        for (let start = 0; start < acknowledged.length; start += 1000) {
          socket.send(JSON.stringify({ type: "ack", positions: acknowledged.slice(start, start + 1000) }));
        }
        for (const [position, reason] of rejected) socket.send(JSON.stringify({ type: "nack", position, reason }));
      });
    };
    socket.onclose = (close) => {
      if (this._socket === socket) this._socket = null;
      if (this.stopped) return;
      if (close.code === 1008) return this._fatal("the gateway refused this member: " + close.reason);
      // Refused before the upgrade (unknown group, bad token): a browser does not say why; ask over HTTP once.
      if (!opened) {
        return fetch(this._path(""), { headers: this._headers(), cache: "no-store" }).then((response) => {
          if (response.status === 404 || response.status === 401 || response.status === 403) {
            return response.text().then((text) => this._fatal("the gateway refused this member (" + response.status + "): " + text));
          }
          this._retry(() => this._openSocket());
        }, () => this._retry(() => this._openSocket()));
      }
      this._retry(() => this._openSocket());
    };
  }

  _headers(extra = {}) {
    const headers = { ...extra };
    if (this.options.accessToken) headers.Authorization = "Bearer " + this.options.accessToken;
    return headers;
  }

  async _pullLoop() {
    const max = this.options.max || 100;
    const wait = this.options.wait === undefined ? 20 : this.options.wait;
    this._state("pull");
    while (!this.stopped) {
      const controller = new AbortController();
      this._pull = controller;
      try {
        const query = new URLSearchParams({ member: this.member, max: String(max), wait: String(wait) });
        const response = await fetch(this._path("/fetch?" + query), {
          method: "POST", headers: this._headers(), cache: "no-store", signal: controller.signal });
        if ([400, 401, 403, 404].includes(response.status)) {
          return this._fatal("the gateway refused this member (" + response.status + "): " + (await response.text()));
        }
        if (!response.ok) throw new Error("fetch answered " + response.status);
        const { events } = await response.json();
        const { acknowledged, rejected } = await this._handle(events);
        // The member in the query too: a proxy in front of several nodes routes by it (the node that leased the
        // events settles them).
        const settle = (path, body) => fetch(this._path(path + "?" + new URLSearchParams({ member: this.member })), {
          method: "POST", headers: this._headers({ "Content-Type": "application/json" }), body: JSON.stringify(body) });
        for (let start = 0; start < acknowledged.length; start += 1000) {
          await settle("/ack", { member: this.member, positions: acknowledged.slice(start, start + 1000) });
        }
        for (const [position, reason] of rejected) await settle("/nack", { member: this.member, position, reason });
        this.backoff = 250;
      } catch (error) {
        if (this.stopped) return;
        this._state("reconnecting");
        await new Promise((resolve) => { this._timer = setTimeout(resolve, Math.random() * this.backoff); });
        this.backoff = Math.min(this.backoff * 2, this.maxBackoff);
        if (!this.stopped) this._state("pull");
      }
    }
  }
}
