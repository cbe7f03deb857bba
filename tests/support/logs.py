"""Keep reading a server subprocess's output so it never blocks on a full pipe.

A server that logs a lot (pywsgi logs every malformed request line) would
stall once the 64 KiB pipe buffer is full and nobody reads it. The lines are
kept for assertions, e.g. that no unhandled exception was logged.
"""

from __future__ import annotations

import threading
from typing import IO

from tests.support.servers import ServerProcess


class ServerLog:
    """The output of a started :class:`ServerProcess`, drained by a daemon thread."""

    def __init__(self, server: ServerProcess) -> None:
        assert server.process is not None and server.process.stdout is not None
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._drain, args=(server.process.stdout,))
        self._thread.daemon = True
        self._thread.start()

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def tracebacks(self, through: str = "") -> list[str]:
        """Each logged traceback (with what follows it) that mentions ``through``,
        e.g. ``"/wsgi_push/"`` for exceptions raised in the package rather
        than the HTTP server's own refusals of malformed requests."""
        tracebacks: list[list[str]] = []
        for line in list(self.lines):
            if line.startswith("Traceback"):
                tracebacks.append([])
            if tracebacks:
                tracebacks[-1].append(line)
        return [text for text in map("".join, tracebacks) if through in text]
