"""Fixtures: real servers on loopback ports, started and stopped per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import ServerProcess, pywsgi_server

pytest_plugins = ["tests.support.browser", "tests.support.redis_server"]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """The test app under ``python -m wsgi_push`` (pywsgi), 0.5 s heartbeats."""
    with pywsgi_server(PUSH_TEST_HEARTBEAT="0.5", PUSH_TEST_POLL_TIMEOUT="2") as process:
        yield process
