"""A PostgreSQL server of a test's own (initdb + postgres on a free port), which the test may kill and restart.

The machine's shared PostgreSQL is never stopped. As root, the server runs as the ``postgres`` user (PostgreSQL
refuses to run as root); without initdb, or as root without a ``postgres`` user, ``problem()`` says why.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from private_nats import free_port, reachable


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _user() -> str | None:
    """The user the server must run as (None: this one)."""
    return "postgres" if os.geteuid() == 0 else None


def problem() -> str | None:
    if _bin("initdb") is None or _bin("postgres") is None:
        return "PostgreSQL's initdb/postgres are not installed (Debian package postgresql)"
    user = _user()
    if user is not None:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return "running as root and there is no postgres user to run a private PostgreSQL as"
    return None


class PrivatePostgres:
    """Its files live in a directory of its own under the system temp dir (pytest's tmp_path is private to
    root, so the postgres user could not reach it), removed by ``stop``."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="vask-pg-"))
        self.data = self.workdir / "pgdata"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, *args: str) -> list[str]:
        user = _user()
        return ["runuser", "-u", user, "--", *args] if user else list(args)

    def _own(self) -> None:
        user = _user()
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (self.workdir, *self.workdir.rglob("*")):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.data.exists():
            self._own()
            initdb = _bin("initdb")
            assert initdb is not None
            subprocess.run(self._command(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust",
                                         "--no-sync"), check=True, capture_output=True, timeout=120)
        self._own()
        postgres = _bin("postgres")
        assert postgres is not None
        self.process = subprocess.Popen(self._command(
            postgres, "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.workdir),
            # fsync off: a killed process (not a crashed machine) loses nothing; synchronous_commit stays on, so
            # a commit that returned is in the WAL when the test kills the server.
            "-c", "fsync=off", "-c", "full_page_writes=off"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not self._ready():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"postgres did not start on port {self.port}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        if not reachable("127.0.0.1", self.port):
            return False
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (as a crashed or vanished database host)."""
        if self.process is None:
            return
        pid = self._postmaster_pid()
        if pid is not None:
            subprocess.run(["pkill", "-KILL", "-P", str(pid)], check=False)  # its backends, by parent pid
            os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait()
        self.process = None
        deadline = time.monotonic() + 10
        while reachable("127.0.0.1", self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        (self.data / "postmaster.pid").unlink(missing_ok=True)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
