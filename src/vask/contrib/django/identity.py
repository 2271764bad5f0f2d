"""Who the request user is, as Pusher sees it: presence ``user_id``/``user_info`` and sign-in ``user_data``.

The defaults use the primary key and the display name; ``VASK["USER_ID"]``, ``VASK["USER_INFO"]`` and
``VASK["USER_DATA"]`` name callables that replace them (same signatures as the functions below).
"""

from __future__ import annotations

from typing import Any

from .conf import get_settings, load_callable


def default_user_id(user: Any) -> str:
    return str(user.pk)


def default_user_info(user: Any, channel: str | None) -> dict[str, Any]:
    """``{"name": ...}``: the full name, else the username. ``channel`` is None for sign-in."""
    full_name = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return {"name": full_name or user.get_username()}


def default_user_data(user: Any) -> dict[str, Any]:
    """What ``pusher:signin`` carries: ``id`` and ``user_info`` (add ``watchlist`` by overriding this)."""
    return {"id": user_id(user), "user_info": user_info(user, None)}


def user_id(user: Any) -> str:
    return str(load_callable(get_settings().user_id, default_user_id)(user))


def user_info(user: Any, channel: str | None) -> dict[str, Any]:
    return dict(load_callable(get_settings().user_info, default_user_info)(user, channel))


def user_data(user: Any) -> dict[str, Any]:
    data = dict(load_callable(get_settings().user_data, default_user_data)(user))
    data["id"] = str(data.get("id") or user_id(user))
    return data
