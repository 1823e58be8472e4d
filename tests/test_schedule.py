"""Scheduled sends: `send_at`, `local_time` across daylight-saving changes, `newsletter run`
(overlapping, killed, paused), `newsletter schedule`, and the digest on its schedule.

Time is passed in with --now; the database is the project's (PostgreSQL when
TEST_POSTGRES_URL is set, as for the whole suite)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import signal
from pathlib import Path

import pytest

from conftest import (
    connect,
    import_many,
    run_process,
    set_delivery,
    start_process,
    wait_for,
)
from fakes.postmark import FakePostmark
from newsletter.zones import at_wall_clock, iso, parse_monthly, zone

AUCKLAND, BERLIN, LOS_ANGELES = "Pacific/Auckland", "Europe/Berlin", "America/Los_Angeles"


def write_campaign(project: Path, slug: str, send_at: str, *extra: str) -> Path:
    path = project / "campaigns" / f"{slug}.md"
    head = "\n".join(
        ["subject: A scheduled note", "template: plain", f"send_at: {send_at}", *extra]
    )
    path.write_text(f"---\n{head}\n---\nA short note for {{{{ recipient.first_name }}}}.\n")
    return path


def import_readers(run, project: Path, rows: list[tuple[str, str]]) -> None:
    """Readers (address, time zone or "") from a subscribers file with a timezone column."""
    path = project / "readers.csv"
    path.write_text(
        "email,first_name,timezone\n" + "".join(f"{e},{e.split('@')[0]},{z}\n" for e, z in rows)
    )
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 0, result.stderr


def outbox(project: Path, slug: str) -> list[Path]:
    return sorted((project / "outbox" / slug).glob("*.eml"))


def recipients_of(project: Path, slug: str) -> list[str]:
    """The To address of every message the outbox holds for the campaign."""
    found = []
    for path in outbox(project, slug):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("To:"):
                found.append(line.split("<")[-1].rstrip(">").strip())
                break
    return found


def deliveries(project: Path, slug: str) -> dict[str, tuple[str, str | None]]:
    """email -> (status, due_at) of the campaign's deliveries."""
    db = connect(project)
    try:
        rows = db.execute(
            "SELECT d.email, d.status, d.due_at FROM deliveries d JOIN campaigns c "
            "ON c.id = d.campaign_id WHERE c.slug = ?",
            (slug,),
        ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}
    finally:
        db.close()


def campaign_status(project: Path, slug: str) -> str | None:
    db = connect(project)
    try:
        row = db.execute("SELECT status FROM campaigns WHERE slug = ?", (slug,)).fetchone()
        return row[0] if row else None
    finally:
        db.close()


# -- time zones ----------------------------------------------------------------------------
def test_wall_clock_times_across_daylight_saving_changes() -> None:
    berlin = zone(BERLIN)
    assert berlin is not None
    # 09:00 on the day the clocks go forward (2027-03-28) and back (2027-10-31): once each
    assert iso(at_wall_clock(dt.date(2027, 3, 28), dt.time(9), berlin)) == "2027-03-28T07:00:00Z"
    assert iso(at_wall_clock(dt.date(2027, 10, 31), dt.time(9), berlin)) == "2027-10-31T08:00:00Z"
    # 02:30 does not exist on 2027-03-28 in Berlin: it moves forward by the gap, to 03:30 CEST
    gap = at_wall_clock(dt.date(2027, 3, 28), dt.time(2, 30), berlin)
    assert iso(gap) == "2027-03-28T01:30:00Z"
    assert gap.astimezone(berlin).strftime("%H:%M") == "03:30"
    # 02:30 happens twice on 2027-10-31: the first (CEST), once
    assert iso(at_wall_clock(dt.date(2027, 10, 31), dt.time(2, 30), berlin)) == (
        "2027-10-31T00:30:00Z"
    )
    auckland = zone(AUCKLAND)
    assert auckland is not None
    # Auckland leaves daylight saving on 2027-04-04: 09:00 is NZST (+12) that day
    assert iso(at_wall_clock(dt.date(2027, 4, 3), dt.time(9), auckland)) == "2027-04-02T20:00:00Z"
    assert iso(at_wall_clock(dt.date(2027, 4, 4), dt.time(9), auckland)) == "2027-04-03T21:00:00Z"
    assert zone("Mars/Olympus_Mons") is None and zone("../etc/passwd") is None


