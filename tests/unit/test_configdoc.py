"""docs/configuration.md is generated from the settings model; genconfig writes a file checkconfig accepts."""

from __future__ import annotations

import os
import socket
import stat
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from vask.cli import cli
from vask.config import Settings
from vask.configdoc import reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VASK_"):
            monkeypatch.delenv(name)


def test_reference_matches_the_settings_model() -> None:
    assert DOC.read_text(encoding="utf-8") == reference(), (
        "docs/configuration.md is out of date: run `vask config reference > docs/configuration.md`")
    for name in Settings.model_fields:
        assert f"`VASK_{name.upper()}`" in reference()


def test_genconfig_writes_a_private_valid_file_and_never_overwrites(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "vask.toml"
    assert runner.invoke(cli, ["genconfig", "-o", str(path)]).exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    settings = Settings.load(path)
    (app,) = settings.declared_apps()
    assert app.id.isdigit() and len(app.secret) >= 32 and settings.admin_token == data["admin_token"]
    second = tmp_path / "other.toml"
    runner.invoke(cli, ["genconfig", "-o", str(second)])
    assert tomllib.loads(second.read_text())["admin_token"] != data["admin_token"]  # random each time
    before = path.read_text()
    refused = runner.invoke(cli, ["genconfig", "-o", str(path)])
    assert refused.exit_code == 1 and "exists" in refused.output and path.read_text() == before
    result = runner.invoke(cli, ["--config", str(path), "--data-dir", str(tmp_path / "d"), "checkconfig"])
    assert result.exit_code == 0, result.output
    assert f"declared app: {app.id}" in result.output and "does not exist yet" in result.output
    assert not (tmp_path / "d" / "vask.db").exists()  # checking creates nothing


def test_checkconfig_names_the_bad_setting_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "vask.toml"
    path.write_text('port = 6001\n\n[[apps]]\nid = "1"\nkey = "k"\nsecret = "has space"\n')
    result = CliRunner().invoke(cli, ["--config", str(path), "checkconfig", "--offline"])
    assert result.exit_code == 1
    assert f"apps[0].secret ({path}:6): must be non-empty, printable and without spaces" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_checkconfig_reports_an_unreachable_store_and_broker(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{_free_port()}"
    runner = CliRunner()
    result = runner.invoke(cli, ["--database-url", f"postgresql://vask@{dead}/vask", "checkconfig"])
    assert result.exit_code == 1 and "app store: PostgreSQL at" in result.output and "does not answer" in result.output
    result = runner.invoke(cli, ["--database-url", "memory://", "checkconfig"], env={"VASK_BROKER": f"redis://{dead}/0"})
    assert result.exit_code == 1 and f"broker: redis://{dead}/0 does not answer" in result.output


def test_checkconfig_reaches_the_real_services() -> None:
    for port in (5432, 6379):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            pytest.skip(f"PostgreSQL (5432) and Redis (6379) are needed on 127.0.0.1; {port} does not answer")
    result = CliRunner().invoke(cli, ["--database-url", "postgresql://127.0.0.1/test", "checkconfig"],
                                env={"VASK_BROKER": "redis://127.0.0.1:6379/0"})
    assert result.exit_code == 0, result.output
    assert "app store: PostgreSQL at postgresql://127.0.0.1/test answers" in result.output
    assert "broker: redis://127.0.0.1:6379/0 answers" in result.output
