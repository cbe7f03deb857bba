"""CORS: an allow-list of exact origins, preflight for publishing, Vary: Origin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from werkzeug.test import Client

from tests.support.clients import AUTH
from tests.support.servers import ServerProcess, pywsgi_server
from wsgi_push import CorsPolicy, MemoryBroker, PushMiddleware

ALLOWED = "https://app.example"


@pytest.fixture(scope="module")
def cors_server() -> Iterator[ServerProcess]:
    with pywsgi_server(PUSH_TEST_CORS_ORIGINS=ALLOWED, PUSH_TEST_CORS_CREDENTIALS="1") as process:
        yield process


def test_allowed_origin_is_echoed_with_credentials(cors_server: ServerProcess) -> None:
    response = requests.get(
        f"{cors_server.url}/push/poll/c?timeout=0", headers={"Origin": ALLOWED}, timeout=5
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Vary"] == "Origin"


def test_other_origins_get_no_allow_header(cors_server: ServerProcess) -> None:
    response = requests.get(
        f"{cors_server.url}/push/poll/c?timeout=0",
        headers={"Origin": "https://evil.example"},
        timeout=5,
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.headers["Vary"] == "Origin"


def test_preflight_for_publishing(cors_server: ServerProcess) -> None:
    response = requests.options(
        f"{cors_server.url}/push/publish/c",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=5,
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    published = requests.post(
        f"{cors_server.url}/push/publish/c",
        json={"data": 1},
        headers={**AUTH, "Origin": ALLOWED},
        timeout=5,
    )
    assert published.status_code == 201
    assert published.headers["Access-Control-Allow-Origin"] == ALLOWED


@pytest.mark.parametrize(("path", "methods"), [("stats", "GET"), ("client.js", "GET, HEAD")])
def test_preflight_for_stats_and_client_script(
    cors_server: ServerProcess, path: str, methods: str
) -> None:
    response = requests.options(
        f"{cors_server.url}/push/{path}",
        headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"},
        timeout=5,
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Methods"] == methods
    refused = requests.delete(f"{cors_server.url}/push/{path}", timeout=5)
    assert refused.status_code == 405 and refused.headers["Allow"] == f"{methods}, OPTIONS"


def test_errors_carry_cors_headers_so_pages_can_read_them(cors_server: ServerProcess) -> None:
    response = requests.get(
        f"{cors_server.url}/push/sse/..bad/x", headers={"Origin": ALLOWED}, timeout=5
    )
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    wrong = requests.put(f"{cors_server.url}/push/sse/c", headers={"Origin": ALLOWED}, timeout=5)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET, OPTIONS"


def test_wildcard_only_without_credentials() -> None:
    assert CorsPolicy(["*"]).headers({"HTTP_ORIGIN": "https://x"}) == [
        ("Access-Control-Allow-Origin", "*")
    ]
    with pytest.raises(ValueError, match="credentials"):
        CorsPolicy(["*"], allow_credentials=True)


def test_one_origin_given_as_a_string_is_refused() -> None:
    """A string is iterable: as a set it would allow one-character "origins"."""
    with pytest.raises(TypeError, match="list of origins"):
        CorsPolicy(ALLOWED)


def test_deprecated_cors_keywords_still_work_with_a_warning() -> None:
    """Unit (no socket): ``cors_origins``/``cors_credentials`` keep working
    for a release, warning at the caller's line."""
    with pytest.warns(DeprecationWarning, match=r"cors=CorsPolicy") as warned:
        middleware = PushMiddleware(
            lambda e, s: [], broker=MemoryBroker(), cors_origins=[ALLOWED], cors_credentials=True
        )
    assert warned[0].filename == __file__
    response = Client(middleware).get("/push/poll/c?timeout=0", headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


def test_cors_and_the_deprecated_keywords_together_are_refused() -> None:
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="either"):
        PushMiddleware(lambda e, s: [], cors=CorsPolicy([ALLOWED]), cors_origins=[ALLOWED])