def test_digest_schedule_parsing() -> None:
    monthly = parse_monthly("1 09:00 Europe/Berlin")
    assert monthly.day == 1 and monthly.zone_label == BERLIN
    now = dt.datetime(2026, 11, 1, 7, 59, tzinfo=dt.UTC)
    assert monthly.last_due(now) is None
    assert iso(monthly.next_after(now)) == "2026-11-01T08:00:00Z"
    for bad in ("31 09:00", "1 25:00", "first monday", "1 09:00 Mars/Base"):
        with pytest.raises(ValueError):
            parse_monthly(bad)


# -- scheduled campaigns ------------------------------------------------------------------
def test_not_sent_before_send_at_then_once(project: Path, run) -> None:
    import_readers(run, project, [(f"r{i}@example.com", "") for i in range(5)])
    write_campaign(project, "thursday", "2027-12-09 09:00 Europe/Berlin")
    early = run("run", "--now", "2027-12-09T07:59:59Z")
    assert early.exit_code == 0 and early.stderr == "" and early.stdout == ""
    assert outbox(project, "thursday") == [] and campaign_status(project, "thursday") is None
    listing = run("schedule", "--now", "2027-12-09T07:00Z", "--format", "json")
    row = next(r for r in json.loads(listing.stdout) if r["name"] == "thursday")
    assert row["state"] == "waiting" and "2027-12-09 09:00 Europe/Berlin (08:00 UTC)" in row["when"]

    due = run("run", "--now", "2027-12-09T08:00Z")
    assert due.exit_code == 0, due.stderr
    assert due.stderr == "" and due.stdout == "", "quiet on success"
    assert len(outbox(project, "thursday")) == 5
    for now in ("2027-12-09T08:15Z", "2027-12-10T08:00Z"):
        assert run("run", "--now", now).exit_code == 0
    assert sorted(recipients_of(project, "thursday")) == [f"r{i}@example.com" for i in range(5)]
    assert campaign_status(project, "thursday") == "sent"
    listing = run("schedule", "--now", "2027-12-09T09:00Z")
    assert "thursday" in listing.stdout and "sent" in listing.stdout


def minutes_before(stored: str, minutes: int = 1) -> str:
    moment = dt.datetime.fromisoformat(stored.replace("Z", "+00:00"))
    return iso(moment - dt.timedelta(minutes=minutes))


# Each day one zone's clocks change: Los Angeles springs forward (2027-03-14), Berlin
# springs forward (2027-03-28), Auckland falls back (2027-04-04). Readers: Auckland,
# Berlin, Los Angeles, and one with no zone, who gets send_at's zone (Berlin).
DST_DAYS = {
    "2027-03-14": ("2027-03-13T20:00:00Z", "2027-03-14T08:00:00Z", "2027-03-14T16:00:00Z"),
    "2027-03-28": ("2027-03-27T20:00:00Z", "2027-03-28T07:00:00Z", "2027-03-28T16:00:00Z"),
    "2027-04-04": ("2027-04-03T21:00:00Z", "2027-04-04T07:00:00Z", "2027-04-04T16:00:00Z"),
}


