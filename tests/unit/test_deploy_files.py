"""The deployment files as far as this machine can run them: the systemd unit through systemd-analyze, the compose
file's structure (and `docker compose config` where Docker Compose is installed), the Dockerfile's promises.

Not run here: building the image (no Docker daemon; .ci/run runs its build steps, deploy/docker/build.sh, outside
Docker) and starting the compose stack.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (DEPLOY / "systemd" / "vask.service").read_text()
    assert "ExecStart=/opt/vask/bin/vask --config /etc/vask/vask.toml serve" in unit
    # verify checks that ExecStart exists: point it at this environment's vask
    vask = Path(sys.executable).with_name("vask")
    copy = tmp_path / "vask.service"
    copy.write_text(unit.replace("/opt/vask/bin/vask", str(vask)))
    verified = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    security = subprocess.run([analyze, "security", "--offline=yes", str(copy)], capture_output=True, text=True,
                              timeout=60)
    match = re.search(r"Overall exposure level for vask.service: ([0-9.]+)", security.stdout)
    if match is None:
        pytest.skip(f"systemd-analyze security --offline is not supported here: {security.stderr.strip()}")
    assert float(match.group(1)) <= 2.0, security.stdout  # "OK" on systemd's 0-10 scale


def test_compose_file_has_two_nodes_sharing_redis_and_postgres_behind_nginx() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "postgres", "vask1", "vask2", "nginx"}
    for name in ("vask1", "vask2"):
        node = services[name]
        env = node["environment"]
        assert env["VASK_BROKER"] == "redis://redis:6379/0"
        assert env["VASK_DATABASE_URL"].startswith("postgresql://vask:vask@postgres:5432/")
        assert node["depends_on"] == {"redis": {"condition": "service_healthy"},
                                      "postgres": {"condition": "service_healthy"}}
        assert (DEPLOY / node["build"]["context"] / "Dockerfile").exists()
    for name in ("redis", "postgres"):
        assert "healthcheck" in services[name]
    mounts = {volume.split(":")[0] for volume in services["nginx"]["volumes"]}
    assert all((DEPLOY / mount).exists() for mount in mounts), mounts
    assert services["nginx"]["depends_on"]["vask1"] == {"condition": "service_healthy"}  # the image's HEALTHCHECK


def test_compose_nginx_config_is_the_recipe_with_both_nodes() -> None:
    recipe = (DEPLOY / "nginx" / "vask.conf").read_text()
    expected = recipe.replace("    server 127.0.0.1:6001;\n    # server 127.0.0.1:6002;",
                              "    server vask1:6001;\n    server vask2:6001;")
    expected = expected[:expected.rindex("server {")].rstrip() + "\n"
    compose_copy = (DEPLOY / "compose" / "nginx" / "vask.conf").read_text()
    assert compose_copy.split("\n", 1)[1] == expected, "regenerate deploy/compose/nginx/vask.conf from the recipe"


def test_docker_compose_config_check() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed: `docker compose config` not run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("Docker Compose is not installed: `docker compose config` not run")
    done = subprocess.run([docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_dockerfile_is_slim_non_root_and_checks_ready() -> None:
    text = (ROOT / "Dockerfile").read_text()
    bases = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert bases and all(base.endswith("-slim") for base in bases), bases
    assert re.search(r"^USER vask$", text, re.M) and "--uid 10001" in text
    assert 'CMD ["/opt/vask/bin/python", "-m", "vask.healthcheck"]' in text
    assert "COPY deploy/docker/build.sh" in text and (DEPLOY / "docker" / "build.sh").exists()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
