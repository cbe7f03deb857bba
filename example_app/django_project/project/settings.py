"""Settings of the wsgi_push example project (development settings: a
fixed secret key, sqlite). Environment variables the tests set:
``DJANGO_DB`` (the sqlite file), ``DJANGO_PUSH_BROKER_URL`` (a Redis URL,
so that a management command in another process reaches the server)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-secret"  # a demo, never deployed as is
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "live",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB", BASE_DIR / "db.sqlite3"),
    }
}

LOGIN_REDIRECT_URL = "page"
TIME_ZONE = "UTC"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# wsgi_push: one dict; the keys left out keep wsgi_push's defaults.
WSGI_PUSH = {
    "BROKER_URL": os.environ.get("DJANGO_PUSH_BROKER_URL"),  # None: in memory
    "AUTHORIZE": "live.permissions.can_access",
    "HEARTBEAT": float(os.environ.get("DJANGO_PUSH_HEARTBEAT", "15")),
}
