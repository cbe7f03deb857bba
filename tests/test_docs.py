"""Every ```python and ```sh block in README.md and docs/*.md runs as written.

How a page runs (so that examples read as a reader types them):

- A page's blocks run in order. Its Python blocks share one namespace in one
  gevent-patched process (``tests/support/docs_runner.py``); its shell blocks
  run with ``bash -euo pipefail``. Both run in a temporary directory of the
  page, with the repository and that directory on ``PYTHONPATH``.
- A Python block whose first line is ``# path/name.py`` is also written to
  that file, so shell blocks can serve it (``python -m wsgi_push myapp:app``).
- The docs' addresses mean the test's servers: ``127.0.0.1:6379`` (any
  ``6379``) is the test's redis-server; ``http://127.0.0.1:8000`` is the app
  the page serves now; any other ``8000`` is a free port the block binds, and
  ``0.0.0.0`` becomes ``127.0.0.1``.
- A block must finish, or — a server — keep running once its port accepts
  connections; it then serves the page's later blocks until the page ends.
  After a Python block, an ``app`` new to the namespace is served as well.
- A block marked ``<!-- not run: <reason> -->`` is not run.

A test per block, named ``path:line``; asking for one block runs the page's
earlier blocks first.
"""

from __future__ import annotations

import ast
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.docs_blocks import ROOT, DocBlock, all_blocks, parse_page
from tests.support.redis_server import RedisServer
from tests.support.servers import accepts_connections, free_port, wait_until

BLOCKS, PROBLEMS = all_blocks()
RUN_BLOCKS = [block for block in BLOCKS if block.runs]
BLOCK_TIMEOUT = 30.0  # the runner gives a Python block 20 s of its own
_APP_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):8000\b")
_TEMP_PREFIX = "wsgi_push-docs-"
_SOURCE_FILE = re.compile(r"\A# (?P<name>[\w./-]+\.py)\n")


def localise(code: str, app_url: str | None, bind_port: int, redis_port: int) -> tuple[str, bool]:
    """The block with the docs' addresses replaced by the test's, and whether
    it binds a port of its own (an ``8000`` that isn't the app's URL)."""
    code = _APP_URL.sub(app_url or f"http://127.0.0.1:{bind_port}", code)
    code = re.sub(r"\b0\.0\.0\.0\b", "127.0.0.1", code)
    code = re.sub(r"\b6379\b", str(redis_port), code)
    binds = re.search(r"\b8000\b", code) is not None
    return re.sub(r"\b8000\b", str(bind_port), code), binds


