"""The library is the API: what the CLI does, a Python program does with the same calls."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import pytest

from conftest import set_delivery
from newsletter import members
from newsletter.digest import run_digest
from newsletter.models import DeliveryStatus, Subscriber
from newsletter.plan import SendContext, prepare_send, retry_statuses
from newsletter.project import Project
from newsletter.report import campaign_report, campaign_reports
from newsletter.send import OutcomeKind, SendHooks, SendProgress, run_send

ACTIVE = 10  # subscribers.example.csv: 12 rows, one unsubscribed, one bounced
SLUG = "2026-10-digest"


@pytest.fixture
def proj(project: Path) -> Project:
    p = Project.load()
    imported = p.import_subscribers(Path("subscribers.example.csv"))
    assert (imported.added, imported.refused, imported.error()) == (12, 0, None)
    yield p
    p.close()


def test_a_send_is_planned_then_run_and_its_outcome_names_the_exit_status(proj: Project) -> None:
    set_delivery(proj.settings.root, transport="outbox", batch_size=3, rate_limit=20)
    proj = Project.load()
    plan = prepare_send(SendContext.of(proj), SLUG)
    assert (plan.recipients, plan.batch_size, plan.batches) == (ACTIVE, 3, 4)
    assert plan.estimated_seconds == ACTIVE / 20
    assert plan.already_sent is None and len(plan.sample) == 5
    seen: list[SendProgress] = []
    outcome = run_send(SendContext.of(proj), plan, SendHooks(progress=seen.append))
    assert outcome.kind is OutcomeKind.SENT and outcome.exit_status == 0
    assert (outcome.delivered, outcome.failed, outcome.unknown) == (ACTIVE, 0, 0)
    assert outcome.totals == {"sent": ACTIVE} and not outcome.pending
    assert seen[0].batch == 0 and seen[-1].delivered == ACTIVE
    assert sum(p.batch for p in seen) == ACTIVE

    again = prepare_send(SendContext.of(proj), SLUG)
    assert again.already_sent is not None and again.already_sent.totals == {"sent": ACTIVE}
    assert run_send(SendContext.of(proj), again).kind is OutcomeKind.ALREADY_SENT


def test_a_declined_send_sends_nothing(proj: Project) -> None:
    asked = []
    outcome = run_send(
        SendContext.of(proj),
        prepare_send(SendContext.of(proj), SLUG, limit=3),
        SendHooks(confirm=lambda p: asked.append(p) or False),
    )
    assert asked[0].recipients == 3
    assert outcome.kind is OutcomeKind.DECLINED and outcome.exit_status == 1
    assert not (proj.settings.root / "outbox" / SLUG).exists()


def test_a_limited_run_leaves_the_rest_pending(proj: Project) -> None:
    outcome = run_send(SendContext.of(proj), prepare_send(SendContext.of(proj), SLUG, limit=4))
    assert outcome.delivered == 4 and outcome.pending and outcome.status != "sent"
    rest = prepare_send(SendContext.of(proj), SLUG)
    assert (rest.recipients, rest.already_settled) == (ACTIVE - 4, 4)


def test_retry_flags_name_the_statuses_they_send_again() -> None:
    assert set(retry_statuses(failed=True)) == {"failed", "invalid", "rejected"}
    assert retry_statuses(unknown=True) == (DeliveryStatus.UNKNOWN,)
    assert retry_statuses() == ()


def test_a_cron_job_runs_the_digest_in_one_call(proj: Project) -> None:
    outcome = run_digest(proj, "2026-10", dt.date(2026, 11, 1), send=True)
    assert outcome.exit_status == 0 and outcome.file is not None
    assert outcome.file.state == "written" and outcome.file.path.is_file()
    assert outcome.send is not None and outcome.send.totals == {"sent": ACTIVE}
    log = (proj.settings.root / ".newsletter" / "digest.log").read_text(encoding="utf-8")
    assert log.splitlines()[-1].endswith(outcome.summary)
    assert "period=2026-10 today=2026-11-01 exit=0" in log
    second = run_digest(proj, "2026-10", dt.date(2026, 11, 1), send=True)
    assert second.send is not None and second.send.kind is OutcomeKind.ALREADY_SENT


def test_the_report_is_an_object_and_the_cli_prints_it(proj: Project, run) -> None:
    run_send(SendContext.of(proj), prepare_send(SendContext.of(proj), SLUG))
    found = campaign_report(proj.store.ledger, proj.store.events, SLUG)
    assert found.counts["sent"] == ACTIVE and found.counts["failed"] == 0
    assert len(found.recipients) == ACTIVE and found.rehearsals == ()
    assert [s.campaign for s in campaign_reports(proj.store.ledger)] == [SLUG]
    printed = json.loads(run("report", SLUG, "--format", "json").stdout)
    assert printed == json.loads(json.dumps(found.as_dict()))


def test_export_neutralises_formulas_and_imports_back(proj: Project, tmp_path: Path) -> None:
    proj.store.subscribers.import_rows(
        [Subscriber("calc@example.org", first_name="=HYPERLINK(1)", attributes={"city": "+1"})]
    )
    out = tmp_path / "export.csv"
    assert members.export_subscribers(proj.store.subscribers, out) == 13
    rows = {r["email"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows["calc@example.org"]["first_name"] == "'=HYPERLINK(1)"
    assert rows["calc@example.org"]["city"] == "'+1"
    again = Project.load(str(proj.settings.path)).import_subscribers(out)
    assert again.added == 0 and again.refused == 0


def test_subscriber_commands_return_named_results(proj: Project) -> None:
    assert members.unsubscribe(proj.store, "marcus.bell@example.com") is True
    assert members.unsubscribe(proj.store, "Marcus.Bell@example.com") is False
    history = members.history(proj.store, "marcus.bell@example.com")
    assert history.subscriber.status == "unsubscribed" and history.campaigns == ()
    assert proj.forget("marcus.bell@example.com", confirm=lambda email: False) is None
    forgotten = proj.forget("marcus.bell@example.com")
    assert forgotten is not None and forgotten.known and forgotten.files_removed == 0


def test_models_are_frozen_and_changed_by_replace() -> None:
    sub = Subscriber("a@example.org")
    with pytest.raises(dataclasses.FrozenInstanceError):
        sub.email = "b@example.org"  # type: ignore[misc]
    assert dataclasses.replace(sub, first_name="Ana").first_name == "Ana"


def test_preview_shows_each_reader_the_variant_their_tags_choose(proj: Project) -> None:
    # preview made its readers without their tags, so an {% if %} over tags showed
    # everyone the untagged variant; every recipient now comes from Recipient.of
    from newsletter.web.preview import PreviewApp

    campaign = proj.settings.campaigns_dir / f"{SLUG}.md"
    text = campaign.read_text(encoding="utf-8")
    campaign.write_text(
        text.replace(
            "Warmly,",
            "{% if 'ce' in recipient.tags %}CE-MEMBER-NOTE{% else %}NO-CE-NOTE{% endif %}\n\n"
            "Warmly,",
        ),
        encoding="utf-8",
    )
    readers = {s.email: s for s in proj.store.subscribers.stream(status="active")}
    dana, marcus = readers["dana.whitfield@example.org"], readers["marcus.bell@example.com"]
    assert "ce" in dana.tags and "ce" not in marcus.tags
    app = PreviewApp(Project.load(), SLUG)  # its own project, used on its own thread

    def email(subscriber_id: int | None) -> str:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/email",
            "QUERY_STRING": f"subscriber={subscriber_id}",
            "HTTP_HOST": "127.0.0.1:8000",
        }
        return b"".join(app(environ, lambda status, headers: None)).decode("utf-8")

    try:
        assert "CE-MEMBER-NOTE" in email(dana.id) and "NO-CE-NOTE" not in email(dana.id)
        assert "NO-CE-NOTE" in email(marcus.id)
    finally:
        app.close()


def test_the_readme_library_examples_run(proj: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """README.md's "Python library" section, run as written against the example project."""
    set_delivery(proj.settings.root, transport="outbox")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python library") :].split("\n## ", 1)[0]
    examples = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(examples) == 2
    for code in examples:
        code = code.replace('"/srv/news/newsletter.toml"', repr(str(proj.settings.path)))
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "marcus.bell@example.com sent" in out
