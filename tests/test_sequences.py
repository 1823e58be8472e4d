"""Sequences (a welcome series): who enters, when each step is due, the grace rule for a
step added later, leaving, `subscribers import --enter`, errors that send nothing, and
kill -9 of a run in the middle of a step. Real project folders, the real database
(SQLite, and PostgreSQL with TEST_POSTGRES_URL), the outbox's real .eml files; time is
passed in (``now``) as `newsletter run --now` does."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import copy_example, run_process, start_process, wait_for
from newsletter.project import Project
from newsletter.sequences import SequencesRun, run_sequences, waiting
from test_store import database_url

STEPS = ("01-welcome", "02-the-archive", "03-what-readers-wrote")
DAY = dt.timedelta(days=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def project(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The example project (with its three-step welcome sequence), as the current
    folder, on SQLite and on PostgreSQL."""
    root = copy_example(tmp_path / "project")
    config = root / "newsletter.toml"
    url = database_url(request.param, tmp_path)
    text = re.sub(r'(?m)^url = ".*"$', f'url = "{url}"', config.read_text(encoding="utf-8"))
    config.write_text(text, encoding="utf-8")
    monkeypatch.chdir(root)
    return root


# -- helpers ----------------------------------------------------------------------------
def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def library(root: Path) -> Project:
    return Project.load(str(root / "newsletter.toml"))


def run_at(root: Path, when: dt.datetime) -> SequencesRun:
    """What `newsletter run --now WHEN` does for sequences, through the library."""
    with library(root) as project:
        return run_sequences(project, when)


def received(root: Path, step: str) -> list[str]:
    """The addresses the outbox holds a message of ``step`` for, one per message."""
    folder = root / "outbox" / f"welcome--{step}"
    return sorted(message(p)["To"].addresses[0].addr_spec for p in folder.glob("*.eml"))