@pytest.mark.parametrize("day", sorted(DST_DAYS))
def test_local_time_readers_get_it_at_nine_on_their_own_clocks(
    project: Path, run, day: str
) -> None:
    readers = [
        ("kiri@example.com", AUCKLAND),
        ("anna@example.com", BERLIN),
        ("luis@example.com", LOS_ANGELES),
        ("nozone@example.com", ""),
    ]
    import_readers(run, project, readers)
    write_campaign(project, "nine", f"{day} 09:00 Europe/Berlin", "local_time: true")
    auckland, berlin, los_angeles = DST_DAYS[day]
    expected = {
        "kiri@example.com": auckland,
        "anna@example.com": berlin,
        "nozone@example.com": berlin,
        "luis@example.com": los_angeles,
    }
    assert run("run", "--now", minutes_before(auckland)).exit_code == 0
    assert campaign_status(project, "nine") is None, "not begun before its first reader's time"

    def run_at(now: str) -> set[str]:
        before = set(recipients_of(project, "nine"))
        result = run("run", "--now", now)
        assert result.exit_code == 0, result.stderr
        return set(recipients_of(project, "nine")) - before

    assert run_at(auckland) == {"kiri@example.com"}  # 09:00 in Auckland
    assert {e: d for e, (_, d) in deliveries(project, "nine").items()} == expected
    assert run_at(minutes_before(berlin)) == set()  # 08:59 in Berlin
    assert run_at(berlin) == {"anna@example.com", "nozone@example.com"}
    assert run_at(minutes_before(los_angeles)) == set()
    listing = run("schedule", "--now", minutes_before(los_angeles), "--format", "json")
    row = next(r for r in json.loads(listing.stdout) if r["name"] == "nine")
    assert row["state"] == "sending" and "1 reader(s) wait" in row["detail"]
    assert run_at(los_angeles) == {"luis@example.com"}  # 09:00 in Los Angeles
    assert run_at(minutes_before(los_angeles, -24 * 60)) == set()
    assert sorted(recipients_of(project, "nine")) == sorted(expected), "each once"
    assert campaign_status(project, "nine") == "sent"
    for email_address, due in expected.items():  # each at 09:00 on their own clocks
        tz = zone({"kiri": AUCKLAND, "luis": LOS_ANGELES}.get(email_address[:4], BERLIN))
        local = dt.datetime.fromisoformat(due.replace("Z", "+00:00")).astimezone(tz)
        assert (local.date().isoformat(), local.strftime("%H:%M")) == (day, "09:00")


def test_a_send_at_in_a_spring_forward_gap_goes_out_once(project: Path, run) -> None:
    import_readers(run, project, [("anna@example.com", BERLIN), ("kiri@example.com", AUCKLAND)])
    write_campaign(project, "gap", "2027-03-28 02:30 Europe/Berlin", "local_time: true")
    assert run("run", "--now", "2027-03-28T01:29Z").exit_code == 0
    assert recipients_of(project, "gap") == ["kiri@example.com"]  # Auckland's 02:30 came first
    assert deliveries(project, "gap")["anna@example.com"] == ("pending", "2027-03-28T01:30:00Z")
    for now in ("2027-03-28T01:30Z", "2027-03-28T01:45Z", "2027-03-28T02:30Z"):
        assert run("run", "--now", now).exit_code == 0
    assert sorted(recipients_of(project, "gap")) == ["anna@example.com", "kiri@example.com"]


def test_send_of_a_scheduled_campaign_asks_first(project: Path, run) -> None:
    import_readers(run, project, [("a@example.com", ""), ("b@example.com", "")])
    write_campaign(project, "later", "2030-01-10 09:00 Europe/Berlin")
    dry = run("send", "later", "--dry-run")
    assert dry.exit_code == 0
    assert "scheduled for 2030-01-10 09:00 Europe/Berlin (08:00 UTC)" in dry.stderr
    assert "Dry run" in dry.stderr
    refused = run("send", "later")  # no terminal to ask on
    assert refused.exit_code == 1
    assert "scheduled for 2030-01-10" in refused.stderr and "--yes" in refused.stderr
    assert outbox(project, "later") == []
    sent = run("send", "later", "--yes")
    assert sent.exit_code == 0, sent.stderr
    assert len(outbox(project, "later")) == 2
    assert run("run", "--now", "2030-01-10T08:00Z").exit_code == 0
    assert len(outbox(project, "later")) == 2, "sent now, not again at its time"


# -- bad input: a clear message, nothing sent ----------------------------------------------
@pytest.mark.parametrize(
    ("send_at", "message"),
    [
        ("next thursday at nine", "is not a date and time"),
        ("2027-12-09T09:00:00", "has no offset nor time zone"),
        ("2027-12-09 09:00 Mars/Olympus_Mons", "not a known IANA time zone"),
    ],
)
def test_an_unusable_send_at_is_refused(project: Path, run, send_at: str, message: str) -> None:
    import_readers(run, project, [("a@example.com", "")])
    write_campaign(project, "bad", send_at)
    for args in (("send", "bad", "--yes"), ("run", "--now", "2027-12-10T00:00Z")):
        result = run(*args)
        assert result.exit_code == 1, (args, result.stderr)
        assert message in result.stderr and "send_at" in result.stderr
        assert "Traceback" not in result.stderr
    assert "Europe/Berlin" in result.stderr or "IANA" in result.stderr  # the fix is shown
    assert outbox(project, "bad") == [] and campaign_status(project, "bad") is None


