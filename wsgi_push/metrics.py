"""The push stats in Prometheus' text format, for ``GET <prefix>/metrics``.

``PushMiddleware(app, expose_metrics=True)`` serves them (guarded like
``/stats``); :class:`PushCollector` adds them to a registry of your own::

    from prometheus_client import REGISTRY
    REGISTRY.register(PushCollector(middleware))

One process (pywsgi, ``gunicorn -w 1``): a collector reads
``stats_snapshot()`` at scrape time, so counting costs nothing extra.
Several processes (``gunicorn -w N``): a scrape reaches one worker, so with
``PROMETHEUS_MULTIPROC_DIR`` set, as prometheus_client documents, each
process copies its stats into prometheus_client's multiprocess files every
``SYNC_INTERVAL`` seconds (and before it answers a scrape), and the endpoint
answers with the sum over every process (custom collectors don't work across
processes). One middleware per process exposes metrics (the counts are the
process's). Needs ``pip install 'wsgi_push[prometheus]'``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import gevent

from .responses import Response, status_line

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

SYNC_INTERVAL = 1.0  # seconds between a worker's copies into the multiprocess files
TRANSPORTS = ("sse", "stream", "poll")  # always reported, so every series exists from the start


class HasStats(Protocol):
    """What the metrics read: the middleware's counters."""

    def stats_snapshot(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Metric:
    """One entry of ``stats_snapshot()`` as a Prometheus sample.

    ``label`` names the label for a per-transport dict; ``fixed`` is a
    constant label, so that two stats can share one family.
    """

    stat: str
    name: str
    kind: Literal["counter", "gauge"]
    help: str
    label: str | None = None
    fixed: tuple[str, str] | None = None

    @property
    def labelnames(self) -> tuple[str, ...]:
        if self.label is not None:
            return (self.label,)
        return (self.fixed[0],) if self.fixed is not None else ()

    def samples(self, snapshot: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], float]]:
        """``(label values, value)`` for each series of this stat."""
        value = snapshot[self.stat]
        if self.label is not None:
            for key in sorted(set(TRANSPORTS) | set(value)):
                yield (key,), value.get(key, 0)
        else:
            yield (() if self.fixed is None else (self.fixed[1],)), value


# Every key of stats_snapshot(), once (tests check that none is missing).
METRICS = (
    Metric("open_connections", "wsgi_push_open_connections", "gauge",
           "Open push connections (streams and held long polls).", label="transport"),
    Metric("connections_opened", "wsgi_push_connections_opened", "counter",
           "Push connections opened.", label="transport"),
    Metric("published", "wsgi_push_messages_published", "counter",
           "Messages this process published (from Python or over HTTP)."),
    Metric("published_over_http", "wsgi_push_messages_published_over_http", "counter",
           "Messages published through POST <prefix>/publish."),
    Metric("deliveries", "wsgi_push_messages_delivered", "counter",
           "Messages sent to subscribers (one per subscriber)."),
    Metric("gaps_served", "wsgi_push_gaps_served", "counter",
           "Gap notices sent: a client resumed from an id history no longer held."),
    Metric("refused_over_limit", "wsgi_push_requests_refused", "counter",
           "Requests answered 503.", fixed=("reason", "over_limit")),
    Metric("broker_unavailable", "wsgi_push_requests_refused", "counter",
           "Requests answered 503.", fixed=("reason", "broker_unavailable")),
    Metric("slow_clients_dropped", "wsgi_push_slow_clients_dropped", "counter",
           "Clients disconnected for not reading within the send timeout."),
)  # fmt: skip


def _prometheus() -> Any:
    try:
        import prometheus_client
        import prometheus_client.multiprocess  # noqa: F401
    except ImportError:
        raise ImportError(
            "expose_metrics needs prometheus_client: pip install 'wsgi_push[prometheus]'"
        ) from None
    return prometheus_client


class PushCollector:
    """A prometheus_client collector over one middleware's stats (one process)."""

    def __init__(self, source: HasStats) -> None:
        self.source = source
        self._core = _prometheus().metrics_core

    def collect(self) -> Iterable[Any]:
        snapshot = self.source.stats_snapshot()
        families: dict[str, Any] = {}
        for metric in METRICS:
            family = families.get(metric.name)
            if family is None:
                kind = (
                    self._core.CounterMetricFamily
                    if metric.kind == "counter"
                    else self._core.GaugeMetricFamily
                )
                family = families[metric.name] = kind(
                    metric.name, metric.help, labels=metric.labelnames
                )
            for labels, value in metric.samples(snapshot):
                family.add_metric(labels, value)
        return families.values()


_SHARED: dict[str, Any] = {}  # one set of multiprocess metrics per process, by name


def _shared_metrics() -> dict[str, Any]:
    """The process's multiprocess metric objects, made once: two objects of
    one name would overwrite each other's values in the shared files."""
    if not _SHARED:
        prometheus_client = _prometheus()
        for metric in METRICS:
            if metric.name in _SHARED:
                continue
            if metric.kind == "counter":
                _SHARED[metric.name] = prometheus_client.Counter(
                    metric.name, metric.help, metric.labelnames, registry=None
                )
            else:  # open connections: the sum over the live processes
                _SHARED[metric.name] = prometheus_client.Gauge(
                    metric.name, metric.help, metric.labelnames,
                    registry=None, multiprocess_mode="livesum",
                )  # fmt: skip
    return _SHARED


class _MultiprocessSync:
    """Copies one middleware's stats into prometheus_client's multiprocess files."""

    def __init__(self, source: HasStats) -> None:
        self.source = source
        self.metrics = _shared_metrics()
        self.synced: dict[tuple[str, str, tuple[str, ...]], float] = {}
        gevent.spawn(self._run)

    def sync(self) -> None:
        snapshot = self.source.stats_snapshot()
        for metric in METRICS:
            family = self.metrics[metric.name]
            for labels, value in metric.samples(snapshot):
                child = family.labels(*labels) if labels else family
                if metric.kind == "gauge":
                    child.set(value)
                    continue
                key = (metric.stat, metric.name, labels)
                delta = value - self.synced.get(key, 0)
                if delta > 0:
                    child.inc(delta)
                self.synced[key] = value

    def _run(self) -> None:
        while True:
            self.sync()
            gevent.sleep(SYNC_INTERVAL)


class PrometheusMetrics:
    """The ``/metrics`` endpoint of one middleware."""

    def __init__(self, source: HasStats) -> None:
        prometheus_client = _prometheus()
        self._exposition = prometheus_client.exposition
        self.registry = prometheus_client.CollectorRegistry()
        self._sync: _MultiprocessSync | None = None
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self._sync = _MultiprocessSync(source)
            prometheus_client.multiprocess.MultiProcessCollector(self.registry)
        else:
            self.registry.register(PushCollector(source))
            prometheus_client.ProcessCollector(registry=self.registry)

    def respond(self, environ: WSGIEnvironment) -> Response:
        """The exposition, in the format the scraper's ``Accept`` asks for."""
        if self._sync is not None:
            self._sync.sync()  # this process's newest counts, not a second old
        encoder, content_type = self._exposition.choose_encoder(environ.get("HTTP_ACCEPT"))
        body: bytes = encoder(self.registry)
        headers = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
        return status_line(200), headers, [body]
