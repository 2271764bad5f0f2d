import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "anchor.settings")

import django

django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from anchor.consumers import PusherishConsumer, publish  # noqa: E402

application = ProtocolTypeRouter({
    "http": publish,
    "websocket": URLRouter([re_path(r"^app/(?P<key>[^/]+)$", PusherishConsumer.as_asgi())]),
})
