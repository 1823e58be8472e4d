"""Kill `newsletter send` with SIGKILL mid-campaign, run it again: nothing confirmed
is sent twice, and nobody is skipped."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from conftest import import_many, run_process, set_delivery, start_process, wait_for
from fakes.postmark import FakePostmark

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

SEND = ("send", "2026-10-digest", "--yes")
KEY = {"NEWSLETTER_API_KEY": "pm"}


def report(project: Path) -> dict:
    result = run_process("report", "2026-10-digest", "--format", "json", cwd=project)
    return json.loads(result.stdout)


def test_sigkill_during_a_request_then_resume(project: Path) -> None:
    import_many(project, 3000)
    with FakePostmark(token="pm") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, concurrency=2)
        pm.faults.extend([("hang", 0.0), ("hang", 2.0)])
        proc = start_process(*SEND, cwd=project, env=KEY)
        wait_for(lambda: len(pm.batch_requests()) >= 2)  # two batches in flight, one hanging
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        time.sleep(2.5)  # the provider finishes the hanging request: it did deliver it
        delivered_before = set(pm.accepted_to())

        resumed = run_process(
            "send", "2026-10-digest", "--yes", cwd=project, env={"NEWSLETTER_API_KEY": "pm"}
        )
        assert resumed.returncode == 0, resumed.stderr  # unknown is not a failure
        assert "is unknown" in resumed.stderr
        accepted = pm.accepted_to()
        assert len(accepted) == len(set(accepted)), "nobody got a second copy"
        data = report(project)
        by_status: dict[str, set[str]] = {}
        for r in data["recipients"]:
            by_status.setdefault(r["status"], set()).add(r["email"])
        assert set(by_status) == {"sent", "unknown"}, "nobody skipped: everyone settled"
        assert len(by_status["sent"]) + len(by_status["unknown"]) == 3000
        assert 0 < len(by_status["unknown"]) <= 2 * 500, "only the batches in flight are unknown"
        addresses = {a.split("<")[1].rstrip(">") for a in accepted}
        assert by_status["sent"] <= addresses
        assert addresses - by_status["sent"] <= by_status["unknown"]
        assert {a.split("<")[1].rstrip(">") for a in delivered_before} & by_status["sent"] == (
            {a.split("<")[1].rstrip(">") for a in delivered_before} - by_status["unknown"]
        )
        unknown = [r for r in data["recipients"] if r["status"] == "unknown"]
        assert all("stopped before the provider's answer" in r["error"] for r in unknown)


def test_sigkill_with_outbox_then_resume(project: Path) -> None:
    import_many(project, 3000)
    proc = start_process(*SEND, cwd=project)
    folder = project / "outbox" / "2026-10-digest"
    wait_for(lambda: folder.exists() and len(list(folder.glob("*.eml"))) >= 200)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(list(folder.glob("*.eml"))) < 3000
    resumed = run_process("send", "2026-10-digest", "--yes", cwd=project)
    assert resumed.returncode == 0, resumed.stderr
    assert len(list(folder.glob("*.eml"))) == 3000
    assert not list(folder.glob("*.tmp"))
    assert report(project)["counts"]["sent"] == 3000


def test_a_second_sender_shares_the_campaign(project: Path) -> None:
    import_many(project, 600)
    with FakePostmark(token="pm") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, batch_size=50, concurrency=1)
        pm.latency = 0.05
        first = start_process(*SEND, cwd=project, env=KEY)
        wait_for(lambda: len(pm.batch_requests()) >= 1)
        second = start_process(*SEND, cwd=project, env=KEY)
        assert first.wait(timeout=120) == 0
        assert second.wait(timeout=120) == 0
        accepted = pm.accepted_to()
        assert len(accepted) == len(set(accepted)) == 600, "split, never doubled"
        holders = {r.headers.get("X-Postmark-Server-Token") for r in pm.batch_requests()}
        assert holders == {"pm"}
        assert report(project)["counts"]["sent"] == 600


def test_three_senders_one_killed_the_others_finish(project: Path) -> None:
    import_many(project, 1500)
    with FakePostmark(token="pm") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, batch_size=50, concurrency=1)
        pm.latency = 0.05
        senders = [start_process(*SEND, cwd=project, env=KEY) for _ in range(3)]
        wait_for(lambda: len(pm.batch_requests()) >= 6)
        senders[1].send_signal(signal.SIGKILL)
        senders[1].wait(timeout=30)  # reaped, as a shell or cron would
        assert senders[0].wait(timeout=180) in (0, 3)
        assert senders[2].wait(timeout=180) in (0, 3)
        accepted = pm.accepted_to()
        assert len(accepted) == len(set(accepted)), "nobody got it twice"
        data = report(project)
        statuses = {r["status"] for r in data["recipients"]}
        assert statuses <= {"sent", "unknown"}, "nobody skipped, nobody left pending"
        assert data["counts"]["sent"] + data["counts"]["unknown"] == 1500
        assert data["counts"]["unknown"] <= 50, "at most the killed sender's batch in flight"
        assert data["status"] == "sent"
