"""The public API read in one place: ``wsgi_push.__all__``, keyword-only
options, the exceptions a caller may catch, and docs/python-api.md naming
every public name."""

from __future__ import annotations

import inspect
import re

import pytest

import wsgi_push
from tests.support.servers import ROOT
from wsgi_push import errors
from wsgi_push.flask import Push


def test_every_public_name_is_exported_and_documented() -> None:
    api_doc = (ROOT / "docs" / "python-api.md").read_text()
    for name in wsgi_push.__all__:
        assert hasattr(wsgi_push, name), name
        assert re.search(rf"\b{re.escape(name)}\b", api_doc), f"{name} is not in python-api.md"


def test_every_exception_a_caller_may_catch_is_exported() -> None:
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.PushError)
    }
    assert defined <= set(wsgi_push.__all__)
    assert issubclass(wsgi_push.TooManyChannels, wsgi_push.ServiceUnavailable)


@pytest.mark.parametrize("factory", [wsgi_push.PushMiddleware, wsgi_push.CorsPolicy, Push])
def test_options_are_keyword_only(factory: type) -> None:
    """Only the wrapped app (or the origins) is positional: an option can't
    land in the wrong slot when the signature grows."""
    parameters = list(inspect.signature(factory).parameters.values())
    assert parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    options = {inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD}
    assert all(p.kind in options for p in parameters[1:])


def test_a_positional_option_is_refused() -> None:
    with pytest.raises(TypeError):
        wsgi_push.PushMiddleware(lambda e, s: [], wsgi_push.MemoryBroker())  # type: ignore[misc]


def test_the_version_has_one_source() -> None:
    """setup.py reads wsgi_push/_version.py as text; the package exports it."""
    setup_py = (ROOT / "setup.py").read_text()
    assert "_version.py" in setup_py and re.search(r"version=VERSION\b", setup_py)
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", wsgi_push.__version__)
