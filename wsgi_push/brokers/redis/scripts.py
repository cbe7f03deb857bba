"""The Lua scripts, shipped as ``.lua`` files in ``lua/`` next to this module.

Each script runs as ``common.lua`` (shared helpers) followed by its own file,
so a program in another language runs exactly what wsgi_push runs: see
docs/redis.md, "Publishing from outside the web app".
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any


def script_text(name: str) -> str:
    """The text to ``EVAL`` for script ``name`` (``publish``, ``read``, ``presence``)."""
    folder = files(__package__) / "lua"
    return "\n".join((folder / f"{part}.lua").read_text("utf-8") for part in ("common", name))


class Scripts:
    """The scripts registered on one client (``EVALSHA``, loaded again on ``NOSCRIPT``)."""

    def __init__(self, client: Any) -> None:
        self.publish = client.register_script(script_text("publish"))
        self.read = client.register_script(script_text("read"))
        self.presence = client.register_script(script_text("presence"))
