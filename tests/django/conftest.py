"""Django settings for tests/django, configured when pytest collects this directory (pytest-django runs them).

The unit tests use these settings in-process; the browser test runs examples/django_demo in its own process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django_test_support import TEST_VASK

from django import setup as django_setup  # ruff files this apart: it takes tests/django for the package

HERE = Path(__file__).resolve().parent

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
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        VASK=TEST_VASK,
    )
    django_setup()


@pytest.fixture
def alice(django_user_model: type) -> object:
    return django_user_model.objects.create_user(  # type: ignore[attr-defined]
        username="alice", password="pw-alice", first_name="Alice", last_name="Liddell")


@pytest.fixture
def bob(django_user_model: type) -> object:
    return django_user_model.objects.create_user(username="bob", password="pw-bob")  # type: ignore[attr-defined]
