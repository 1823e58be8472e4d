"""One sender against three on one campaign, sharing a PostgreSQL database, through the
local Postmark-compatible server: wall time until every recipient is settled, and how
long each claim and settle took (timed around ``Ledger.claim`` and ``Ledger.settle`` by
a wrapper that starts the command, so the command itself carries no timing code).

    python benchmarks/bench_senders.py --postgres postgresql://... [--subscribers 100000]
        [--latency 0.2] [--compare /path/to/other/src] [--senders 1 3]

``--compare`` runs the same senders from another checkout's ``src`` in the same run,
alternating with this one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

# Runs one `newsletter` command with Ledger.claim and Ledger.settle timed, and the
# claim's locking SELECT (the statement with SKIP LOCKED: "pick", the database's part of
# a claim, free of the time the sender's other threads hold the interpreter); each call
# appends "<kind> <unix time> <milliseconds> <rows>" to $BENCH_TIMING_LOG.
TIMED_CLI = """
import os, sys, time
from newsletter.store.ledger import Ledger
log = open(os.environ["BENCH_TIMING_LOG"], "a", buffering=1)
claim, settle = Ledger.claim, Ledger.settle
def write(kind, started, rows):
    took = (time.perf_counter() - started) * 1000
    log.write(f"{kind} {time.time():.3f} {took:.2f} {rows}\\n")
def timed_claim(self, *args, **kwargs):
    started = time.perf_counter()
    got = claim(self, *args, **kwargs)
    write("claim", started, len(got))
    return got
def timed_settle(self, campaign_id, results):
    results = list(results)
    started = time.perf_counter()
    settle(self, campaign_id, results)
    write("settle", started, len(results))
Ledger.claim, Ledger.settle = timed_claim, timed_settle
from newsletter.store.connection import Connection
execute = Connection.execute
def timed_execute(self, sql, params=()):
    if "SKIP LOCKED" not in self.dialect.bind(sql):
        return execute(self, sql, params)
    started = time.perf_counter()
    cursor = execute(self, sql, params)
    rows = cursor.fetchall()
    write("pick", started, len(rows))
    return Rows(rows)
class Rows(list):
    def fetchall(self):
        return self
Connection.execute = timed_execute
sys.argv = ["newsletter", *sys.argv[1:]]
from newsletter.cli import main
main()
"""
EDGE = 20  # claims at each end of a run compared


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timings(log: Path) -> dict[str, list[tuple[float, float, int]]]:
    """The timed calls of a run by kind, in the order they ended."""
    found: dict[str, list[tuple[float, float, int]]] = {"claim": [], "settle": [], "pick": []}
    for line in log.read_text().splitlines():
        kind, at, took, rows = line.split()
        found[kind].append((float(at), float(took), int(rows)))
    for calls in found.values():
        calls.sort()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", required=True, help="an admin URL for scratch databases")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--compare", help="another checkout's src, run alternately")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--logs", type=Path, help="a folder to keep each run's timing log in")
    args = parser.parse_args()

    from fakes.postmark import FakePostmark

    sources = [("this", str(REPO / "src"))]
    if args.compare:
        sources.append(("compare", args.compare))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_API_KEY"] = "bench"
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakePostmark(token="bench", latency=args.latency, keep_bodies=False) as server,
    ):
        root = Path(tmp)
        project(root, server.url, args.subscribers)
        for _ in range(args.rounds):
            for senders in args.senders:
                for label, src in sources:
                    rows.append(
                        (
                            label,
                            senders,
                            *one_run(root, env | {"PYTHONPATH": src}, args, server, senders),
                        )
                    )
    print()
    print(
        f"{args.subscribers:,} readers, PostgreSQL, {args.latency * 1000:.0f} ms per request; "
        f"ms, medians of the first and last {EDGE} claims (claim: the whole call in the "
        "sender; pick: its locking SELECT alone), and of all settles"
    )
    print(
        f"{'code':8} {'senders':>7} {'wall s':>7} {'msgs/s':>7} {'claims':>6} "
        f"{'claim first':>11} {'last':>7} {'pick first':>10} {'last':>7} {'max':>7} "
        f"{'settle':>7} {'sent':>9} {'distinct':>9}"
    )
    for label, senders, wall, got, distinct, calls, codes in rows:
        print(f"{label:8} {senders:>7} {wall:7.1f} {got / wall:7.0f} " + edges(calls), end="")
        print(f" {got:>9,} {distinct:>9,}" + ("" if set(codes) == {0} else f"  exit {codes}"))


def edges(calls: dict[str, list[tuple[float, float, int]]]) -> str:
    """Claims, the first and last claims and picks, the slowest pick, the settles."""
    claims = [c[1] for c in calls["claim"] if c[2]]
    picks = [c[1] for c in calls["pick"] if c[2]]
    return (
        f"{len(claims):>6} {_median(claims[:EDGE]):11.1f} {_median(claims[-EDGE:]):7.1f} "
        f"{_median(picks[:EDGE]):10.1f} {_median(picks[-EDGE:]):7.1f} "
        f"{max(picks, default=float('nan')):7.1f} "
        f"{_median([c[1] for c in calls['settle']]):7.1f}"
    )


def project(root: Path, server_url: str, subscribers: int) -> None:
    """A copy of the example project sending through the local server, and its readers."""
    for name in ("newsletter.toml", "articles", "images", "campaigns", "templates", ".newsletter"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    config = root / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text[: text.index("[delivery]")]
        + f'[delivery]\ntransport = "postmark"\nbase_url = "{server_url}"\n'
    )
    csv = root / "subscribers.csv"
    csv.write_text("email\n" + "".join(f"r{i}@example.com\n" for i in range(subscribers)))


def one_run(
    root: Path, env: dict[str, str], args: argparse.Namespace, server: Any, senders: int
) -> tuple[float, int, int, dict[str, list[tuple[float, float, int]]], list[int]]:
    """``senders`` processes sending one campaign to a fresh database: the wall time,
    messages and distinct readers the server got, the timed calls and exit codes."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    log = root / f"{name}.log"
    run_env = env | {
        "NEWSLETTER_DATABASE_URL": args.postgres.rsplit("/", 1)[0] + "/" + name,
        "BENCH_TIMING_LOG": str(log),
    }
    try:
        cli = [sys.executable, "-m", "newsletter"]
        subprocess.run(
            [*cli, "subscribers", "import", str(root / "subscribers.csv")],
            cwd=root,
            env=run_env,
            check=True,
            capture_output=True,
        )
        server.accepted.clear()
        log.touch()
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", TIMED_CLI, "send", "2026-10-digest", "--yes"],
                cwd=root,
                env=run_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(senders)
        ]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - started
        got = len(server.accepted)
        distinct = len({m["to"] for m in server.accepted})
        server.accepted.clear()
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, args.logs / f"{senders}-senders-{name}.log")
        print(f"{env['PYTHONPATH']}: {senders} sender(s) {wall:.1f} s", flush=True)
        return wall, got, distinct, timings(log), codes
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
