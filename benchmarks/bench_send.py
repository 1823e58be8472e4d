"""Whole-command benchmarks: `newsletter build` and `newsletter send` on the example
campaign, to N synthetic subscribers, through the outbox or a local Postmark-compatible
server. Wall time and peak RSS come from /usr/bin/time -v when it is installed.

    python benchmarks/bench_send.py [--subscribers 10000] [--transport outbox|postmark]
                                    [--latency 0.05] [--personal]

``--personal`` adds per-reader Jinja2 to the campaign: filters on reader fields, an
inline ``if`` and an ``{% if %}`` block over the reader's tags (two compiled variants).

``--compare --runs 3`` sends the plain and the personal campaign alternately, each from
the same freshly imported database, and prints the medians and the ratio personal/plain
of wall time and of the command's CPU time (the issue's goal: at most 1.2x).
``--before SRC`` adds both campaigns sent by another checkout's ``src`` (alternated with
the others), and each tree's ratio is to its own plain send.

``--in-process`` times, in this process, the making of each reader's message (their
fields, their slots and variant, the message) for the plain and the personal campaign,
alternately, for ``--subscribers`` distinct readers a run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from example_project import CAMPAIGN_FILES, copy_example  # noqa: E402

PERSONAL = (
    "{{ recipient.first_name | upper }}, {{ recipient.last_name | length }} letters: "
    '{{ "a member" if "ce" in recipient.tags else "a reader" }}.\n\n'
    '{% if "ce" in recipient.tags %}Your CE hours are waiting.{% else %}'
    "Earn CE hours with us.{% endif %}\n\nWarmly,"
)


def make_project(folder: Path, subscribers: int, personal: bool = False) -> None:
    copy_example(folder, CAMPAIGN_FILES)
    if personal:
        campaign = folder / "campaigns" / "2026-10-digest.md"
        text = campaign.read_text(encoding="utf-8")
        campaign.write_text(text.replace("Warmly,", PERSONAL), encoding="utf-8")
    with open(folder / "subscribers.csv", "w", encoding="utf-8") as fh:
        fh.write("email,first_name,last_name,tags\n")
        for i in range(subscribers):
            fh.write(f"reader{i}@example.com,Reader{i},Surname,{'ce' if i % 3 else 'therapist'}\n")


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int | None, str]:
    """(wall seconds, peak RSS in KiB or None, CPU seconds of the command) of one command."""
    command = [sys.executable, "-m", "newsletter", *args]
    if Path("/usr/bin/time").exists():
        command = ["/usr/bin/time", "-v", *command]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    cpu = sum(
        float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", result.stderr)
    )
    return wall, int(rss.group(1)) if rss else None, f"{cpu:.2f}"


class SMTPSink:
    """Postfix's smtp-sink (C, multi-threaded) when installed, else aiosmtpd.

    aiosmtpd parses each message line by line in Python at about 1 ms of CPU
    per 25 KB message, so on two cores it, not the sender, sets the pace.
    """

    def __init__(self, folder: Path) -> None:
        from smtp_server import SMTPServer, free_port

        self.sink = shutil.which("smtp-sink") or (
            "/usr/sbin/smtp-sink" if Path("/usr/sbin/smtp-sink").exists() else None
        )
        if self.sink:
            self.port = free_port()
            self.log = open(folder / "sink.log", "wb")  # noqa: SIM115 - closed in stop()
            self.process = subprocess.Popen(
                [self.sink, "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "256"],
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
            time.sleep(0.3)
            self.log_path = folder / "sink.log"
            print("SMTP server: Postfix smtp-sink")
        else:
            self.server = SMTPServer()
            self.server.handler.keep_messages = False
            self.server.__enter__()
            self.port = self.server.port
            print("SMTP server: aiosmtpd (smtp-sink not installed)")

    def count(self) -> int:
        if self.sink:
            found = re.findall(rb"mesg=(\d+)", self.log_path.read_bytes())
            return int(found[-1]) if found else 0
        return self.server.handler.count

    def stop(self) -> None:
        if self.sink:
            self.process.terminate()
            self.process.wait()
            self.log.close()
        else:
            self.server.__exit__()


def set_delivery(folder: Path, lines: str) -> None:
    path = folder / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("[delivery]")] + "[delivery]\n" + lines, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--transport", choices=["outbox", "postmark", "smtp"], default="outbox")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request (postmark)")
    parser.add_argument(
        "--personal", action="store_true", help="a campaign with per-reader filters and blocks"
    )
    parser.add_argument(
        "--compare", action="store_true", help="plain and personal sends alternately, and ratios"
    )
    parser.add_argument("--in-process", action="store_true", help="µs a message, in-process")
    parser.add_argument("--runs", type=int, default=3, help="with --compare or --in-process")
    parser.add_argument("--before", help="with --compare: another checkout's src, personal too")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_API_KEY"] = "bench-token"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    if args.in_process:
        in_process(args)
        return
    if args.compare:
        compare(args, env)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_project(folder, args.subscribers, args.personal)
        server = smtp = None
        if args.transport == "postmark":
            from fakes.postmark import FakePostmark

            server = FakePostmark(token="bench-token", latency=args.latency, keep_bodies=False)
            server.start()
            set_delivery(folder, f'transport = "postmark"\nbase_url = "{server.url}"\n')
        if args.transport == "smtp":
            smtp = SMTPSink(folder)
            set_delivery(
                folder,
                f'transport = "smtp"\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n',
            )
        try:
            wall, rss, _ = timed(["subscribers", "import", "subscribers.csv"], folder, env)
            print(f"import {args.subscribers:>7} subscribers: {wall:6.2f} s  peak RSS {rss} KiB")
            wall, rss, _ = timed(["build", "2026-10-digest"], folder, env)
            html = (folder / "build" / "2026-10-digest" / "email.html").stat().st_size
            print(
                f"build (one campaign, {html / 1024:.1f} KB HTML): {wall:6.2f} s  "
                f"peak RSS {rss} KiB"
            )
            wall, rss, cpu = timed(["send", "2026-10-digest", "--yes"], folder, env)
            rate = args.subscribers / wall
            extra = f", {args.latency * 1000:.0f} ms/request" if server else ""
            print(
                f"send via {args.transport}{extra}: {wall:6.2f} s  {rate:,.0f} messages/s  "
                f"peak RSS {rss} KiB  CPU of the command {cpu} s"
            )
            if server:
                assert len(server.accepted) == args.subscribers
                server.accepted.clear()
            if smtp:
                assert smtp.count() == args.subscribers, smtp.count()
        finally:
            if server:
                server.stop()
            if smtp:
                smtp.stop()


# -- plain against personal ------------------------------------------------------------
def delivery_lines(transport: str, latency: float, server: object, smtp: object) -> str:
    if transport == "postmark":
        return f'transport = "postmark"\nbase_url = "{server.url}"\n'  # type: ignore[attr-defined]
    if transport == "smtp":
        port = smtp.port  # type: ignore[attr-defined]
        return f'transport = "smtp"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
    return 'transport = "outbox"\n'


def compare(args: argparse.Namespace, env: dict[str, str]) -> None:
    """Plain and personal sends, alternately, each from its own imported database."""
    with tempfile.TemporaryDirectory() as tmp:
        server = smtp = None
        if args.transport == "postmark":
            from fakes.postmark import FakePostmark

            server = FakePostmark(token="bench-token", latency=args.latency, keep_bodies=False)
            server.start()
        if args.transport == "smtp":
            smtp = SMTPSink(Path(tmp))
        kinds = [("plain", False, None), ("personal", True, None)]
        if args.before:
            kinds += [
                ("plain, before", False, args.before),
                ("personal, before", True, args.before),
            ]
        folders: dict[str, Path] = {}
        try:
            for name, personal, _src in kinds[:2]:
                folder = folders[name] = Path(tmp) / name.replace(" ", "")
                folder.mkdir()
                make_project(folder, args.subscribers, personal)
                timed(["subscribers", "import", "subscribers.csv"], folder, env)
                set_delivery(folder, delivery_lines(args.transport, args.latency, server, smtp))
                shutil.copy(folder / "newsletter.db", folder / "pristine.db")
            folders["plain, before"] = folders["plain"]
            folders["personal, before"] = folders["personal"]
            found: dict[str, list[tuple[float, float, int]]] = {name: [] for name, *_ in kinds}
            for run in range(args.runs):
                for name, _personal, src in kinds:
                    wall, rss, cpu = send_once(folders[name], env, src)
                    found[name].append((wall, cpu, rss))
                    print(f"run {run + 1} {name:>16}: {wall:6.2f} s wall  {cpu:6.2f} s CPU")
                    if server:
                        assert len(server.accepted) == args.subscribers
                        server.accepted.clear()
        finally:
            if server:
                server.stop()
            if smtp:
                smtp.stop()
    print_comparison(args, found)


def send_once(folder: Path, env: dict[str, str], src: str | None) -> tuple[float, int, float]:
    """One send of the campaign from the database as imported: (wall s, RSS KiB, CPU s)."""
    if src:
        env = {**env, "PYTHONPATH": src}
    for extra in ("-wal", "-shm"):
        (folder / f"newsletter.db{extra}").unlink(missing_ok=True)
    shutil.rmtree(folder / "outbox", ignore_errors=True)
    shutil.copy(folder / "pristine.db", folder / "newsletter.db")
    wall, rss, cpu = timed(["send", "2026-10-digest", "--yes"], folder, env)
    return wall, rss or 0, float(cpu)


def print_comparison(args: argparse.Namespace, found: dict[str, list]) -> None:
    print(
        f"\n{args.subscribers:,} readers via {args.transport}, medians of {args.runs} "
        "alternated runs"
    )
    print(
        f"{'campaign':>16} {'wall s':>8} {'CPU s':>8} {'RSS MB':>7} {'wall/plain':>10} "
        f"{'CPU/plain':>9}"
    )
    for name, rows in found.items():
        plain = "plain, before" if name.endswith(", before") else "plain"  # its own tree's
        plain_wall = statistics.median(r[0] for r in found[plain])
        plain_cpu = statistics.median(r[1] for r in found[plain])
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        rss = statistics.median(r[2] for r in rows) / 1024
        print(
            f"{name:>16} {wall:8.2f} {cpu:8.2f} {rss:7.1f} {wall / plain_wall:10.2f} "
            f"{cpu / plain_cpu:9.2f}"
        )
    if "plain, before" in found:
        this = statistics.median(r[1] for r in found["plain"])
        before = statistics.median(r[1] for r in found["plain, before"])
        print(f"plain send's CPU, this tree / before: {this / before:.2f}")
    print("goal: personal CPU/plain <= 1.20 (each tree against its own plain send)")


IN_PROCESS = """
import sys, time, tempfile
from pathlib import Path
sys.path.insert(0, {here!r})
from bench_send import make_project
from newsletter.models import Recipient
from newsletter.project import Project
from newsletter.providers.postmark import PostmarkTransport
import os
parts = {{}}
for name, personal in (("plain", False), ("personal", True)):
    folder = Path(tempfile.mkdtemp())
    make_project(folder, 1, personal)
    os.chdir(folder)
    composer = Project.load().composer
    compiled = composer.compile(composer.campaign("2026-10-digest"))
    factory = composer.factory(compiled, carrier=PostmarkTransport.carrier())
    parts[name] = (factory, composer.personalizer("2026-10-digest", 1))
