"""The test app under gevent's plain ``pywsgi.WSGIServer``, the way a user
starts one: ``python -m tests.support.plain_pywsgi`` (prints its URL)."""

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from tests.support.apps import app  # noqa: E402


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    print(f"plain pywsgi: serving tests.support.apps:app on "
          f"http://127.0.0.1:{server.server_port}/", flush=True)  # fmt: skip
    server.serve_forever()


if __name__ == "__main__":
    main()
