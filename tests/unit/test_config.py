"""Settings: defaults, the TOML file, VASK_* env and CLI overrides in that order of strength; masking."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vask.config import ConfigError, Settings, default_data_dir
from vask.masking import MASK, mask_url, secret_mask


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VASK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    path = tmp_path / "vask.toml"
    path.write_text('host = "0.0.0.0"\nport = 7000\nlog_level = "warning"\nmax_connections = 50\n'
                    'data_dir = "/srv/vask"\n')
    return path


def test_defaults() -> None:
    s = Settings.load()
    assert (s.host, s.port, s.data_dir, s.database_url) == ("127.0.0.1", 6001, default_data_dir(), None)
    assert (s.ssl_cert, s.ssl_key, s.create_default_app, s.max_connections) == (None, None, True, None)
    assert (s.shutdown_grace, s.pong_timeout, s.app_cache_ttl, s.sweep_interval) == (10.0, 30, 5.0, 1.0)
    assert (s.max_ws_frame_bytes, s.max_http_body_bytes, s.max_outbox_bytes) == (65536, 1048576, 1048576)
    assert s.log_level == "info"
    assert s.tls is False


def test_toml_over_defaults(toml: Path) -> None:
    s = Settings.load(toml)
    assert (s.host, s.port, s.log_level, s.max_connections) == ("0.0.0.0", 7000, "warning", 50)
    assert s.data_dir == Path("/srv/vask")
    assert s.pong_timeout == 30  # not in the file: default


def test_env_over_toml(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VASK_PORT", "8000")
    monkeypatch.setenv("VASK_CREATE_DEFAULT_APP", "false")
    monkeypatch.setenv("VASK_LOG_LEVEL", "DEBUG")
    s = Settings.load(toml)
    assert s.port == 8000
    assert s.create_default_app is False
    assert s.log_level == "debug"
    assert s.host == "0.0.0.0"  # only in the file


def test_cli_overrides_over_env(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VASK_PORT", "8000")
    monkeypatch.setenv("VASK_HOST", "10.0.0.1")
    s = Settings.load(toml, port=0, host=None, data_dir=Path("/tmp/x"))
    assert s.port == 0
    assert s.host == "10.0.0.1"  # None means the flag was not given
    assert s.data_dir == Path("/tmp/x")


def test_empty_env_value_counts_as_unset(toml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VASK_MAX_CONNECTIONS", "")
    assert Settings.load(toml).max_connections == 50


def test_toml_of_one_load_does_not_leak_into_the_next(toml: Path) -> None:
    assert Settings.load(toml).port == 7000
    assert Settings.load().port == 6001
    assert Settings().port == 6001


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("prot = 6001\n")
    with pytest.raises(ConfigError, match=r"prot \(.*bad.toml:1\): unknown setting \(known: host, port") as info:
        Settings.load(path)
    assert str(path) in str(info.value)


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"colour \(option --colour\): unknown setting"):
        Settings.load(None, colour="blue")


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("port = = 1\n")
    with pytest.raises(ConfigError, match=f"cannot read config file {path}"):
        Settings.load(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        Settings.load(tmp_path / "nope.toml")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("port", 70000, "less than or equal to 65535"),
    ("port", -1, "greater than or equal to 0"),
    ("pong_timeout", 0, "greater than or equal to 1"),
    ("sweep_interval", 0, "greater than 0"),
    ("log_level", "loud", "'debug', 'info'"),
    ("max_connections", -5, "greater than or equal to 0"),
])
def test_invalid_values(field: str, value: object, message: str) -> None:
    # The message names the setting and where the bad value came from (here: a command-line option).
    with pytest.raises(ConfigError, match=rf"{field} \(option --{field.replace('_', '-')}\): .*{message}"):
        Settings.load(None, **{field: value})


def test_invalid_env_value_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VASK_PORT", "sixty")
    with pytest.raises(ConfigError, match=r"port \(environment variable VASK_PORT\): .*valid integer.*'sixty'"):
        Settings.load()


def test_ssl_cert_and_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ssl_cert and ssl_key must be given together"):
        Settings.load(None, ssl_cert=tmp_path / "cert.pem")
    s = Settings.load(None, ssl_cert=tmp_path / "cert.pem", ssl_key=tmp_path / "key.pem")
    assert s.tls is True


def test_home_is_expanded() -> None:
    assert Settings.load(None, data_dir=Path("~/vaskdata")).data_dir == Path.home() / "vaskdata"


@pytest.mark.parametrize(("url", "kind", "sqlite_path"), [
    (None, "sqlite", Path("/data/vask.db")),
    ("sqlite:///rel/apps.db", "sqlite", Path("rel/apps.db")),
    ("sqlite:////abs/apps.db", "sqlite", Path("/abs/apps.db")),
    ("postgresql://u:p@db:5432/vask", "postgresql", None),
    ("postgres://db/vask", "postgresql", None),
    ("memory://", "memory", None),
])
def test_database_url_selects_the_store(url: str | None, kind: str, sqlite_path: Path | None) -> None:
    s = Settings.load(None, data_dir=Path("/data"), database_url=url)
    assert s.store_kind == kind
    assert s.sqlite_path == sqlite_path


@pytest.mark.parametrize("url", ["mysql://u@h/db", "vask.db", "sqlite:///"])
def test_database_url_rejected(url: str) -> None:
    with pytest.raises(ConfigError, match="database_url"):
        Settings.load(None, database_url=url)


def test_rejected_database_url_does_not_echo_its_password() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(None, database_url="mysql://admin:s3cr3t-pw@db/vask")
    assert "s3cr3t-pw" not in str(info.value)
    assert "mysql://admin:***@db/vask" in str(info.value)


def test_masked_dict_hides_the_database_password() -> None:
    s = Settings.load(None, database_url="postgresql://vask:s3cr3t-pw@db:5432/vask?sslmode=require")
    masked = s.masked_dict()
    assert masked["database_url"] == "postgresql://vask:***@db:5432/vask?sslmode=require"
    text = json.dumps(masked)  # JSON-compatible throughout
    assert "s3cr3t-pw" not in text
    assert masked["port"] == 6001
    assert masked["data_dir"] == str(default_data_dir())
    assert set(masked) == set(Settings.model_fields)
    assert s.database_url is not None and "s3cr3t-pw" in s.database_url  # the real value is untouched


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://u:p@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("postgresql://h/db?password=x&sslmode=require", "postgresql://h/db?password=***&sslmode=require"),
    ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
    ("sqlite:///relative.db", "sqlite:///relative.db"),
    ("sqlite:////abs.db", "sqlite:////abs.db"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_secret_mask_keeps_unset_visible() -> None:
    assert secret_mask("abc") == MASK
    assert secret_mask("") == ""
    assert secret_mask(None) is None


def test_workers_need_an_admin_port_each() -> None:
    ok = Settings.load(None, admin_token="t", admin_port=65534, workers=2, broker="redis://127.0.0.1:6379")
    assert (ok.admin_port, ok.workers) == (65534, 2)
    with pytest.raises(ConfigError, match="admin_port 65535 leaves no port"):
        Settings.load(None, admin_token="t", admin_port=65535, workers=2, broker="redis://127.0.0.1:6379")
    assert Settings.load(None, admin_port=65535, workers=2, broker="redis://x:1").workers == 2  # admin API off
