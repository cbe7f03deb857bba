"""Who may do what on which channel: ``WSGI_PUSH["AUTHORIZE"]`` points here."""

from django.http import HttpRequest

PUBLIC = "public"
MEMBERS = "members"


def can_access(request: HttpRequest, channel: str, action: str) -> bool:
    """Anyone may follow ``public``, only logged-in users ``members``.
    Nobody publishes over HTTP: the ``say`` view publishes, after Django's
    own checks (CSRF, login)."""
    if action != "subscribe":
        return False
    if channel == MEMBERS:
        return bool(request.user.is_authenticated)
    return channel == PUBLIC
