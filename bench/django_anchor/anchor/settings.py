"""The smallest Django project that fans out through Channels: the Python-ecosystem anchor of BENCHMARKS.md."""

import os

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
ASGI_APPLICATION = "anchor.asgi.application"
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        # performance.md 3(d): the pub/sub layer was the faster of the two Redis layers
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [os.environ.get("ANCHOR_REDIS", "redis://127.0.0.1:6390")]},
    },
}
