"""SMTP side by side: `newsletter send` and mailmerge to Postfix's smtp-sink, in one run.

    python benchmarks/bench_smtp.py [--subscribers 5000] [--runs 3]
        [--before /work/main/src] [--mailmerge /work/mm-venv/bin/mailmerge]
    python benchmarks/bench_smtp.py --transport-only [--subscribers 5000] [--runs 5]
        [--before /work/main/src]

Each run sends the example campaign (as bench_send.py makes the project) to the same
readers through a fresh smtp-sink: (a) `newsletter send` from this tree, (b) the same
command from ``--before`` (another checkout's ``src``), when given, and (c) mailmerge
with a CSV of the same readers and a template of the same HTML, `--no-limit
--no-dry-run`. The runs alternate; the table gives medians.

Two rates per command: the whole command (readers / wall time, start-up included),
and the send phase as the command itself counts it — `newsletter send`'s progress
line (messages since the run began, under a terminal) and, for mailmerge, its
">>> message N sent" lines, timed as they arrive (first to last). A third column is
the command's CPU time (user + system, start-up included; smtp-sink's is not): on a
loaded machine the rates move with the load, the CPU a command needs much less.

``--wire`` adds (d) the limit: a client that only writes pre-made bytes, the same
message for every reader (dot-stuffed once), over 4 connections, each pipelining as
RFC 2920 allows (the envelope in one write; the content, its dot and the next envelope
in the next), with no database, no message building and no log. Its rate is the most
this smtp-sink takes on this machine; the goal's ratio is read against it too.

``--transport-only`` times the SMTP transport alone, in-process: the messages are made
first, then sent to smtp-sink in batches of 50 by 4 threads (as a send with the default
``concurrency`` does), and the table gives msgs/s and the CPU µs a message cost this
process (its content, the writes, the replies), this tree and ``--before`` alternating.
"""

from __future__ import annotations

import argparse
import os
import platform
import pty
import re
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_send import SMTPSink, make_project, set_delivery  # noqa: E402

MAILMERGE = "/work/mm-venv/bin/mailmerge"
CAMPAIGN = "2026-10-digest"


def newsletter(src: Path, folder: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = _env(src)
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )


