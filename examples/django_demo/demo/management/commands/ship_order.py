"""``manage.py ship_order alice``: ship from outside a request (a cron job or task queue does the same)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from demo.orders import ship_next_order


class Command(BaseCommand):
    help = "Ship a user's next order; their notifications panel updates in the browser."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("username")

    def handle(self, *args, username: str, **options) -> None:  # type: ignore[no-untyped-def]
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        order = ship_next_order(user)
        self.stdout.write(f"shipped order #{order.pk} ({order.item}) for {username}")
