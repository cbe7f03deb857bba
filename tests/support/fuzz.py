"""Hypothesis settings and strategies shared by the property-based (fuzz) tests.

Each test names the number of examples that keeps CI short;
``WSGI_PUSH_FUZZ_EXAMPLES=N`` runs every property with N examples instead,
for a longer optional run. Nothing is stored between runs (no
``.hypothesis/`` in the tree); a failure prints its reproduction blob.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES_VARIABLE = "WSGI_PUSH_FUZZ_EXAMPLES"


def fuzz_settings(examples: int) -> settings:
    """Settings for a property run ``examples`` times (or ``$WSGI_PUSH_FUZZ_EXAMPLES``)."""
    override = os.environ.get(EXAMPLES_VARIABLE)
    return settings(
        max_examples=int(override) if override else examples,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            # Fixtures (live servers) are meant to outlive the examples.
            HealthCheck.function_scoped_fixture,
        ],
    )


# Pieces that stress the event-stream grammar, mixed into arbitrary unicode.
LINE_BREAKS = st.sampled_from(["\r", "\n", "\r\n", "\n\r", "\r\r\n", "\n\n"])
TRICKY = st.sampled_from(
    ["\0", " ", "  ", ":", ": x", "data: x", "id: 9", "event: gap", "retry: 1", "\ufeff", "\t"]
    + ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x7f", "\U0001f600", "é"]
)
texts = st.lists(st.one_of(st.text(), LINE_BREAKS, TRICKY), max_size=24).map("".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)
event_names = st.one_of(
    st.none(),
    st.text(min_size=1),
    st.lists(st.one_of(st.text(max_size=8), LINE_BREAKS, TRICKY), min_size=1).map("".join),
)
