"""One sender against three on one campaign, sharing a PostgreSQL database, through the
local Postmark-compatible server: wall time until every recipient is settled, and how
long each claim and settle took (timed around ``Ledger.claim`` and ``Ledger.settle`` by
a wrapper that starts the command, so the command itself carries no timing code).

    python benchmarks/bench_senders.py --postgres postgresql://... [--subscribers 100000]
        [--latency 0.2] [--compare /path/to/other/src] [--senders 1 3]

``--compare`` runs the same senders from another checkout's ``src`` in the same run,
alternating with this one.

``--peer`` says what answers the senders: ``checking`` (the default, for correctness) is
the Postmark fake of the tests, a threaded Python server in this process that checks
every field of every message; ``lean`` is a small asyncio server in its own process that
reads each body, finds each message's ``To`` with one scan instead of parsing it, counts
the messages and their distinct ``To`` and answers one result per message, in Postmark's
shape. Both sleep ``--latency`` before
each answer.

Each run also prints the CPU seconds spent by the senders (all of them, from their
rusage), by the peer (the lean sink's process, or this process for the checking fake)
and by the PostgreSQL backends serving the run's database (read from /proc while they
live, so a backend's last half second may be missed).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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
    parser.add_argument("--postgres", help="an admin URL for scratch databases")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--compare", help="another checkout's src, run alternately")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--peer", choices=["checking", "lean"], default="checking")
    parser.add_argument("--logs", type=Path, help="a folder to keep each run's timing log in")
    parser.add_argument("--serve-lean", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_lean:
        asyncio.run(LeanSink(args.latency).serve())
        return
    if not args.postgres:
        parser.error("--postgres is required")

    sources = [("this", str(REPO / "src"))]
    if args.compare:
        sources.append(("compare", args.compare))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_API_KEY"] = "bench"
    rows = []
    with tempfile.TemporaryDirectory() as tmp, peer(args.peer, args.latency) as server:
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
        f"{args.subscribers:,} readers, PostgreSQL, {args.latency * 1000:.0f} ms per request, "
        f"{args.peer} peer; ms, medians of the first and last {EDGE} claims (claim: the "
        "whole call in the sender; pick: its locking SELECT alone), and of all settles; "
        "CPU seconds of the senders, the peer and PostgreSQL"
    )
    print(
        f"{'code':8} {'senders':>7} {'wall s':>7} {'msgs/s':>7} {'claims':>6} "
        f"{'claim first':>11} {'last':>7} {'pick first':>10} {'last':>7} {'max':>7} "
        f"{'settle':>7} {'cpu snd':>7} {'peer':>6} {'pg':>6} {'sent':>9} {'distinct':>9}"
    )
    for label, senders, wall, got, distinct, calls, codes, cpu in rows:
        print(f"{label:8} {senders:>7} {wall:7.1f} {got / wall:7.0f} " + edges(calls), end="")
        print(f" {cpu[0]:7.1f} {cpu[1]:6.1f} {cpu[2]:6.1f}", end="")
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
) -> tuple[
    float, int, int, dict[str, list[tuple[float, float, int]]], list[int], tuple[float, ...]
]:
    """``senders`` processes sending one campaign to a fresh database: the wall time,
    messages and distinct readers the peer got, the timed calls, exit codes, and the CPU
    seconds of the senders, the peer and the database's backends."""
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
        server.reset()
        log.touch()
        backends = BackendCpu(args.postgres, name)
        peer_cpu = server.cpu()
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
        codes, sender_cpu = [], 0.0
        for p in procs:
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            codes.append(p.returncode)
            sender_cpu += usage.ru_utime + usage.ru_stime
        wall = time.perf_counter() - started
        cpu = (sender_cpu, server.cpu() - peer_cpu, backends.stop())
        got, distinct = server.counts()
        server.reset()
        if args.logs:
            args.logs.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, args.logs / f"{senders}-senders-{name}.log")
        print(f"{env['PYTHONPATH']}: {senders} sender(s) {wall:.1f} s", flush=True)
        return wall, got, distinct, timings(log), codes, cpu
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- CPU seconds ------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User and system CPU seconds of a live process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


class BackendCpu:
    """Polls the CPU seconds of the backends serving one database, twice a second."""

    def __init__(self, url: str, database: str) -> None:
        self.url, self.database = url, database
        self.seen: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            while not self.done.wait(0.5):
                pids = db.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
                ).fetchall()
                for (pid,) in pids:
                    self.seen[pid] = max(self.seen.get(pid, 0.0), process_cpu(pid))

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return sum(self.seen.values())


# -- the peers --------------------------------------------------------------------------
class CheckingPeer:
    """The tests' Postmark fake, in this process: checks every field of every message."""

    def __init__(self, latency: float) -> None:
        from fakes.postmark import FakePostmark

        self.fake = FakePostmark(token="bench", latency=latency, keep_bodies=False)

    def __enter__(self) -> CheckingPeer:
        self.fake.__enter__()
        self.url = self.fake.url
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.__exit__(*exc)

    def reset(self) -> None:
        self.fake.accepted.clear()

    def counts(self) -> tuple[int, int]:
        accepted = self.fake.accepted
        return len(accepted), len({m["to"] for m in accepted})

    def cpu(self) -> float:
        return process_cpu(os.getpid())


