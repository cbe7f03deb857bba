"""The benchmark's wsgi_push app under a plain ``gevent.pywsgi.WSGIServer``,
the way the design names it and many users start:
``python -m benchmarks.apps.plain_pywsgi PORT``. Without an access log, like
the ``python -m wsgi_push --no-access-log`` target it is compared with."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from benchmarks.apps.wsgi_push_app import app  # noqa: E402

if __name__ == "__main__":
    WSGIServer(("127.0.0.1", int(sys.argv[1])), app, log=None).serve_forever()
