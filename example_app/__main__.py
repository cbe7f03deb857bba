"""``python -m example_app [--host H] [--port P]``: serve the demos under gevent."""

from gevent import monkey

monkey.patch_all()  # first: everything imported after uses cooperative sockets

import argparse  # noqa: E402

from wsgi_push import make_server, run_until_signalled  # noqa: E402

from . import create_app  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m example_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    server = make_server(create_app(), args.host, args.port, access_log=args.access_log)
    server.start()
    print(f"example_app: serving the wsgi_push demos on http://{args.host}:{server.server_port}/")
    print("open that URL in a browser; Ctrl-C stops", flush=True)
    run_until_signalled(server)


if __name__ == "__main__":
    main()
