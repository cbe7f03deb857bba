"""``python -m wsgi_push APP``: serve a WSGI app on gevent (see :mod:`wsgi_push.cli`).

The standard library is monkey-patched before anything else is imported,
the app's modules included.
"""

from gevent import monkey

monkey.patch_all()

from .cli import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    main()
