"""The server's log output: text (the default) or one JSON object per line (``log_format=json``), and the
info-level lines operators grep for — refused connections, authentication failures, quota refusals."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

refusals = logging.getLogger("vask.refused")

# Attributes every LogRecord has; anything else was passed with extra= and goes into the JSON object.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out["event" if key == "console" else key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure(level: str, fmt: str = "text") -> None:
    """Set up the root logger once, at start-up (``vask serve``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("websockets").setLevel(logging.WARNING)  # it logs every open and close at INFO


def refused(what: str, reason: str, *, app_id: str | None = None, code: int | None = None,
            status: int | None = None, **fields: Any) -> None:
    """One info line: ``<what> refused: <reason>`` with the app and the code/status, for operators."""
    if not refusals.isEnabledFor(logging.INFO):
        return
    parts = [f"{what} refused"]
    if app_id is not None:
        parts.append(f"app={app_id}")
    if code is not None:
        parts.append(f"code={code}")
    if status is not None:
        parts.append(f"status={status}")
    parts.extend(f"{k}={v}" for k, v in fields.items() if v is not None)
    extra = {"kind": what, "reason": reason, "app_id": app_id, "code": code, "status": status,
             **{k: v for k, v in fields.items() if v is not None}}
    refusals.info("%s: %s", " ".join(parts), reason, extra={k: v for k, v in extra.items() if v is not None})