def test_local_time_without_send_at_is_refused(project: Path, run) -> None:
    path = project / "campaigns" / "nolocal.md"
    path.write_text("---\nsubject: Hi\ntemplate: plain\nlocal_time: true\n---\nHello.\n")
    result = run("send", "nolocal", "--yes")
    assert result.exit_code == 1 and "`local_time: true` needs a send_at" in result.stderr


def test_a_send_at_in_the_past_is_an_error_with_the_fix(project: Path, run) -> None:
    import_readers(run, project, [("a@example.com", "")])
    write_campaign(project, "missed", "2020-01-10T09:00:00+01:00")
    result = run("send", "missed", "--yes")
    assert result.exit_code == 1
    assert "is in the past; remove it to send now, or set a future time" in result.stderr
    check = run("check", "missed")
    assert "is in the past" in check.stderr  # a warning
    late = run("run", "--now", "2020-01-12T09:00Z")  # two days late: needs a person
    assert late.exit_code == 1 and "more than a day late" in late.stderr
    assert outbox(project, "missed") == [] and campaign_status(project, "missed") is None


def test_an_unknown_zone_in_the_subscribers_file_refuses_that_row(project: Path, run) -> None:
    path = project / "zones.csv"
    path.write_text(
        "email,timezone\nok@example.com,Europe/Berlin\nbad@example.com,Europe/Atlantis\n"
        "none@example.com,\n"
    )
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 0  # like any bad row: listed, the others imported
    assert "line 3: bad@example.com: unknown time zone 'Europe/Atlantis'" in result.stderr
    assert "1 rejected" in result.stderr
    listed = json.loads(run("subscribers", "list", "--format", "json").stdout)
    assert {r["email"]: r["timezone"] for r in listed} == {
        "ok@example.com": BERLIN,
        "none@example.com": None,
    }
    export = project / "export.csv"
    assert run("subscribers", "export", str(export)).exit_code == 0
    assert "timezone" in export.read_text().splitlines()[0]
    assert BERLIN in export.read_text()
    again = run("subscribers", "import", str(export))  # the export imports back
    assert again.exit_code == 0 and "2 unchanged" in again.stderr


def test_templates_see_the_readers_time_zone(project: Path, run) -> None:
    import_readers(run, project, [("anna@example.com", BERLIN), ("sam@example.com", "")])
    path = project / "campaigns" / "zoned.md"
    path.write_text(
        "---\nsubject: Hi\ntemplate: plain\n---\n"
        'Your clocks: {{ recipient.get("timezone", "not known") }}.\n'
    )
    assert run("send", "zoned", "--yes").exit_code == 0
    texts = {}
    for eml in outbox(project, "zoned"):
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        texts[message["To"].addresses[0].addr_spec] = message.get_body(("plain",)).get_content()
    assert "Your clocks: Europe/Berlin." in texts["anna@example.com"]
    assert "Your clocks: not known." in texts["sam@example.com"]


def test_a_bad_digest_schedule_is_refused(project: Path, run) -> None:
    config = project / "newsletter.toml"
    text = config.read_text()
    for bad, message in (
        ("31 09:00", "is not a day every month has"),
        ("1 9am", "is not DAY HH:MM"),
        ("1 09:00 Europe/Atlantis", "is not a known time zone"),
        ("20 09:00", "after [digest] max_lateness_days"),
    ):
        config.write_text(text + f'\n[digest]\nschedule = "{bad}"\n')
        result = run("run", "--now", "2026-11-01T09:00Z")
        assert result.exit_code == 1, bad
        assert "[digest] schedule" in result.stderr and message in result.stderr
    assert not (project / "outbox").exists()


def test_a_bad_now_is_refused(project: Path, run) -> None:
    result = run("run", "--now", "tomorrow")
    assert result.exit_code == 1 and "not an ISO 8601 date-time" in result.stderr


