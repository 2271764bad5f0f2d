"""How a user shows up on the presence indicator (``VASK["USER_INFO"]`` in settings names this function)."""

import hashlib
from typing import Any


def member_info(user: Any, channel: str | None) -> dict[str, Any]:
    name = user.get_full_name() or user.get_username()
    initials = "".join(part[0] for part in name.split()[:2]).upper() or "?"
    hue = int(hashlib.sha256(str(user.pk).encode()).hexdigest()[:4], 16) % 360
    return {"name": name, "initials": initials, "color": f"hsl({hue} 55% 45%)"}
