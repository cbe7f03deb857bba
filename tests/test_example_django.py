"""The example Django project (``example_app/django_project``) under the
gunicorn push worker: Django's login decides who follows the members'
channel, and what a view publishes reaches every transport.

With ``PUSH_SCREENSHOTS=docs/images`` the browser test also saves the
screenshot that ``docs/django.md`` shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect

from tests.support.browser import screenshot
from tests.support.clients import TRANSPORTS, SSEEvent, SSEParser, items, sse_item, take
from tests.support.redis_server import RedisServer
from tests.support.servers import ROOT, ServerProcess, free_port, gunicorn_server

PROJECT = ROOT / "example_app" / "django_project"
USERNAME, PASSWORD = "demo", "demo-password"
_CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def django_site(**env: str) -> ServerProcess:
    """Set the project up (migrate, demo user) on the sqlite file ``DJANGO_DB``,
    then serve it with ``gunicorn -k wsgi_push.gunicorn.GeventWorker project.wsgi``."""
    env = {"DJANGO_PUSH_HEARTBEAT": "0.5", **env}
    manage(["setup_demo"], env)
    return gunicorn_server(
        free_port(),
        app="project.wsgi",
        worker_class="wsgi_push.gunicorn.GeventWorker",
        server_args=("--chdir", str(PROJECT)),
        **env,
    )


def manage(argv: list[str], env: dict[str, str]) -> str:
    """``python manage.py ARGV`` in the project; its output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    database = tmp_path_factory.mktemp("django") / "db.sqlite3"
    with django_site(DJANGO_DB=str(database)) as process:
        yield process


def csrf_token(session: requests.Session, url: str) -> str:
    """The CSRF token of the form on the page at ``url``."""
    page = session.get(url, timeout=5)
    assert page.status_code == 200, page.text
    match = _CSRF_FIELD.search(page.text)
    assert match, f"no CSRF token in {url}"
    return match[1]


def log_in(base_url: str, password: str = PASSWORD) -> requests.Session:
    """A session that went through the real login form (CSRF token and all)."""
    session = requests.Session()
    form = {
        "username": USERNAME,
        "password": password,
        "csrfmiddlewaretoken": csrf_token(session, f"{base_url}/accounts/login/"),
    }
    session.post(f"{base_url}/accounts/login/", data=form, timeout=5)
    return session


def say(session: requests.Session, base_url: str, channel: str, text: str) -> int:
    """Publish through the example's view; the message id."""
    form = {"channel": channel, "text": text, "csrfmiddlewaretoken": csrf_token(session, base_url)}
    answer = session.post(f"{base_url}/say", data=form, timeout=5)
    assert answer.status_code == 201, answer.text
    message_id: int = answer.json()["id"]
    return message_id


def said_and_received(
    session: requests.Session, base_url: str, channel: str, text: str
) -> tuple[dict[str, Any], int, float]:
    """Follow ``channel`` over SSE, then publish ``text`` through the view:
    the first event, the id the view answered and the seconds in between."""
    url = f"{base_url}/push/sse/{channel}"
    with session.get(url, stream=True, timeout=(5, 10)) as stream:
        assert stream.status_code == 200, stream.text
        assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        # The stream has answered: the subscription is in place.
        message_id = say(session, base_url, channel, text)
        said = time.monotonic()
        # Byte by byte: runserver's body isn't chunked but ends with the
        # connection, and a bigger read would wait for that end.
        parser = SSEParser()
        events: list[SSEEvent] = []
        for byte in stream.iter_content(chunk_size=1):
            events += parser.feed_bytes(byte)
            if events:
                return sse_item(events[0]), message_id, time.monotonic() - said
    raise AssertionError("the stream ended without an event")


def test_logged_out_user_is_refused_the_members_channel(site: ServerProcess) -> None:
    for transport in TRANSPORTS:
        for channels in ("members", "public,members"):  # one refusal refuses all
            answer = requests.get(f"{site.url}/push/{transport}/{channels}?timeout=1", timeout=5)
            assert answer.status_code == 403
            assert answer.json() == {"error": "not allowed to subscribe on this channel"}
    answer = requests.get(f"{site.url}/push/poll/public?timeout=0", timeout=5)
    assert answer.status_code == 200


def test_a_wrong_password_stays_refused(site: ServerProcess) -> None:
    with log_in(site.url, password="wrong") as session:
        assert "sessionid" not in session.cookies
        answer = session.get(f"{site.url}/push/poll/members?timeout=0", timeout=5)
        assert answer.status_code == 403


