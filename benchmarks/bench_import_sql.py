"""Where an import's database time goes, statement by statement: N readers (default
1,000,000, two-thirds with two tags, as bench_import.py's file) imported in-process into
a fresh SQLite file through ``Subscribers.import_records``, with the CPU seconds of each
kind of statement (SELECT of a chunk's addresses, INSERT of readers, INSERT of tags,
COMMIT). The file's reading is left out: this measures the store and its schema.

With --before SRC (another tree's ``src``), each run measures that tree and this one,
alternating which goes first, and the table shows each one's median.

    python benchmarks/bench_import_sql.py [--subscribers N] [--runs 3] [--before SRC]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class _Timed:
    """A sqlite3 connection whose statements add their CPU seconds to ``spent``."""

    def __init__(self, raw: Any, spent: dict[str, float]) -> None:
        self._raw = raw
        self._spent = spent

    def _timed(self, method: str, sql: str, *args: Any) -> Any:
        words = sql.split(None, 3)  # the first words only: a bulk INSERT's text is long
        kind = " ".join(words[:3] if words[0].upper() == "INSERT" else words[:1]).upper()
        started = time.process_time()
        try:
            return getattr(self._raw, method)(sql, *args)
        finally:
            self._spent[kind] = self._spent.get(kind, 0.0) + time.process_time() - started

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed("execute", sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed("executemany", sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def child(n: int, path: str) -> None:
    """One measurement, in this process: prints the CPU seconds by statement kind."""
    from newsletter.models import SubscriberRecord, SubscriberStatus
    from newsletter.store import open_store

    store = open_store(f"sqlite:///{path}")
    spent: dict[str, float] = {}
    store.db.raw = _Timed(store.db.raw, spent)
    active = SubscriberStatus.ACTIVE
    tags = ("ce", "therapist")
    records = (
        SubscriberRecord(
            f"reader{i}@example.com",
            f"Reader{i}",
            "Surname",
            tags if i % 3 else (),
            active,
            None,
            None,
            {},
            None,
        )
        for i in range(n)
    )
    started = time.process_time()
    store.subscribers.import_records(records)
    spent["whole import"] = time.process_time() - started
    store.close()
    print(json.dumps(spent))


def measure(src: str, n: int, root: Path, label: str) -> dict[str, float]:
    path = root / f"{label}.db"
    env = os.environ | {"PYTHONPATH": src}
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--subscribers", str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-2000:])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", help="another tree's src to compare with, alternating")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.subscribers, args.child)
        return
    trees = {"this": str(REPO / "src")}
    if args.before:
        trees = {"before": str(Path(args.before).resolve()), **trees}
    found: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.runs):
            order = list(trees) if n % 2 == 0 else list(reversed(trees))
            for name in order:
                spent = measure(trees[name], args.subscribers, Path(tmp), f"{name}-{n}")
                found.setdefault(name, []).append(spent)
                shown = ", ".join(f"{k} {v:.2f}" for k, v in spent.items())
                print(f"run {n + 1} {name:>6}: {shown}", flush=True)
    kinds = sorted({k for runs in found.values() for spent in runs for k in spent})
    print(f"\n| CPU s, median of {args.runs} | " + " | ".join(found) + " |")
    print("|---|" + "---|" * len(found))
    for kind in kinds:
        cells = [
            f"{statistics.median(s.get(kind, 0.0) for s in runs):.2f}" for runs in found.values()
        ]
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
