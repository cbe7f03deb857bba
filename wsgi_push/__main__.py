"""``python -m wsgi_push [--host H] [--port P] module:app`` serves a WSGI app
with :func:`wsgi_push.serve` after monkey-patching the standard library."""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402

from .server import DEFAULT_SEND_TIMEOUT, make_server, run_until_signalled  # noqa: E402


def load_app(target: str):  # type: ignore[no-untyped-def]
    """Import ``module:attribute`` (attribute defaults to ``app``)."""
    module_name, _, attribute = target.partition(":")
    app = importlib.import_module(module_name)
    for name in (attribute or "app").split("."):
        app = getattr(app, name)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wsgi_push", description=__doc__)
    parser.add_argument("app", help="the WSGI app to serve, as module:attribute")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-access-log", action="store_true", help="silence the access log")
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=DEFAULT_SEND_TIMEOUT,
        help="seconds a client may take no data before it is disconnected",
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, "")
    app = load_app(args.app)
    server = make_server(
        app,
        args.host,
        args.port,
        access_log=not args.no_access_log,
        send_timeout=args.send_timeout,
    )
    server.start()
    # The real port (``--port 0`` picks a free one), for people and for tests.
    print(f"wsgi_push: serving {args.app} on http://{args.host}:{server.server_port}/", flush=True)
    run_until_signalled(server)


if __name__ == "__main__":
    main()
