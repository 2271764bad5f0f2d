"""The CI tier of the soak (RELIABILITY.md, "Soak"): scripts/soak.py against a real server, sized to run in
about a minute. The nightly run is `make soak` (100,000 cycles, then 1 hour of mixed traffic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"
CYCLES = int(os.environ.get("VASK_SOAK_CYCLES", "10000"))
MIXED_SECONDS = float(os.environ.get("VASK_SOAK_MIXED_SECONDS", "15"))


@pytest.mark.timeout(300)
def test_soak_ci_tier(tmp_path: Path) -> None:
    if not Path("/proc/self/status").exists():
        pytest.skip("the soak reads RSS and file descriptors from /proc (Linux)")
    out = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--cycles", str(CYCLES), "--mixed-seconds",
                           str(MIXED_SECONDS), "--json", str(out)], capture_output=True, text=True, timeout=280)
    assert out.exists(), done.stdout + done.stderr
    result = json.loads(out.read_text())
    churn, mixed = result["churn"], result["mixed"]
    print(f"soak: {churn['cycles']} cycles at {churn['cycles_per_second']}/s, RSS +{churn['rss_growth_mib']} MiB, "
          f"fds {churn['fds_baseline']} -> {churn['fds_end']}; mixed {mixed['seconds']}s: {mixed['publishes']} "
          f"publishes, {mixed['deliveries']} deliveries, RSS +{mixed['rss_growth_mib']} MiB; {result['errors']} errors")
    assert result["problems"] == [], (result["problems"], result["error_samples"], result["server_log_errors"])
    assert done.returncode == 0
    # every close path was exercised
    assert set(churn["closes"]) == {"clean", "reset", "pong_timeout"}, churn["closes"]
    assert mixed["publishes"] > 0 and mixed["deliveries"] > 0 and mixed["client_event_deliveries"] > 0
