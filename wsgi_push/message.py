"""Messages, gap notices and the validation of what goes into them.

A :class:`Message` is immutable once published. It caches each transport's
encoding of itself, so fan-out to many subscribers encodes once per
transport, not once per subscriber.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_EVENT = "message"
GAP_EVENT = "gap"
MAX_NESTING = 128
"""Deepest nesting of lists and objects a message's data may have."""

RESERVED_EVENTS = frozenset({GAP_EVENT, "error", "open"})
"""Event names a publisher may not use: ``gap`` is our gap notice, and
``EventSource`` dispatches ``error`` and ``open`` to its connection handlers."""

_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
# Event names travel in an SSE field, so no line breaks or other controls;
# and no lone surrogate, which UTF-8 can't encode (a stored one would break
# every later answer on the channel).
_EVENT_NAME = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff]{1,64}")


def nesting_depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value`` (0 for a scalar), found
    level by level without recursion; stops counting past :data:`MAX_NESTING`."""
    depth = 0
    level = [value]
    while depth <= MAX_NESTING:
        containers = [item for item in level if isinstance(item, (list, tuple, dict))]
        if not containers:
            break
        depth += 1
        level = [
            child
            for container in containers
            for child in (container.values() if isinstance(container, dict) else container)
        ]
    return depth


# One encoder for every call: json.dumps with options builds a new one each time.
_encode_json_text = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def dumps(value: Any) -> str:
    """Compact JSON, the one serialisation used on every transport."""
    return _encode_json_text(value)


def is_valid_channel(name: str) -> bool:
    """Whether ``name`` is a channel name the contract allows."""
    return bool(_CHANNEL_NAME.fullmatch(name)) and name not in (".", "..")


def check_channel(name: str) -> str:
    """Return ``name`` or raise :class:`ValueError` saying why it is refused."""
    if not isinstance(name, str) or not is_valid_channel(name):
        raise ValueError(
            "invalid channel name: use 1-128 characters of A-Z a-z 0-9 _ . : - (not '.' or '..')"
        )
    return name


def check_event(event: str | None) -> str:
    """Return the event name to store (``"message"`` when None) or raise ValueError."""
    if event is None:
        return DEFAULT_EVENT
    if not isinstance(event, str) or not _EVENT_NAME.fullmatch(event):
        # Never echo the name: it may hold what can't be encoded.
        raise ValueError(
            "invalid event name: use 1-64 characters, no control characters or lone surrogates"
        )
    if event in RESERVED_EVENTS:
        raise ValueError(f"the event name {event!r} is reserved ('gap', 'error', 'open')")
    # A plain str, not a subclass: what is stored must encode as it was checked.
    return str.__str__(event)


def check_data(data: Any) -> str:
    """Return ``data`` as compact JSON, or raise ValueError if JSON can't carry it.

    Nesting is bounded: the JSON codec recurses per level, so data nested
    near the interpreter's recursion limit could be stored and then fail to
    encode for every subscriber of the channel.
    """
    if nesting_depth(data) > MAX_NESTING:
        raise ValueError(f"data is nested deeper than {MAX_NESTING} levels")
    try:
        encoded = dumps(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"data is not JSON-serialisable: {exc}") from None
    try:
        encoded.encode("utf-8")
    except UnicodeEncodeError:
        # The exception's text would echo the character.
        raise ValueError(
            "data is not JSON-serialisable: a string or key holds a lone surrogate"
        ) from None
    return encoded


@dataclass(frozen=True, slots=True)
class Message:
    """One published message: ``id`` is unique and increasing within ``channel``."""

    channel: str
    id: int
    event: str
    data: Any
    published_at: float = field(default=0.0, compare=False)
    _encodings: dict[Callable[[Message], bytes], bytes] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON form: ``{"id", "event", "data"}``."""
        return {"id": self.id, "event": self.event, "data": self.data}

    def json_bytes(self) -> bytes:
        """The JSON form as UTF-8, encoded once and cached."""
        return self.encoded(_encode_json)

    def tagged_json_bytes(self) -> bytes:
        """The multiplexed JSON form, ``{"channel", "id", "event", "data"}``,
        as UTF-8, encoded once and cached."""
        return self.encoded(_encode_tagged_json)

    def encoded(self, encoder: Callable[[Message], bytes]) -> bytes:
        """``encoder(self)``, computed once per encoder and shared by all subscribers."""
        cached = self._encodings.get(encoder)
        if cached is None:
            cached = self._encodings[encoder] = encoder(self)
        return cached


@dataclass(frozen=True, slots=True)
class Gap:
    """Notice that continuity from ``requested`` can't be guaranteed.

    ``first`` is the oldest retained id and ``last`` the channel's newest id
    (``first`` is 0 when nothing is retained).
    """

    requested: int
    first: int
    last: int

    def to_dict(self) -> dict[str, int]:
        return {"requested": self.requested, "first": self.first, "last": self.last}

    def tagged_dict(self, channel: str) -> dict[str, Any]:
        """The multiplexed form: ``{"channel", "requested", "first", "last"}``."""
        return {"channel": channel, **self.to_dict()}


def _encode_json(message: Message) -> bytes:
    return dumps(message.to_dict()).encode("utf-8")


def _encode_tagged_json(message: Message) -> bytes:
    return dumps({"channel": message.channel, **message.to_dict()}).encode("utf-8")
