"""Start-up cost: wall time of `newsletter --help` and `newsletter check --help` (median
of N runs, each a new process) and their peak RSS, beside `python -c pass` in the same
run, and beside another checkout when asked (``--against /work/main/src``). Runs are
interleaved, so that a busy machine weighs on every column alike.

    python benchmarks/bench_startup.py [--runs 10] [--against /path/to/other/src]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
LIMIT = 0.25  # seconds, `newsletter --help`


def run_once(args: list[str], src: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = str(src)
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    return wall, int(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--against", type=Path, help="another checkout's src to run beside")
    args = parser.parse_args()
    sources = [("this", SRC)] + ([("against", args.against)] if args.against else [])
    cases = [("python -c pass", ["-c", "pass"], [("-", SRC)])]
    for words in (["--help"], ["check", "--help"], ["--version"]):
        cases.append(("newsletter " + " ".join(words), ["-m", "newsletter", *words], sources))
    found: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for _ in range(args.runs):
        for label, argv, where in cases:
            for name, src in where:
                found.setdefault((label, name), []).append(run_once(argv, src))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {args.runs} runs each, median"
    )
    print(f"limit for `newsletter --help`: {LIMIT} s")
    print()
    print("| command | code | wall s (median) | min s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for (label, name), runs in found.items():
        walls = [w for w, _ in runs]
        rss = statistics.median(r for _, r in runs)
        print(
            f"| `{label}` | {name} | {statistics.median(walls):.3f} | {min(walls):.3f} "
            f"| {rss / 1024:.1f} |"
        )


if __name__ == "__main__":
    main()
