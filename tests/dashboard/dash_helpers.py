"""Drive the dashboard's aiohttp app like a browser would: CSRF tokens read from the forms, cookies kept."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

CSRF_RE = re.compile(r'name="csrf" value="([^"]*)"')


async def csrf(client: TestClient[Any, Any], path: str) -> str:
    text = await (await client.get(path)).text()
    found = CSRF_RE.search(text)
    assert found, f"no CSRF field on {path}"
    return found.group(1)


async def post(client: TestClient[Any, Any], path: str, form: dict[str, Any], page: str | None = None) -> Any:
    """POST ``form`` with the CSRF token of ``page`` (default: ``path``), without following redirects."""
    token = await csrf(client, page or path)
    return await client.post(path, data={**form, "csrf": token}, allow_redirects=False)


async def signup(client: TestClient[Any, Any], email: str, account: str = "Acme",
                 password: str = "correct horse battery") -> Any:
    response = await post(client, "/signup", {"account": account, "email": email, "password": password})
    assert response.status == 303, await response.text()
    return response