# -- pause, resume, cancel --------------------------------------------------------------------
def test_pause_run_resume_run(project: Path, run) -> None:
    readers = [("kiri@example.com", AUCKLAND), ("anna@example.com", BERLIN)]
    readers += [(f"la{i}@example.com", LOS_ANGELES) for i in range(3)]
    import_readers(run, project, readers)
    write_campaign(project, "held", "2027-12-09 09:00 Europe/Berlin", "local_time: true")
    assert run("run", "--now", "2027-12-08T20:00Z").exit_code == 0  # Auckland's 09:00
    assert recipients_of(project, "held") == ["kiri@example.com"]
    paused = run("schedule", "pause", "held")
    assert paused.exit_code == 0 and "is paused" in paused.stderr
    assert run("run", "--now", "2027-12-09T08:00Z").exit_code == 0  # Berlin's: paused
    assert run("run", "--now", "2027-12-09T17:00Z").exit_code == 0  # Los Angeles': paused
    assert recipients_of(project, "held") == ["kiri@example.com"]
    refused = run("send", "held", "--yes")
    assert refused.exit_code == 1 and "schedule resume held" in refused.stderr
    listing = run("schedule", "--now", "2027-12-09T17:00Z")
    assert "paused" in listing.stdout
    assert run("schedule", "resume", "held").exit_code == 0
    assert run("run", "--now", "2027-12-09T17:01Z").exit_code == 0
    got = recipients_of(project, "held")
    assert sorted(got) == sorted(e for e, _ in readers), "nobody twice, nobody skipped"
    assert campaign_status(project, "held") == "sent"


def test_pause_before_the_time_then_resume(project: Path, run) -> None:
    import_readers(run, project, [("a@example.com", ""), ("b@example.com", "")])
    write_campaign(project, "early", "2027-12-09T09:00:00+01:00")
    assert run("schedule", "pause", "early").exit_code == 0
    assert run("run", "--now", "2027-12-09T08:00Z").exit_code == 0
    assert outbox(project, "early") == []
    assert run("schedule", "resume", "early").exit_code == 0
    assert run("run", "--now", "2027-12-09T08:05Z").exit_code == 0
    assert len(outbox(project, "early")) == 2
    again = run("schedule", "resume", "early")
    assert again.exit_code == 1 and "is not paused" in again.stderr


def test_cancel_settles_the_waiting_readers_as_skipped(project: Path, run) -> None:
    import_readers(run, project, [("kiri@example.com", AUCKLAND), ("anna@example.com", BERLIN)])
    write_campaign(project, "dropped", "2027-12-09 09:00 Europe/Berlin", "local_time: true")
    assert run("run", "--now", "2027-12-08T20:00Z").exit_code == 0
    cancelled = run("schedule", "cancel", "dropped", "--yes")
    assert cancelled.exit_code == 0 and "1 waiting reader(s)" in cancelled.stderr
    assert run("run", "--now", "2027-12-09T08:00Z").exit_code == 0
    assert recipients_of(project, "dropped") == ["kiri@example.com"]
    assert deliveries(project, "dropped")["anna@example.com"][0] == "skipped"
    refused = run("send", "dropped", "--yes")
    assert refused.exit_code == 1 and "was cancelled" in refused.stderr
    assert campaign_status(project, "dropped") == "cancelled"


# -- the digest on its schedule --------------------------------------------------------------
def test_the_digest_runs_once_per_period(project: Path, run) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0
    config = project / "newsletter.toml"
    config.write_text(config.read_text() + '\n[digest]\nschedule = "1 09:00 Europe/Berlin"\n')
    assert run("run", "--now", "2026-11-01T07:59Z").exit_code == 0  # 08:59 in Berlin
    assert outbox(project, "digest-2026-10") == []
    listing = run("schedule", "--now", "2026-11-01T07:59Z")
    assert "digest-2026-10" in listing.stdout and "2026-11-01 09:00 Europe/Berlin" in listing.stdout
    for now in ("2026-11-01T08:00Z", "2026-11-01T08:15Z", "2026-11-05T08:00Z"):
        result = run("run", "--now", now)
        assert result.exit_code == 0, result.stderr
        assert result.stderr == ""
    assert len(outbox(project, "digest-2026-10")) == 10
    log = (project / ".newsletter" / "digest.log").read_text().splitlines()
    assert len(log) == 1 and "period=2026-10" in log[0]
    for now in ("2026-12-01T08:00Z", "2026-12-01T08:15Z", "2026-12-02T08:00Z"):
        assert run("run", "--now", now).exit_code == 0
    log = (project / ".newsletter" / "digest.log").read_text().splitlines()
    assert [line for line in log if "period=2026-11" in line][1:] == [], "November once"


