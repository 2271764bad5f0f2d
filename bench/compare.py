"""Before/after fan-out: the same scenario on two commits, interleaved, on the harness of bench/run.py.

For a change that must not move the fan-out (e.g. the debug console's emit points while no console is
open). Each commit's ``src/`` is exported (``git archive``) to a temporary directory and served by this
interpreter with that directory first on ``PYTHONPATH``; runs alternate (A B, B A, ...) on freshly started
servers, pinned as in run.py (server CPU 0, load generator CPU 1), in a private network namespace.

    python bench/compare.py 04ffed4 HEAD --reps 6 --subs 1000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run  # noqa: E402  (bench/run.py: Server, fanout, the load generator)


def export(rev: str, into: Path) -> Path:
    """``rev``'s src/ under ``into``, with a .venv/bin/vask that runs it (what run.Server starts)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(run.ROOT), "archive", rev, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    shim = into / ".venv" / "bin" / "vask"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={into / "src"} exec {sys.executable} -m vask "$@"\n')
    shim.chmod(0o755)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    if os.environ.get("VASK_BENCH_NETNS") != "1":
        os.execvp("unshare", ["unshare", "-n", "env", "VASK_BENCH_NETNS=1", sys.executable, *sys.argv])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if not run.LOADGEN.exists():
        sys.exit("bench/loadgen is missing: run `make bench-build`")
    results: dict[str, list[float]] = {args.before: [], args.after: []}
    with tempfile.TemporaryDirectory(prefix="vask-compare-") as tmp:
        trees = {rev: export(rev, Path(tmp) / f"t{i}") for i, rev in enumerate(results)}
        log = Path(tmp) / "servers.log"
        for rep in range(args.reps):
            order = list(trees) if rep % 2 == 0 else list(reversed(trees))
            for rev in order:
                run.ROOT = trees[rev]  # run.Server starts ROOT/.venv/bin/vask
                with run.running("vask", log) as server:
                    result = run.fanout(server, subs=args.subs, channels=1, publish="closed:2",
                                        duration=args.duration)
                results[rev].append(result["deliveries_per_cpu_s"])
                print(json.dumps({"rev": rev, "rep": rep, **{k: result[k] for k in (
                    "deliveries_per_cpu_s", "deliveries_per_s", "server_cpu_pct", "lost", "dups")}}), flush=True)
    for rev, values in results.items():
        print(f"{rev}: median {statistics.median(values):,.0f} deliveries/CPU-s "
              f"({min(values):,.0f}-{max(values):,.0f}), {len(values)} runs")
    before, after = (statistics.median(v) for v in results.values())
    print(f"after / before: {after / before:.3f}")


if __name__ == "__main__":
    main()
