"""Hypothesis settings shared by the property-based (fuzz) tests.

Each test names the number of examples that keeps CI short;
``WSGI_PUSH_FUZZ_EXAMPLES=N`` runs every property with N examples instead,
for a longer optional run. Nothing is stored between runs (no
``.hypothesis/`` in the tree); a failure prints its reproduction blob.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

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