n = {n}
def readers(start):
    return [
        Recipient(i, f"reader{{i}}@example.com", f"Reader{{i}}", "Surname",
                  tags=("ce",) if i % 3 else ("therapist",))
        for i in range(start, start + n)
    ]
out = []
for run in range({runs}):
    for name in ("plain", "personal"):
        factory, fields = parts[name]
        batch = readers((run * 2 + (name == "personal")) * n)
        started = time.process_time()
        for r in batch:
            factory.message(r, fields(r))
        out.append(f"{{name}} {{(time.process_time() - started) * 1e6 / n:.2f}}")
print("\\n".join(out))
"""


def in_process(args: argparse.Namespace) -> None:
    """µs of CPU a message (fields, slots, variant, message) for distinct readers."""
    code = IN_PROCESS.format(
        here=str(Path(__file__).resolve().parent), n=args.subscribers, runs=args.runs
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, list[float]] = {"plain": [], "personal": []}
    for line in out.splitlines():
        name, value = line.split()
        found[name].append(float(value))
    plain = statistics.median(found["plain"])
    personal = statistics.median(found["personal"])
    print(f"{args.subscribers:,} distinct readers a run, medians of {args.runs} alternated runs")
    print(f"plain {plain:.1f} µs/msg  personal {personal:.1f} µs/msg  ratio {personal / plain:.2f}")


if __name__ == "__main__":
    main()
