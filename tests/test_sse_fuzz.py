"""Property-based tests of the wire encodings against a WHATWG-conformant parser.

Every payload a publisher can send comes back identical on every transport,
with one documented exception: SSE carries every line break (``\\r\\n``,
``\\r``, ``\\n``) as ``\\n``, because the event-stream format splits data
lines on all three. Event names can't inject fields, and text JSON can't
carry (lone surrogates) is refused at publish.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.clients import SSEEvent, SSEParser
from tests.support.fuzz import LINE_BREAKS, event_names, fuzz_settings, json_values, texts
from wsgi_push import MemoryBroker
from wsgi_push.errors import BadRequest
from wsgi_push.message import RESERVED_EVENTS, Gap, Message, check_data, check_event, dumps
from wsgi_push.responses import error_response
from wsgi_push.transports import sse, stream
from wsgi_push.transports.poll import (
    encode_multiplexed_poll_body,
    encode_poll_body,
    select_multiplexed,
)

CHANNEL = "fuzz"

# Long payloads: a random text repeated; lines stay under ~100k characters
# because the reference parser is quadratic in line length.
huge_texts = st.tuples(texts, LINE_BREAKS).map(
    lambda parts: (parts[0][:200] + parts[1]) * (200_000 // (len(parts[0][:200]) + 2))
)
surrogates = st.characters(categories=["Cs"])
# Strings holding a lone surrogate, alone or inside JSON containers.
surrogate_texts = st.tuples(st.text(), surrogates, st.text()).map("".join)
surrogate_payloads = st.one_of(
    surrogate_texts,
    surrogate_texts.map(lambda text: [1, text]),
    surrogate_texts.map(lambda text: {"text": text}),
    surrogate_texts.map(lambda text: {text: "key"}),
)

# Anything a publisher may hand over: any code point (lone surrogates
# included) in names, strings and keys, and values JSON can't carry.
any_texts = st.one_of(texts, surrogate_texts, st.text(st.characters(codec=None), max_size=8))
any_payloads = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | any_texts
    | st.sampled_from([b"bytes", 1j, object(), {1, 2}]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(any_texts | st.integers() | st.none(), children, max_size=4)
    ),
    max_leaves=20,
)
any_event_names = st.one_of(
    event_names, any_texts, st.sampled_from(["gap", "error", "open", "Error", "message"])
)


def sse_lines(text: str) -> str:
    """What SSE delivers for ``text``: every CRLF, CR and LF becomes LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def published(data: Any, event: str | None = None, broker: MemoryBroker | None = None) -> Message:
    """Publish through a broker (validation and JSON round trip included) and
    read the message back as subscribers get it."""
    broker = broker if broker is not None else MemoryBroker()
    message_id = broker.publish(CHANNEL, data, event)
    (message,) = broker.read(CHANNEL, message_id - 1).messages
    return message


def parse_sse(raw: bytes, cuts: list[int]) -> tuple[list[SSEEvent], SSEParser]:
    """Feed ``raw`` to the parser in pieces cut at ``cuts`` (mid-character and
    between CR and LF included), decoding UTF-8 incrementally as a client does."""
    parser = SSEParser()
    events: list[SSEEvent] = []
    bounds = [0, *sorted(cuts), len(raw)]
    for start, end in pairwise(bounds):
        events.extend(parser.feed_bytes(raw[start:end]))
    events.extend(parser.feed_bytes(b"", final=True))
    return events, parser


def cuts_for(data: st.DataObject, raw: bytes) -> list[int]:
    return data.draw(st.lists(st.integers(0, len(raw)), max_size=6), label="cuts")


@fuzz_settings(500)
@given(
    text=texts,
    event=event_names.filter(
        lambda name: name is None or (name.isalnum() and name not in RESERVED_EVENTS)
    ),
    data=st.data(),
)
def test_text_payload_survives_sse_with_line_breaks_as_lf(
    text: str, event: str | None, data: st.DataObject
) -> None:
    message = published(text, event)
    raw = sse.encode_message(message)
    events, parser = parse_sse(raw, cuts_for(data, raw))
    assert events == [SSEEvent(event or "message", sse_lines(text), str(message.id))]
    assert parser.comments == []


@fuzz_settings(10)
@given(text=huge_texts, data=st.data())
def test_huge_text_payload_survives_sse(text: str, data: st.DataObject) -> None:
    raw = sse.encode_message(published(text))
    events, _ = parse_sse(raw, cuts_for(data, raw))
    assert [event.data for event in events] == [sse_lines(text)]


@fuzz_settings(400)
@given(value=json_values.filter(lambda value: not isinstance(value, str)), data=st.data())
def test_json_payload_survives_sse_identical(value: Any, data: st.DataObject) -> None:
    raw = sse.encode_message(published(value))
    events, _ = parse_sse(raw, cuts_for(data, raw))
    assert len(events) == 1
    assert json.loads(events[0].data) == value


