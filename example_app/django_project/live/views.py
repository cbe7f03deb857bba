"""The live page and the view that publishes to it."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from wsgi_push.django import publish

from .permissions import MEMBERS, PUBLIC

TEXT_LIMIT = 500


def page(request: HttpRequest) -> HttpResponse:
    return render(request, "live/page.html", {"text_limit": TEXT_LIMIT})


@require_POST
def say(request: HttpRequest) -> HttpResponse:
    """Form fields ``channel`` and ``text``: published as ``{"user", "text"}``."""
    channel, text = request.POST.get("channel"), request.POST.get("text", "").strip()
    if channel not in (PUBLIC, MEMBERS) or not text:
        return JsonResponse(
            {"error": "channel must be public or members, text non-empty"}, status=400
        )
    if channel == MEMBERS and not request.user.is_authenticated:
        return JsonResponse({"error": "log in to write to members"}, status=403)
    user = request.user.get_username() if request.user.is_authenticated else "guest"
    message_id = publish(channel, {"user": user, "text": text[:TEXT_LIMIT]})
    return JsonResponse({"id": message_id}, status=201)
