"""The report of a campaign of N readers (default 100,000) and the overview, timed.

A fresh SQLite database (or, with --postgres URL, a scratch PostgreSQL database) is
filled in bulk: N subscribers imported over the past year with a year of membership
rows, one campaign sent to all of them (1 % failed, 0.2 % unknown), and a realistic
mix of provider events: about 95 % delivered, 2 % bounced (three quarters hard, over
five reasons and a few hundred receiving domains), 0.1 % complaints, 0.3 %
unsubscribes, 20 % opens, 5 % of readers clicking (some several links; some clicks from
scanners, some seconds after delivery). Then, in a child process of its own (so its peak
RSS is the report's, not the filling's): `campaign_report`, `overview`, the JSON of
`report --format json`, and the HTML pages when `newsletter.report_page` has them.

    python benchmarks/bench_report.py [--readers N] [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SLUG = "bench-issue"
START = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC)
REASONS = (
    ("bounced", "550 5.1.1 The email account that you tried to reach does not exist"),
    ("bounced", "550 5.1.1 User unknown"),
    ("bounced", "554 5.7.1 Recipient address rejected: Access denied"),
    ("soft_bounced", "452 4.2.2 The email account that you tried to reach is over quota"),
    ("soft_bounced", "421 4.7.0 Try again later, closing connection"),
)
LINKS = [f"https://blog.riverbend-clinicians.example/2026/{i:02d}/article" for i in range(30)]
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari"
SCANNER = "Mozilla/5.0 (compatible; BingPreview/1.0b)"


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def domain(i: int) -> str:
    return ("gmail.com", "outlook.com", "yahoo.com")[i % 3] if i % 4 else f"clinic{i % 300}.org"


def subscribers(n: int) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        created = iso(START - dt.timedelta(days=365) + dt.timedelta(minutes=i * 5 % 525_600))
        email = f"reader{i}@{domain(i)}"
        yield (i, email, email, "active", created, created)


def membership(n: int) -> Iterator[tuple[Any, ...]]:
    """A third of the readers signed up and confirmed; a few were added by staff."""
    for i in range(1, n + 1, 3):
        at = START - dt.timedelta(days=365) + dt.timedelta(minutes=i * 5 % 525_600)
        yield (i, "signup", iso(at))
        yield (i, "confirmed", iso(at + dt.timedelta(hours=2)))
    for i in range(2, n + 1, 97):
        yield (i, "added", iso(START - dt.timedelta(days=i % 300)))


def deliveries(n: int) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        at = iso(START + dt.timedelta(seconds=i * 1800 // n))
        status = "failed" if i % 100 == 7 else "unknown" if i % 500 == 11 else "sent"
        sent_at = at if status == "sent" else None
        yield (1, i, f"reader{i}@{domain(i)}", status, f"pm-{i}", sent_at, at, "postmark")


def events(n: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    """(kind, email, subscriber, message id, occurred_at, detail, url, user agent)."""
    for i in range(1, n + 1):
        if i % 100 == 7 or i % 500 == 11:
            continue
        email, sent = f"reader{i}@{domain(i)}", START + dt.timedelta(seconds=i * 1800 // n)
        roll = rng.random()
        if roll < 0.02:  # bounced: three quarters hard
            kind, reason = REASONS[int(roll * 250) % 3] if roll < 0.015 else REASONS[3 + i % 2]
            yield (kind, email, i, f"pm-{i}", iso(sent + dt.timedelta(seconds=40)), reason, None)
            continue
        arrived = sent + dt.timedelta(seconds=rng.randint(2, 300))
        yield ("delivered", email, i, f"pm-{i}", iso(arrived), None, None)
        if roll < 0.021:
            yield (
                "complained",
                email,
                i,
                f"pm-{i}",
                iso(arrived + dt.timedelta(hours=3)),
                None,
                None,
            )
        elif roll < 0.024:
            yield (
                "unsubscribed",
                email,
                i,
                f"pm-{i}",
                iso(arrived + dt.timedelta(hours=5)),
                None,
                None,
            )
        if rng.random() < 0.2:
            opened = arrived + dt.timedelta(minutes=rng.randint(1, 2880))
            yield ("opened", email, i, f"pm-{i}", iso(opened), None, BROWSER)
        if rng.random() < 0.06:  # a sixth of them only scanned
            yield from clicks(email, i, arrived, rng)


def clicks(email: str, i: int, arrived: dt.datetime, rng: random.Random) -> Iterator[tuple]:
    if rng.random() < 0.3:  # a gateway's scanner follows every link as it arrives
        for link in LINKS[:3]:
            yield (
                "clicked",
                email,
                i,
                f"pm-{i}",
                iso(arrived + dt.timedelta(seconds=1)),
                link,
                SCANNER,
            )
    for _ in range(rng.choice((0, 1, 1, 1, 1, 2, 3))):
        at = arrived + dt.timedelta(minutes=rng.randint(1, 2880))
        link = LINKS[min(int(rng.expovariate(0.3)), len(LINKS) - 1)]
        yield ("clicked", email, i, f"pm-{i}", iso(at), link, BROWSER)


def fill(store: Any, n: int) -> int:
    """The database filled in bulk; the number of events."""
    rng = random.Random(20)
    db = store.db
    with store.transaction():
        db.executemany(
            "INSERT INTO subscribers (id, email, email_key, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            subscribers(n),
        )
        db.executemany(
            "INSERT INTO subscriber_log (subscriber_id, action, at) VALUES (?, ?, ?)",
            membership(n),
        )
        db.execute(
            "INSERT INTO campaigns (id, slug, subject, status, transport, created_at, "
            "started_at, finished_at) VALUES (1, ?, ?, 'sent', 'postmark', ?, ?, ?)",
            (
                SLUG,
                "November at Riverbend",
                iso(START),
                iso(START),
                iso(START + dt.timedelta(minutes=30)),
            ),
        )
        db.executemany(
            "INSERT INTO deliveries (campaign_id, subscriber_id, email, status, "
            "provider_message_id, sent_at, updated_at, transport) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            deliveries(n),
        )
        rows = [
            (
                "postmark",
                kind,
                email,
                sid,
                1,
                mid,
                at,
                None if url else detail,
                "{}",
                at,
                url,
                agent,
            )
            for kind, email, sid, mid, at, detail, agent in events(n, rng)
            for url in (detail if kind == "clicked" else None,)
        ]
        db.executemany(
            "INSERT INTO events (provider, kind, email, subscriber_id, campaign_id, "
            "provider_message_id, occurred_at, detail, raw, received_at, url, user_agent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def measure(config: str) -> None:
    """The child: the report and the overview, timed, and this process's peak RSS."""
    from newsletter.catalog import load_settings
    from newsletter.report import campaign_report, overview
    from newsletter.store import open_store

    settings = load_settings(config)
    store = open_store(settings.database_url)
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(name: str, call: Any) -> Any:
        started, used = time.perf_counter(), time.process_time()
        value = call()
        timings[name] = time.perf_counter() - started
        cpu[name] = time.process_time() - used
        return value

    report = timed("campaign_report", lambda: campaign_report(store.ledger, store.events, SLUG))
    found = timed("overview", lambda: overview(store))
    text = timed("json", lambda: json.dumps(report.as_dict(), ensure_ascii=False))
    sizes = {"json": len(text.encode())}
    try:
        from newsletter import report_page
    except ImportError:
        report_page = None
    if report_page is not None and hasattr(report_page, "campaign_page"):
        page = timed("campaign_page", lambda: report_page.campaign_page(report, settings))
        sizes["campaign_page"] = len(page.encode())
    if report_page is not None and hasattr(report_page, "overview_page"):
        page = timed("overview_page", lambda: report_page.overview_page(found, settings))
        sizes["overview_page"] = len(page.encode())
    store.close()
    f = report.figures
    print(
        f"figures: audience {f.audience}, sent {f.sent}, delivered {f.delivered}, bounced "
        f"{f.bounced_hard} hard / {f.bounced_soft} soft, clicked {f.clicked} "
        f"(+{f.bot_clicked} bots only), opened {f.opened}; {len(report.timeline.buckets)} "
        f"{report.timeline.bucket}s, {len(found.months)} months"
    )
    for name, seconds in timings.items():
        size = f"  ({sizes[name] / 1024:,.0f} KB)" if name in sizes else ""
        print(f"{name:16} {seconds:6.2f} s wall, {cpu[name]:5.2f} s CPU{size}")
    total = timings["campaign_report"] + timings["overview"]
    pages = sum(v for k, v in timings.items() if k.endswith("_page"))
    print(
        f"{'report + overview':16} {total:6.2f} s wall; with the HTML pages {total + pages:.2f} s"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"peak RSS {peak} MB")