def message(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def everything_received(root: Path) -> dict[str, list[str]]:
    return {step: received(root, step) for step in STEPS}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`newsletter ...` as a child process, in the current folder (the project)."""
    return run_process(*args, cwd=Path.cwd())


def write_csv(root: Path, name: str, addresses: list[str]) -> Path:
    path = root / name
    path.write_text("email\n" + "".join(f"{a}\n" for a in addresses), encoding="utf-8")
    return path


def sign_up_and_confirm(root: Path, address: str) -> None:
    """The real double opt-in, through the library: the form, the confirmation email
    in the outbox, its link followed."""
    from newsletter import signup

    with library(root) as project:
        desk = signup.SignupDesk.of(project.settings, project.store, project.composer)
        shown = now() - dt.timedelta(seconds=30)  # past [signup] min_seconds
        form = signup.SignupForm(address, "Noor", form_token=signup.form_token(desk.secret, shown))
        assert signup.sign_up(desk, form, "192.0.2.7").queued
        assert signup.deliver_confirmations(desk) == 1
        [path] = (root / "outbox" / "_confirmations").glob("*.eml")
        text = message(path).get_body(("plain",)).get_content()
        token = re.search(r"/confirm/(\S+)", text).group(1)
        assert signup.confirm(desk, token).state == signup.ConfirmState.ACTIVE


def add_at(root: Path, address: str, when: dt.datetime) -> None:
    """`subscribers add`, as if typed at ``when`` (its membership log row's time)."""
    with library(root) as project:
        status, _ = project.store.membership.add(address, "", "", (), "staff", when)
        assert status is None


# -- the welcome series -------------------------------------------------------------------
def test_a_three_step_welcome_series_reaches_exactly_those_who_entered(project: Path) -> None:
    first = run_at(project, now())  # the sequence is first seen: readers from now on enter
    assert first.outcomes == () and first.problems == ()
    added = cli("subscribers", "add", "added@example.org", "--consent-source", "met at CE day")
    assert added.returncode == 0, added.stderr
    sign_up_and_confirm(project, "signed.up@example.org")
    imported = [f"imported{i}@example.com" for i in range(200)]
    result = cli("subscribers", "import", str(write_csv(project, "many.csv", imported)))
    assert result.returncode == 0, result.stderr
    assert "entered" not in result.stdout + result.stderr  # an import enters nobody
    both = ["added@example.org", "signed.up@example.org"]

    start = now()
    ran = run_at(project, start)
    assert ran.exit_status == 0 and ran.entered == 2
    assert everything_received(project) == {STEPS[0]: both, STEPS[1]: [], STEPS[2]: []}

    assert run_at(project, start + DAY).outcomes == ()  # nothing is due on day 1
    assert everything_received(project)[STEPS[1]] == []

    run_at(project, start + 3 * DAY)
    assert everything_received(project) == {STEPS[0]: both, STEPS[1]: both, STEPS[2]: []}

    run_at(project, start + 14 * DAY)
    run_at(project, start + 14 * DAY)  # a rerun sends nothing twice
    run_at(project, start + 40 * DAY)
    assert everything_received(project) == {step: both for step in STEPS}

    with library(project) as library_project:
        ledger = library_project.store.ledger
        for step in STEPS:
            row = ledger.campaign(f"welcome--{step}")
            assert row is not None and row.status == "sending"  # never `sent`: more may come
            assert ledger.delivery_counts(row.id) == {"sent": 2}  # the imported: no row at all
        rows = waiting(library_project, start + 40 * DAY)
    assert [(w.slug, w.waiting) for w in rows] == [(f"welcome--{s}", 0) for s in STEPS]

    # steps are built like any campaign: unsubscribe headers, UTM tags, the web version
    [archive_step] = (project / "outbox" / "welcome--02-the-archive").glob("*added*.eml")
    sent = message(archive_step)
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent["Auto-Submitted"] == "auto-generated"
    html = sent.get_body(("html",)).get_content()
    assert "utm_campaign=welcome--02-the-archive" in html
    assert "Finding your way around" in sent["Subject"]
    with library(project) as lib:  # a step's articles stay new for the monthly digest
        assert lib.store.ledger.featured_before("2026-12", ()) == {}
        assert lib.store.ledger.campaign_page("welcome--02-the-archive") is not None
        assert lib.store.ledger.archived_campaigns(()) == []  # not listed unless asked
    report = cli("report", "sequences/welcome/02-the-archive.md", "--format", "json")
    assert report.returncode == 0 and '"sent": 2' in report.stdout


def test_a_reader_who_unsubscribes_after_step_one_gets_nothing_more(project: Path) -> None:
    start = now()
    run_at(project, start - DAY)
    add_at(project, "stays@example.org", start)
    add_at(project, "leaves@example.org", start)
    run_at(project, start)
    assert received(project, STEPS[0]) == ["leaves@example.org", "stays@example.org"]
    assert cli("subscribers", "unsubscribe", "leaves@example.org").returncode == 0
    for days in (3, 14, 30):
        assert run_at(project, start + days * DAY).exit_status == 0
    assert received(project, STEPS[1]) == received(project, STEPS[2]) == ["stays@example.org"]
    with library(project) as lib:
        [step] = [w for w in waiting(lib, start + 30 * DAY) if w.step == STEPS[2]]
        assert step.waiting == 0


def test_a_reader_who_leaves_the_audience_gets_no_further_step(project: Path) -> None:
    config = project / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace('grace = "1d"', 'grace = "1d"\naudience = { exclude_tags = ["staff"] }'),
        encoding="utf-8",
    )
    start = now()
    run_at(project, start - DAY)
    add_at(project, "reader@example.org", start)
    add_at(project, "colleague@example.org", start)
    run_at(project, start)
    assert received(project, STEPS[0]) == ["colleague@example.org", "reader@example.org"]
    with library(project) as lib:  # a tag that takes them out of the audience
        [sid] = [s.id for s in lib.store.subscribers.stream() if s.email.startswith("colleague")]
        with lib.store.transaction():
            lib.store.db.execute(
                "INSERT INTO subscriber_tags (subscriber_id, tag) VALUES (?, 'staff')", (sid,)
            )
    run_at(project, start + 14 * DAY)
    assert received(project, STEPS[1]) == received(project, STEPS[2]) == ["reader@example.org"]


def test_an_erased_reader_leaves_the_sequence_and_never_comes_back(project: Path, run) -> None:
    start = now()
    run_at(project, start - DAY)
    add_at(project, "erased@example.org", start)
    add_at(project, "kept@example.org", start)
    run_at(project, start)
    assert run("subscribers", "forget", "erased@example.org", "--yes").exit_code == 0
    with library(project) as lib:
        assert [sid for sid, _ in lib.store.sequences.entries("welcome")] == [
            s.id for s in lib.store.subscribers.stream() if s.email == "kept@example.org"
        ]
    for days in (0, 3, 14):
        run_at(project, start + days * DAY)
    with library(project) as lib:
        assert len(lib.store.sequences.entries("welcome")) == 1  # the log did not re-enter her
    assert received(project, STEPS[1]) == received(project, STEPS[2]) == ["kept@example.org"]


# -- the grace rule -----------------------------------------------------------------------
def test_a_step_added_to_a_live_sequence_reaches_no_backlog(project: Path) -> None:
    """Step 03 (after 7d) is added on day 20: it reaches only readers for whom it is at
    most a day (grace) overdue then, and those for whom it is not due yet."""
    late = project / "sequences" / "welcome" / "03-what-readers-wrote.md"
    late_text = late.read_text(encoding="utf-8").replace("after: 2w", "after: 7d")
    late.unlink()
    t = now() - 40 * DAY  # the sequence's life so far, as the membership log has it
    run_at(project, t)
    joined = {"a": 0, "d": 11, "b": 12, "c": 18}  # day each reader entered
    for name, day in sorted(joined.items(), key=lambda item: item[1]):
        add_at(project, f"{name}@example.org", t + day * DAY)
        run_at(project, t + day * DAY)
    run_at(project, t + 19 * DAY)
    # everyone had the steps that were due (c's second step is due on day 21)
    assert received(project, STEPS[1]) == ["a@example.org", "b@example.org", "d@example.org"]

    late.write_text(late_text, encoding="utf-8")  # day 20: the new step appears
    added_at = t + 20 * DAY
    ran = run_at(project, added_at)
    # b: due on day 19, one day overdue (within grace); a (13 days) and d (2 days): never
    assert ran.exit_status == 0 and received(project, STEPS[2]) == ["b@example.org"]
    with library(project) as lib:
        [step] = [w for w in waiting(lib, added_at) if w.step == STEPS[2]]
        assert (step.waiting, step.next_due) == (1, t + 25 * DAY)  # c, due on day 25
    run_at(project, t + 24 * DAY)
    assert received(project, STEPS[2]) == ["b@example.org"]
    run_at(project, t + 25 * DAY)
    for days in (26, 40, 80):
        run_at(project, t + days * DAY)
    assert received(project, STEPS[2]) == ["b@example.org", "c@example.org"]


def test_readers_active_before_the_sequence_was_first_seen_do_not_enter(project: Path) -> None:
    start = now()
    add_at(project, "early@example.org", start - 2 * DAY)
    run_at(project, start - DAY)  # first seen
    add_at(project, "later@example.org", start)
    for days in (0, 3, 14):
        run_at(project, start + days * DAY)
    assert everything_received(project) == {step: ["later@example.org"] for step in STEPS}


# -- subscribers import --enter -----------------------------------------------------------
def test_import_with_enter_enters_the_active_imported_readers(project: Path, run) -> None:
    start = now()
    run_at(project, start - DAY)
    path = project / "people.csv"
    path.write_text(
        "email,status\nann@example.org,active\nben@example.org,active\n"
        "gone@example.org,unsubscribed\n",
        encoding="utf-8",
    )
    result = run("subscribers", "import", str(path), "--enter", "welcome")
    assert result.exit_code == 0, result.stderr
    assert "2 reader(s) entered the sequence welcome" in result.stderr + result.stdout
    again = run("subscribers", "import", str(path), "--enter", "welcome")  # nobody twice
    assert "0 reader(s) entered" in again.stderr + again.stdout
    run_at(project, now())
    assert received(project, STEPS[0]) == ["ann@example.org", "ben@example.org"]
    run_at(project, now() + 14 * DAY)
    assert received(project, STEPS[2]) == ["ann@example.org", "ben@example.org"]

    other = project / "other.csv"
    other.write_text("email\ncat@example.org\n", encoding="utf-8")
    unknown = run("subscribers", "import", str(other), "--enter", "welcom")
    assert unknown.exit_code == 1
    assert "there is no sequence 'welcom'" in unknown.stderr
    assert "[sequences.welcom]" in unknown.stderr and "configured: welcome" in unknown.stderr
    listed = run("subscribers", "list", "--format", "json")
    assert "cat@example.org" not in listed.stdout  # nothing was imported


# -- errors send nothing ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("after", "said"),
    [
        ("soon", "`after` is 'soon'"),
        ("3", "`after` is 3"),
        ("-1d", "`after` is '-1d'"),
        (None, "`after` is missing"),
    ],
)
def test_an_invalid_after_is_a_clear_error_and_nothing_is_sent(
    project: Path, run, after: str | None, said: str
) -> None:
    start = now()
    run_at(project, start - DAY)
    add_at(project, "reader@example.org", start)
    step = project / "sequences" / "welcome" / "02-the-archive.md"
    text = step.read_text(encoding="utf-8")
    step.write_text(
        text.replace("after: 3d\n", "" if after is None else f"after: {after}\n"), encoding="utf-8"
    )
    ran = run_at(project, start)
    assert ran.exit_status == 1 and ran.outcomes == ()
    [problem] = ran.problems
    assert said in problem.message and "02-the-archive.md" in problem.message
    assert "0d, 36h, 3d, 2w or 90m" in (problem.hint or "")
    assert not (project / "outbox").exists() or not any((project / "outbox").rglob("*.eml"))
    checked = run("check", "welcome--02-the-archive")
    assert checked.exit_code == 1 and said in checked.stdout + checked.stderr


