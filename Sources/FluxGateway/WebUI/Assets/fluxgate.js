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
//     onState: (state) => console.log(state),             // "websocket" | "sse" | "polling" | "stopped" | …
//     onError: (error) => console.error(error),            // fatal: epoch mismatch, bad query
//   });
//   sub.start();  …  sub.stop();

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
    this.transportIndex = options.transport ? TRANSPORTS.indexOf(options.transport) : 0;
    this.stopped = true;
    this.backoff = 250;
    this._socket = null;
    this._source = null;
    this._poll = null;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this._connect();
  }

  stop() {
    this.stopped = true;
    if (this._socket) { this._socket.close(1000, "client stopped"); this._socket = null; }
    if (this._source) { this._source.close(); this._source = null; }
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

  _load() {
    if (!this.storageKey || typeof localStorage === "undefined") return null;
    try { return JSON.parse(localStorage.getItem("fluxgate:" + this.storageKey)); } catch { return null; }
  }

  _save() {
    if (!this.storageKey || typeof localStorage === "undefined") return;
    localStorage.setItem("fluxgate:" + this.storageKey, JSON.stringify({ position: this.position, epoch: this.epoch }));
  }

  _state(state) { if (this.options.onState) this.options.onState(state); }

  _fatal(message) {
    this.stop();
    const error = new Error(message);
    if (this.options.onError) this.options.onError(error); else console.error(error);
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
    this.backoff = Math.min(this.backoff * 2, 15000);
    this._state("reconnecting");
    setTimeout(() => { if (!this.stopped) this._connect(); }, delay);
  }

  _connect() {
    const transport = TRANSPORTS[this.transportIndex];
    if (transport === "websocket" && typeof WebSocket !== "undefined") return this._websocket();
    if (transport !== "polling" && typeof EventSource !== "undefined") return this._sse();
    this.transportIndex = TRANSPORTS.length - 1;
    return this._polling();
  }

  _websocket() {
    const url = this.baseUrl.replace(/^http/, "ws") + "/events/subscribe?" + this._query();
    const socket = new WebSocket(url);
    let opened = false;
    this._socket = socket;
    socket.onopen = () => { opened = true; this.backoff = 250; this._state("websocket"); };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "events") {
        for (const event of data.events) this._deliver(event, data.epoch);
        socket.send(JSON.stringify({ type: "ack", position: this.position }));
      } else if (data.type === "caught_up" && this.options.onCaughtUp) {
        this.options.onCaughtUp(data.head);
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

  _sse() {
    const source = new EventSource(this.baseUrl + "/events/subscribe?" + this._query());
    let opened = false;
    this._source = source;
    source.onopen = () => { opened = true; this.backoff = 250; this._state("sse"); };
    source.addEventListener("caught_up", (message) => {
      if (this.options.onCaughtUp) this.options.onCaughtUp(JSON.parse(message.data).head);
    });
    const onEvent = (message) => this._deliver(JSON.parse(message.data), null);
    source.onmessage = onEvent;
    source._typed = new Set();
    // SSE events are named by event type: listen to every name through a wrapper on dispatch.
    const originalDispatch = source.dispatchEvent.bind(source);
    source.dispatchEvent = (event) => {
      if (event.type !== "caught_up" && event.type !== "open" && event.type !== "error" && !source._typed.has(event.type)) {
        source._typed.add(event.type);
        source.addEventListener(event.type, onEvent);
      }
      return originalDispatch(event);
    };
    source.onerror = () => {
      source.close();
      if (this._source === source) this._source = null;
      // Reconnect ourselves from our own position (EventSource would reuse the first URL's `after`).
      this._retry(opened);
    };
  }

  async _polling() {
    this._state("polling");
    while (!this.stopped) {
      const controller = new AbortController();
      this._poll = controller;
      try {
        const response = await fetch(this.baseUrl + "/events?" + this._query({ limit: 500, embed: "payload", wait: 20 }), { signal: controller.signal });
        if (response.status === 400) return this._fatal("the gateway refused the query: " + (await response.text()));
        if (!response.ok) throw new Error("feed answered " + response.status);
        const page = await response.json();
        if (this.epoch && page.epoch !== this.epoch) return this._fatal("the gateway's store (epoch " + page.epoch + ") is not the one these positions came from (" + this.epoch + ")");
        this.backoff = 250;
        for (const event of page.events) this._deliver(event, page.epoch);
        if (!this.epoch) { this.epoch = page.epoch; this._save(); }
      } catch (error) {
        if (this.stopped) return;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * this.backoff));
        this.backoff = Math.min(this.backoff * 2, 15000);
      }
    }
  }
}