class LeanPeer:
    """The lean sink (``LeanSink``) in its own process."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def __enter__(self) -> LeanPeer:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve-lean", "--latency", str(self.latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait()

    def _get(self, path: str) -> dict[str, int]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port)
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())

    def reset(self) -> None:
        self._get("/reset")

    def counts(self) -> tuple[int, int]:
        got = self._get("/count")
        return got["messages"], got["distinct"]

    def cpu(self) -> float:
        return process_cpu(self.process.pid)


def peer(kind: str, latency: float) -> CheckingPeer | LeanPeer:
    return CheckingPeer(latency) if kind == "checking" else LeanPeer(latency)


# A message's "To" in a Postmark batch, as the JSON string the sender wrote. Each message
# has one, at its top level; the key cannot occur inside a string value, where a quote is
# always escaped (\"), so ``,"To":"`` is never part of an address, subject or body.
_TO = re.compile(rb',"To":("(?:[^"\\]|\\.)*")')
_RESULT = (
    b'{"To":%s,"SubmittedAt":"2026-12-06T09:00:00.0000000Z",'
    b'"MessageID":"b7bc2f4a-e38e-4336-af7d-%012x","ErrorCode":0,"Message":"OK"}'
)


class LeanSink:
    """A stand-in for Postmark's batch endpoint that costs as little as it can: it reads
    each request whole into one reused buffer (no copies beyond the kernel's), finds each
    message's ``To`` with one scan of the body instead of parsing the JSON, and answers one
    result per message, in order, with the shape Postmark documents (``To``,
    ``SubmittedAt``, ``MessageID``, ``ErrorCode`` 0, ``Message``), after ``latency``. It
    counts the messages and their distinct ``To``; it checks nothing else (that is the
    checking peer's job)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.messages = 0
        self.readers: set[bytes] = set()
        self.ids = 0

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _LeanConnection(self), "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    def answer(self, method: str, path: str, body: bytearray, start: int, end: int) -> bytes:
        """The response (status line, headers and body) to one request, whose body is
        ``body[start:end]``."""
        status, answer = 200, b"{}"
        if method == "GET" and path == "/count":
            answer = json.dumps({"messages": self.messages, "distinct": len(self.readers)})
            answer = answer.encode()
        elif method == "GET" and path == "/reset":
            self.messages, self.readers = 0, set()
        elif method != "POST" or path != "/email/batch":
            status, answer = 404, b'{"ErrorCode":404,"Message":"not here"}'
        else:
            readers = _TO.findall(body, start, end)
            if not readers:
                status, answer = 422, b'{"ErrorCode":402,"Message":"Received invalid JSON"}'
            first, self.ids = self.ids, self.ids + len(readers)
            self.messages += len(readers)
            self.readers.update(readers)
            if readers:
                answer = (
                    b"["
                    + b",".join(_RESULT % (to, first + i) for i, to in enumerate(readers))
                    + b"]"
                )
        return (
            b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (status, len(answer))
            + answer
        )


class _LeanConnection(asyncio.BufferedProtocol):
    """One client connection of the lean sink: requests are read straight into one buffer
    (grown to the largest request seen, then reused), one at a time."""

    def __init__(self, sink: LeanSink) -> None:
        self.sink = sink
        self.buffer = bytearray(1 << 20)
        self.filled = 0  # bytes of the buffer read so far
        self.body_at = 0  # where the current request's body starts (0: head not read)
        self.end = 0  # where it ends
        self.request = ("", "")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.filled == len(self.buffer):
            self._grow(2 * len(self.buffer))
        return memoryview(self.buffer)[self.filled :]

    def _grow(self, size: int) -> None:
        # a new buffer: the transport may still hold a view of the old one
        grown = bytearray(size)
        grown[: self.filled] = memoryview(self.buffer)[: self.filled]
        self.buffer = grown

    def buffer_updated(self, nbytes: int) -> None:
        self.filled += nbytes
        while self._one_request():
            pass

    def _one_request(self) -> bool:
        """Answer the request at the start of the buffer once it is whole."""
        if not self.body_at:
            head_end = self.buffer.find(b"\r\n\r\n", 0, self.filled)
            if head_end < 0:
                return False
            request_line, *lines = bytes(self.buffer[:head_end]).decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            length = next(
                (
                    int(v)
                    for k, _, v in (x.partition(":") for x in lines)
                    if k.strip().lower() == "content-length"
                ),
                0,
            )
            self.request, self.body_at = (method, path), head_end + 4
            self.end = self.body_at + length
            if self.end > len(self.buffer):
                self._grow(self.end)
        if self.filled < self.end:
            return False
        response = self.sink.answer(*self.request, self.buffer, self.body_at, self.end)
        rest = self.filled - self.end
        if rest:  # the next request already began (never, from a client waiting for answers)
            tail = bytes(self.buffer[self.end : self.filled])
            self.buffer = bytearray(max(len(self.buffer), rest))
            self.buffer[:rest] = tail
        self.filled, self.body_at, self.end = rest, 0, 0
        if self.sink.latency and self.request[0] == "POST":
            asyncio.get_running_loop().call_later(self.sink.latency, self._write, response)
        else:
            self._write(response)
        return True

    def _write(self, response: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(response)


if __name__ == "__main__":
    main()
