"""Counters a process keeps about its push traffic."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import BrokerUnavailable, PushError

if TYPE_CHECKING:
    from .brokers.base import Batch


@dataclass
class ProcessCounters:
    """What the server, not the middleware, sees: one set per process."""

    slow_clients_dropped: int = 0


PROCESS_COUNTERS = ProcessCounters()


@dataclass
class Stats:
    """Running totals since the middleware started (per process).

    Open connections live in :class:`~wsgi_push.connections.Connections`;
    these are the cumulative counts next to them.
    """

    published_over_http: int = 0
    deliveries: int = 0
    gaps_served: int = 0
    refused_over_limit: int = 0
    broker_unavailable: int = 0
    connections_opened: Counter[str] = field(default_factory=Counter)

    def record(self, batch: Batch) -> None:
        """Count a batch sent to one subscriber."""
        self.deliveries += len(batch.messages)
        self.gaps_served += batch.gap is not None

    def record_counts(self, messages: int, gaps: int) -> None:
        """Count messages and gap notices sent to one subscriber."""
        self.deliveries += messages
        self.gaps_served += gaps

    def record_error(self, error: PushError) -> None:
        """Count a 503: a backend outage, or a configured limit reached."""
        if isinstance(error, BrokerUnavailable):
            self.broker_unavailable += 1
        elif error.status == 503:
            self.refused_over_limit += 1

    def as_dict(self, open_connections: Counter[str], published: int) -> dict[str, Any]:
        """The counters, with the open connections and the broker's count of
        messages published in this process (in Python or over HTTP)."""
        return {
            "open_connections": dict(open_connections),
            "connections_opened": dict(self.connections_opened),
            "published": published,
            "published_over_http": self.published_over_http,
            "deliveries": self.deliveries,
            "gaps_served": self.gaps_served,
            "refused_over_limit": self.refused_over_limit,
            "broker_unavailable": self.broker_unavailable,
            "slow_clients_dropped": PROCESS_COUNTERS.slow_clients_dropped,
        }
