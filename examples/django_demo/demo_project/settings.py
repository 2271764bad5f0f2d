"""Settings for the Vask Django demo. Only ``VASK`` concerns Vask; the rest is a stock Django project.

``VASK_URL`` (``http://KEY:SECRET@HOST:PORT/apps/APP_ID``) points the demo at another server; the default is
the app that ``manage.py rundemo`` creates for ``vask serve`` started in this directory.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DEMO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DEMO_DEBUG", "1") == "1"  # runserver serves the static files (pusher-js) in DEBUG
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "vask.contrib.django",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # on, as in any Django app: the auth views need the token
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("DEMO_DB", str(BASE_DIR / "db.sqlite3"))}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

USE_TZ = True
TIME_ZONE = "UTC"

STATIC_URL = "static/"
# pusher-js straight from its npm package (npm ci in this directory): /static/pusher-js/pusher.min.js
STATICFILES_DIRS = [("pusher-js", BASE_DIR / "node_modules" / "pusher-js" / "dist" / "web")]

# The demo's Vask app. Hosted Pusher would be {"APP_ID": ..., "KEY": ..., "SECRET": ..., "CLUSTER": "eu"}.
VASK = {
    "URL": os.environ.get("VASK_URL", "http://demo-key:demo-secret@127.0.0.1:6001/apps/1000001"),
    "USER_INFO": "demo.identity.member_info",  # name, initials and colour for the presence avatars
    # What the browser connects to, when it differs from VASK_URL (unset: the same host and port). The HTTP
    # fallback (for networks that block WebSockets) goes to Vask as well.
    "WS_HOST": os.environ.get("VASK_WS_HOST"),
    "WS_PORT": os.environ.get("VASK_WS_PORT"),
    "HTTP_HOST": os.environ.get("VASK_HTTP_HOST"),
    "HTTP_PORT": os.environ.get("VASK_HTTP_PORT"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"demo": {"handlers": ["console"], "level": "INFO"},
                "vask.contrib.django": {"handlers": ["console"], "level": "INFO"}},
}
