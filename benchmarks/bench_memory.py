"""Peak RSS of a whole `newsletter send`, at several audience sizes and through each
kind of transport, beside the fixed cost of the interpreter and of the CLI measured in
the same run (so that the table shows what the send itself adds).

    python benchmarks/bench_memory.py [--sizes 10000,100000,1000000]
                                      [--transports outbox,smtp,postmark,brevo]
                                      [--against /work/main/src] [--runs 1]

- outbox: the file-writing transport (one .eml per reader: about 28 KB each, so it runs
  only up to ``--outbox-max`` readers);
- smtp: Postfix's ``smtp-sink`` (aiosmtpd when it is not installed);
- postmark: the local fake of Postmark's batch API (tests/fakes/postmark.py) keeping no
  bodies, at 0 ms;
- brevo: the local fake of Brevo's API (tests/fakes/brevo.py), the same way: its versions
  are whole messages (about 30 KB each), so its bodies are the largest of all.

``--against SRC`` runs the same sends with ``PYTHONPATH=SRC`` too (another checkout's
``src``), alternating with this one, each on a fresh copy of the same project.
Peak RSS comes from /usr/bin/time -v (the command's own process).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_send import SMTPSink, make_project, set_delivery, timed  # noqa: E402

SRC = HERE.parent / "src"


def rss_of(command: list[str], env: dict[str, str], cwd: Path) -> int:
    """Peak RSS (KiB) of one command, from /usr/bin/time -v."""
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stderr.strip().splitlines()[-1])


def environment(src: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_API_KEY"] = "bench-token"
    env["PYTHONPATH"] = str(src)
    return env


def configure(folder: Path, transport: str, fakes: dict[str, Any], smtp: SMTPSink | None) -> None:
    if transport in fakes:
        set_delivery(folder, f'transport = "{transport}"\nbase_url = "{fakes[transport].url}"\n')
    elif transport == "smtp":
        assert smtp is not None
        set_delivery(
            folder,
            f'transport = "smtp"\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n',
        )


def one_send(
    base: Path,
    work: Path,
    transport: str,
    src: Path,
    fakes: dict[str, Any],
    smtp: SMTPSink | None,
) -> tuple[int, float]:
    """(peak RSS in KiB, wall seconds) of one send on a fresh copy of ``base``."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, work)
    configure(work, transport, fakes, smtp)
    wall, rss, _ = timed(["send", "2026-10-digest", "--yes"], work, environment(src))
    shutil.rmtree(work)
    assert rss is not None
    return rss, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--transports", default="outbox,smtp,postmark")
    parser.add_argument("--outbox-max", type=int, default=100_000)
    parser.add_argument("--against", type=Path, help="another checkout's src to run beside")
    parser.add_argument("--runs", type=int, default=1, help="sends of each kind (median shown)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    transports = args.transports.split(",")
    sources = [("this", SRC)] + ([("against", args.against)] if args.against else [])
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    from fakes.brevo import FakeBrevo
    from fakes.postmark import FakePostmark

    fakes: dict[str, Any] = {
        "postmark": FakePostmark(token="bench-token", latency=0.0, keep_bodies=False),
        "brevo": FakeBrevo(api_key="bench-token", keep_bodies=False),
    }
    for fake in fakes.values():
        fake.start()
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        smtp = SMTPSink(folder) if "smtp" in transports else None
        try:
            python_pass = rss_of([sys.executable, "-c", "pass"], environment(SRC), folder)
            fixed = {
                name: rss_of(
                    [sys.executable, "-m", "newsletter", "--version"], environment(src), folder
                )
                for name, src in sources
            }
            print(f"python -c pass: {python_pass / 1024:.1f} MB")
            for name, _ in sources:
                print(f"newsletter --version ({name}): {fixed[name] / 1024:.1f} MB")
            for size in sizes:
                base = folder / f"base-{size}"
                base.mkdir()
                make_project(base, size)
                timed(["subscribers", "import", "subscribers.csv"], base, environment(SRC))
                for transport in transports:
                    if transport == "outbox" and size > args.outbox_max:
                        continue
                    found: dict[str, list[tuple[int, float]]] = {n: [] for n, _ in sources}
                    for _ in range(args.runs):
                        for name, src in sources:  # alternating
                            found[name].append(
                                one_send(base, folder / "work", transport, src, fakes, smtp)
                            )
                            for fake in fakes.values():
                                fake.accepted.clear()
                                fake.requests.clear()
                    for name, _ in sources:
                        rss = statistics.median(r for r, _ in found[name])
                        wall = statistics.median(w for _, w in found[name])
                        rows.append(
                            (
                                name,
                                transport,
                                f"{size:,}",
                                f"{rss / 1024:.1f}",
                                f"{(rss - fixed[name]) / 1024:+.1f}",
                                f"{fixed[name] / 1024:.1f}",
                                f"{python_pass / 1024:.1f}",
                                f"{wall:.1f}",
                            )
                        )
                        print("  ".join(rows[-1]), flush=True)
                shutil.rmtree(base)
        finally:
            for fake in fakes.values():
                fake.stop()
            if smtp:
                smtp.stop()
    header = (
        "code",
        "transport",
        "readers",
        "send peak MB",
        "over --version",
        "--version MB",
        "python -c pass MB",
        "wall s",
    )
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
