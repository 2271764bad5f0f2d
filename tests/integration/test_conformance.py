"""The Autobahn-style conformance run (tests/integration/ws_cases.py) against a real server: 0 FAILED.

The CI tier runs the quick cases; VASK_CONFORMANCE_FULL=1 (`make reliability`) runs every case, and
VASK_CONFORMANCE_REPORT=path writes the results table there (RELIABILITY.md summarises it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.integration import ws_cases

APP = {"id": "1", "key": "ckey", "secret": "csecret"}


def test_autobahn_style_conformance(server_factory: Any) -> None:
    server = server_factory([APP])
    full = os.environ.get("VASK_CONFORMANCE_FULL") == "1"
    results = ws_cases.run_all(server.host, server.port, "ckey", 64 * 1024, full)
    report = ws_cases.table(results)
    if os.environ.get("VASK_CONFORMANCE_REPORT"):
        Path(os.environ["VASK_CONFORMANCE_REPORT"]).write_text(report, encoding="utf-8")
    print(report.splitlines()[0])
    failed = [r for r in results if r.status == ws_cases.FAILED]
    assert not failed, "\n".join(f"{r.id} {r.title}: {r.detail}" for r in failed)
    assert len(results) >= (180 if full else 140)
    # The server is still there and silent about it: no traceback in its log.
    assert server.process.poll() is None
    assert "Traceback" not in "".join(server.output)