def test_logged_in_user_streams_the_members_channel(site: ServerProcess) -> None:
    with log_in(site.url) as session:
        assert "sessionid" in session.cookies
        event, message_id, _ = said_and_received(session, site.url, "members", "for members only")
        text = {"user": USERNAME, "text": "for members only"}
        assert event == {"id": message_id, "event": "message", "data": text}
        both = session.get(f"{site.url}/push/poll/public,members?since=0&timeout=0", timeout=5)
        assert both.status_code == 200
        assert both.json()["channels"] == ["public", "members"]
        cookies = {"sessionid": session.cookies["sessionid"]}
        # Logging out (a POST with the CSRF token) ends the access.
        session.post(
            f"{site.url}/accounts/logout/",
            data={"csrfmiddlewaretoken": csrf_token(session, site.url)},
            timeout=5,
        )
        assert "sessionid" not in session.cookies
        # The old session cookie no longer lets anyone in.
        answer = requests.get(f"{site.url}/push/poll/members?timeout=0", cookies=cookies, timeout=5)
        assert answer.status_code == 403


def test_the_view_refuses_guests_on_members_and_bad_input(site: ServerProcess) -> None:
    """Each refusal publishes nothing: the public channel's last id stays."""
    with requests.Session() as session:
        last_id = say(session, site.url, "public", "before the refusals")
        token = csrf_token(session, site.url)
        refused = [
            ({"channel": "members", "text": "hi", "csrfmiddlewaretoken": token}, 403),
            ({"channel": "nope", "text": "hi", "csrfmiddlewaretoken": token}, 400),
            ({"channel": "public", "text": "  ", "csrfmiddlewaretoken": token}, 400),
        ]
        for form, status in refused:
            answer = session.post(f"{site.url}/say", data=form, timeout=5)
            assert answer.status_code == status
            assert "error" in answer.json()
        # Without the CSRF token Django refuses before the view runs.
        answer = session.post(f"{site.url}/say", data={"channel": "public", "text": "x"}, timeout=5)
        assert answer.status_code == 403
        poll = session.get(f"{site.url}/push/poll/public?since={last_id}&timeout=0", timeout=5)
        assert poll.json()["messages"] == []


def test_published_from_a_view_arrives_on_every_transport(site: ServerProcess) -> None:
    with requests.Session() as session:
        before = say(session, site.url, "public", "before")
        with ThreadPoolExecutor(len(TRANSPORTS)) as pool:
            readers = {
                transport: pool.submit(take, items(site.url, transport, "public", before), 1)
                for transport in TRANSPORTS
            }
            message_id = say(session, site.url, "public", "to everyone")
            received = {
                transport: reader.result(timeout=15) for transport, reader in readers.items()
            }
    expected = {
        "id": message_id,
        "event": "message",
        "data": {"user": "guest", "text": "to everyone"},
    }
    assert received == {transport: [expected] for transport in TRANSPORTS}


def test_a_management_command_publishes_through_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """``manage.py announce`` runs in a process of its own: with a shared
    ``BROKER_URL`` its message reaches the server's subscribers."""
    env = {"DJANGO_DB": str(tmp_path / "db.sqlite3"), "DJANGO_PUSH_BROKER_URL": redis_server.url}
    with django_site(**env) as server:
        source = items(server.url, "sse", "public", 0)
        output = manage(["announce", "from the command line"], env)
        (message,) = take(source, 1)
    assert output.strip() == f"published #{message['id']}"
    assert message["data"] == {"user": "announce", "text": "from the command line"}


def test_live_page_in_the_browser(new_page: Any, site: ServerProcess) -> None:
    """A guest sees the public channel live and the members' one locked; after
    logging in through the page both are live and a message sent from the
    page's form comes back through the push channel."""
    page = new_page()
    page.goto(site.url + "/")
    expect(page.locator("[data-channel=public] .status")).to_have_text("live over sse")
    expect(page.locator(".locked")).to_contain_text("Only for logged-in users")
    page.click("text=log in")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("#login button")
    expect(page.locator("#username")).to_have_text(USERNAME)
    for channel, text in (("public", "hello everyone"), ("members", "hello members")):
        panel = page.locator(f"[data-channel={channel}]")
        expect(panel.locator(".status")).to_have_text("live over sse")
        panel.locator("input[name=text]").fill(text)
        panel.locator("input[name=text]").press("Enter")
        expect(panel.locator(".log li").last).to_have_text(re.compile(rf"#\d+ demo: {text}$"))
    screenshot(page, "django")


def test_runserver_delivers_in_development(tmp_path: Path) -> None:
    """``manage.py runserver`` (a thread per request, no gevent) delivers a
    view's message to an open stream at once, not at the next heartbeat."""
    port = free_port()
    env = {"DJANGO_DB": str(tmp_path / "db.sqlite3"), "DJANGO_PUSH_HEARTBEAT": "30"}
    manage(["setup_demo"], env)
    argv = [
        sys.executable,
        str(PROJECT / "manage.py"),
        "runserver",
        "--noreload",
        f"127.0.0.1:{port}",
    ]
    with (
        ServerProcess(argv, env).start(ready_url=f"http://127.0.0.1:{port}") as server,
        requests.Session() as session,
    ):
        event, message_id, seconds = said_and_received(session, server.url, "public", "dev")
    assert event == {"id": message_id, "event": "message", "data": {"user": "guest", "text": "dev"}}
    assert seconds < 2, f"delivered after {seconds:.2f} s"