def test_a_late_digest_is_reported_once_and_not_sent(project: Path, run) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0
    config = project / "newsletter.toml"
    config.write_text(config.read_text() + '\n[digest]\nschedule = "1 09:00"\n')
    late = run("run", "--now", "2026-11-10T09:00Z")  # October ended 10 days ago
    assert late.exit_code == 1
    assert "past its deadline" in late.stderr and "does not try it again" in late.stderr
    again = run("run", "--now", "2026-11-10T09:15Z")
    assert again.exit_code == 0 and again.stderr == ""
    assert outbox(project, "digest-2026-10") == []


# -- real processes: overlapping, killed, paused mid-send --------------------------------------
@pytest.mark.slow
def test_two_overlapping_runs_send_each_reader_once(project: Path) -> None:
    import_many(project, 600)
    write_campaign(project, "overlap", "2027-12-09T09:00:00+01:00")
    with FakePostmark(token="pm") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, batch_size=50, concurrency=1)
        pm.latency = 0.05
        env = {"NEWSLETTER_API_KEY": "pm"}
        early = run_process("run", "--now", "2027-12-09T07:59Z", cwd=project, env=env)
        assert early.returncode == 0 and pm.batch_requests() == []
        first = start_process("run", "--now", "2027-12-09T08:00Z", cwd=project, env=env)
        second = start_process("run", "--now", "2027-12-09T08:01Z", cwd=project, env=env)
        for proc in (first, second):
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
            assert out == "" and err == "", "quiet on success"
        accepted = pm.accepted_to()
        assert len(accepted) == len(set(accepted)) == 600, "split, never doubled"
    assert campaign_status(project, "overlap") == "sent"


@pytest.mark.slow
def test_run_killed_mid_send_then_run_again_sends_everyone_once(project: Path) -> None:
    import_many(project, 3000)
    write_campaign(project, "killed", "2027-12-09T09:00:00+01:00")
    proc = start_process("run", "--now", "2027-12-09T08:00Z", cwd=project)
    folder = project / "outbox" / "killed"
    wait_for(lambda: folder.exists() and len(list(folder.glob("*.eml"))) >= 200)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(list(folder.glob("*.eml"))) < 3000
    again = run_process("run", "--now", "2027-12-09T08:15Z", cwd=project)
    assert again.returncode == 0, again.stderr
    got = recipients_of(project, "killed")
    assert len(got) == len(set(got)) == 3000, "every reader once"
    assert not list(folder.glob("*.tmp"))
    assert {s for s, _ in deliveries(project, "killed").values()} == {"sent"}


@pytest.mark.slow
def test_pause_stops_a_running_send_at_its_next_batch(project: Path, run) -> None:
    import_many(project, 600)
    write_campaign(project, "midway", "2027-12-09T09:00:00+01:00")
    with FakePostmark(token="pm") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, batch_size=50, concurrency=1)
        pm.latency = 0.1
        env = {"NEWSLETTER_API_KEY": "pm"}
        proc = start_process("run", "--now", "2027-12-09T08:00Z", cwd=project, env=env)
        wait_for(lambda: len(pm.batch_requests()) >= 2)
        assert run("schedule", "pause", "midway").exit_code == 0
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err  # a person's pause needs no one
        stopped_at = len(pm.accepted_to())
        assert stopped_at < 600
        assert (
            run_process("run", "--now", "2027-12-09T08:15Z", cwd=project, env=env).returncode == 0
        )
        assert len(pm.accepted_to()) == stopped_at, "a paused campaign waits"
        assert run("schedule", "resume", "midway").exit_code == 0
        done = run_process("run", "--now", "2027-12-09T08:30Z", cwd=project, env=env)
        assert done.returncode == 0, done.stderr
        accepted = pm.accepted_to()
        assert len(accepted) == len(set(accepted)) == 600, "nobody twice, nobody skipped"