@fuzz_settings(400)
@given(value=json_values, event=event_names.filter(lambda name: name != "gap"))
def test_ndjson_and_poll_keep_every_payload_exactly(value: Any, event: str | None) -> None:
    try:
        check_event(event)
    except ValueError:
        event = None
    broker = MemoryBroker()
    message = published(value, event, broker)
    line = stream.encode_message(message)
    # One line per message: JSON escapes every CR and LF inside strings.
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line
    assert json.loads(line) == {"id": 1, "event": event or "message", "data": value}
    body = json.loads(encode_poll_body(CHANNEL, broker.read(CHANNEL, 0)))
    assert body == {
        "channel": CHANNEL,
        "messages": [{"id": 1, "event": event or "message", "data": value}],
        "last_id": 1,
        "gap": None,
    }


@fuzz_settings(500)
@given(event=event_names, event_id=st.integers(1, 2**63), text=texts, data=st.data())
def test_event_names_and_ids_never_inject_fields(
    event: str | None, event_id: int, text: str, data: st.DataObject
) -> None:
    try:
        name = check_event(event)
    except ValueError:
        # Refused names are exactly those that could break the field, or reserved.
        assert event is not None
        assert (
            event in RESERVED_EVENTS
            or not 1 <= len(event) <= 64
            or any(ord(char) < 0x20 or char == "\x7f" for char in event)
        )
        with pytest.raises(ValueError):
            MemoryBroker().publish(CHANNEL, text, event)
        return
    raw = sse.encode_event(sse.payload_text(text), name, event_id)
    events, parser = parse_sse(raw, cuts_for(data, raw))
    assert events == [SSEEvent(name, sse_lines(text), str(event_id))]
    assert parser.retry is None and parser.comments == []


@fuzz_settings(200)
@given(
    payloads=st.lists(st.one_of(texts, json_values), max_size=8),
    gap_after=st.integers(0, 8),
    retry=st.floats(0, 3600),
    data=st.data(),
)
def test_stream_of_messages_heartbeats_and_gap_parses_in_order(
    payloads: list[Any], gap_after: int, retry: float, data: st.DataObject
) -> None:
    """A whole stream, cut anywhere: every event in order, heartbeats as
    comments only, and a gap notice that keeps ``Last-Event-ID``."""
    broker = MemoryBroker()
    messages = [published(payload, broker=broker) for payload in payloads]
    gap = Gap(requested=99, first=1, last=len(payloads))
    chunks = [sse.encode_retry(retry)]
    for index, message in enumerate(messages):
        if index == gap_after:
            chunks.append(sse.encode_gap(gap))
        chunks += [sse.encode_message(message), sse.HEARTBEAT]
    raw = b"".join(chunks)
    events, parser = parse_sse(raw, cuts_for(data, raw))
    expected = [
        SSEEvent("message", sse_lines(sse.payload_text(message.data)), str(message.id))
        for message in messages
    ]
    if gap_after < len(messages):
        expected.insert(gap_after, SSEEvent("gap", dumps(gap.to_dict()), None))
    assert events == expected
    assert parser.retry == round(retry * 1000)
    assert parser.comments == [""] * len(messages)
    assert parser.last_event_id == (str(messages[-1].id) if messages else "")


@fuzz_settings(200)
@given(payload=surrogate_payloads, event=event_names)
def test_lone_surrogates_are_refused_at_publish(payload: Any, event: str | None) -> None:
    with pytest.raises(ValueError):
        check_data(payload)
    broker = MemoryBroker()
    with pytest.raises(ValueError):
        broker.publish(CHANNEL, payload, event)
    assert broker.last_id(CHANNEL) == 0


@fuzz_settings(300)
@given(payload=any_payloads, event=st.none() | any_event_names)
def test_every_publish_is_refused_or_encodes_on_every_transport(
    payload: Any, event: str | None
) -> None:
    """No message that publish() accepts can fail to encode later (it would
    break its channel for every subscriber); a refusal is a ValueError whose
    400 answer encodes too."""
    broker = MemoryBroker()
    try:
        message = published(payload, event, broker)
    except ValueError as refused:
        assert error_response(BadRequest(str(refused)))[2]  # encodes, echoes nothing unencodable
        assert broker.last_id(CHANNEL) == 0
        return
    assert message.event not in ("gap", "error", "open")
    parsed, _ = parse_sse(sse.encode_message(message), [])
    assert [(event.event, event.id) for event in parsed] == [(message.event, "1")]
    assert json.loads(stream.encode_message(message))["event"] == message.event
    body = json.loads(encode_poll_body(CHANNEL, broker.read(CHANNEL, 0)))
    assert body["messages"] == [json.loads(message.json_bytes())]
    # The multiplexed forms: channel-tagged on every transport.
    tagged = {"channel": CHANNEL, **json.loads(message.json_bytes())}
    raw = sse.encode_tagged_message(message) + sse.encode_position(f"{message.id},0")
    parsed, _ = parse_sse(raw, [])
    assert [(event.event, json.loads(event.data)) for event in parsed] == [(message.event, tagged)]
    assert json.loads(stream.encode_tagged_message(message)) == tagged
    positions = {CHANNEL: 0, "other": 0}
    batches = [(CHANNEL, broker.read(CHANNEL, 0)), ("other", broker.read("other", 0))]
    messages, gaps = select_multiplexed(batches, positions, 10)
    body = json.loads(encode_multiplexed_poll_body(positions, messages, gaps))
    assert body["messages"] == [tagged]
