"""Reading requests (``wsgi_push/request.py``): the fast paths read exactly
what the general ones do."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzz import fuzz_settings
from wsgi_push.errors import BadRequest
from wsgi_push.request import MAX_QUERY_FIELDS, parse_position, query_params

# What makes query strings interesting: separators, escapes, '+', blanks,
# non-ASCII text as WSGI hands it over (latin-1), and repeated names.
QUERY_TEXT = st.text(alphabet="&=%+ 0129aAfFsince\u00e9\u00ff;,", max_size=80)


def parse_qsl_params(query: str) -> dict[str, str]:
    """The reading query_params must equal: parse_qsl's, first value wins."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS):
        params.setdefault(name, value)
    return params


@fuzz_settings(500)
@given(QUERY_TEXT)
def test_query_params_reads_every_query_as_parse_qsl_does(query: str) -> None:
    try:
        expected = parse_qsl_params(query)
    except ValueError:
        with pytest.raises(BadRequest, match="too many query parameters"):
            query_params({"QUERY_STRING": query})
        return
    assert query_params({"QUERY_STRING": query}) == expected


@pytest.mark.parametrize(
    "query",
    [
        "since=5&timeout=0",
        "since=5&since=7",  # the first wins
        "since=&timeout",  # blank values, with and without '='
        "&&since=1&&",  # empty fields are skipped
        "a=b=c",  # only the first '=' splits
        "since=%35&x=a+b",  # escapes and '+' go to parse_qsl
        "&".join(["x=1"] * MAX_QUERY_FIELDS),
    ],
)
def test_query_params_examples(query: str) -> None:
    assert query_params({"QUERY_STRING": query}) == parse_qsl_params(query)


@pytest.mark.parametrize("query", ["&" * MAX_QUERY_FIELDS, "&".join(["x=%31"] * 33)])
def test_query_params_refuses_too_many_fields_with_or_without_escapes(query: str) -> None:
    with pytest.raises(BadRequest, match="too many query parameters"):
        query_params({"QUERY_STRING": query})


@fuzz_settings(300)
@given(st.text(alphabet="0123456789 \t\u0663\u00b2x-+", max_size=22))
def test_parse_position_reads_what_the_pattern_allows(value: str) -> None:
    if re.fullmatch(r"[0-9]{1,18}", value.strip()):
        assert parse_position(value, "since") == int(value)
    else:
        with pytest.raises(BadRequest, match="since must be a non-negative integer"):
            parse_position(value, "since")
