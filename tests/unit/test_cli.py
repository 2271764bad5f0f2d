"""The `vask` command line through click's CliRunner, on a temporary data directory (a real SQLite store)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from vask.apps.base import App, AppSettings, AppStoreError
from vask.apps.sqlite import SqliteAppStore
from vask.cli import cli
from vask.config import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VASK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def vask(data_dir: Path) -> Any:
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(cli, ["--data-dir", str(data_dir), *args], input=input, env=env)

    return invoke


def stored(data_dir: Path, app_id: str) -> App | None:
    store = SqliteAppStore(data_dir / "vask.db")
    try:
        return store.get_by_id(app_id)
    finally:
        store.close()


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def failed(result: Result, code: int, message: str) -> None:
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # click's clean exit, not an escaped exception


def create(vask: Any, app_id: str = "a1", key: str = "k1", *extra: str) -> dict[str, Any]:
    result = ok(vask("apps", "create", "--id", app_id, "--key", key, "--secret", f"secret-{app_id}",
                     "--json", *extra))
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# --------------------------------------------------------------------------------------------- create


def test_create_with_flags_and_set(vask: Any, data_dir: Path) -> None:
    data = create(vask, "a1", "k1", "--name", "Shop", "--client-events", "--user-auth",
                  "--user-auth-timeout", "45", "--subscription-count", "--max-connections", "12",
                  "--set", "max_presence_members=7", "--set", "max-batch-size=3",
                  "--set", "max_backend_events_per_second=none")
    assert data == {"id": "a1", "key": "k1", "secret": "secret-a1", "name": "Shop", "enabled": True,
                    "account": "default", "settings": AppSettings(client_events=True, user_authentication_required=True,
                                            user_authentication_timeout=45, subscription_count_events=True,
                                            max_connections=12, max_presence_members=7,
                                            max_batch_size=3).model_dump(mode="json")}
    app = stored(data_dir, "a1")
    assert app is not None
    assert app.settings.max_presence_members == 7
    assert app.settings.user_authentication_required is True
    assert app.secret == "secret-a1"


def test_create_with_set_booleans_as_the_test_fixture_does(vask: Any, data_dir: Path) -> None:
    create(vask, "a1", "k1", "--set", "client_events=true", "--set", "subscription_count_events=false")
    app = stored(data_dir, "a1")
    assert app is not None
    assert (app.settings.client_events, app.settings.subscription_count_events) == (True, False)


def test_create_generates_credentials(vask: Any, data_dir: Path) -> None:
    result = ok(vask("apps", "create", "--json", "--disabled"))
    data = json.loads(result.stdout)
    assert data["id"] and data["key"] and data["secret"] and data["secret"] != "***"
    assert data["enabled"] is False
    app = stored(data_dir, data["id"])
    assert app is not None and (app.key, app.secret, app.enabled) == (data["key"], data["secret"], False)


def test_create_text_output_shows_the_secret(vask: Any) -> None:
    result = ok(vask("apps", "create", "--id", "a1", "--key", "k1", "--secret", "s3cr3t"))
    assert "secret:  s3cr3t" in result.stdout
    assert "client_events" in result.stdout


def test_duplicate_id_and_key(vask: Any) -> None:
    create(vask, "a1", "k1")
    failed(vask("apps", "create", "--id", "a1", "--key", "k2"), 1, "an app with id 'a1' already exists")
    failed(vask("apps", "create", "--id", "a2", "--key", "k1"), 1, "an app with key 'k1' already exists")


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "colour=blue"], "unknown app setting 'colour'; valid fields: client_events,"),
    (["--set", "max_connections"], "expected FIELD=VALUE"),
    (["--set", "max_connections=-1"], "max_connections: Input should be greater than or equal to 0"),
    (["--set", "client_events=perhaps"], "client_events: Input should be a valid boolean"),
    (["--set", "max_event_data_bytes=none"], "max_event_data_bytes: Input should be a valid integer"),
    (["--client-events", "--set", "client_events=false"], "client_events is given more than once"),
    (["--max-connections", "lots"], "max_connections: Input should be a valid integer"),
    (["--user-auth-timeout", "0"], "--user-auth-timeout"),
    (["--id", "has space"], "Invalid value for '--id'"),
    (["--key", "a/b"], "Invalid value for '--key'"),
    (["--secret", "two words"], "Invalid value for '--secret'"),
])
def test_create_rejects_bad_options(vask: Any, data_dir: Path, args: list[str], message: str) -> None:
    failed(vask("apps", "create", *args), 2, message)
    assert not (data_dir / "vask.db").exists() or ok(vask("apps", "list", "--json")).stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------ list/show


def test_list_never_shows_secrets(vask: Any) -> None:
    create(vask, "a1", "k1", "--name", "First", "--client-events")
    create(vask, "a2", "k2", "--max-connections", "5")
    table = ok(vask("apps", "list")).stdout.splitlines()
    assert table[0].split() == ["ID", "KEY", "ENABLED", "CLIENT", "EVENTS", "MAX", "CONNECTIONS", "NAME"]
    assert table[1].split() == ["a1", "k1", "yes", "yes", "unlimited", "First"]
    assert table[2].split() == ["a2", "k2", "yes", "no", "5"]
    listed = json.loads(ok(vask("apps", "list", "--json")).stdout)
    assert [a["id"] for a in listed] == ["a1", "a2"]
    assert all("secret" not in a for a in listed)
    assert listed[1]["settings"]["max_connections"] == 5
    for output in (ok(vask("apps", "list")).stdout, ok(vask("apps", "list", "--json")).stdout):
        assert "secret-a1" not in output


def test_list_empty(vask: Any) -> None:
    create(vask, "a1", "k1")
    ok(vask("apps", "delete", "a1", "--yes"))
    assert "No apps" in ok(vask("apps", "list")).stdout
    assert json.loads(ok(vask("apps", "list", "--json")).stdout) == []


def test_show_masks_the_secret_unless_asked(vask: Any) -> None:
    create(vask, "a1", "k1")
    text = ok(vask("apps", "show", "a1")).stdout
    assert "secret:  ***" in text and "secret-a1" not in text
    assert json.loads(ok(vask("apps", "show", "a1", "--json")).stdout)["secret"] == "***"
    assert json.loads(ok(vask("apps", "show", "a1", "--json", "--show-secret")).stdout)["secret"] == "secret-a1"
    assert "secret:  secret-a1" in ok(vask("apps", "show", "a1", "--show-secret")).stdout


def test_show_unknown_app(vask: Any) -> None:
    create(vask, "a1", "k1")
    failed(vask("apps", "show", "nope"), 1, "no app with id 'nope'")


# ------------------------------------------------------------------------------- update and lifecycle


def test_update_changes_only_what_is_given(vask: Any, data_dir: Path) -> None:
    create(vask, "a1", "k1", "--name", "Old", "--client-events", "--max-connections", "9")
    result = ok(vask("apps", "update", "a1", "--name", "New", "--key", "k1b",
                     "--set", "max_connections=unlimited", "--set", "activity_timeout=60", "--json"))
    data = json.loads(result.stdout)
    assert data["secret"] == "***"
    assert (data["name"], data["key"]) == ("New", "k1b")
    app = stored(data_dir, "a1")
    assert app is not None
    assert (app.name, app.key, app.secret, app.enabled) == ("New", "k1b", "secret-a1", True)
    assert app.settings.client_events is True  # untouched
    assert app.settings.max_connections is None
    assert app.settings.activity_timeout == 60


def test_update_flags_turn_settings_off(vask: Any, data_dir: Path) -> None:
    create(vask, "a1", "k1", "--client-events", "--user-auth")
    ok(vask("apps", "update", "a1", "--no-client-events", "--no-user-auth", "--disabled"))
    app = stored(data_dir, "a1")
    assert app is not None
    assert (app.settings.client_events, app.settings.user_authentication_required, app.enabled) == (
        False, False, False)


def test_update_errors(vask: Any) -> None:
    create(vask, "a1", "k1")
    create(vask, "a2", "k2")
    failed(vask("apps", "update", "a1"), 2, "nothing to change")
    failed(vask("apps", "update", "nope", "--name", "x"), 1, "no app with id 'nope'")
    failed(vask("apps", "update", "a2", "--key", "k1"), 1, "an app with key 'k1' already exists")
    failed(vask("apps", "update", "a1", "--set", "max_batch_size=0"), 2, "max_batch_size")


def test_rotate_secret(vask: Any, data_dir: Path) -> None:
    create(vask, "a1", "k1")
    data = json.loads(ok(vask("apps", "rotate-secret", "a1", "--json")).stdout)
    assert data["secret"] not in ("secret-a1", "***")
    app = stored(data_dir, "a1")
    assert app is not None and app.secret == data["secret"]
    text = ok(vask("apps", "rotate-secret", "a1")).stdout
    app = stored(data_dir, "a1")
    assert app is not None and app.secret != data["secret"]
    assert f"secret:  {app.secret}" in text
    failed(vask("apps", "rotate-secret", "nope"), 1, "no app with id 'nope'")


def test_disable_and_enable(vask: Any, data_dir: Path) -> None:
    create(vask, "a1", "k1")
    assert "App a1 is disabled." in ok(vask("apps", "disable", "a1")).stdout
    app = stored(data_dir, "a1")
    assert app is not None and app.enabled is False
    ok(vask("apps", "disable", "a1"))  # idempotent
    ok(vask("apps", "enable", "a1"))
    app = stored(data_dir, "a1")
    assert app is not None and app.enabled is True
    failed(vask("apps", "disable", "nope"), 1, "no app with id 'nope'")


def test_delete_asks_first(vask: Any, data_dir: Path) -> None:
    create(vask, "a1", "k1")
    result = vask("apps", "delete", "a1", input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert stored(data_dir, "a1") is not None
    ok(vask("apps", "delete", "a1", input="y\n"))
    assert stored(data_dir, "a1") is None
    create(vask, "a2", "k2")
    assert "Deleted app a2." in ok(vask("apps", "delete", "a2", "--yes")).stdout
    assert stored(data_dir, "a2") is None
    failed(vask("apps", "delete", "a2", "--yes"), 1, "no app with id 'a2'")


# ------------------------------------------------------------------------------ stores and global flags


def test_data_dir_flag_beats_env(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"VASK_DATA_DIR": str(tmp_path / "from-env")}
    ok(runner.invoke(cli, ["--data-dir", str(tmp_path / "from-flag"), "apps", "create", "--id", "x"], env=env))
    assert (tmp_path / "from-flag" / "vask.db").exists()
    assert not (tmp_path / "from-env").exists()
    ok(runner.invoke(cli, ["apps", "create", "--id", "y"], env=env))
    assert (tmp_path / "from-env" / "vask.db").exists()


def test_database_url_flag_selects_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "custom.db"
    ok(CliRunner().invoke(cli, ["--database-url", f"sqlite:///{db}", "apps", "create", "--id", "x"]))
    store = SqliteAppStore(db)
    assert [a.id for a in store.list()] == ["x"]
    store.close()


def test_unreachable_store_is_a_clean_error() -> None:
    result = CliRunner().invoke(cli, ["--database-url", "postgresql://u:pw@127.0.0.1:1/x", "apps", "list"])
    failed(result, 1, "cannot connect to PostgreSQL")
    assert "pw@" not in result.output


def test_memory_store_warns_that_nothing_is_kept() -> None:
    result = ok(CliRunner().invoke(cli, ["--database-url", "memory://", "apps", "create", "--id", "x"]))
    assert "keeps nothing" in result.stderr


def test_bad_configuration_is_a_clean_error(vask: Any, tmp_path: Path) -> None:
    failed(vask("apps", "list", env={"VASK_PORT": "high"}), 1,
           "port (environment variable VASK_PORT): Input should be a valid integer")
    failed(vask("--config", str(tmp_path / "missing.toml"), "apps", "list"), 1, "config file not found")


# --------------------------------------------------------------------------------------------- config


def test_config_show_masks_and_round_trips(vask: Any, tmp_path: Path) -> None:
    conf = tmp_path / "vask.toml"
    conf.write_text('port = 7000\nlog_level = "debug"\n')
    env = {"VASK_DATABASE_URL": "postgresql://vask:hunter2@db:5432/vask", "VASK_MAX_CONNECTIONS": "100"}
    result = ok(vask("--config", str(conf), "config", "show", env=env))
    assert "hunter2" not in result.output
    assert 'database_url = "postgresql://vask:***@db:5432/vask"' in result.stdout
    shown = tomllib.loads(result.stdout)
    assert shown["port"] == 7000 and shown["log_level"] == "debug" and shown["max_connections"] == 100
    assert "ssl_cert" not in shown  # unset: commented out
    # The printed TOML is itself a valid config file giving the same settings (apart from the mask).
    again = tmp_path / "again.toml"
    again.write_text(result.stdout)
    reloaded = Settings.load(again, database_url=None)
    assert (reloaded.port, reloaded.max_connections, reloaded.log_level) == (7000, 100, "debug")


def test_config_show_json(vask: Any, data_dir: Path) -> None:
    data = json.loads(ok(vask("--database-url", "postgresql://a:b@h/db", "config", "show", "--json")).stdout)
    assert data["database_url"] == "postgresql://a:***@h/db"
    assert data["data_dir"] == str(data_dir)
    assert data["port"] == 6001


# ---------------------------------------------------------------------------------------------- serve


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Settings]]:
    """Stand in for vask.server.main (tested by the integration suite) to see the Settings serve builds."""
    calls: list[Settings] = []
    module = types.ModuleType("vask.server.main")
    module.run = calls.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vask.server.main", module)
    yield calls


def test_serve_passes_flags_as_settings(vask: Any, data_dir: Path, fake_server: list[Settings]) -> None:
    ok(vask("serve", "--port", "0", "--host", "0.0.0.0", "--no-default-app"))
    (settings,) = fake_server
    assert (settings.port, settings.host, settings.create_default_app) == (0, "0.0.0.0", False)
    assert settings.data_dir == data_dir


def test_start_is_serve_and_env_applies(vask: Any, fake_server: list[Settings], tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("c")
    key.write_text("k")
    ok(vask("start", "--ssl-cert", str(cert), "--ssl-key", str(key), env={"VASK_PORT": "7007"}))
    (settings,) = fake_server
    assert (settings.port, settings.create_default_app, settings.ssl_cert, settings.ssl_key) == (
        7007, True, cert, key)


def test_serve_validates_flags(vask: Any, fake_server: list[Settings], tmp_path: Path) -> None:
    failed(vask("serve", "--port", "70000"), 2, "--port")
    failed(vask("serve", "--ssl-cert", str(tmp_path / "missing.pem")), 2, "--ssl-cert")
    cert = tmp_path / "cert.pem"
    cert.write_text("c")
    failed(vask("serve", "--ssl-cert", str(cert)), 1, "ssl_cert and ssl_key must be given together")
    assert fake_server == []


@pytest.mark.parametrize(("error", "message"), [
    (AppStoreError("cannot connect to PostgreSQL: refused"), "cannot connect to PostgreSQL: refused"),
    (OSError(98, "address already in use"), "cannot start the server: [Errno 98] address already in use"),
])
def test_serve_startup_failures_are_clean(vask: Any, monkeypatch: pytest.MonkeyPatch, error: Exception,
                                          message: str) -> None:
    def run(settings: Settings) -> None:
        raise error

    module = types.ModuleType("vask.server.main")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vask.server.main", module)
    failed(vask("serve"), 1, message)


def test_python_dash_m_vask(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VASK_")}
    done = subprocess.run([sys.executable, "-m", "vask", "--data-dir", str(data_dir), "apps", "create",
                           "--id", "m1", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == "m1"
    version = subprocess.run([sys.executable, "-m", "vask", "--version"], capture_output=True, text=True,
                             env=env, timeout=60)
    assert version.returncode == 0 and "0.1.0" in version.stdout


# ------------------------------------------------------------------------------------------- footguns


@pytest.mark.parametrize("args", [
    ["apps", "list"], ["apps", "show", "1"], ["apps", "update", "1", "--name", "x"], ["apps", "rotate-secret", "1"],
    ["apps", "disable", "1"], ["apps", "delete", "1", "--yes"], ["apps", "webhooks", "list", "1"],
    ["accounts", "list"], ["accounts", "show", "default"], ["plans", "list"], ["usage"],
    ["bill", "--account", "default"],
])
def test_read_only_commands_never_create_an_empty_store(vask: Any, data_dir: Path, args: list[str]) -> None:
    failed(vask(*args), 1, f"no app store at {data_dir / 'vask.db'}")
    assert not (data_dir / "vask.db").exists()


def test_create_says_it_creates_a_new_store(vask: Any, data_dir: Path) -> None:
    result = ok(vask("apps", "create", "--id", "123"))
    assert f"Creating a new app store: SQLite at {data_dir / 'vask.db'}" in result.stderr
    assert "Creating a new app store" not in ok(vask("apps", "create", "--id", "124")).stderr


def test_create_with_a_non_numeric_id_warns_about_pusher_http_python(vask: Any) -> None:
    result = ok(vask("apps", "create", "--id", "app-x"))
    assert "pusher-http-python refuses app ids that are not all digits" in result.stderr
    assert "pusher-http-python" not in ok(vask("apps", "create", "--id", "4711")).stderr
