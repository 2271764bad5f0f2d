from __future__ import annotations

from typing import Any

from vask.contrib.django import authorizers


@authorizers.channel("private-autodiscovered.{name}")
def autodiscovered(user: Any, name: str) -> bool:
    return name == user.get_username()
