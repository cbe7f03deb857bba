"""Run one docs page's Python blocks in order, in one namespace, in this process.

``python -m tests.support.docs_runner`` reads one JSON request a line on
stdin — ``{"path", "line", "code", "bind_port"}`` — and answers one JSON line
on the original stdout: ``{"status": "ok" | "serving" | "error", "detail",
"served"}``. Whatever the blocks print goes to stderr.

Each block runs in a greenlet, so what it serves keeps serving while the
next request is read (stdin is read cooperatively). A block that binds
``bind_port`` and is still running once that port accepts connections is
``serving``; any other block must finish. After a block, an ``app`` the
namespace did not have before is served on a free port (``served``), so the
page's later blocks can talk to it.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.fileobject import FileObjectPosix  # noqa: E402

from tests.support.servers import accepts_connections  # noqa: E402
from wsgi_push.server import make_server  # noqa: E402

BLOCK_TIMEOUT = 20.0


def _run(code: str, path: str, line: int, bind_port: int | None, namespace: dict) -> dict:
    # Padding keeps the Markdown's line numbers in tracebacks.
    compiled = compile("\n" * line + code, path, "exec")
    block = gevent.spawn(exec, compiled, namespace)
    deadline = time.monotonic() + BLOCK_TIMEOUT
    while not block.ready():
        if bind_port is not None and accepts_connections(bind_port):
            return {"status": "serving"}
        if time.monotonic() > deadline:
            block.kill(block=False)
            return {"status": "error", "detail": f"still running after {BLOCK_TIMEOUT}s"}
        block.join(0.02)
    if block.successful():
        return {"status": "ok"}
    error = block.exception
    assert error is not None
    detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return {"status": "error", "detail": detail}


def main() -> None:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # blocks' prints go to stderr
    requests = FileObjectPosix(sys.stdin.fileno(), "rb")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    served: list[Any] = []  # the apps served so far, kept alive
    for request_line in requests:
        request = json.loads(request_line)
        answer = _run(
            request["code"], request["path"], request["line"], request["bind_port"], namespace
        )
        app = namespace.get("app")
        if answer["status"] != "error" and callable(app) and all(app is not s for s in served):
            served.append(app)
            server = make_server(app, "127.0.0.1", 0, access_log=False)
            server.start()
            answer["served"] = f"http://127.0.0.1:{server.server_port}"
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
