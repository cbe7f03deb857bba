"""Work that outlives requests (the listener, the presence keeper).

It runs in a ``threading.Thread``, looked up when started: under gevent's
monkey patching that is a greenlet; without it (werkzeug's threaded dev
server, ``flask run``) a real daemon thread, which wakes waiters through the
thread-safe :class:`~wsgi_push.brokers.signals.Signals`. Either way it
outlives the request that started it, and any exception in it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ...errors import BrokerUnavailable

logger = logging.getLogger("wsgi_push")


class Background:
    """Runs ``step()`` over and over until :meth:`stop`. An exception is
    logged once per run of failures (``what`` names the job), then ``step``
    is retried after ``retry_delays`` (doubling from the first to the
    second). A step that returns, or calls :meth:`healthy` (a long-running
    one, once it works), ends the run of failures."""

    def __init__(
        self, what: str, step: Callable[[], None], retry_delays: tuple[float, float]
    ) -> None:
        self.what = what
        self.step = step
        self.retry_delays = retry_delays
        self.failures = 0
        """Runs of failures so far (each logged once)."""
        self._failing = False
        self._delay = retry_delays[0]
        self._running = False
        self._stopping = False

    @property
    def stopping(self) -> bool:
        return self._stopping

    def start(self) -> None:
        """Start (again, should it ever have ended), unless stopped."""
        if not (self._running or self._stopping):
            # Marked before start(): a patched start() yields to other greenlets.
            self._running = True
            thread = threading.Thread(target=self._run, name=f"wsgi_push {self.what}", daemon=True)
            thread.start()

    def stop(self) -> None:
        """Make it end after its current step, for good."""
        self._stopping = True

    def healthy(self) -> None:
        """The job works (again): log the recovery, reset the retry delay."""
        self._delay = self.retry_delays[0]
        if self._failing:
            self._failing = False
            logger.warning("wsgi_push: %s works again", self.what)

    def _run(self) -> None:
        try:
            self._steps()
        finally:
            self._running = False

    def _steps(self) -> None:
        while not self._stopping:
            try:
                self.step()
            except Exception as error:  # whatever it is, the job must go on
                if self._stopping:
                    return  # e.g. its connection closed by close(): not a failure
                if not self._failing:
                    self._failing = True
                    self.failures += 1
                    logger.warning(
                        "wsgi_push: %s failed (%s: %s); retrying until it works",
                        self.what,
                        type(error).__name__,
                        error,
                        exc_info=not isinstance(error, redis_errors()),
                    )
                time.sleep(self._delay)
                self._delay = min(self._delay * 2, self.retry_delays[1])
            else:
                self.healthy()


def redis_errors() -> tuple[type[Exception], ...]:
    """Redis failing, which is expected now and then (no stack trace for it)."""
    import redis

    return (redis.RedisError, BrokerUnavailable)
