"""``python manage.py announce TEXT``: publish to ``public`` from a command.

The command runs in a process of its own, so its message reaches the
server's subscribers only through a shared broker (``BROKER_URL``, Redis).
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from live.permissions import PUBLIC
from wsgi_push.django import publish


class Command(BaseCommand):
    help = "Publish TEXT to the public channel."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("text")

    def handle(self, *args: Any, **options: Any) -> None:
        message_id = publish(PUBLIC, {"user": "announce", "text": options["text"]})
        self.stdout.write(f"published #{message_id}")