def test_steps_whose_after_decreases_are_refused(project: Path) -> None:
    step = project / "sequences" / "welcome" / "02-the-archive.md"
    step.write_text(step.read_text(encoding="utf-8").replace("after: 3d", "after: 36h"), "utf-8")
    (project / "sequences" / "welcome" / "01-welcome.md").write_text(
        (project / "sequences" / "welcome" / "01-welcome.md")
        .read_text(encoding="utf-8")
        .replace("after: 0d", "after: 2d"),
        encoding="utf-8",
    )
    ran = run_at(project, now())
    [problem] = ran.problems
    assert "`after: 36h` is earlier than 01-welcome.md's `after: 2d`" in problem.message
    assert "must not decrease" in problem.message and ran.outcomes == ()


def test_sections_and_folders_must_match(project: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "[database]", "[sequences.onboarding]\n\n[database]"
        ),
        encoding="utf-8",
    )
    stray = project / "sequences" / "renewal"
    stray.mkdir()
    (stray / "01-renew.md").write_text("---\nsubject: Renew\nafter: 0d\n---\nHi.\n", "utf-8")
    start = now()
    run_at(project, start - DAY)
    add_at(project, "reader@example.org", start)
    ran = run_at(project, start)
    stray_folder, no_folder = (p.message for p in ran.problems)
    assert ran.exit_status == 1
    assert "[sequences.onboarding]" in no_folder and "has no folder" in no_folder
    assert "renewal/ is a sequence's folder" in stray_folder
    assert "no [sequences.renewal] section" in stray_folder
    # the sequence that is in order still goes; the others sent nothing
    assert received(project, STEPS[0]) == ["reader@example.org"]
    assert not (project / "outbox" / "renewal--01-renew").exists()
    assert cli("check", "renewal--01-renew").returncode == 1


