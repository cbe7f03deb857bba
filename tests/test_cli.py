"""The command line (``wsgi_push/cli.py``): ``python -m wsgi_push APP`` with
app factories, refusals at startup, ``--version``, ``--help`` and
``--stop-timeout``, run as real subprocesses on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.support.factories import SLOW_STARTED, AppNeedingSetup, passthrough
from tests.support.raw_http import connect
from tests.support.servers import ROOT, START_TIMEOUT, pywsgi_server, wait_until
from wsgi_push import __version__
from wsgi_push.cli import AppLoadError, load_app

FACTORIES = "tests.support.factories"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m wsgi_push ARGS`` to its end (it must end by itself)."""
    return subprocess.run(
        [sys.executable, "-m", "wsgi_push", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )


def test_a_factory_called_with_literal_arguments_is_served() -> None:
    with pywsgi_server(f"{FACTORIES}:create_app('/live', greeting='hi')") as server:
        assert requests.get(f"{server.url}/", timeout=5).text == "hi"
        script = requests.get(f"{server.url}/live/client.js", timeout=5)
        assert script.status_code == 200 and "WsgiPush" in script.text
        assert requests.get(f"{server.url}/push/client.js", timeout=5).text == "hi"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            f"{FACTORIES}:create_app",
            f"not a WSGI app (one taking environ and start_response); "
            f"if it is an app factory, call it: '{FACTORIES}:create_app()'",
        ),
        (f"{FACTORIES}:SLOW_STARTED", "is a str, not a WSGI app"),
        (f"{FACTORIES}:create_app(__file__)", "must be literals"),
        (f"{FACTORIES}:create_app('push')", "prefix must start with '/'"),
        (f"{FACTORIES}:missing", f"module '{FACTORIES}' has no attribute 'missing'"),
        ("tests.support.no_such_module:app", "no module named 'tests.support.no_such_module'"),
    ],
)
def test_an_app_that_cant_be_served_is_refused_at_startup(target: str, message: str) -> None:
    result = run_cli(target, "--port", "0")
    assert result.returncode != 0
    assert message in result.stderr
    assert "serving" not in result.stdout


def test_a_refusal_names_the_program_and_shows_the_usage() -> None:
    result = run_cli(f"{FACTORIES}:create_app", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m wsgi_push ")
    assert "Traceback" not in result.stderr


def test_version_is_the_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"python -m wsgi_push {__version__}\n"


def test_help_is_plain_text_under_the_programs_name() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m wsgi_push ")
    assert "python -m wsgi_push 'myproject:create_app()'" in result.stdout
    assert "--stop-timeout SECONDS" in result.stdout
    for markup in ("``", ":func:", ":mod:", ":class:"):
        assert markup not in result.stdout


def test_stop_timeout_bounds_the_wait_for_a_request_in_progress() -> None:
    """SIGTERM: the server waits --stop-timeout seconds (not the default 5)
    for a request in progress, then ends it and exits."""
    server = pywsgi_server(f"{FACTORIES}:create_app()", server_args=("--stop-timeout", "0.5"))
    with server, connect(server.url) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: SLOW_STARTED + "\n" in server.output, 5, "the slow request")
        started = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        waited = time.monotonic() - started
        answer = sock.recv(1024)
    assert 0.5 <= waited < 3.0
    assert not answer.startswith(b"HTTP/1.1 200")  # ended, not served to the end


def test_load_app_follows_dotted_names_and_calls_factories() -> None:
    assert load_app("tests.support.factories:passthrough") is passthrough
    app = load_app("tests.support.factories:AppNeedingSetup('hey')")
    assert isinstance(app, AppNeedingSetup) and app.greeting == "hey"


def test_load_app_refuses_a_class_named_without_a_call() -> None:
    hint = r"call it: 'tests.support.factories:AppNeedingSetup\(\)'"
    with pytest.raises(AppLoadError, match=hint):
        load_app("tests.support.factories:AppNeedingSetup")


def test_load_app_shows_an_import_error_inside_the_app_module() -> None:
    """A module that exists but imports something missing: the real error,
    with its traceback, rather than "no module named" for the app."""
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency"):
        load_app("tests.support.broken_app:app")
