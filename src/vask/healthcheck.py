"""`python -m vask.healthcheck`: exit 0 when this machine's Vask answers /ready with 200 (container HEALTHCHECK).

It reads the port and TLS setting from the same configuration as `vask serve` (VASK_* variables, VASK_CONFIG),
so it probes the port the server really uses. No curl or wget is needed in the image.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from vask.config import ConfigError, Settings


def main() -> int:
    config = os.environ.get("VASK_CONFIG")
    try:
        settings = Settings.load(Path(config) if config else None)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "localhost") else settings.host
    if host == "::":
        host = "[::1]"
    scheme = "https" if settings.tls else "http"
    # The certificate names the public host, not 127.0.0.1: only liveness of the local port is checked here.
    context = ssl._create_unverified_context() if settings.tls else None
    try:
        with urllib.request.urlopen(f"{scheme}://{host}:{settings.port}/ready", timeout=2, context=context) as r:
            return 0 if r.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
