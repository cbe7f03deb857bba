"""``python manage.py setup_demo``: create the database and the demo user."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

USERNAME, PASSWORD = "demo", "demo-password"


class Command(BaseCommand):
    help = "Migrate the database and create the demo user (demo / demo-password)."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", verbosity=0)
        users = get_user_model()
        if not users.objects.filter(username=USERNAME).exists():
            users.objects.create_user(USERNAME, password=PASSWORD)
        self.stdout.write(f"ready: log in as {USERNAME} / {PASSWORD}")
