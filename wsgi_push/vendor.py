"""``python -m wsgi_push.vendor FOLDER``: copy the JavaScript client, as an
ES module with its TypeScript declarations, into a project that a bundler
(Vite, webpack, esbuild …) builds::

    python -m wsgi_push.vendor src/vendor    # client.mjs + client.d.mts

then ``import {subscribe} from "./vendor/client.mjs"``. The files are the
ones the middleware serves at ``<prefix>/client.mjs`` and ``client.d.ts``;
the declarations are named ``.d.mts``, the name TypeScript looks for next
to a ``.mjs``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .client_script import module_source, static_file


def write_module(folder: Path) -> list[Path]:
    """Write ``client.mjs`` and ``client.d.mts`` into ``folder``; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    module, declarations = folder / "client.mjs", folder / "client.d.mts"
    module.write_bytes(module_source())
    declarations.write_bytes(static_file("client.d.ts"))
    return [module, declarations]


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m wsgi_push.vendor FOLDER")
    for path in write_module(Path(argv[0])):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
