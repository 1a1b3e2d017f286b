// TypeScript declarations for fluxgate.js (served by every gateway at /ui/fluxgate.js). The README's "Browsers
// and Node: fluxgate.js and CORS" section has the usage; the envelope is the README's "Wire protocol".

/** An event as the gateway delivers it: the envelope with its payload. */
export interface FluxgateEvent {
  event_id: string;
  /** Where the event's payload alone can be fetched (the original flux feed's entry URL). */
  url: string;
  aggregate_name: string;
  aggregate_version: number;
  event_type: string;
  /** C's asctime format in UTC, as the original flux feed wrote it. */
  created: string;
  aggregate_id: string;
  /** The global position: 1, 2, 3, … dense, in commit order. */
  position: number;
  /** RFC 3339 with milliseconds. */
  recorded_at: string;
  /** Any JSON value the writer gave. */
  payload: unknown;
}

/** The transport in use: WebSocket first, then server-sent events, then long-polling the feed. */
export type FluxgateTransport = "websocket" | "sse" | "polling";

/** What `onState` reports. */
export type FluxgateState = FluxgateTransport | "reconnecting" | "stopped";

/** Feed filters; each value or list of values is ORed, the fields ANDed. */
export interface FluxgateFilters {
  event_type?: string | string[];
  aggregate_name?: string | string[];
  aggregate_id?: string | string[];
}

export interface FluxgateSubscriptionOptions {
  /** Keep the position and epoch in localStorage under "fluxgate:" + storageKey (browsers only). */
  storageKey?: string;
  /** The position to start after when nothing is stored (default 0: everything). */
  after?: number;
  /** The store the positions belong to; a gateway with another store is a fatal error. */
  epoch?: string;
  filters?: FluxgateFilters;
  /** The first transport to try (default "websocket"). */
  transport?: FluxgateTransport;
  /** The longest wait between reconnection attempts, in ms (default 15000). */
  maxBackoff?: number;
  /** A bearer token for a gateway with access control (a refused one is a fatal error). */
  accessToken?: string;
  /** Every event once, in position order, also across reconnects. */
  onEvent?: (event: FluxgateEvent) => void;
  /** Once per connection, when the backlog up to `head` is delivered; live events follow. */
  onCaughtUp?: (head: number) => void;
  onState?: (state: FluxgateState) => void;
  /**
   * A fatal error; the subscription has stopped: another store (epoch), a bad query, a refused token, or this
   * page's origin refused by the gateway (CORS: its operator can allow it with --allow-origin). Without it the
   * error goes to console.error.
   */
  onError?: (error: Error) => void;
}

export declare class FluxgateSubscription {
  /** @param baseUrl The gateway's URL, e.g. "https://feed.example.com" (http(s); ws(s) is derived). */
  constructor(baseUrl: string, options?: FluxgateSubscriptionOptions);
  /** Connects (or does nothing when started). */
  start(): void;
  /** Disconnects and reports "stopped"; `start()` resumes after `position`. */
  stop(): void;
  /** The last position delivered (or the start). */
  readonly position: number;
  /** The store's epoch, once known. */
  readonly epoch: string | null;
  /** The transport in use or being tried. */
  readonly transport: FluxgateTransport;
}

/** What a group member's `onState` reports. */
export type FluxgateGroupMemberState = "websocket" | "pull" | "reconnecting" | "stopped";

export interface FluxgateGroupMemberOptions {
  /** This member's name in the group (default: made up). */
  member?: string;
  /** Over WebSocket: events held unsettled at once, 1–1000 (default 100). */
  credit?: number;
  /** "websocket" (the default where WebSocket exists) or "pull" (HTTP fetch). */
  transport?: "websocket" | "pull";
  /** Pull: events per fetch, 1–1000 (default 100). */
  max?: number;
  /** Pull: seconds a fetch waits for events, 0–60 (default 20). */
  wait?: number;
  /** A bearer token with the groups and read scopes. */
  accessToken?: string;
  /** The longest wait between reconnection attempts, in ms (default 15000). */
  maxBackoff?: number;
  /** Handles one leased event: resolve to acknowledge it, throw to reject it (the group retries it later). */
  handler?: (event: FluxgateEvent, attempt: number) => void | Promise<void>;
  onState?: (state: FluxgateGroupMemberState) => void;
  /** A fatal error; the member has stopped: an unknown group, a refused token. */
  onError?: (error: Error) => void;
}

/** A worker of a consumer group the gateway keeps (README "Consumer groups"). */
export declare class FluxgateGroupMember {
  constructor(baseUrl: string, group: string, options?: FluxgateGroupMemberOptions);
  start(): void;
  /** Leaves the group: what it holds unsettled goes to the other members. */
  stop(): void;
  /** Its member name. */
  readonly member: string;
  /** Events it acknowledged. */
  readonly handled: number;
}
