"""Importing N subscribers (default 1,000,000) into SQLite and, with --postgres URL, into
PostgreSQL: whole-command wall time and peak RSS (/usr/bin/time -v).

    python benchmarks/bench_import.py [--subscribers N] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
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
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    summary = next(line for line in result.stderr.splitlines() if line.startswith("Imported"))
    return wall, f"peak RSS {int(rss.group(1)) // 1024} MB; {summary}" if rss else summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="an admin URL; a scratch database is made on it")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(REPO / "newsletter.toml", root)
        csv = root / "subscribers.csv"
        with open(csv, "w", encoding="utf-8") as fh:
            fh.write("email,first_name,last_name,tags\n")
            for i in range(args.subscribers):
                fh.write(
                    f"reader{i}@example.com,Reader{i},Surname,{'ce;therapist' if i % 3 else ''}\n"
                )
        print(f"{args.subscribers:,} subscribers, {csv.stat().st_size / 1e6:.0f} MB of CSV")
        wall, info = run(["subscribers", "import", str(csv)], root, env)
        print(f"SQLite:     {wall:6.1f} s  {info}")
        again, info = run(["subscribers", "import", str(csv)], root, env)
        print(f"SQLite, the same file again: {again:6.1f} s  {info}")
        if args.postgres:
            import psycopg

            name = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            try:
                pg_env = env | {
                    "NEWSLETTER_DATABASE_URL": args.postgres.rsplit("/", 1)[0] + "/" + name
                }
                wall, info = run(["subscribers", "import", str(csv)], root, pg_env)
                print(f"PostgreSQL: {wall:6.1f} s  {info}")
                again, info = run(["subscribers", "import", str(csv)], root, pg_env)
                print(f"PostgreSQL, the same file again: {again:6.1f} s  {info}")
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
