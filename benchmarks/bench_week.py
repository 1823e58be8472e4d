"""One simulated week of `newsletter run`: every 15 minutes for seven days (672 runs),
10,000 imported readers in six time zones, one new reader signing up and confirming
every hour (the real double opt-in, so they enter the example's welcome sequence), a
campaign with ``send_at`` and ``local_time: true`` mid-week and the monthly digest on
``[digest] schedule`` on the 1st. Then every reader's received steps are checked
against the ledger and the outbox files, and the run times are reported.

    python benchmarks/bench_week.py [--readers 10000] [--postgres URL] [--schedule-only]

Time is simulated: each run is ``automation.run_automation(project, now)`` (what
`newsletter run --now` calls) on a freshly loaded project, as cron would start it;
five more runs go through the real command (`newsletter run --now ...`, a rerun of a
moment already run: nothing may go out twice). Transport: the outbox (.eml files).
"""

from __future__ import annotations

import argparse
import datetime as dt
import email
import email.policy
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from example_project import copy_example  # noqa: E402
from newsletter import signup  # noqa: E402
from newsletter.automation import run_automation  # noqa: E402
from newsletter.project import Project  # noqa: E402
from newsletter.zones import at_wall_clock, zone  # noqa: E402

UTC = dt.UTC
START = dt.datetime(2027, 1, 28, 9, 0, tzinfo=UTC)  # a Thursday; the week crosses Feb 1
STEP = dt.timedelta(minutes=15)
RUNS = 7 * 24 * 4
END = START + (RUNS - 1) * STEP  # the last run
DAY = dt.timedelta(days=1)
ZONES = (
    "Pacific/Auckland",
    "Asia/Tokyo",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "",  # none: the campaign's own zone (Berlin)
)
CAMPAIGN = "sunday-note"
SEND_DAY = dt.date(2027, 1, 31)
SEND_AT = f"{SEND_DAY} 09:00 Europe/Berlin"
DIGEST = "digest-2027-01"
STEPS = ("welcome--01-welcome", "welcome--02-the-archive", "welcome--03-what-readers-wrote")
CLI_RUNS = (4, 200, 380, 500, RUNS - 1)  # reruns through the command, after these runs
MIDDLE = 12 + 3 * 96  # Sunday 12:00 UTC: the campaign half sent, the digest waiting


# -- the project ----------------------------------------------------------------------------
def make_project(folder: Path, readers: int, database_url: str | None) -> None:
    """The example project, plus: a scheduled local-time campaign, the digest's
    schedule, two January articles for it, and a subscribers file with time zones."""
    copy_example(folder)
    config = folder / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    if database_url:
        text = text.replace('url = "sqlite:///newsletter.db"', f'url = "{database_url}"')
    config.write_text(text + '\n[digest]\nschedule = "1 09:00 Europe/Berlin"\n', encoding="utf-8")
    (folder / "campaigns" / f"{CAMPAIGN}.md").write_text(
        "---\nsubject: A note for Sunday morning\ntemplate: plain\n"
        f"send_at: {SEND_AT}\nlocal_time: true\n---\n"
        "Good morning, {{ recipient.first_name }}. Our winter workshop has seats left.\n",
        encoding="utf-8",
    )
    source = (REPO / "articles" / "2026-10-27-clay-collage-and-courage.md").read_text("utf-8")
    for day, slug in (("2027-01-12", "january-notes"), ("2027-01-21", "quiet-weeks")):
        text = source.replace("date: 2026-10-27", f"date: {day}")
        text = text.replace("clay-collage-and-courage\n", f"{slug}\n", 1)
        text = text.replace('title: "Clay', f'title: "{slug.replace("-", " ").title()}: Clay')
        (folder / "articles" / f"{day}-{slug}.md").write_text(text, encoding="utf-8")
    with open(folder / "readers.csv", "w", encoding="utf-8") as fh:
        fh.write("email,first_name,last_name,timezone\n")
        for i in range(readers):
            fh.write(f"reader{i}@example.com,Reader{i},Surname,{ZONES[i % len(ZONES)]}\n")


