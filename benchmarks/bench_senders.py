"""One sender against three on one campaign, sharing a PostgreSQL database, through the
local Postmark-compatible server: wall time until every recipient is settled.

    python benchmarks/bench_senders.py --postgres postgresql://... [--subscribers 100000]
        [--latency 0.05]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", required=True, help="an admin URL for scratch databases")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    import psycopg

    from fakes.postmark import FakePostmark

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_API_KEY"] = "bench"
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakePostmark(token="bench", latency=args.latency, keep_bodies=False) as server,
    ):
        root = Path(tmp)
        for name in (
            "newsletter.toml",
            "articles",
            "images",
            "campaigns",
            "templates",
            ".newsletter",
        ):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
        config = root / "newsletter.toml"
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text[: text.index("[delivery]")]
            + f'[delivery]\ntransport = "postmark"\nbase_url = "{server.url}"\n'
        )
        csv = root / "subscribers.csv"
        csv.write_text("email\n" + "".join(f"r{i}@example.com\n" for i in range(args.subscribers)))
        for senders in (1, 3):
            name = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            run_env = env | {
                "NEWSLETTER_DATABASE_URL": args.postgres.rsplit("/", 1)[0] + "/" + name
            }
            try:
                cli = [sys.executable, "-m", "newsletter"]
                subprocess.run(
                    [*cli, "subscribers", "import", str(csv)],
                    cwd=root,
                    env=run_env,
                    check=True,
                    capture_output=True,
                )
                server.accepted.clear()
                started = time.perf_counter()
                procs = [
                    subprocess.Popen(
                        [*cli, "send", "2026-10-digest", "--yes"],
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
                print(
                    f"{senders} sender(s), {args.latency * 1000:.0f} ms/request: {wall:6.1f} s  "
                    f"{got:,} messages, {distinct:,} distinct, exit codes {codes}"
                )
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
