"""Time the README's two commands on this machine and print the figures.

Usage::

    python benchmarks/time_commands.py            # times `make test` (target: < 20 min on 2 cores)
    python benchmarks/time_commands.py book       # times `make book` twice: first build, then cached

Run it from a fresh clone to include the one-off set-up of ``.venv``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return elapsed


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "test"
    print(f"cores: {os.cpu_count()}")
    if what == "test":
        t = timed(["make", "test"])
        print(f"make test: {t / 60:.1f} min (target < 20 min)")
    elif what == "book":
        first = timed(["make", "book"])
        second = timed(["make", "book"])
        print(f"make book, first build: {first / 60:.1f} min")
        print(f"make book, second build (cached execution): {second:.0f} s")
    else:
        raise SystemExit("usage: python benchmarks/time_commands.py [test|book]")


if __name__ == "__main__":
    main()
