/**
 * Declarations for the wsgi_push browser client, as an ES module
 * (`<prefix>/client.mjs`). The classic script (`<prefix>/client.js`) defines
 * the same API as the global `WsgiPush`. Reference: docs/client.md.
 */

/** A message as published: `data` is any JSON value. */
export interface Message<T = unknown> {
  channel: string;
  id: number;
  event: string;
  data: T;
}

/** The server could not continue `channel` from `requested`: the messages
 * `first`..`last` are retained (both 0 when none are). */
export interface Gap {
  channel: string;
  requested: number;
  first: number;
  last: number;
}

export type Transport = "sse" | "stream" | "poll";

/** Where to start: `null` only new messages, `0` everything retained, `N`
 * after id N (every channel); a cursor `"5,0,"` (one entry per channel, in
 * order, empty = only new); or `{channel: N}` (channels not named: only new). */
export type Since = number | string | null | { [channel: string]: number | null };

export interface ConnectionError {
  transport: Transport;
  /** The HTTP status, 0 when there was no answer. */
  status: number;
  message: string;
}

export interface SubscribeOptions {
  /** Default `"auto"`: SSE, else a fetch stream, else long polling. */
  transport?: Transport | "auto";
  /** The middleware's URL prefix, default `"/push"`. */
  prefix?: string;
  since?: Since;
  /** Extra query parameters for every request. */
  params?: { [name: string]: string | number | boolean } | null;
  /** Seconds the server may hold a long poll (null: its `poll_timeout`). */
  pollTimeout?: number | null;
  /** Reconnect back-off bounds, ms (defaults 1000 and 30000). */
  minDelay?: number;
  maxDelay?: number;
  /** One connection for all tabs of this origin (default false). */
  share?: boolean;
  onMessage?: (this: Subscription, message: Message) => void;
  onEvent?: { [event: string]: (this: Subscription, message: Message) => void };
  onGap?: (this: Subscription, gap: Gap) => void;
  onOpen?: (this: Subscription, transport: Transport) => void;
  onError?: (this: Subscription, error: ConnectionError) => void;
}

export interface Subscription {
  /** The channels followed, in order. */
  readonly channels: string[];
  /** The one channel of a one-channel subscription, else null. */
  readonly channel: string | null;
  /** The position of a one-channel subscription, else null. */
  readonly lastId: number | null;
  readonly transport: Transport;
  readonly closed: boolean;
  /** Whether `share` is in effect (false where Web Locks or BroadcastChannel are missing). */
  readonly shared: boolean;
  /** Whether this tab holds the connection (always true when not shared). */
  readonly leader: boolean;
  readonly options: Readonly<SubscribeOptions>;
  /** Each channel's position: a resume point, and a valid `since`. */
  positions(): { [channel: string]: number | null };
  /** Follow one more channel from `since` (default: only new); the others keep their positions. */
  add(channel: string, since?: number | null): void;
  /** Stop following a channel; the others keep their positions. */
  remove(channel: string): void;
  /** End the subscription: no more callbacks. */
  close(): void;
}

/** Subscribe to a channel, or to several over one connection. */
export function subscribe(channels: string | string[], options?: SubscribeOptions): Subscription;

declare const WsgiPush: { subscribe: typeof subscribe };
export default WsgiPush;