def test_config_errors_name_the_key_and_how_to_fix_it(project: Path, run) -> None:
    config = project / "newsletter.toml"
    original = config.read_text(encoding="utf-8")
    config.write_text(original.replace('grace = "1d"', 'grace = "a day"'), encoding="utf-8")
    bad = run("check", "welcome--01-welcome")
    assert bad.exit_code == 1
    assert "[sequences.welcome] grace" in bad.stderr and "0d, 36h, 3d, 2w or 90m" in bad.stderr
    config.write_text(original.replace('grace = "1d"', 'delay = "1d"'), encoding="utf-8")
    bad = run("check", "welcome--01-welcome")
    assert bad.exit_code == 1 and "Unknown key(s) delay in [sequences.welcome]" in bad.stderr
    config.write_text(original.replace('grace = "1d"', "audience = 3"), encoding="utf-8")
    bad = run("check", "welcome--01-welcome")
    assert bad.exit_code == 1 and "audience" in bad.stderr and "must be a table" in bad.stderr


def test_a_step_is_never_sent_to_a_whole_list(project: Path, run) -> None:
    run("subscribers", "import", "subscribers.example.csv")
    refused = run("send", "welcome--01-welcome", "--yes")
    assert refused.exit_code == 1 and "is a step of the sequence welcome" in refused.stderr
    assert not (project / "outbox" / "welcome--01-welcome").exists()
    test_copy = run("send", "welcome--01-welcome", "--test", "editor@example.org")
    assert test_copy.exit_code == 0, test_copy.stderr
    assert run("build", "sequences/welcome/01-welcome.md").exit_code == 0
    assert (project / "build" / "welcome--01-welcome" / "email.html").is_file()


def test_campaign_slugs_with_two_dashes_are_kept_for_steps(project: Path, run) -> None:
    (project / "campaigns" / "spring--news.md").write_text("---\nsubject: Hi\n---\nHi.\n", "utf-8")
    checked = run("check", "campaigns/spring--news.md")
    assert checked.exit_code == 1 and "'--' is kept for sequence steps" in checked.stderr
    (project / "campaigns" / "plain.md").write_text(
        "---\nsubject: Hi\nafter: 3d\n---\nHi.\n", "utf-8"
    )
    checked = run("check", "plain")
    assert checked.exit_code == 1 and "`after` is only for the steps of a sequence" in (
        checked.stderr
    )


