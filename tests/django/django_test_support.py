"""Django settings and fixtures for tests/django. Every test module here imports this module first.

Not a conftest.py on purpose: the other test directories do ``from conftest import ...``, and a second
conftest module would make that name ambiguous. Importing this configures Django once (pytest-django then
runs the tests); the browser test runs examples/django_demo in its own process with its own settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django import setup as django_setup
from django.conf import settings

HERE = Path(__file__).resolve().parent

TEST_VASK = {"APP_ID": "123456", "KEY": "test-key", "SECRET": "test-secret", "HOST": "127.0.0.1", "PORT": 6001}

if not settings.configured:
    settings.configure(
        SECRET_KEY="tests-only",
        DEBUG=False,
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                        "vask.contrib.django", "vask_test_app"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware",
                    "django.middleware.common.CommonMiddleware",
                    "django.middleware.csrf.CsrfViewMiddleware",
                    "django.contrib.auth.middleware.AuthenticationMiddleware"],
        ROOT_URLCONF="django_test_urls",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [HERE / "templates"],
                    "OPTIONS": {"context_processors": ["django.template.context_processors.request"]}}],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast logins in tests
        USE_TZ=True,
        STATIC_URL="/static/",  # the live server's static handler needs one
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        VASK=TEST_VASK,
    )
    django_setup()


# Named *_fixture so that test modules can import them without shadowing the argument names.
@pytest.fixture(name="alice")
def alice_fixture(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(
        username="alice", password="pw-alice", first_name="Alice", last_name="Liddell")


@pytest.fixture(name="bob")
def bob_fixture(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user(username="bob", password="pw-bob")
