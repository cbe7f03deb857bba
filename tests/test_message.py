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


def test_event_defaults_to_message_and_refuses_line_breaks_and_reserved_names() -> None:
    assert check_event(None) == "message"
    assert check_event("headline") == "headline"
    for bad in ["", "a\nb", "a\rb", "x" * 65, "gap", "error", "open", 3]:
        with pytest.raises(ValueError):
            check_event(bad)  # type: ignore[arg-type]
    # Reserved exactly and case-sensitively.
    assert [check_event(name) for name in ["Gap", "ERROR", "Open", "opened"]] == [
        "Gap", "ERROR", "Open", "opened"
    ]  # fmt: skip


@pytest.mark.parametrize("event", ["\ud800", "a\udfffb", "\udc00" * 3])
def test_event_names_with_lone_surrogates_are_refused_without_echo(event: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_event(event)
    str(refused.value).encode("utf-8")  # the message itself encodes


def test_event_name_is_stored_as_a_plain_str() -> None:
    class Name(str):
        def __format__(self, spec: str) -> str:
            return "x\ndata: injected"

    stored = check_event(Name("headline"))
    assert type(stored) is str and f"{stored}" == "headline"


def test_data_must_be_json() -> None:
    assert check_data({"a": [1, "b"]}) == '{"a":[1,"b"]}'
    assert check_data("caf\u00e9") == '"caf\u00e9"'
    for bad in [object(), float("nan"), {1j: 2}, 10**5000, "\ud800", {"\udc80": 1}, ["\udfff"]]:
        with pytest.raises(ValueError, match="JSON") as refused:
            check_data(bad)
        str(refused.value).encode("utf-8")  # never echoes a lone surrogate


def test_message_encodes_once_per_encoder() -> None:
    calls = []

    def encoder(message: Message) -> bytes:
        calls.append(message.id)
        return b"x"

    message = Message("c", 1, "message", {"a": 1})
    assert message.encoded(encoder) == message.encoded(encoder) == b"x"
    assert calls == [1]
    assert message.json_bytes() == b'{"id":1,"event":"message","data":{"a":1}}'