def command(root: Path, campaign: list[str], env: dict[str, str]) -> None:
    """``newsletter report [CAMPAIGN] --html --no-open`` under ``/usr/bin/time -v``: the
    whole command's wall time and peak RSS, and the page's size."""
    out = root / "reports" / f"{campaign[0] if campaign else 'overview'}.html"
    ran = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "newsletter", "report", *campaign,
         "--html", "--no-open", "--out", str(out)],
        cwd=root, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    fields = dict(line.strip().rsplit(": ", 1) for line in ran.stderr.splitlines() if ": " in line)
    wall = fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"]
    rss = int(fields["Maximum resident set size (kbytes)"]) // 1024
    label = f"report {' '.join(campaign) or '(overview)'} --html"
    print(f"{label:32} {wall} wall, peak RSS {rss} MB, {out.stat().st_size // 1024:,} KB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--postgres", help="an admin URL; a scratch database is made on it")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child: a config path
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return
    sys.path.insert(0, str(REPO / "src"))
    from newsletter.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copy(REPO / "newsletter.toml", root)
        url, scratch = f"sqlite:///{root / 'newsletter.db'}", None
        if args.postgres:
            import psycopg

            scratch = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{scratch}"')
            url = args.postgres.rsplit("/", 1)[0] + "/" + scratch
        config = root / "newsletter.toml"
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace('url = "sqlite:///newsletter.db"', f'url = "{url}"'))
        try:
            started = time.perf_counter()
            store = open_store(url)
            count = fill(store, args.readers)
            store.close()
            print(
                f"{args.readers:,} readers, {count:,} events on {url.split(':')[0]}: "
                f"filled in {time.perf_counter() - started:.1f} s"
            )
            env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
            subprocess.run(
                [sys.executable, __file__, "--measure", str(config)], check=True, env=env
            )
            for what in ([SLUG], []):  # the whole command, as an editor runs it
                command(root, what, env)
        finally:
            if scratch:
                with psycopg.connect(args.postgres, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


if __name__ == "__main__":
    main()
