"""``wsgi_push.django`` in-process: ``settings.WSGI_PUSH`` maps onto the
middleware and the broker, the broker is built once, and ``AUTHORIZE``
gets Django's request. The example project's tests
(``test_example_django.py``) cover the same over a real server with real
logins."""

from __future__ import annotations

import inspect
from typing import Any

import django
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIRequest
from django.test import override_settings
from werkzeug.test import Client, EnvironBuilder

from tests.support.redis_server import RedisServer
from wsgi_push import MemoryBroker, PushMiddleware, RedisBroker
from wsgi_push import django as push_django  # importable before settings, as in wsgi.py

if not settings.configured:
    settings.configure(
        SECRET_KEY="tests-only",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    )
    django.setup()

DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(PushMiddleware.__init__).parameters.items()
}
checks: list[tuple[Any, str, str]] = []


def django_app(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"django"]


def record_check(request: Any, channel: str, action: str) -> bool:
    """An ``AUTHORIZE`` that records what it was given; allows ``open``."""
    checks.append((request, channel, action))
    return channel == "open"


def configured(config: dict[str, Any]) -> Any:
    return override_settings(WSGI_PUSH=config)


def test_only_the_keys_set_reach_the_middleware() -> None:
    with configured({"HEARTBEAT": 2.5, "PREFIX": "/live"}):
        middleware = push_django.with_push(django_app)
    assert (middleware.heartbeat, middleware.prefix) == (2.5, "/live")
    assert middleware.poll_timeout == DEFAULTS["poll_timeout"]
    assert middleware.sse_retry == DEFAULTS["sse_retry"]


def test_no_setting_means_every_default() -> None:
    with override_settings():
        del settings.WSGI_PUSH
        middleware = push_django.with_push(django_app)
        broker = push_django.get_broker()
    assert middleware.prefix == DEFAULTS["prefix"]
    assert isinstance(broker, MemoryBroker)
    assert broker.max_messages == inspect.signature(MemoryBroker).parameters["max_messages"].default


def test_one_broker_per_process_shared_by_publish_and_the_middleware() -> None:
    with configured({"MAX_MESSAGES": 2}):
        middleware = push_django.with_push(django_app)
        assert middleware.broker is push_django.get_broker()
        ids = [push_django.publish("news", n) for n in range(3)]
        assert ids == [1, 2, 3]
        batch = middleware.broker.read("news", 0)
    assert [message.data for message in batch.messages] == [1, 2]  # only 2 retained


def test_a_redis_url_makes_a_redis_broker(redis_server: RedisServer) -> None:
    options = {"BROKER_URL": redis_server.url, "BROKER_OPTIONS": {"key_prefix": "dj"}}
    with configured(options):
        broker = push_django.get_broker()
        assert isinstance(broker, RedisBroker)
        message_id = push_django.publish("news", {"title": "hi"})
    assert redis_server.client().keys("dj*"), "nothing stored under the key prefix"
    assert broker.read("news", message_id - 1).messages[0].data == {"title": "hi"}


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        ({"HEARTBEET": 1}, "unknown keys ['HEARTBEET']"),
        ({"BROKER_URL": "amqp://x"}, "BROKER_URL"),
        (["PREFIX", "/push"], "must be a dict"),
    ],
)
def test_bad_settings_are_refused_by_name(config: Any, complaint: str) -> None:
    with (
        configured(config),
        pytest.raises(ImproperlyConfigured, match=complaint.replace("[", r"\[")),
    ):
        push_django.with_push(django_app)


def test_authorize_gets_djangos_request_with_user_and_session() -> None:
    checks.clear()
    with configured({"AUTHORIZE": f"{__name__}.record_check"}):
        client = Client(push_django.with_push(django_app))
        refused = client.get("/push/poll/closed?timeout=0")
        allowed = client.get("/push/poll/open?timeout=0")
        untouched = client.get("/elsewhere")
    assert (refused.status_code, allowed.status_code) == (403, 200)
    assert untouched.get_data() == b"django"
    assert [(channel, action) for _, channel, action in checks] == [
        ("closed", "subscribe"),
        ("open", "subscribe"),
    ]
    request = checks[0][0]
    assert isinstance(request, WSGIRequest)
    assert request.path == "/push/poll/closed"
    assert request.user.is_anonymous
    assert request.session.session_key is None


def record_presence(request: Any, channel: str, count: int) -> None:
    checks.append((request, channel, str(count)))


def test_presence_callbacks_get_djangos_request() -> None:
    checks.clear()
    options = {"ON_SUBSCRIBE": record_presence, "ON_UNSUBSCRIBE": f"{__name__}.record_presence"}
    with configured(options):
        client = Client(push_django.with_push(django_app))
        stream = client.get("/push/stream/room", buffered=False)
        assert [(channel, count) for _, channel, count in checks] == [("room", "1")]
        stream.close()
    assert [(channel, count) for _, channel, count in checks] == [("room", "1"), ("room", "0")]
    assert all(isinstance(request, WSGIRequest) for request, _, _ in checks)
    assert checks[0][0] is checks[1][0]  # one request per connection


def test_the_request_is_built_once_per_push_request() -> None:
    """A multiplexed subscription asks for every channel: one request, one
    session read."""
    environ = EnvironBuilder("/push/sse/a,b").get_environ()
    first = push_django.django_request(environ)
    assert push_django.django_request(environ) is first
