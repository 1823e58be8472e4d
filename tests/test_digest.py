"""`newsletter digest` as cron runs it: a fixed --today, articles from a folder and a feed
spanning several months, and runs repeated, overlapping, empty or late."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_process, set_delivery
from fakes.postmark import FakePostmark

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

OCTOBER = [
    "Clay, Collage and Courage: Making Room for Creativity in Therapy",  # folder
    "Clay on the Table: Inviting Creativity Into the Therapy Hour",  # feed
    "Supervision Is Not a Report Card: How to Make the Hour Work for You",
    "Supervision Is a Two-Way Street",
    "The Case for Rest Between Sessions",
    "Rest Is a Clinical Skill, Not a Reward",
]


@pytest.fixture
def digest_project(project: Path) -> Path:
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    return project


def digest(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_process("digest", *args, cwd=project, env=env)


def listed(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split(" ", 3)[3] for line in result.stderr.splitlines() if line.startswith("  20")]


def test_selection_over_three_months(digest_project: Path) -> None:
    october = digest(digest_project, "--today", "2026-11-01", "--verbose")
    assert october.returncode == 0, october.stderr
    assert listed(october) == OCTOBER, "newest first, folder and feed together"
    september = digest(digest_project, "--period", "2026-09", "--today", "2026-10-02")
    assert september.returncode == 0
    assert listed(september) == [
        "What Burnout Sounds Like Before It Has a Name",
        "Healing the Healers: Compassion Begins at Home",
        "Gifts, Gratitude & Gray Areas: An Ethics Corner",
    ]
    text = (digest_project / "campaigns" / "digest-2026-10.md").read_text(encoding="utf-8")
    assert "subject: 'Riverbend Clinicians Collective: October 2026'" in text
    assert "- articles/2026-10-27-clay-collage-and-courage.md" in text
    assert "  url: https://blog.riverbend-clinicians.example/clay-on-the-table/" in text


def test_capped_by_max_articles_and_never_featured_twice(digest_project: Path) -> None:
    config = digest_project / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "[delivery]", "[digest]\nmax_articles = 4\n\n[delivery]"
        )
    )
    first = digest(digest_project, "--today", "2026-11-01", "-v")
    assert listed(first) == OCTOBER[:4]
    # an October article republished with a November date is not featured again
    article = digest_project / "articles" / "2026-10-06-the-case-for-rest-between-sessions.md"
    clay = digest_project / "articles" / "2026-10-27-clay-collage-and-courage.md"
    clay.write_text(
        clay.read_text(encoding="utf-8").replace("date: 2026-10-27", "date: 2026-11-20")
    )
    article.write_text(
        article.read_text(encoding="utf-8").replace("date: 2026-10-06", "date: 2026-11-21")
    )
    november = digest(digest_project, "--today", "2026-12-01", "-v")
    titles = listed(november)
    assert "The Case for Rest Between Sessions" in titles, "not featured in October (over the cap)"
    assert "Clay, Collage and Courage: Making Room for Creativity in Therapy" not in titles


def test_two_runs_give_one_send_and_cron_hears_nothing(digest_project: Path) -> None:
    first = digest(digest_project, "--today", "2026-11-01", "--send", "--yes")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "" and first.stderr == "", "quiet on success"
    outbox = digest_project / "outbox" / "digest-2026-10"
    assert len(list(outbox.glob("*.eml"))) == 10
    second = digest(digest_project, "--today", "2026-11-01", "--send", "--yes", "-v")
    assert second.returncode == 0
    assert "already sent" in second.stderr
    assert len(list(outbox.glob("*.eml"))) == 10
    log = (digest_project / ".newsletter" / "digest.log").read_text().splitlines()
    assert len(log) == 2 and "period=2026-10" in log[0] and "10 sent" in log[0]
    import email
    import email.policy

    message = email.message_from_bytes(
        next(outbox.glob("*.eml")).read_bytes(), policy=email.policy.default
    )
    assert message["Auto-Submitted"] == "auto-generated"


def test_cron_hears_nothing_of_an_exclude_tag_nobody_has(digest_project: Path) -> None:
    config = digest_project / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "[delivery]", '[digest]\naudience = { exclude_tags = ["staff"] }\n\n[delivery]'
        )
    )
    result = digest(digest_project, "--today", "2026-11-01", "--send", "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == "", "a tag that excludes nobody is harmless"
    assert len(list((digest_project / "outbox" / "digest-2026-10").glob("*.eml"))) == 10


def test_articles_a_sent_campaign_featured_are_named_with_that_campaign(
    digest_project: Path,
) -> None:
    with FakePostmark(token="t") as pm:
        set_delivery(digest_project, transport="postmark", base_url=pm.url)
        sent = run_process(
            "send", "2026-10-digest", "--yes", cwd=digest_project, env={"NEWSLETTER_API_KEY": "t"}
        )
        assert sent.returncode == 0, sent.stderr
    skipped = [
        "  skipped 2026-10-27 Clay on the Table: Inviting Creativity Into the Therapy Hour: "
        "already featured in 2026-10-digest",
        "  skipped 2026-10-15 Supervision Is Not a Report Card: How to Make the Hour Work for "
        "You: already featured in 2026-10-digest",
        "  skipped 2026-10-06 The Case for Rest Between Sessions: already featured in "
        "2026-10-digest",
    ]
    dry = digest(digest_project, "--today", "2026-11-01", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "3 new article(s)" in dry.stderr
    assert [line for line in dry.stderr.splitlines() if "skipped" in line] == skipped
    october = digest(digest_project, "--today", "2026-11-01", "-v")
    assert october.returncode == 0, october.stderr
    assert listed(october) == [OCTOBER[0], OCTOBER[3], OCTOBER[5]]
    assert [line for line in october.stderr.splitlines() if "skipped" in line] == skipped
    september = digest(digest_project, "--period", "2026-09", "--today", "2026-10-02")
    assert september.returncode == 0
    assert listed(september) == [
        "What Burnout Sounds Like Before It Has a Name",
        "Healing the Healers: Compassion Begins at Home",
    ]
    assert "  skipped 2026-09-" in september.stderr
    assert (
        "Gifts, Gratitude & Gray Areas: An Ethics Corner: already featured in 2026-10-digest"
        in (september.stderr)
    )


def test_two_runs_started_together_send_once(digest_project: Path) -> None:
    with FakePostmark(token="t", latency=1.0) as pm:
        set_delivery(digest_project, transport="postmark", base_url=pm.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        env["NEWSLETTER_API_KEY"] = "t"
        command = [
            sys.executable,
            "-m",
            "newsletter",
            "digest",
            "--today",
            "2026-11-01",
            "--send",
            "--yes",
        ]
        runs = [
            subprocess.Popen(
                command,
                cwd=digest_project,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]  # type: ignore[union-attr]
        codes = sorted(code for code, _ in results)
        assert codes in ([0, 0], [0, 1]), results
        if codes == [0, 1]:
            assert any("Another process" in err for _, err in results)
        accepted = pm.accepted_to()
        assert len(accepted) == len(set(accepted)) == 10, "nobody got the digest twice"


def test_empty_month_sends_nothing(digest_project: Path) -> None:
    result = digest(
        digest_project, "--period", "2026-06", "--today", "2026-07-01", "--send", "--yes"
    )
    assert result.returncode == 0
    assert "No new articles for 2026-06" in result.stderr
    assert not (digest_project / "campaigns" / "digest-2026-06.md").exists()
    assert not (digest_project / "outbox").exists()


def test_late_run_is_refused(digest_project: Path) -> None:
    late = digest(digest_project, "--today", "2026-11-20", "--send", "--yes")
    assert late.returncode == 1
    assert "past its deadline" in late.stderr and "Traceback" not in late.stderr
    assert not (digest_project / "outbox").exists()
    assert "exit=1" in (digest_project / ".newsletter" / "digest.log").read_text()


def test_written_campaign_is_reproducible(digest_project: Path) -> None:
    path = digest_project / "campaigns" / "digest-2026-10.md"
    assert digest(digest_project, "--today", "2026-11-01").returncode == 0
    first = path.read_bytes()
    path.unlink()
    time.sleep(0.01)
    assert digest(digest_project, "--today", "2026-11-03").returncode == 0
    assert path.read_bytes() == first
    # a file a person edited is kept as it is
    path.write_text(first.decode().replace("Here is what we published", "Our favourite reads"))
    result = digest(digest_project, "--today", "2026-11-01")
    assert "edited by hand" in result.stderr
    assert "Our favourite reads" in path.read_text()


def test_without_yes_and_without_a_terminal_it_refuses(digest_project: Path) -> None:
    result = digest(digest_project, "--today", "2026-11-01", "--send")
    assert result.returncode == 1
    assert "Add --yes" in result.stderr
    assert not (digest_project / "outbox").exists()


def test_bad_dates_are_usage_errors(digest_project: Path) -> None:
    assert "is not a month" in digest(digest_project, "--period", "2026-13").stderr
    assert "is not a date" in digest(digest_project, "--today", "yesterday").stderr


def test_dry_run_shows_the_campaign_and_writes_nothing(digest_project: Path) -> None:
    result = digest(digest_project, "--today", "2026-11-01", "--dry-run")
    assert result.returncode == 0
    assert "6 new article(s)" in result.stderr and "nothing written or sent" in result.stderr
    assert result.stdout.startswith("---\nsubject: 'Riverbend Clinicians Collective: October 2026'")
    assert not (digest_project / "campaigns" / "digest-2026-10.md").exists()
    assert not (digest_project / ".newsletter" / "digest.log").exists()
