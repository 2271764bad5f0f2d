"""Two commits measured in alternating subprocesses pinned to one core (bench/publish_cost.py, http_cost.py).

Each repetition runs the child program once per commit, alternating which goes first; the child prints one
JSON line last, whose ``key`` is the figure compared. On a shared machine other work only ever adds time, so
the fastest runs are also compared.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export(rev: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def compare(child: str, child_args: list[str], before: str, after: str, reps: int, key: str, what: str) -> None:
    results: dict[str, list[float]] = {before: [], after: []}
    with tempfile.TemporaryDirectory(prefix="vask-cost-") as tmp:
        trees = {rev: export(rev, Path(tmp) / f"t{i}") for i, rev in enumerate(results)}
        for rep in range(reps):
            for rev in (list(trees) if rep % 2 == 0 else list(reversed(trees))):
                done = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", child, *child_args],
                                      env={"PYTHONPATH": str(trees[rev])}, capture_output=True, text=True,
                                      check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[rev].append(result[key])
                print(json.dumps({"rev": rev, "rep": rep, **result}), flush=True)
    for rev, values in results.items():
        print(f"{rev}: median {statistics.median(values):.1f} µs {what} ({min(values):.1f}-{max(values):.1f}), "
              f"{len(values)} runs")
    print(f"after / before, fastest runs: {min(results[after]) / min(results[before]):.3f}")
    print(f"after / before: {statistics.median(results[after]) / statistics.median(results[before]):.3f}")
