"""Helpers for the brokers' own tests, which read :class:`~wsgi_push.Batch` es in-process."""

from __future__ import annotations

from wsgi_push import Batch


def batch_ids(batch: Batch) -> list[int]:
    """The ids of the batch's messages, in order."""
    return [message.id for message in batch.messages]
