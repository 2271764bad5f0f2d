"""Coverage-guided fuzzing of Vask's parsers with atheris (pip install atheris), over the targets in
tests/fuzz_targets.py (the CI runs them under hypothesis instead).

    python scripts/fuzz.py --runs 200000            # every target, 200,000 inputs each
    python scripts/fuzz.py rest_request --runs 0    # one target until stopped
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", help="one target; default: each in turn")
    parser.add_argument("--runs", type=int, default=100_000, help="inputs per target (0: until stopped)")
    args, rest = parser.parse_known_args()
    sys.path.insert(0, str(ROOT))
    if args.target is None:  # each target in its own process: atheris.Setup runs once per process
        for name in ("pusher_message", "ws_frames", "rest_request", "webhook_config"):
            print(f"== {name}", flush=True)
            done = subprocess.run([sys.executable, __file__, name, "--runs", str(args.runs), *rest], check=False)
            if done.returncode:
                return done.returncode
        return 0
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (pip install atheris); the hypothesis tier runs in CI", file=sys.stderr)
        return 2
    with atheris.instrument_imports():  # coverage feedback from Vask's and websockets' code
        from tests.fuzz_targets import TARGETS
    target = TARGETS[args.target]

    def one(data: bytes) -> None:
        target(data)

    argv = [sys.argv[0], *rest] + ([f"-runs={args.runs}"] if args.runs else [])
    os.environ.setdefault("PYTHONHASHSEED", "0")
    atheris.Setup(argv, one)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
