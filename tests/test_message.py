"""Channel names, event names and payload validation (unit)."""

from __future__ import annotations

import pytest

from wsgi_push.message import Message, check_channel, check_data, check_event, is_valid_channel


@pytest.mark.parametrize("name", ["a", "news", "A-z_0.9:x", "x" * 128, "..a", ".a."])
def test_valid_channel_names(name: str) -> None:
    assert is_valid_channel(name)
    assert check_channel(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 129, "a/b", ".", "..", "caf\u00e9", "a\x00b", "a b", "a%00", "a\n"]
)
def test_invalid_channel_names_are_refused(name: str) -> None:
    assert not is_valid_channel(name)
    with pytest.raises(ValueError, match="invalid channel name"):
        check_channel(name)


def test_event_defaults_to_message_and_refuses_line_breaks_and_gap() -> None:
    assert check_event(None) == "message"
    assert check_event("headline") == "headline"
    for bad in ["", "a\nb", "a\rb", "x" * 65, "gap", 3]:
        with pytest.raises(ValueError):
            check_event(bad)  # type: ignore[arg-type]


def test_data_must_be_json() -> None:
    assert check_data({"a": [1, "b"]}) == '{"a":[1,"b"]}'
    assert check_data("caf\u00e9") == '"caf\u00e9"'
    for bad in [object(), float("nan"), {1j: 2}, "\ud800"]:
        with pytest.raises(ValueError, match="JSON"):
            check_data(bad)


def test_message_encodes_once_per_encoder() -> None:
    calls = []

    def encoder(message: Message) -> bytes:
        calls.append(message.id)
        return b"x"

    message = Message("c", 1, "message", {"a": 1})
    assert message.encoded(encoder) == message.encoded(encoder) == b"x"
    assert calls == [1]
    assert message.json_bytes() == b'{"id":1,"event":"message","data":{"a":1}}'