def fresh_postgres(url: str) -> tuple[str, Callable[[], None]]:
    """A new database on the server of ``url`` (dropped afterwards)."""
    import psycopg

    name = f"bench_week_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.rsplit("/", 1)[0] + "/" + name, drop


def command(folder: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """(wall seconds, result) of `newsletter ARGS` as a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["PYTHONPATH"] = str(REPO / "src")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return time.perf_counter() - started, result


# -- the simulated readers ----------------------------------------------------------------------
def sign_up_and_confirm(config: str, folder: Path, address: str, at: dt.datetime) -> None:
    """The double opt-in through the library at simulated time ``at``: the form (shown
    30 s before), the confirmation email in the outbox, its link followed 5 min later."""
    confirmations = folder / "outbox" / "_confirmations"
    before = set(confirmations.glob("*.eml")) if confirmations.exists() else set()
    with Project.load(config) as project:
        desk = signup.SignupDesk.of(project.settings, project.store, project.composer)
        token = signup.form_token(desk.secret, at - dt.timedelta(seconds=30))
        form = signup.SignupForm(address, "New", "Reader", form_token=token)
        assert signup.sign_up(desk, form, "192.0.2.7", now=at).queued, address
        assert signup.deliver_confirmations(desk, at) == 1, address
        [path] = set(confirmations.glob("*.eml")) - before
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = mail.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
        link = re.search(r"/confirm/(\S+)", body)
        assert link is not None
        state = signup.confirm(desk, link.group(1), now=at + dt.timedelta(minutes=5)).state
        assert state == signup.ConfirmState.ACTIVE, (address, state)


# -- the week -------------------------------------------------------------------------------------
class Week:
    """The simulation's record (mutable on purpose): run times, what each run sent,
    when each reader's delivery of the scheduled campaign went (the run's ``now``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config = str(folder / "newsletter.toml")
        self.times: list[float] = []
        self.sent: list[int] = []
        self.problems: list[str] = []
        self.campaign_sent_at: dict[int, dt.datetime] = {}
        self.signups: dict[str, dt.datetime] = {}  # address -> when confirmed
        self.cli: list[tuple[str, float, int, str]] = []
        self.signup_seconds = 0.0
        self.listing = ""
        self.digest_at: dt.datetime | None = None
        self.digests: list[str] = []

    def active_at(
        self, subs: dict[str, tuple[int, str, str | None]], moment: dt.datetime
    ) -> set[int]:
        """The readers active now who were already active at ``moment``."""
        return {
            i
            for e, (i, s, _) in subs.items()
            if s == "active" and (e not in self.signups or self.signups[e] <= moment)
        }

    def run(self, now: dt.datetime) -> None:
        started = time.perf_counter()
        with Project.load(self.config) as project:
            outcome = run_automation(project, now)
        self.times.append(time.perf_counter() - started)
        self.sent.append(sum(d.outcome.delivered for d in outcome.done if d.outcome))
        for problem in outcome.problems:
            self.problems.append(f"{now:%Y-%m-%d %H:%M}: {problem.what}: {problem.error}")
        if outcome.exit_status:
            self.problems.append(f"{now:%Y-%m-%d %H:%M}: exit {outcome.exit_status}")
        for d in outcome.done:
            if d.what.startswith("digest"):
                sent = d.outcome.delivered if d.outcome else 0
                self.digests.append(f"{d.what} at {now:%m-%d %H:%M}: {sent} sent {d.note}")
                if d.what == f"digest {DIGEST[7:]}":
                    self.digest_at = self.digest_at or now
        if any(d.what == f"campaign {CAMPAIGN}" for d in outcome.done):
            self.note_campaign(now)

    def note_campaign(self, now: dt.datetime) -> None:
        with Project.load(self.config) as project:
            rows = project.store.db.execute(
                "SELECT d.subscriber_id FROM deliveries d JOIN campaigns c ON c.id = "
                "d.campaign_id WHERE c.slug = ? AND d.status = 'sent'",
                (CAMPAIGN,),
            ).fetchall()
        for row in rows:
            self.campaign_sent_at.setdefault(row[0], now)

    def sign_up(self, hour: int, at: dt.datetime) -> None:
        address = f"newcomer{hour}@example.net"
        started = time.perf_counter()
        sign_up_and_confirm(self.config, self.folder, address, at)
        self.signup_seconds += time.perf_counter() - started
        self.signups[address] = at + dt.timedelta(minutes=5)

    def rerun_through_cli(self, now: dt.datetime) -> None:
        before = count_eml(self.folder)
        wall, result = command(self.folder, "run", "--now", now.isoformat())
        output = (result.stdout + result.stderr).strip()
        extra = count_eml(self.folder) - before
        self.cli.append((now.isoformat(), wall, result.returncode, output + f" ({extra} new)"))
        if result.returncode or output or extra:
            self.problems.append(f"CLI rerun at {now}: exit {result.returncode}, {output!r}")


def count_eml(folder: Path) -> int:
    outbox = folder / "outbox"
    return sum(1 for _ in outbox.glob("*/*.eml")) if outbox.exists() else 0


def simulate(week: Week) -> None:
    """672 runs, 15 minutes apart; a sign-up at 5 past every hour (confirmed at 10 past)."""
    for k in range(RUNS):
        now = START + k * STEP
        week.run(now)
        if k in CLI_RUNS:
            week.rerun_through_cli(now)
        if k == MIDDLE:
            _, listing = command(week.folder, "schedule", "--now", now.isoformat())
            week.listing = f"`newsletter schedule --now {now.isoformat()}`:\n{listing.stdout}"
        if k % 4 == 0:
            week.sign_up(k // 4, now + dt.timedelta(minutes=5))
        if k % 96 == 95:
            print(f"  day {k // 96 + 1}: {sum(week.times):7.1f} s of runs so far", flush=True)


# -- the checks -------------------------------------------------------------------------------
def outbox_counts(folder: Path) -> dict[str, Counter[str]]:
    """folder (campaign slug) -> address -> how many .eml files it holds for them."""
    counts: dict[str, Counter[str]] = {}
    for path in (folder / "outbox").glob("*/*.eml"):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("To:"):
                    counts.setdefault(path.parent.name, Counter())[
                        line.split("<")[-1].strip().rstrip(">").strip().lower()
                    ] += 1
                    break
    return counts


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[bool, str]] = []

    def check(self, ok: bool, text: str) -> None:
        self.results.append((ok, text))
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


def verify(week: Week, readers: int) -> Checks:
    checks = Checks()
    with Project.load(week.config) as project:
        db = project.store.db

        def rows(sql: str, *params: object) -> list[tuple]:
            # by position: a PostgreSQL row is a dict (iterating it gives the names)
            return [tuple(r[i] for i in range(len(r))) for r in db.execute(sql, params)]

        subs = {e.lower(): (i, s, z) for i, e, s, z in rows(SUBSCRIBERS)}
        delivered = {slug: {} for slug in (*STEPS, CAMPAIGN, DIGEST)}
        for slug, sid, status, due in rows(DELIVERIES):
            delivered.setdefault(slug, {})[sid] = (status, due)
        entered = {sid: at for sid, at in rows(ENTRIES, "welcome")}
        twice = rows(TWICE)
    counts = outbox_counts(week.folder)
    ids = {e: subs[e][0] for e in week.signups}
    imported = {subs[f"reader{i}@example.com"][0] for i in range(readers)}
    by_id = {i: e for e, (i, _, _) in subs.items()}

    def got(slug: str) -> set[int]:
        return {sid for sid, (status, _) in delivered[slug].items() if status == "sent"}

    def once_in_outbox(slug: str, sids: set[int]) -> bool:
        c = counts.get(slug, Counter())
        return all(c[by_id[s]] == 1 for s in sids) and sum(c.values()) == len(sids)

    signed = set(ids.values())
    checks.check(
        set(entered) == signed,
        f"sequence_entries: {len(entered)} readers entered welcome, the {len(signed)} sign-ups",
    )
    first = got(STEPS[0])
    checks.check(
        first == signed and once_in_outbox(STEPS[0], signed),
        f"step 1: {len(first)} sent / {len(signed)} sign-ups, outbox "
        f"{sum(counts.get(STEPS[0], Counter()).values())} messages, each once",
    )
    due2 = {
        sid
        for sid in signed
        if dt.datetime.fromisoformat(entered[sid].replace("Z", "+00:00")) + 3 * DAY <= END
    }
    second = got(STEPS[1])
    checks.check(
        second == due2 and once_in_outbox(STEPS[1], due2) and set(delivered[STEPS[1]]) == due2,
        f"step 2: {len(second)} sent, {len(due2)} with entered_at + 3d <= {END:%m-%d %H:%M}; "
        f"no row for the {len(signed) - len(due2)} others",
    )
    checks.check(
        not delivered[STEPS[2]] and STEPS[2] not in counts,
        f"step 3: {len(delivered[STEPS[2]])} deliveries, "
        f"{sum(counts.get(STEPS[2], Counter()).values())} messages",
    )
    in_steps = imported & set().union(*(set(delivered[s]) for s in STEPS))
    checks.check(not in_steps, f"imported readers with a step delivery: {len(in_steps)}")
    verify_campaign(checks, week, delivered[CAMPAIGN], subs, by_id, counts)
    digest = got(DIGEST)
    active = week.active_at(subs, week.digest_at or END)
    checks.check(
        digest == active and once_in_outbox(DIGEST, active),
        f"digest 2027-01 (at {week.digest_at or 'never'}): {len(digest)} sent / {len(active)} "
        f"readers active then, each once ({sum(counts.get(DIGEST, Counter()).values())} messages)",
    )
    checks.check(
        not twice, f"(campaign, reader) pairs with more than one delivery row: {len(twice)}"
    )
    extra = {slug: n for slug, c in counts.items() for n in c.values() if n > 1}
    checks.check(not extra, f"outbox: (campaign, reader) with more than one message: {len(extra)}")
    checks.check(not week.problems, f"runs that needed a person or failed: {len(week.problems)}")
    return checks


def verify_campaign(
    checks: Checks,
    week: Week,
    deliveries: dict[int, tuple[str, str | None]],
    subs: dict[str, tuple[int, str, str | None]],
    by_id: dict[int, str],
    counts: dict[str, Counter[str]],
) -> None:
    """The local-time campaign: every reader active when it began, once, at the first run
    at or after 09:00 on their own clocks (the campaign's zone, Berlin, without one)."""
    sent = {sid for sid, (status, _) in deliveries.items() if status == "sent"}
    first = min(week.campaign_sent_at.values(), default=None)
    active_then = week.active_at(subs, first or END)
    checks.check(
        sent == set(deliveries) == active_then,
        f"{CAMPAIGN}: {len(sent)} sent / {len(active_then)} readers active when it began "
        f"({first:%Y-%m-%d %H:%M} UTC); {len(deliveries) - len(sent)} rows not sent",
    )
    checks.check(
        once_in(counts.get(CAMPAIGN, Counter()), {by_id[s] for s in sent}),
        f"{CAMPAIGN}: outbox holds {sum(counts.get(CAMPAIGN, Counter()).values())} messages, "
        "one per reader",
    )
    zones = {i: z for i, _, z in subs.values()}
    wrong_due, early, late = [], [], []
    for sid, (_, due) in deliveries.items():
        tz = zone(zones[sid] or "Europe/Berlin")
        assert tz is not None
        expected = at_wall_clock(SEND_DAY, dt.time(9), tz)
        due_at = dt.datetime.fromisoformat((due or "").replace("Z", "+00:00"))
        went = week.campaign_sent_at.get(sid)
        if due_at != expected:
            wrong_due.append(sid)
        if went is None or went < expected:
            early.append(sid)
        elif went - expected >= STEP:
            late.append(sid)
    by_zone = Counter(zones[s] or "(none)" for s in sent)
    checks.check(
        not wrong_due and not early and not late,
        f"{CAMPAIGN}: due_at = 09:00 local on {SEND_DAY} for all; sent by the first run at or "
        f"after it: {len(early)} early or never, {len(late)} later than 15 min, "
        f"{len(wrong_due)} wrong due_at; per zone {dict(sorted(by_zone.items()))}",
    )


def once_in(counter: Counter[str], addresses: set[str]) -> bool:
    return all(counter[a] == 1 for a in addresses) and sum(counter.values()) == len(addresses)


SUBSCRIBERS = "SELECT id, email, status, timezone FROM subscribers"
DELIVERIES = (
    "SELECT c.slug, d.subscriber_id, d.status, d.due_at FROM deliveries d "
    "JOIN campaigns c ON c.id = d.campaign_id"
)
ENTRIES = "SELECT subscriber_id, entered_at FROM sequence_entries WHERE sequence = ?"
TWICE = (
    "SELECT campaign_id, subscriber_id FROM deliveries GROUP BY campaign_id, subscriber_id "
    "HAVING count(*) > 1"
)


# -- `newsletter schedule` --------------------------------------------------------------------
def example_schedule(now: dt.datetime) -> str:
    """`newsletter schedule` of the repository's example project (a copy), after
    importing subscribers.example.csv and one `run`."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        copy_example(folder)
        for args in (
            ("subscribers", "import", "subscribers.example.csv"),
            ("run", "--now", now.isoformat()),
        ):
            _, result = command(folder, *args)
            assert result.returncode == 0, result.stderr
        _, result = command(folder, "schedule", "--now", now.isoformat())
        return result.stdout


# -- the report -------------------------------------------------------------------------------
def summary(week: Week) -> None:
    times = week.times
    busy = [t for t, n in zip(times, week.sent, strict=True) if n]
    quiet = [t for t, n in zip(times, week.sent, strict=True) if not n]
    ms = 1000
    print(
        f"{len(times)} runs: total {sum(times):.1f} s; per run mean "
        f"{statistics.mean(times) * ms:.0f} ms, median {statistics.median(times) * ms:.0f} "
        f"ms, max {max(times) * ms:.0f} ms"
    )
    print(
        f"  {len(quiet)} quiet runs: mean {statistics.mean(quiet) * ms:.0f} ms, median "
        f"{statistics.median(quiet) * ms:.0f} ms, max {max(quiet) * ms:.0f} ms"
    )
    print(
        f"  {len(busy)} runs that sent: total {sum(busy):.1f} s, {sum(week.sent)} messages; "
        f"mean {statistics.mean(busy) * ms:.0f} ms, median {statistics.median(busy) * ms:.0f} "
        f"ms, max {max(busy) * ms:.0f} ms"
    )
    slowest = sorted(zip(times, week.sent, range(len(times)), strict=True), reverse=True)[:5]
    for t, n, k in slowest:
        print(f"    {START + k * STEP:%a %m-%d %H:%M} UTC: {t:.2f} s, {n} sent")
    print(f"  sign-ups (168, library, not in the run times): {week.signup_seconds:.1f} s")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS of this process (all library runs): {rss / 1024:.0f} MB")
    for line in week.digests:
        print(f"  {line}")
    for now, wall, code, output in week.cli:
        print(f"CLI `newsletter run --now {now}` (a rerun): {wall:.2f} s, exit {code} {output}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"peak RSS of the child commands: {children / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--postgres", metavar="URL", help="a server to create a database on")
    parser.add_argument("--schedule-only", action="store_true", help="only `newsletter schedule`")
    args = parser.parse_args()
    for name in [n for n in os.environ if n.startswith("NEWSLETTER_")]:
        del os.environ[name]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    print("`newsletter schedule` of the example project (after an import and one run):")
    print(example_schedule(START))
    if args.schedule_only:
        return
    url, drop = fresh_postgres(args.postgres) if args.postgres else (None, lambda: None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            make_project(folder, args.readers, url)
            os.chdir(folder)
            wall, result = command(folder, "subscribers", "import", "readers.csv")
            assert result.returncode == 0, result.stderr
            print(f"import of {args.readers} readers (the command): {wall:.2f} s")
            print(f"database: {'PostgreSQL' if url else 'SQLite'}; simulating {START} .. {END}")
            week = Week(folder)
            simulate(week)
            print(f"in the simulation, {week.listing}")
            summary(week)
            print(f"load at the end: {os.getloadavg()[0]:.2f}")
            checks = verify(week, args.readers)
            os.chdir(REPO)
    finally:
        drop()
    failed = sum(1 for ok, _ in checks.results if not ok)
    print(f"{len(checks.results) - failed} PASS, {failed} FAIL")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
