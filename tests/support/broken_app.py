"""An app module that exists but imports a module that doesn't (``test_cli``)."""

import no_such_dependency  # noqa: F401

app = None
