"""GET /push/metrics: the stats in Prometheus' format, scraped over real sockets
and read with prometheus_client's own parser; summed over gunicorn workers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from tests.support.clients import AUTH, items, publish, take
from tests.support.redis_server import RedisServer
from tests.support.servers import (
    ServerProcess,
    free_port,
    gunicorn_server,
    open_connections,
    server_state,
    wait_until,
)
from wsgi_push import MemoryBroker, PushMiddleware
from wsgi_push.metrics import METRICS

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def scrape(url: str) -> dict[str, Any]:
    """``{sample name: {labels as a sorted tuple: value}}`` and each family's type."""
    response = requests.get(f"{url}/push/metrics", headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, Any] = {"types": {}}
    for family in text_string_to_metric_families(response.text):
        samples["types"][family.name] = family.type
        for sample in family.samples:
            series = samples.setdefault(sample.name, {})
            series[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return float(samples[name][tuple(sorted(labels.items()))])


def test_metrics_need_the_token(server: ServerProcess) -> None:
    assert requests.get(f"{server.url}/push/metrics", timeout=5).status_code == 401
    wrong = requests.get(
        f"{server.url}/push/metrics", headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert wrong.status_code == 403


def test_metrics_count_what_the_stats_count(server: ServerProcess) -> None:
    before = scrape(server.url)
    first = publish(server.url, "metered", 1)
    publish(server.url, "metered", 2)
    assert len(take(items(server.url, "stream", "metered", first - 1), 2)) == 2
    assert len(take(items(server.url, "poll", "metered", 999), 3)) == 3  # gap + 2 messages
    after = scrape(server.url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("wsgi_push_messages_published_total") == 2
    assert grew("wsgi_push_messages_published_over_http_total") == 2
    assert grew("wsgi_push_messages_delivered_total") == 4
    assert grew("wsgi_push_gaps_served_total") == 1
    assert grew("wsgi_push_connections_opened_total", transport="stream") == 1
    assert grew("wsgi_push_connections_opened_total", transport="poll") == 1
    assert grew("wsgi_push_connections_opened_total", transport="sse") == 0
    assert value(after, "wsgi_push_requests_refused_total", reason="over_limit") >= 0
    assert after["types"]["wsgi_push_messages_delivered"] == "counter"
    assert after["types"]["wsgi_push_open_connections"] == "gauge"
    assert value(after, "process_open_fds") > 0  # the process collector, one process only


def test_open_connections_per_transport(server: ServerProcess) -> None:
    # Earlier tests' closed streams end at the server's next heartbeat.
    wait_until(lambda: open_connections(server) == 0, 5, "earlier connections to end")
    publish(server.url, "held", 0)
    held = [items(server.url, transport, "held", 0) for transport in ("sse", "stream", "stream")]
    try:
        for source in held:
            next(source)  # connected: the retained message arrived
        samples = scrape(server.url)
        assert value(samples, "wsgi_push_open_connections", transport="sse") == 1
        assert value(samples, "wsgi_push_open_connections", transport="stream") == 2
        assert value(samples, "wsgi_push_open_connections", transport="poll") == 0
    finally:
        for source in held:
            source.close()


def test_openmetrics_when_the_scraper_asks(server: ServerProcess) -> None:
    response = requests.get(
        f"{server.url}/push/metrics", headers={**AUTH, "Accept": OPENMETRICS}, timeout=5
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "wsgi_push_messages_delivered_total " in response.text


def test_every_stat_has_a_metric() -> None:
    middleware = PushMiddleware(lambda e, s: [], broker=MemoryBroker())
    assert {metric.stat for metric in METRICS} == set(middleware.stats_snapshot())
    assert all(
        metric.kind != "counter" or not metric.name.endswith("_total") for metric in METRICS
    )  # prometheus_client adds _total


def test_metrics_off_by_default_and_get_only() -> None:
    off = Client(PushMiddleware(lambda e, s: [], broker=MemoryBroker(), publish_token="t"))
    assert off.get("/push/metrics", headers={"Authorization": "Bearer t"}).status_code == 404
    on = Client(
        PushMiddleware(
            lambda e, s: [], broker=MemoryBroker(), publish_token="t", expose_metrics=True
        )
    )
    assert on.post("/push/metrics", headers={"Authorization": "Bearer t"}).status_code == 405


@pytest.fixture(scope="module")
def two_workers(redis_server: RedisServer) -> Iterator[ServerProcess]:
    """Two gunicorn push workers on one Redis, in prometheus_client's multiprocess mode."""
    with tempfile.TemporaryDirectory(prefix="wsgi_push-prom-") as directory:
        server = gunicorn_server(
            free_port(),
            workers=2,
            worker_class="wsgi_push.gunicorn.GeventWorker",
            PUSH_TEST_REDIS_URL=redis_server.url,
            PUSH_TEST_HEARTBEAT="0.5",  # closed clients show at the next heartbeat
            PROMETHEUS_MULTIPROC_DIR=directory,
        )
        with server:
            yield server


def test_metrics_sum_over_gunicorn_workers(two_workers: ServerProcess) -> None:
    url = two_workers.url
    publish(url, "spread", 0)
    held = [items(url, "stream", "spread", 0) for _ in range(12)]
    try:
        for source in held:
            next(source)
        own: dict[int, int] = {}  # each worker's own open stream connections

        def both_workers_answered() -> bool:
            state = server_state(two_workers)
            own[state["pid"]] = state["connections"].get("stream", 0)
            return len(own) == 2

        wait_until(both_workers_answered, 15, "an answer from each worker")
        assert sum(own.values()) == 12

        def scrapes_sum_to(count: int) -> bool:
            samples = scrape(url)  # answered by either worker
            return (
                value(samples, "wsgi_push_open_connections", transport="stream") == count
                and value(samples, "wsgi_push_connections_opened_total", transport="stream") >= 12
                and value(samples, "wsgi_push_messages_delivered_total") >= 12
            )

        wait_until(lambda: scrapes_sum_to(12), 10, "the workers' sum in a scrape")
        for _ in range(4):
            assert scrapes_sum_to(12)
    finally:
        for source in held:
            source.close()
    wait_until(lambda: scrapes_sum_to(0), 10, "closed connections to leave the sum")
    workers = {
        name.rsplit("_", 1)[1] for name in os.listdir(two_workers.env["PROMETHEUS_MULTIPROC_DIR"])
    }
    assert len(workers) == 2, workers  # one set of files per worker process