@dataclass
class Page:
    """One page's run: its directory, Python process, servers and results."""

    path: str
    redis: RedisServer
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX)))
    app_url: str | None = None
    results: dict[int, str | None] = field(default_factory=dict)  # line -> failure or None
    python: subprocess.Popen[str] | None = None
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        pythonpath = os.pathsep.join([str(ROOT), str(self.directory)])
        return {**os.environ, "PATH": path, "PYTHONPATH": pythonpath}

    def run_through(self, target: DocBlock) -> str | None:
        """Run the page's blocks up to ``target``; its failure, or None."""
        for block in RUN_BLOCKS:
            if block.path != self.path or block.line > target.line:
                continue
            if block.line not in self.results:
                self.results[block.line] = self.run(block)
        failure = self.results[target.line]
        earlier = [line for line, result in self.results.items() if result and line < target.line]
        if failure and earlier:
            failure += f"\n(earlier blocks failed too: {', '.join(map(str, earlier))})"
        return failure

    def run(self, block: DocBlock) -> str | None:
        bind_port = free_port()
        code, binds = localise(block.code, self.app_url, bind_port, self.redis.port)
        source = _SOURCE_FILE.match(block.code)
        if source is not None:
            target = self.directory / source["name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code)
        run = self._run_python if block.language == "python" else self._run_shell
        failure = run(block, code, bind_port if binds else None)
        if failure is None and binds:
            self.app_url = f"http://127.0.0.1:{bind_port}"
        return failure

    def _run_python(self, block: DocBlock, code: str, bind_port: int | None) -> str | None:
        if self.python is None:
            with open(self.directory / "python.log", "w") as log:  # the child keeps its copy
                self.python = subprocess.Popen(
                    [sys.executable, "-m", "tests.support.docs_runner"],
                    cwd=self.directory, env=self.env, text=True,
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                )  # fmt: skip
        assert self.python.stdin is not None and self.python.stdout is not None
        request = {"path": block.path, "line": block.line, "code": code, "bind_port": bind_port}
        self.python.stdin.write(json.dumps(request) + "\n")
        self.python.stdin.flush()
        ready, _, _ = select.select([self.python.stdout], [], [], BLOCK_TIMEOUT)
        answer_line = self.python.stdout.readline() if ready else ""
        if not answer_line:
            return "no answer from the page's Python process:\n" + self._log("python.log")
        answer = json.loads(answer_line)
        if answer.get("served"):
            self.app_url = answer["served"]
        if answer["status"] == "error":
            return str(answer["detail"])
        return None

    def _run_shell(self, block: DocBlock, code: str, bind_port: int | None) -> str | None:
        log_name = f"sh-{block.line}.log"
        with open(self.directory / log_name, "wb") as log:
            process = subprocess.Popen(
                ["bash", "-euo", "pipefail", "-c", code],
                cwd=self.directory, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, ended by its pid
            )  # fmt: skip
        if bind_port is None:
            try:
                status = process.wait(BLOCK_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.servers.append(process)
                return f"still running after {BLOCK_TIMEOUT}s:\n" + self._log(log_name)
            return None if status == 0 else f"exit status {status}:\n" + self._log(log_name)
        self.servers.append(process)

        def serving_or_exited() -> bool:
            return process.poll() is not None or accepts_connections(bind_port)

        wait_until(serving_or_exited, BLOCK_TIMEOUT, f"{block.name} to serve on {bind_port}")
        if process.poll() is not None:
            return f"exited ({process.returncode}) instead of serving:\n" + self._log(log_name)
        return None

    def _log(self, name: str) -> str:
        text = (self.directory / name).read_text(errors="replace")
        return f"\n--- {name} (last 3000 characters) ---\n{text[-3000:]}"

    def stop(self) -> None:
        """Ask what the page started to stop, by pid: its servers and its Python process."""
        for process in self.servers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        if self.python is not None:
            assert self.python.stdin is not None
            self.python.stdin.close()  # the runner's loop ends

    def wait_stopped(self) -> None:
        """Wait for :meth:`stop` (killing what doesn't), then remove the directory."""
        for process in self.servers:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        if self.python is not None:
            try:
                self.python.wait(10)
            except subprocess.TimeoutExpired:
                self.python.kill()
                self.python.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def pages(redis_server: RedisServer) -> Iterator[dict[str, Page]]:
    """The pages run so far, each started on the first of its blocks asked for."""
    started: dict[str, Page] = {}
    yield started
    for page in started.values():  # all at once: each takes its graceful stop's time
        page.stop()
    for page in started.values():
        page.wait_stopped()


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[block.name for block in RUN_BLOCKS])
def test_doc_block_runs(block: DocBlock, pages: dict[str, Page], redis_server: RedisServer) -> None:
    page = pages.get(block.path)
    if page is None:
        page = pages[block.path] = Page(block.path, redis_server)
    failure = page.run_through(block)
    assert failure is None, f"{block.name} ({block.language}) failed:\n{failure}"


def test_localise_maps_the_docs_addresses_to_the_tests() -> None:
    client = "curl http://127.0.0.1:8000/push/poll/news  # redis://127.0.0.1:6379/0\n"
    assert localise(client, "http://127.0.0.1:4321", 5555, 7777) == (
        "curl http://127.0.0.1:4321/push/poll/news  # redis://127.0.0.1:7777/0\n",
        False,
    )
    server = "gunicorn -b 0.0.0.0:8000 myapp:app\n"
    assert localise(server, "http://127.0.0.1:4321", 5555, 7777) == (
        "gunicorn -b 127.0.0.1:5555 myapp:app\n",
        True,
    )
    assert localise('serve(app, "127.0.0.1", 8000)', None, 5555, 7777)[1] is True


def test_every_block_is_run_or_says_why_not() -> None:
    assert PROBLEMS == []


_LEVELS = {"exception": "ERROR (with traceback)", "error": "ERROR", "warning": "WARNING",
           "info": "INFO", "debug": "DEBUG"}  # fmt: skip


def logging_calls() -> set[tuple[str, str]]:
    """``(level as the docs write it, message)`` of every ``logger.<level>("...")``
    call in the package."""
    calls = set()
    for path in (ROOT / "wsgi_push").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _LEVELS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "logger"
            ):
                message = node.args[0]
                assert isinstance(message, ast.Constant), f"{path}:{node.lineno}: log a constant"
                calls.add((_LEVELS[node.func.attr], message.value))
    return calls


def test_logging_section_names_every_logging_call() -> None:
    calls = logging_calls()
    rows = [line for line in (ROOT / "docs" / "deployment.md").read_text().splitlines()]
    missing = [
        (level, message)
        for level, message in calls
        if not any(row.startswith(f"| {level} | `{message}` |") for row in rows)
    ]
    assert len(calls) >= 5 and missing == [], missing


def test_parser_reports_marker_and_fence_mistakes(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(
        "<!-- not run: needs a printer -->\n```sh\nlp page.md\n```\n"
        "<!-- not run: -->\n```python\nprint(1)\n```\n"
        "<!-- not run -->\n```sh\ntrue\n```\n"
        "```\nno language\n```\n"
        "<!-- not run: strays -->\n\n```sh\npip install x\n```\n"
        "<!-- not run: output never runs -->\n```text\nok\n```\n"
    )
    blocks, problems = parse_page(page, tmp_path)
    assert [(block.line, block.language, block.not_run) for block in blocks] == [
        (2, "sh", "needs a printer"), (6, "python", ""), (10, "sh", ""),
        (13, "", None), (18, "sh", None), (22, "text", "output never runs"),
    ]  # fmt: skip
    assert problems == [
        "docs/page.md:6: 'not run' marker without a reason",
        "docs/page.md:10: 'not run' marker without a reason",
        "docs/page.md:13: fence without a language (```text for output)",
        "docs/page.md:18: installs packages; mark it <!-- not run: <reason> -->",
        "docs/page.md:22: 'not run' marker on a ```text block, which never runs",
        "docs/page.md:16: 'not run' marker not right before a fence",
    ]
    assert [block.name for block in blocks if block.runs] == ["docs/page.md:18"]


def test_not_run_reasons_are_given() -> None:
    """The blocks the suite doesn't run, each with its reason (and there are
    some: the parser finds the markers)."""
    skipped = {block.name: block.not_run for block in BLOCKS if block.not_run is not None}
    assert skipped and all(skipped.values()), skipped
