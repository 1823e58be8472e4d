"""The outbox is a rehearsal: trying a campaign there does not use it up.

Given a campaign sent to the outbox "to try it", when the project switches to a
provider and sends it, then every reader gets exactly one provider message, the
confirmation says it was rehearsed, `report` shows both, and a provider send is never
repeated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_process, set_delivery
from fakes.postmark import FakePostmark

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

ACTIVE = 10
KEY = {"NEWSLETTER_API_KEY": "pm-test"}


def report(project: Path) -> dict:
    result = run_process("report", "2026-10-digest", "--format", "json", cwd=project)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_outbox_then_postmark_gives_each_reader_one_provider_message(project: Path) -> None:
    run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    tried = run_process("send", "2026-10-digest", "--yes", cwd=project)
    assert tried.returncode == 0, tried.stderr
    assert len(list((project / "outbox" / "2026-10-digest").glob("*.eml"))) == ACTIVE
    assert report(project)["transport"] == "outbox"

    with FakePostmark(token="pm-test") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url)
        dry = run_process("send", "2026-10-digest", "--dry-run", cwd=project)
        assert dry.returncode == 0, dry.stderr
        assert "a rehearsal: 10 message file(s)" in dry.stderr
        assert f"{ACTIVE} recipient(s) via postmark" in dry.stderr
        real = run_process("send", "2026-10-digest", "--yes", cwd=project, env=KEY)
        assert real.returncode == 0, real.stderr
        assert "this is its first send through postmark" in real.stderr
        to = [m["To"] for m in pm.accepted]
        assert len(to) == len(set(to)) == ACTIVE

        data = report(project)
        assert data["transport"] == "postmark"
        assert {r["transport"] for r in data["recipients"]} == {"postmark"}
        assert data["counts"]["sent"] == ACTIVE
        assert [r["messages"] for r in data["rehearsals"]] == [ACTIVE]
        table = run_process("report", "2026-10-digest", cwd=project)
        assert "Rehearsed to the outbox first: 10 message file(s)" in table.stderr

        # a provider send is never repeated, whatever the transport says next
        again = run_process("send", "2026-10-digest", "--yes", cwd=project, env=KEY)
        assert again.returncode == 0 and "already sent" in again.stderr
        set_delivery(project, transport="outbox")
        back = run_process("send", "2026-10-digest", "--yes", cwd=project)
        assert "already sent" in back.stderr
        set_delivery(project, transport="postmark", base_url=pm.url)
        once_more = run_process("send", "2026-10-digest", "--yes", cwd=project, env=KEY)
        assert "already sent" in once_more.stderr
        assert len(pm.accepted) == ACTIVE


def test_a_digest_does_not_feature_what_a_campaign_already_sent(project: Path) -> None:
    """The example campaign features October articles; the October digest skips them."""
    run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    before = run_process("digest", "--dry-run", "--today", "2026-11-01", cwd=project)
    rest = "articles/2026-10-06-the-case-for-rest-between-sessions.md"
    supervision = "articles/2026-10-15-supervision-is-not-a-report-card.md"
    assert rest in before.stdout and supervision in before.stdout
    with FakePostmark(token="pm-test") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url)
        sent = run_process("send", "2026-10-digest", "--yes", cwd=project, env=KEY)
        assert sent.returncode == 0, sent.stderr
    after = run_process("digest", "--dry-run", "--today", "2026-11-01", cwd=project)
    assert after.returncode == 0, after.stderr
    assert rest not in after.stdout and supervision not in after.stdout
    assert "2026-10-27-clay-collage-and-courage.md" in after.stdout  # not in the campaign
