"""Whole-command benchmarks: `newsletter build` and `newsletter send` on the example
campaign, to N synthetic subscribers, through the outbox or a local Postmark-compatible
server. Wall time and peak RSS come from /usr/bin/time -v when it is installed.

    python benchmarks/bench_send.py [--subscribers 10000] [--transport outbox|postmark]
                                    [--latency 0.05] [--personal]

``--personal`` adds per-reader Jinja2 to the campaign: filters on reader fields, an
inline ``if`` and an ``{% if %}`` block over the reader's tags (two compiled variants).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
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
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_API_KEY"] = "bench-token"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
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


if __name__ == "__main__":
    main()
