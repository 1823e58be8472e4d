"""Importing N subscribers (default 1,000,000) into SQLite and, with --postgres URL, into
PostgreSQL: whole-command wall time, CPU time and peak RSS (/usr/bin/time -v).

With --before SRC (another tree's ``src``, e.g. the previous round's), each run imports
the same file with that code and with this tree's, alternating which goes first, and
the table shows each one's median and the ratio.

    python benchmarks/bench_import.py [--subscribers N] [--runs 3] [--before SRC]
        [--again] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall s, CPU s, peak RSS MB, the summary line) of one whole command."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "newsletter", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr[-2000:])
    found = {
        key: float(m.group(1))
        for key, pattern in (
            ("rss", r"Maximum resident set size \(kbytes\): (\d+)"),
            ("user", r"User time \(seconds\): ([\d.]+)"),
            ("sys", r"System time \(seconds\): ([\d.]+)"),
        )
        if (m := re.search(pattern, result.stderr))
    }
    summary = next(line for line in result.stderr.splitlines() if line.startswith("Imported"))
    cpu = found.get("user", 0.0) + found.get("sys", 0.0)
    return wall, cpu, int(found.get("rss", 0) // 1024), summary


def write_csv(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("email,first_name,last_name,tags\n")
        for i in range(n):
            fh.write(f"reader{i}@example.com,Reader{i},Surname,{'ce;therapist' if i % 3 else ''}\n")


def sqlite_runs(
    trees: dict[str, str], root: Path, csv: Path, runs: int, again: bool
) -> dict[str, list[tuple[float, float, int]]]:
    """Each run: every tree imports the file into a fresh database (and again into the
    same one with --again); the order of the trees alternates from run to run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    found: dict[str, list[tuple[float, float, int]]] = {}
    for n in range(runs):
        order = list(trees) if n % 2 == 0 else list(reversed(trees))
        for name in order:
            project = root / f"{name}-{n}"
            project.mkdir()
            shutil.copy(REPO / "newsletter.toml", project)
            tree_env = env | {"PYTHONPATH": trees[name]}
            passes = [("first", csv), ("again", csv)] if again else [("first", csv)]
            for label, path in passes:
                wall, cpu, rss, summary = run(
                    ["subscribers", "import", str(path)], project, tree_env
                )
                found.setdefault(f"{name}, {label}", []).append((wall, cpu, rss))
                print(
                    f"run {n + 1} {name:>6} {label}: {wall:6.1f} s wall, {cpu:6.1f} s CPU, "
                    f"{rss} MB  {summary}",
                    flush=True,
                )
            shutil.rmtree(project)
    return found


def table(found: dict[str, list[tuple[float, float, int]]]) -> None:
    print("\n| import (SQLite) | median wall | median CPU | peak RSS | runs (wall) |")
    print("|---|---|---|---|---|")
    for name, results in found.items():
        walls = [r[0] for r in results]
        cpus = [r[1] for r in results]
        print(
            f"| {name} | {statistics.median(walls):.1f} s | {statistics.median(cpus):.1f} s | "
            f"{max(r[2] for r in results)} MB | {', '.join(f'{w:.1f}' for w in walls)} |"
        )
    if "before, first" in found and "this, first" in found:
        for i, what in ((0, "wall"), (1, "CPU")):
            before = statistics.median(r[i] for r in found["before, first"])
            this = statistics.median(r[i] for r in found["this, first"])
            print(f"\nthis / before ({what}, first import): {this / before:.2f}")


def postgres_runs(url: str, root: Path, csv: Path) -> None:
    import psycopg

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = str(REPO / "src")
    project = root / "postgres"
    project.mkdir()
    shutil.copy(REPO / "newsletter.toml", project)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        pg_env = env | {"NEWSLETTER_DATABASE_URL": url.rsplit("/", 1)[0] + "/" + name}
        for label in ("PostgreSQL", "PostgreSQL, the same file again"):
            wall, cpu, rss, summary = run(["subscribers", "import", str(csv)], project, pg_env)
            print(f"{label}: {wall:6.1f} s wall, {cpu:6.1f} s CPU, {rss} MB  {summary}")
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--before", help="another tree's src to compare with, alternating")
    parser.add_argument("--again", action="store_true", help="also import the file again")
    parser.add_argument("--postgres", help="an admin URL; a scratch database is made on it")
    args = parser.parse_args()
    trees = {"this": str(REPO / "src")}
    if args.before:
        trees = {"before": str(Path(args.before).resolve()), **trees}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        csv = root / "subscribers.csv"
        write_csv(csv, args.subscribers)
        print(f"{args.subscribers:,} subscribers, {csv.stat().st_size / 1e6:.0f} MB of CSV")
        table(sqlite_runs(trees, root, csv, args.runs, args.again))
        if args.postgres:
            postgres_runs(args.postgres, root, csv)


if __name__ == "__main__":
    main()
