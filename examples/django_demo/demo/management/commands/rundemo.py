"""``manage.py rundemo [ADDR:PORT]``: set everything up, then runserver.

1. migrate the SQLite database and add the demo users (alice and bob, password ``demo``) and a document;
2. unless ``VASK_URL`` is set, make sure the demo's app (id 1000001) exists in the Vask store of this directory
   (``./.vask``, where ``vask serve`` started here keeps it), creating it with the ``vask`` command line;
3. install pusher-js from npm (``npm ci``) if ``node_modules`` is missing;
4. ``runserver`` (default 127.0.0.1:8000).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from demo.models import Document

DEMO_APP = ("1000001", "demo-key", "demo-secret")
USERS = [("alice", "Alice", "Martin"), ("bob", "Bob", "Okafor")]
PASSWORD = "demo"


class Command(BaseCommand):
    help = "Prepare the demo (database, users, Vask app, pusher-js) and run the development server."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, addrport: str, **options) -> None:  # type: ignore[no-untyped-def]
        call_command("migrate", verbosity=0, interactive=False)
        self.seed()
        if os.environ.get("VASK_URL"):
            self.stdout.write("using the Vask app in VASK_URL")
        else:
            self.ensure_vask_app()
        self.ensure_pusher_js()
        self.stdout.write(f"log in at http://{addrport}/ as alice or bob, password {PASSWORD!r}")
        call_command("runserver", addrport, use_reloader=False)

    def seed(self) -> None:
        users = get_user_model()
        for username, first, last in USERS:
            if not users.objects.filter(username=username).exists():
                users.objects.create_user(username, password=PASSWORD, first_name=first, last_name=last)
        Document.objects.get_or_create(pk=1, defaults={
            "title": "Launch plan",
            "body": "Open this page in two browsers, logged in as alice and as bob: each sees the other "
                    "on the presence bar above. Ship an order to see the notification panel update, "
                    "and post to the feed to see it reach everyone."})

    def ensure_vask_app(self) -> None:
        app_id, key, secret = DEMO_APP
        vask = [sys.executable, "-m", "vask"]
        env = {**os.environ, "VASK_DATA_DIR": os.environ.get("VASK_DATA_DIR", ".vask")}
        shown = subprocess.run([*vask, "apps", "show", app_id], capture_output=True, text=True, env=env)
        if shown.returncode == 0:
            self.stdout.write(f"Vask app {app_id} found in {env['VASK_DATA_DIR']}")
            return
        created = subprocess.run([*vask, "apps", "create", "--id", app_id, "--key", key, "--secret", secret,
                                  "--name", "django demo", "--client-events"],
                                 capture_output=True, text=True, env=env)
        if created.returncode != 0:
            raise CommandError(f"could not create the Vask app: {created.stdout}{created.stderr}")
        self.stdout.write(f"created Vask app {app_id} (key {key}) in {env['VASK_DATA_DIR']}")

    def ensure_pusher_js(self) -> None:
        base = Path(settings.BASE_DIR)
        if (base / "node_modules" / "pusher-js" / "dist" / "web" / "pusher.min.js").exists():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise CommandError("pusher-js is not installed and npm is not on PATH: install Node.js, then npm ci")
        self.stdout.write("installing pusher-js (npm ci)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=base, check=True)