def _env(src: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = str(src)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def prepare(src: Path, folder: Path, readers: int) -> None:
    """The example project with ``readers`` imported and the campaign built once."""
    folder.mkdir()
    make_project(folder, readers)
    newsletter(src, folder, ["subscribers", "import", "subscribers.csv"])
    newsletter(src, folder, ["build", CAMPAIGN])


def cpu_of_children() -> float:
    """User + system seconds of the children waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def send_newsletter(
    src: Path, prepared: Path, work: Path, readers: int
) -> tuple[float, float, float]:
    """(whole-command msgs/s, send-phase msgs/s from its progress line, CPU s) of one send."""
    folder = work / f"nl-{time.monotonic_ns()}"
    shutil.copytree(prepared, folder)
    sink = SMTPSink(folder)
    try:
        set_delivery(
            folder,
            f'transport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\n',
        )
        cpu = cpu_of_children()
        wall, output = _in_terminal(
            [sys.executable, "-m", "newsletter", "send", CAMPAIGN, "--yes"], folder, _env(src)
        )
        cpu = cpu_of_children() - cpu
        got = sink.count()
    finally:
        sink.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if got != readers:
        raise SystemExit(f"smtp-sink got {got} of {readers} messages:\n{output[-2000:]}")
    rates = re.findall(r"([\d,]+)/s", output)
    phase = float(rates[-1].replace(",", "")) if rates else float("nan")
    return readers / wall, phase, cpu


def _in_terminal(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Run with stderr on a pseudo-terminal (so the progress bar shows its rate)."""
    leader, follower = pty.openpty()
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    code = process.wait()
    wall = time.perf_counter() - started
    os.close(leader)
    output = b"".join(chunks).decode("utf-8", "replace")
    if code != 0:
        raise SystemExit(f"newsletter send failed ({code}):\n{output[-3000:]}")
    return wall, output


def prepare_mailmerge(prepared: Path, folder: Path) -> None:
    """A CSV of the same readers and a template with the campaign's built HTML."""
    folder.mkdir()
    shutil.copy(prepared / "subscribers.csv", folder / "mailmerge_database.csv")
    html = (prepared / "build" / CAMPAIGN / "email.html").read_text(encoding="utf-8")
    template = (
        "TO: {{email}}\n"
        "SUBJECT: The October digest\n"
        "FROM: Riverbend Clinicians <news@riverbend-clinicians.example>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: text/html; charset="utf-8"\n'
        "\n"
        "<p>Hello {{first_name}},</p>\n"
        "{% raw %}" + html + "{% endraw %}\n"
    )
    (folder / "mailmerge_template.txt").write_text(template, encoding="utf-8")


def send_mailmerge(binary: str, folder: Path, readers: int) -> tuple[float, float, float]:
    sink = SMTPSink(folder)
    try:
        (folder / "mailmerge_server.conf").write_text(
            f"[smtp_server]\nhost = 127.0.0.1\nport = {sink.port}\n", encoding="utf-8"
        )
        cpu = cpu_of_children()
        started = time.perf_counter()
        process = subprocess.Popen(
            [binary, "--no-limit", "--no-dry-run", "--output-format", "raw"],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        sent = re.compile(rb">>> message (\d+) sent")
        first = last = None
        count = 0
        for line in process.stdout:
            if sent.search(line):
                last = time.perf_counter()
                first = first or last
                count += 1
        code = process.wait()
        wall = time.perf_counter() - started
        cpu = cpu_of_children() - cpu
        got = sink.count()
    finally:
        sink.stop()
    if code != 0 or got != readers or count != readers:
        raise SystemExit(f"mailmerge: exit {code}, smtp-sink got {got}, printed {count}")
    phase = (count - 1) / (last - first) if first and last and last > first else float("nan")
    return readers / wall, phase, cpu


WIRE_CLIENT = """
import socket, sys, threading, time
port, readers, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
html = open(path, "rb").read().replace(b"\\r\\n", b"\\n").replace(b"\\n", b"\\r\\n")
head = (b"From: Riverbend Clinicians <news@riverbend-clinicians.example>\\r\\n"
        b"Subject: The October digest\\r\\nMIME-Version: 1.0\\r\\n"
        b'Content-Type: text/html; charset="utf-8"\\r\\n\\r\\n')
body = head + html
body = body.replace(b"\\r\\n.", b"\\r\\n..")
if not body.endswith(b"\\r\\n"):
    body += b"\\r\\n"
content = body + b".\\r\\n"
def envelope(i):
    return (b"MAIL FROM:<news@riverbend-clinicians.example>\\r\\n"
            b"RCPT TO:<reader%d@example.com>\\r\\nDATA\\r\\n" % i)
def replies(f, n):
    for _ in range(n):
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("connection closed")
            if line[3:4] != b"-":
                break
def work(ids):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    replies(f, 1)
    s.sendall(b"EHLO wire.example\\r\\n")
    replies(f, 1)
    if not ids:
        return
    s.sendall(envelope(ids[0]))
    replies(f, 3)
    for k, i in enumerate(ids):
        nxt = envelope(ids[k + 1]) if k + 1 < len(ids) else b"QUIT\\r\\n"
        s.sendall(content + nxt)
        replies(f, 4 if k + 1 < len(ids) else 2)
    s.close()
ids = list(range(readers))
parts = [ids[n::4] for n in range(4)]
started = time.perf_counter()
threads = [threading.Thread(target=work, args=(part,)) for part in parts]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(readers / (time.perf_counter() - started))
"""


def send_wire(prepared: Path, work: Path, readers: int) -> tuple[float, float, float]:
    """The limit: pre-made bytes to a fresh smtp-sink (whole = send phase here)."""
    sink = SMTPSink(work)
    try:
        cpu = cpu_of_children()
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                WIRE_CLIENT,
                str(sink.port),
                str(readers),
                str(prepared / "build" / CAMPAIGN / "email.html"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        cpu = cpu_of_children() - cpu
        got = sink.count()
    finally:
        sink.stop()
    if got != readers:
        raise SystemExit(f"smtp-sink got {got} of {readers} messages from the wire client")
    rate = float(out.stdout.split()[-1])
    return rate, rate, cpu


TRANSPORT_ONLY = """
import os, subprocess, sys, tempfile, threading, time
from pathlib import Path
sys.path.insert(0, {here!r})
from bench_send import SMTPSink, make_project
folder = Path(tempfile.mkdtemp())
make_project(folder, 1)
os.chdir(folder)
from newsletter.models import Recipient
from newsletter.project import Project
from newsletter.providers.smtp import SMTPTransport
composer = Project.load().composer
compiled = composer.compile(composer.campaign("2026-10-digest"))
factory = composer.factory(compiled, carrier=SMTPTransport.carrier())
fields = composer.personalizer("2026-10-digest", 1)
readers = [Recipient(i, f"reader{{i}}@example.com", f"Reader{{i}}", "S") for i in range({readers})]
made = [factory.message(r, fields(r)) for r in readers]
sink = SMTPSink(folder)
transport = SMTPTransport("127.0.0.1", sink.port, "none")
batches = [made[i : i + 50] for i in range(0, len(made), 50)]
lock = threading.Lock()
def work():
    while True:
        with lock:
            if not batches:
                return
            batch = batches.pop()
        assert all(r.status.value == "sent" for r in transport.send_batch(batch))
cpu, wall = time.process_time(), time.perf_counter()
threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
transport.close()
got = sink.count()
sink.stop()
assert got == len(made), got
print(f"{{len(made) / wall:.1f}} {{cpu * 1e6 / len(made):.1f}}")
"""


def transport_only(args: argparse.Namespace) -> None:
    """In-process: the SMTP transport alone, msgs/s and CPU µs a message."""
    trees = {"this tree": str(HERE.parent / "src")}
    if args.before:
        trees["before"] = str(args.before.resolve())
    found: dict[str, list[list[float]]] = {name: [] for name in trees}
    code = TRANSPORT_ONLY.format(here=str(HERE), readers=args.subscribers)
    for run in range(args.runs):
        for name in trees if run % 2 == 0 else reversed(trees):
            env = {**_env(Path(trees[name]))}
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            found[name].append([float(x) for x in out.stdout.split()[-2:]])
            print(
                f"run {run + 1}: {name:<10} {found[name][-1][0]:8,.0f} msgs/s "
                f"{found[name][-1][1]:7.1f} µs CPU/msg"
            )
    print()
    print("| tree | msgs/s (median) | CPU µs a message (median) |")
    print("|---|---:|---:|")
    for name, rows in found.items():
        rate = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        print(f"| {name} | {rate:,.0f} | {cpu:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another checkout's src (e.g. main's)")
    parser.add_argument("--mailmerge", default=MAILMERGE)
    parser.add_argument("--wire", action="store_true", help="also a pre-made-bytes client")
    parser.add_argument(
        "--transport-only", action="store_true", help="the SMTP transport alone, in-process"
    )
    args = parser.parse_args()
    if not Path("/usr/sbin/smtp-sink").exists() and not shutil.which("smtp-sink"):
        raise SystemExit("Postfix smtp-sink is needed (apt-get install postfix).")
    if args.transport_only:
        transport_only(args)
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {args.subscribers} readers, {args.runs} runs"
    )
    contenders: dict[str, list[tuple[float, float, float]]] = {"newsletter (this tree)": []}
    sources = {"newsletter (this tree)": HERE.parent / "src"}
    if args.before:
        contenders["newsletter (before)"] = []
        sources["newsletter (before)"] = args.before.resolve()
    contenders["mailmerge 2.3.0"] = []
    if args.wire:
        contenders["pre-made bytes (limit)"] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        prepared = {}
        for index, (name, src) in enumerate(sources.items()):
            prepared[name] = work / f"prepared-{index}"
            prepare(src, prepared[name], args.subscribers)
        prepare_mailmerge(prepared["newsletter (this tree)"], work / "mailmerge")
        for run in range(args.runs):
            order = list(contenders) if run % 2 == 0 else list(reversed(contenders))
            for name in order:
                if name.startswith("mailmerge"):
                    rates = send_mailmerge(args.mailmerge, work / "mailmerge", args.subscribers)
                elif name.startswith("pre-made"):
                    rates = send_wire(prepared["newsletter (this tree)"], work, args.subscribers)
                else:
                    rates = send_newsletter(sources[name], prepared[name], work, args.subscribers)
                contenders[name].append(rates)
                print(
                    f"run {run + 1}: {name:<24} {rates[0]:8,.0f} whole  {rates[1]:8,.0f} send"
                    f"  {rates[2]:6.2f} s CPU"
                )
    print_table(contenders)


def print_table(contenders: dict[str, list[tuple[float, float, float]]]) -> None:
    medians = {
        name: tuple(statistics.median(r[i] for r in runs) for i in range(3))
        for name, runs in contenders.items()
    }
    peer = medians["mailmerge 2.3.0"]
    print()
    print(
        f"| {'command':<24} | whole command msgs/s | send phase msgs/s "
        "| x mailmerge (whole / send) | CPU s (whole command) |"
    )
    print(
        f"|{'-' * 26}|---------------------:|------------------:|---------------------------:"
        "|----------------------:|"
    )
    for name, (whole, phase, cpu) in medians.items():
        print(
            f"| {name:<24} | {whole:20,.0f} | {phase:17,.0f} | "
            f"{whole / peer[0]:11.1f}x / {phase / peer[1]:.1f}x | {cpu:21.2f} |"
        )
    limit = medians.get("pre-made bytes (limit)")
    if limit:
        ours = medians["newsletter (this tree)"]
        print(
            f"\nnewsletter (this tree) against the pre-made-bytes client: send phase "
            f"{ours[1] / limit[1]:.2f}, whole command {ours[0] / limit[0]:.2f} of the limit"
        )


if __name__ == "__main__":
    main()
