"""The WSGI application, with wsgi_push's endpoints under ``/push``.

Serve it with the push worker::

    gunicorn -k wsgi_push.gunicorn.GeventWorker project.wsgi
"""

import os

from django.core.wsgi import get_wsgi_application

from wsgi_push.django import with_push

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

application = with_push(get_wsgi_application())
