"""`vask apps webhooks add|list|remove` through click's CliRunner on a real SQLite store."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from vask.apps.base import WebhookTarget
from vask.apps.sqlite import SqliteAppStore
from vask.cli import cli


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VASK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def vask(tmp_path: Path) -> Any:
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, ["--data-dir", str(tmp_path), *args], env=env)

    assert invoke("apps", "create", "--id", "7", "--key", "k7", "--secret", "s7").exit_code == 0
    return invoke


def targets(tmp_path: Path) -> list[WebhookTarget]:
    store = SqliteAppStore(tmp_path / "vask.db")
    try:
        app = store.get_by_id("7")
        assert app is not None
        return app.settings.webhooks
    finally:
        store.close()


def test_add_stores_the_target_with_its_filters(vask: Any, tmp_path: Path) -> None:
    result = vask("apps", "webhooks", "add", "7", "https://hooks.example.com/pusher", "--event", "member_added",
                  "--event", "member_removed", "--prefix", "presence-", "--suffix", "-room",
                  "--header", "Authorization: Bearer abc", "--batch", "--batch-window", "0.2")
    assert result.exit_code == 0, result.output
    assert "Added webhook 1 of app 7" in result.output
    assert targets(tmp_path) == [WebhookTarget(
        url="https://hooks.example.com/pusher", event_types=["member_added", "member_removed"],
        channel_prefix="presence-", channel_suffix="-room", headers={"Authorization": "Bearer abc"}, batch=True,
        batch_window=0.2)]
    assert vask("apps", "webhooks", "add", "7", "https://other.example.com/").exit_code == 0
    assert [t.url for t in targets(tmp_path)] == ["https://hooks.example.com/pusher", "https://other.example.com/"]


def test_list_numbers_targets_and_masks_header_values(vask: Any) -> None:
    assert "has no webhooks" in vask("apps", "webhooks", "list", "7").output
    vask("apps", "webhooks", "add", "7", "https://a.example.com/", "--header", "X-Token: secret-value")
    vask("apps", "webhooks", "add", "7", "https://b.example.com/", "--event", "client_event", "--batch")
    table = vask("apps", "webhooks", "list", "7").output
    lines = table.splitlines()
    assert lines[0].split() == ["#", "URL", "EVENTS", "CHANNELS", "BATCH", "HEADERS"]
    assert lines[1].split() == ["1", "https://a.example.com/", "all", "all", "no", "X-Token"]
    assert lines[2].split() == ["2", "https://b.example.com/", "client_event", "all", "yes", "-"]
    data = json.loads(vask("apps", "webhooks", "list", "7", "--json").output)
    assert data[0]["headers"] == {"X-Token": "***"} and "secret-value" not in table


def test_remove_by_number_or_url(vask: Any, tmp_path: Path) -> None:
    for host in "abc":
        vask("apps", "webhooks", "add", "7", f"https://{host}.example.com/")
    assert vask("apps", "webhooks", "remove", "7", "2").exit_code == 0
    assert vask("apps", "webhooks", "remove", "7", "https://c.example.com/").exit_code == 0
    assert [t.url for t in targets(tmp_path)] == ["https://a.example.com/"]
    missing = vask("apps", "webhooks", "remove", "7", "https://nope.example.com/")
    assert missing.exit_code == 1 and "has no webhook" in missing.output


@pytest.mark.parametrize(("args", "code", "message"), [
    (("ftp://x.example.com/",), 2, "http:// or https://"),
    (("https://x.example.com/", "--event", "channel_closed"), 2, "channel_closed"),
    (("https://x.example.com/", "--header", "no colon"), 2, "Name: value"),
    (("https://x.example.com/", "--header", "X-Pusher-Signature: forged"), 2, "set by Vask"),
])
def test_add_rejects_bad_targets(vask: Any, tmp_path: Path, args: tuple[str, ...], code: int,
                                 message: str) -> None:
    result = vask("apps", "webhooks", "add", "7", *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert targets(tmp_path) == []


def test_add_refuses_a_duplicate_url_and_an_unknown_app(vask: Any) -> None:
    assert vask("apps", "webhooks", "add", "7", "https://a.example.com/").exit_code == 0
    again = vask("apps", "webhooks", "add", "7", "https://a.example.com/")
    assert again.exit_code == 1 and "already has a webhook" in again.output
    unknown = vask("apps", "webhooks", "list", "8")
    assert unknown.exit_code == 1 and "no app with id '8'" in unknown.output


def test_add_warns_about_urls_the_server_will_refuse(vask: Any) -> None:
    result = vask("apps", "webhooks", "add", "7", "http://127.0.0.1:8000/hook")
    assert result.exit_code == 0 and "warning: 127.0.0.1 is loopback" in result.output
    assert "warning" in vask("apps", "webhooks", "add", "7", "http://localhost/x").output
    allowed = vask("apps", "webhooks", "add", "7", "http://10.0.0.5/x", env={"VASK_WEBHOOK_ALLOW_PRIVATE": "true"})
    assert allowed.exit_code == 0 and "warning" not in allowed.output
    https = vask("apps", "webhooks", "add", "7", "http://hooks.example.com/", env={"VASK_WEBHOOK_REQUIRE_HTTPS": "1"})
    assert "webhook_require_https" in https.output