def test_a_step_failing_check_stops_only_that_step(project: Path) -> None:
    step = project / "sequences" / "welcome" / "02-the-archive.md"
    step.write_text(
        step.read_text(encoding="utf-8").replace("template: plain", "template: missing"), "utf-8"
    )
    start = now()
    run_at(project, start - DAY)
    add_at(project, "reader@example.org", start)
    ran = run_at(project, start + 14 * DAY)
    assert ran.exit_status == 1
    [problem] = ran.problems
    assert "missing" in problem.message
    assert everything_received(project) == {
        STEPS[0]: ["reader@example.org"],
        STEPS[1]: [],
        STEPS[2]: ["reader@example.org"],
    }
    step.write_text(
        step.read_text(encoding="utf-8").replace("template: missing", "template: plain"), "utf-8"
    )
    assert run_at(project, start + 15 * DAY).exit_status == 0  # fixed: the reader waited
    assert received(project, STEPS[1]) == ["reader@example.org"]


# -- kill -9 ------------------------------------------------------------------------------
@pytest.fixture
def entered(project: Path) -> Iterator[list[str]]:
    """3000 readers entered into the welcome sequence by an import."""
    run_at(project, now() - DAY)
    readers = [f"reader{i}@example.com" for i in range(3000)]
    path = write_csv(project, "many.csv", readers)
    result = cli("subscribers", "import", str(path), "--enter", "welcome")
    assert result.returncode == 0, result.stderr
    yield readers


@pytest.mark.slow
def test_the_cron_line_sends_the_welcome_series_quietly(project: Path) -> None:
    """`newsletter run --now` as cron runs it: silent when all is well, each step once,
    and `newsletter schedule` shows the readers each step still waits for."""
    start = now()

    def run(when: dt.datetime) -> None:
        ran = cli("run", "--now", when.isoformat())
        assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")

    run(start)  # the sequence is first seen: readers from now on enter
    added = cli("subscribers", "add", "added@example.org", "--consent-source", "met at CE day")
    assert added.returncode == 0, added.stderr
    run(start + dt.timedelta(minutes=1))
    assert everything_received(project) == {STEPS[0]: ["added@example.org"], STEPS[1]: [],
                                            STEPS[2]: []}  # fmt: skip
    listed = cli("schedule", "--now", (start + DAY).isoformat(), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    import json

    steps = {r["name"]: r for r in json.loads(listed.stdout) if r["kind"] == "sequence"}
    assert steps["welcome--02-the-archive"]["state"].startswith("1 waiting")
    assert steps["welcome--01-welcome"]["state"].startswith("0 waiting")
    for days in (1, 3, 3, 14):
        run(start + days * DAY + dt.timedelta(minutes=2))
    assert everything_received(project) == {step: ["added@example.org"] for step in STEPS}


def test_a_step_may_not_carry_send_at(project: Path) -> None:
    step = project / "sequences" / "welcome" / "02-the-archive.md"
    text = step.read_text(encoding="utf-8")
    step.write_text(text.replace("after:", "send_at: 2030-01-01 09:00 Europe/Berlin\nafter:", 1))
    result = cli("check", "welcome--02-the-archive")
    assert result.returncode == 1
    assert (
        "send_at" in result.stderr
        and "after" in result.stderr
        and "Traceback" not in (result.stderr)
    )


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_step_then_run_again(project: Path, entered: list[str]) -> None:
    folder = project / "outbox" / "welcome--01-welcome"
    proc = start_process("run", "--now", now().isoformat(), cwd=project)
    wait_for(lambda: folder.exists() and len(list(folder.glob("*.eml"))) >= 200, timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(list(folder.glob("*.eml"))) < 3000
    again = start_process("run", "--now", now().isoformat(), cwd=project)
    assert again.wait(timeout=300) == 0, again.stderr.read() if again.stderr else ""
    assert received(project, STEPS[0]) == sorted(entered)  # every reader, once
    assert not list(folder.glob("*.tmp"))
    with library(project) as lib:
        row = lib.store.ledger.campaign("welcome--01-welcome")
        assert row is not None and lib.store.ledger.delivery_counts(row.id) == {"sent": 3000}


@pytest.mark.slow
def test_two_overlapping_runs_share_a_step(project: Path, entered: list[str]) -> None:
    when = now() + 3 * DAY
    first = start_process("run", "--now", when.isoformat(), cwd=project)
    second = start_process("run", "--now", when.isoformat(), cwd=project)
    assert first.wait(timeout=300) == 0, first.stderr.read() if first.stderr else ""
    assert second.wait(timeout=300) == 0, second.stderr.read() if second.stderr else ""
    assert received(project, STEPS[0]) == received(project, STEPS[1]) == sorted(entered)
