"""URLs for tests/django: the contrib views under pusher-js' default prefix, and a page using the tag."""

from __future__ import annotations

from django.shortcuts import render
from django.urls import include, path


def page(request):  # type: ignore[no-untyped-def]
    return render(request, "vask_page.html")


urlpatterns = [
    path("pusher/", include("vask.contrib.django.urls")),
    path("page", page),
]
