"""PushMiddleware: server push for any WSGI application.

It owns the paths under ``prefix`` and hands every other request to the
wrapped application untouched::

    from wsgi_push import PushMiddleware, MemoryBroker

    broker = MemoryBroker()
    app.wsgi_app = PushMiddleware(app.wsgi_app, broker=broker, prefix="/push")
    broker.publish("news", {"title": "hi"})

Under the prefix:

========================  =====  ==========================================
``/sse/<channels>``       GET    Server-Sent Events
``/stream/<channels>``    GET    chunked newline-delimited JSON
``/poll/<channels>``      GET    long polling
``/publish/<channel>``    POST   publish (off unless a token or authorize)
``/publish``              POST   publish many messages at once (same)
``/client.js``            GET    the JavaScript client
``/client.mjs``           GET    the same as an ES module
``/client.d.ts``          GET    its TypeScript declarations
``/stats``                GET    counters (off unless ``expose_stats``)
``/metrics``              GET    the same for Prometheus (``expose_metrics``)
========================  =====  ==========================================

``<channels>`` is one channel name, or several separated by commas: one
connection follows them all (a multiplexed subscription).

Waiting is greenlet-blocking on gevent primitives, so it must run under a
gevent server (``wsgi_push.serve``, gevent's pywsgi, ``gunicorn -k gevent``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import lifecycle
from .auth import PUBLISH, STATS, Authorize, Gate
from .brokers.base import Broker
from .brokers.memory import MemoryBroker
from .client_script import ClientScript
from .connections import Connections
from .cors import CorsPolicy, deprecated_cors_options
from .disconnect import ON_DISCONNECT, OnDisconnect
from .errors import (
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PushError,
    ServiceUnavailable,
)
from .message import check_channel, dumps
from .metrics import PrometheusMetrics
from .nodelay import NagleOff
from .nowait import WRITE_NOWAIT
from .repoll import REPOLL
from .request import (
    parse_channels,
    parse_cursor,
    parse_timeout,
    query_params,
    read_json_body,
)
from .responses import (
    Headers,
    Response,
    StreamBody,
    error_response,
    json_body_response,
    json_response,
    status_line,
)
from .stats import Stats
from .transports.base import StreamFormat, Subscription, follow, resolve_positions
from .transports.poll import (
    encode_multiplexed_poll_body,
    encode_poll_body,
    long_poll,
    select_multiplexed,
)
from .transports.sse import SSE_FORMAT
from .transports.stream import NDJSON_FORMAT

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("wsgi_push")

PresenceCallback = Callable[["WSGIEnvironment", str, int], None]
Handler = Callable[["WSGIEnvironment"], Response]

_CHANNEL_ROUTES: dict[str, tuple[str, ...]] = {
    "sse": ("GET",),
    "stream": ("GET",),
    "poll": ("GET",),
    "publish": ("POST",),
}
_STREAM_FORMATS = {"sse": SSE_FORMAT, "stream": NDJSON_FORMAT}
_PUBLISH_FIELDS = frozenset({"data", "event"})
_BATCH_ENTRY_FIELDS = frozenset({"channel", "data", "event"})
DEFAULT_MAX_CONNECTIONS = 10_000


class PushMiddleware:
    """Serve push transports under ``prefix``; everything else goes to ``app``.

    :param app: the WSGI application to wrap.
    :param broker: where messages live; None makes a new :class:`MemoryBroker`.
    :param prefix: URL path the middleware owns (no trailing slash).
    :param heartbeat: seconds of idleness before a stream sends a heartbeat.
    :param poll_timeout: longest a long poll is held, in seconds (the default
        and the cap of the ``timeout`` parameter).
    :param authorize: ``authorize(environ, channel, action) -> bool`` with
        action ``"subscribe"`` or ``"publish"``; False answers 403.
    :param publish_token: bearer token that enables ``POST /publish/<channel>``.
    :param max_message_bytes: largest HTTP publish body (413 beyond).
    :param max_connections: open subscriber connections per process before
        new ones get 503 with ``Retry-After`` (None: no limit).
    :param poll_batch_limit: most messages one long-poll answer carries.
    :param sse_retry: reconnection delay advertised to EventSource, seconds.
    :param on_subscribe: ``f(environ, channel, count)`` when a streaming
        (SSE or NDJSON) subscriber joins; ``count`` includes it.
    :param on_unsubscribe: ``f(environ, channel, count)`` when one leaves.
    :param max_subscribers_per_channel: streaming subscribers one channel may
        have in this process before new ones get 503 (None: no limit).
    :param cors: a :class:`CorsPolicy`: the origins allowed to use the
        endpoints from a browser, with or without credentials (None: none).
    :param expose_stats: serve ``GET /stats`` (JSON counters) to requests that
        pass the publish token or ``authorize(environ, "", "stats")``.
    :param expose_metrics: serve ``GET /metrics`` (the stats in Prometheus'
        text format, see :mod:`wsgi_push.metrics`), guarded like ``/stats``.
    :param max_channels_per_subscription: most channels one multiplexed
        subscription may follow (400 beyond).
    :param max_batch_messages: most messages one ``POST /publish`` may carry
        (413 beyond).
    :param max_batch_bytes: largest ``POST /publish`` body (413 beyond); each
        message in it is also bounded by ``max_message_bytes``.
    :param cors_origins: deprecated, use ``cors=CorsPolicy(cors_origins)``.
    :param cors_credentials: deprecated, use ``CorsPolicy(...,
        allow_credentials=True)``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        broker: Broker | None = None,
        prefix: str = "/push",
        heartbeat: float = 15.0,
        poll_timeout: float = 25.0,
        authorize: Authorize | None = None,
        publish_token: str | None = None,
        max_message_bytes: int = 64 * 1024,
        max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
        poll_batch_limit: int = 1000,
        sse_retry: float = 2.0,
        on_subscribe: PresenceCallback | None = None,
        on_unsubscribe: PresenceCallback | None = None,
        max_subscribers_per_channel: int | None = None,
        cors: CorsPolicy | None = None,
        expose_stats: bool = False,
        expose_metrics: bool = False,
        max_channels_per_subscription: int = 64,
        max_batch_messages: int = 1000,
        max_batch_bytes: int = 1024 * 1024,
        cors_origins: Iterable[str] | None = None,
        cors_credentials: bool | None = None,
    ) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError("prefix must start with '/' and not end with '/'")
        if heartbeat <= 0 or poll_timeout <= 0:
            raise ValueError("heartbeat and poll_timeout must be positive")
        if poll_batch_limit < 1:
            raise ValueError("poll_batch_limit must be at least 1")
        if max_channels_per_subscription < 1 or max_batch_messages < 1:
            raise ValueError("max_channels_per_subscription and max_batch_messages must be >= 1")
        self.app = app
        self.broker = broker if broker is not None else MemoryBroker()
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.poll_timeout = poll_timeout
        self.max_message_bytes = max_message_bytes
        self.poll_batch_limit = poll_batch_limit
        self.sse_retry = sse_retry
        self.on_subscribe = on_subscribe
        self.on_unsubscribe = on_unsubscribe
        self.max_subscribers_per_channel = max_subscribers_per_channel
        self.expose_stats = expose_stats
        self.max_channels_per_subscription = max_channels_per_subscription
        self.max_batch_messages = max_batch_messages
        self.max_batch_bytes = max_batch_bytes
        self.gate = Gate(publish_token, authorize)
        if cors_origins is not None or cors_credentials is not None:
            cors = deprecated_cors_options(cors, cors_origins, cors_credentials)
        self.cors = cors
        self.connections = Connections(max_connections)
        self.stats = Stats()
        self.client_script = ClientScript()
        self.metrics = PrometheusMetrics(self) if expose_metrics else None
        self._routes_start = prefix + "/"
        self._nagle_off = NagleOff()
        # Routes without channels, by name: one dict lookup per request.
        self._fixed_routes: dict[str, tuple[tuple[str, ...], Handler]] = {
            name: (("GET", "HEAD"), static.respond)
            for name, static in self.client_script.files.items()
        }
        if expose_stats:
            self._fixed_routes["stats"] = (("GET",), self._stats)
        if self.metrics is not None:
            self._fixed_routes["metrics"] = (("GET",), self._metrics)
        self._fixed_routes["publish"] = (("POST",), self._publish_many)
        lifecycle.register(self)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path != self.prefix and not path.startswith(self._routes_start):
            return self.app(environ, start_response)
        self._nagle_off(environ)  # plain pywsgi leaves it on; see nodelay.py
        try:
            status, headers, body = self._dispatch(environ, path[len(self._routes_start) :])
        except PushError as error:
            self.stats.record_error(error)
            status, headers, body = error_response(error)
        except Exception:
            # An app callback (authorize, on_subscribe) or a bug: still the
            # contract's JSON error, and the traceback in the log.
            logger.exception("wsgi_push: unexpected error answering %s", path)
            status, headers, body = error_response(PushError("internal server error"))
        if self.cors is not None:
            headers += self.cors.headers(environ)
        if self.connections.draining:
            # Make a kept-alive client reconnect on a fresh connection, which
            # lands on a live process.
            headers.append(("Connection", "close"))
        start_response(status, headers)
        return body

    def end_connections(self) -> None:
        """End every open stream and long poll now; clients reconnect and resume.

        Used to move clients to other workers; see also :meth:`drain`.
        """
        self.connections.end_all()
        self.broker.wake_all()

    def drain(self) -> None:
        """End every connection for good: this process is going away.

        Requests that still arrive get an immediately finished answer with
        ``Connection: close``, so clients reconnect elsewhere and resume.
        """
        self.connections.draining = True
        self.end_connections()

    def stats_snapshot(self) -> dict[str, Any]:
        """The counters of ``GET /stats`` as a dict."""
        return self.stats.as_dict(self.connections.open_by_transport, self.broker.published)

    # Routing ----------------------------------------------------------------

    def _dispatch(self, environ: WSGIEnvironment, route: str) -> Response:
        fixed = self._fixed_routes.get(route)  # client.js, stats, metrics, publish
        if fixed is not None:
            methods, handler = fixed
            return self._preflight(environ, methods) or handler(environ)
        transport, slash, names = route.partition("/")
        allowed = _CHANNEL_ROUTES.get(transport)
        if allowed is None or not slash:
            raise NotFound("no such endpoint")
        preflight = self._preflight(environ, allowed)
        if preflight is not None:
            return preflight
        if transport == "publish":
            try:
                channel = check_channel(names)
            except ValueError as error:
                raise BadRequest(str(error)) from None
            return self._publish(environ, channel)
        channels = parse_channels(names, self.max_channels_per_subscription)
        stream_format = _STREAM_FORMATS.get(transport)
        if stream_format is not None and self.connections.draining:
            return self._ended_stream(stream_format)
        # The connection limit comes before any other work; from here on the
        # slot is released on every path, at the latest when the stream ends.
        release = self.connections.open(transport)
        self.stats.connections_opened[transport] += 1
        try:
            self.gate.check_subscribe(environ, channels)
            params = query_params(environ)
            if stream_format is None:
                repoll = environ.get(REPOLL)
                if repoll is not None:
                    repoll()
                return self._poll(channels, params, release, environ.get(ON_DISCONNECT))
            where, cursor = stream_format.requested_cursor(environ, params)
            requested = parse_cursor(cursor, where, len(channels))
            return self._stream(environ, channels, requested, stream_format, release)
        except BaseException:
            release()
            raise

    # Handlers ---------------------------------------------------------------

    def _stats(self, environ: WSGIEnvironment) -> Response:
        self.gate.check(environ, "", STATS)
        return json_response(200, self.stats_snapshot())

    def _metrics(self, environ: WSGIEnvironment) -> Response:
        if self.metrics is None:  # routed here only when configured
            raise NotFound("no such endpoint")
        self.gate.check(environ, "", STATS)
        return self.metrics.respond(environ)

    def _ended_stream(self, stream_format: StreamFormat) -> Response:
        """What a draining process answers a new subscriber: a stream that
        ends at once (with ``Connection: close``), so it reconnects elsewhere."""
        opening = stream_format.opening(self.sse_retry, None)
        return status_line(200), self._stream_headers(stream_format), [opening]

    @staticmethod
    def _stream_headers(stream_format: StreamFormat) -> Headers:
        return [("Content-Type", stream_format.content_type), *stream_format.headers]

    def _stream(
        self,
        environ: WSGIEnvironment,
        channels: tuple[str, ...],
        requested: list[int | None],
        stream_format: StreamFormat,
        release: Callable[[], None],
    ) -> Response:
        limit = self.max_subscribers_per_channel
        if limit is not None and any(
            self.broker.subscriber_count(channel) >= limit for channel in channels
        ):
            raise ServiceUnavailable("too many subscribers on this channel")
        subscription = Subscription(
            self.broker,
            resolve_positions(self.broker, channels, requested),
            self.heartbeat,
            self.connections.ended_check(),
            self.stats,
            environ.get(WRITE_NOWAIT),
        )
        opening = stream_format.opening(self.sse_retry, subscription.cursor())
        joined: list[str] = []

        def leave() -> None:
            release()
            for channel in joined:
                self.broker.remove_subscriber(channel)
                if self.on_unsubscribe is not None:
                    try:
                        count = self.broker.subscriber_count(channel)
                        self.on_unsubscribe(environ, channel, count)
                    except Exception:
                        # The connection is gone either way; don't let the app's
                        # callback break the server's cleanup.
                        logger.exception("on_unsubscribe failed for channel %s", channel)

        try:
            for channel in channels:
                self.broker.add_subscriber(channel)
                joined.append(channel)
                if self.on_subscribe is not None:
                    self.on_subscribe(environ, channel, self.broker.subscriber_count(channel))
        except BaseException:
            leave()
            raise
        body = StreamBody(follow(subscription, stream_format, opening), leave)
        return status_line(200), self._stream_headers(stream_format), body

    def _poll(
        self,
        channels: tuple[str, ...],
        params: dict[str, str],
        release: Callable[[], None],
        on_disconnect: OnDisconnect | None,
    ) -> Response:
        requested = parse_cursor(params.get("since"), "since", len(channels))
        timeout = (
            0.0
            if self.connections.draining
            else parse_timeout(params.get("timeout"), self.poll_timeout)
        )
        limit = self.poll_batch_limit
        try:
            positions = resolve_positions(self.broker, channels, requested)
            batches = long_poll(self.broker, positions, timeout, limit, on_disconnect)
        finally:
            release()
        if len(channels) == 1:
            [(channel, batch)] = batches
            self.stats.record(batch)
            return json_body_response(200, encode_poll_body(channel, batch))
        messages, gaps = select_multiplexed(batches, positions, limit)
        self.stats.record_counts(len(messages), len(gaps))
        return json_body_response(200, encode_multiplexed_poll_body(positions, messages, gaps))

    def _publish(self, environ: WSGIEnvironment, channel: str) -> Response:
        self.gate.check(environ, channel, PUBLISH)
        body = read_json_body(environ, self.max_message_bytes)
        if not isinstance(body, dict) or "data" not in body:
            raise BadRequest('body must be a JSON object with "data" (and optional "event")')
        if not body.keys() <= _PUBLISH_FIELDS:
            raise BadRequest('unknown field in body; only "data" and "event" are allowed')
        try:
            message_id = self.broker.publish(channel, body["data"], body.get("event"))
        except ValueError as error:
            raise BadRequest(str(error)) from None
        self.stats.published_over_http += 1
        return json_body_response(201, b'{"id":%d}' % message_id)  # what dumps would write

    def _publish_many(self, environ: WSGIEnvironment) -> Response:
        """``POST /publish``: all of a batch's messages or none of them."""
        self.gate.check_credentials(environ, PUBLISH)
        body = read_json_body(environ, self.max_batch_bytes)
        if not isinstance(body, dict) or body.keys() != {"messages"}:
            raise BadRequest('body must be a JSON object with "messages" and nothing else')
        entries = body["messages"]
        if not isinstance(entries, list) or not entries:
            raise BadRequest('"messages" must be a non-empty list')
        if len(entries) > self.max_batch_messages:
            raise PayloadTooLarge(f"over {self.max_batch_messages} messages in one batch")
        batch = []
        authorized: set[str] = set()
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not {"channel", "data"} <= entry.keys():
                raise BadRequest(f'message {index}: must be an object with "channel" and "data"')
            if not entry.keys() <= _BATCH_ENTRY_FIELDS:
                raise BadRequest(f'message {index}: only "channel", "data" and "event" are allowed')
            if len(dumps(entry).encode("utf-8")) > self.max_message_bytes:
                raise PayloadTooLarge(f"message {index}: over {self.max_message_bytes} bytes")
            channel = entry["channel"]
            try:
                check_channel(channel)
            except ValueError as error:
                raise BadRequest(f"message {index}: {error}") from None
            if channel not in authorized:
                if not self.gate.authorized(environ, channel, PUBLISH):
                    raise Forbidden(f"message {index}: not allowed to publish on this channel")
                authorized.add(channel)
            batch.append((channel, entry["data"], entry.get("event")))
        try:
            ids = self.broker.publish_many(batch)
        except ValueError as error:
            raise BadRequest(str(error)) from None
        self.stats.published_over_http += len(ids)
        return json_response(201, {"ids": ids})

    def _preflight(self, environ: WSGIEnvironment, allowed: tuple[str, ...]) -> Response | None:
        """None for an ``allowed`` method, the answer to a CORS preflight,
        or :class:`MethodNotAllowed` for any other method."""
        method = environ.get("REQUEST_METHOD", "GET")
        if method in allowed:
            return None
        if method == "OPTIONS" and self.cors is not None:
            return self.cors.preflight(environ, allowed)
        raise MethodNotAllowed(allowed + (("OPTIONS",) if self.cors is not None else ()))
