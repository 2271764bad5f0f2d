#!/usr/bin/env python3
"""Install Vask as a user would and use it: the documented install commands, tested (run by .ci/run).

1. `python -m build` makes an sdist and a wheel from a clean copy of the tracked files (plus probe files under
   src/vask/dashboard/, which must ship in the wheel like the dashboard's own files will).
2. The wheel goes into a fresh venv: `vask --version`, `vask serve` on port 0 with a fresh data dir, the
   development app answers pusher-js (Node, tests/js) and pusher-http-python publishes to it.
3. The sdist goes into a second fresh venv and `vask serve` answers /ready.

Usage: python3 scripts/check_install.py [--keep DIR] [--require-js]
Needs network or a pip cache for the dependencies, and Node >= 20 with tests/js/node_modules installed for the
pusher-js step (skipped, saying so, without them; --require-js makes that a failure, as CI does).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTEN = re.compile(r"listening on (wss?)://([^:\s]+):(\d+)")
SHIPPED = re.compile(r"\.(html|css|js|svg|png|ico|json|txt|woff2)$|py\.typed$")
NODE_CLIENT = r"""
import Pusher from 'pusher-js';
const [port, key] = process.argv.slice(2);
const pusher = new Pusher(key, {cluster: '', wsHost: '127.0.0.1', wsPort: +port, forceTLS: false,
                                enabledTransports: ['ws'], disableStats: true});
const channel = pusher.subscribe('install-check');
channel.bind('pusher:subscription_succeeded', () => console.log(JSON.stringify({subscribed: true})));
channel.bind('hello', (data) => { console.log(JSON.stringify({event: data})); pusher.disconnect(); process.exit(0); });
setTimeout(() => { console.log(JSON.stringify({timeout: pusher.connection.state})); process.exit(1); }, 15000);
"""


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(map(str, args)), flush=True)
    return subprocess.run([str(a) for a in args], check=True, text=True, **kwargs)  # type: ignore[call-overload]


def clean_copy(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    probes = target / "src" / "vask" / "dashboard"
    for probe in ("static/install-probe.css", "static/js/install-probe.js", "templates/install-probe.html"):
        path = probes / probe
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("/* probe: package data must reach the wheel */\n")


def check_wheel_contents(wheel: Path, tree: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {str(p.relative_to(tree / "src")) for p in (tree / "src" / "vask").rglob("*")
              if p.is_file() and SHIPPED.search(p.name)}
    missing = sorted(wanted - names)
    if missing:
        sys.exit(f"the wheel lacks package data: {missing}")
    print(f"wheel carries all {len(wanted)} data files (py.typed, dashboard probes included)", flush=True)


def serve(venv: Path, data_dir: Path) -> tuple[subprocess.Popen[str], int, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VASK_")}
    env["VASK_DATA_DIR"] = str(data_dir)
    process = subprocess.Popen([str(venv / "bin" / "vask"), "serve", "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env, cwd=data_dir.parent)
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        match = LISTEN.search(line)
        if match:
            return process, int(match.group(3)), lines
    sys.exit("vask serve exited before listening:\n" + "".join(lines))


def pusher_js_round_trip(port: int, required: bool) -> None:
    node, modules = shutil.which("node"), ROOT / "tests" / "js" / "node_modules"
    if node is None or not (modules / "pusher-js").exists():
        message = "the pusher-js step needs node and tests/js/node_modules (cd tests/js && npm ci)"
        if required:
            sys.exit(message)
        print(f"SKIPPED: {message}")
        return
    script = ROOT / "tests" / "js" / f".install-check-{os.getpid()}.mjs"  # beside node_modules, to import it
    script.write_text(NODE_CLIENT)
    try:
        client = subprocess.Popen([node, str(script), str(port), "app-key"], stdout=subprocess.PIPE, text=True)
        assert client.stdout is not None
        first = json.loads(client.stdout.readline() or "{}")
        if not first.get("subscribed"):
            sys.exit(f"pusher-js did not subscribe: {first}")
        publish = ("import pusher; print(pusher.Pusher(app_id='100000', key='app-key', secret='app-secret', "
                   f"host='127.0.0.1', port={port}, ssl=False).trigger('install-check', 'hello', {{'ok': 1}}))")
        run(sys.executable, "-c", publish)  # this interpreter has pusher-http-python (the test extra)
        event = json.loads(client.stdout.readline() or "{}")
        client.wait(timeout=10)
        if event.get("event") != {"ok": 1}:
            sys.exit(f"pusher-js did not receive the event: {event}")
        print("pusher-js received the event published with pusher-http-python", flush=True)
    finally:
        script.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--require-js", action="store_true", help="fail instead of skipping the pusher-js step")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="vask-install-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        tree = work / "tree"
        clean_copy(tree)
        # From the work folder: a build/ folder in the current one (CI's second venv) would shadow the package.
        run(sys.executable, "-m", "build", "--outdir", work / "dist", tree, capture_output=True, cwd=work)
        wheel = next((work / "dist").glob("vask-*.whl"))
        sdist = next((work / "dist").glob("vask-*.tar.gz"))
        check_wheel_contents(wheel, tree)
        for kind, artefact in (("wheel", wheel), ("sdist", sdist)):
            venv = work / f"venv-{kind}"
            run(sys.executable, "-m", "venv", venv)
            run(venv / "bin" / "pip", "install", "-q", artefact)
            print(run(venv / "bin" / "vask", "--version", capture_output=True).stdout.strip(), flush=True)
            process, port, lines = serve(venv, work / f"data-{kind}")
            try:
                text = "".join(lines)
                if "id=100000" not in text or f"App store: SQLite at {work / f'data-{kind}' / 'vask.db'}" not in text:
                    sys.exit(f"unexpected banner:\n{text}")
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
                    assert response.read() == b"OK"
                if kind == "wheel":
                    pusher_js_round_trip(port, args.require_js)
            finally:
                process.terminate()
                process.wait(timeout=15)
            print(f"{kind}: installed in a fresh venv, `vask serve` works", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"install check passed in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
