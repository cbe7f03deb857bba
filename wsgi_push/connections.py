"""Bookkeeping of the open subscriber connections of one process."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from .errors import ServiceUnavailable


class Connections:
    """Counts open connections per transport and can end them all.

    ``max_connections`` (None: no limit) is checked before any work is done.
    :meth:`end_all` moves to a new generation: every connection opened
    before it sees its :meth:`ended_check` turn true at its next wake-up.
    Once ``draining``, the process is going away and connections end at once.
    """

    def __init__(self, max_connections: int | None, retry_after: int = 1) -> None:
        self.max_connections = max_connections
        self.retry_after = retry_after
        self.open_by_transport: Counter[str] = Counter()
        self.total = 0
        """All open connections: the sum of :attr:`open_by_transport`."""
        self.generation = 0
        self.draining = False

    def open(self, transport: str) -> Callable[[], None]:
        """Count a new connection; returns the function that releases it."""
        if self.max_connections is not None and self.total >= self.max_connections:
            raise ServiceUnavailable("too many connections", self.retry_after)
        self.open_by_transport[transport] += 1
        self.total += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open_by_transport[transport] -= 1
                self.total -= 1

        return release

    def ended_check(self) -> Callable[[], bool]:
        """A check that turns true once :meth:`end_all` runs after this call."""
        generation = self.generation
        return lambda: self.generation != generation

    def end_all(self) -> None:
        """Ask every open connection to end at its next wake-up."""
        self.generation += 1
