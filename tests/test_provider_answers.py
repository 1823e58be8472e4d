"""What providers answer, read right: retry headers in any shape, redirects refused,
retries visible, test copies and dry runs that say what they are.

Given the example project and the Postmark fake on 127.0.0.1, when `send` meets these
answers, then it waits what it should, sends each reader once, and says so.
"""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path

import pytest

from conftest import run_process, set_delivery
from fakes.postmark import FakePostmark

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

ACTIVE = 10
KEY = {"NEWSLETTER_API_KEY": "pm-test"}


@pytest.fixture
def postmark(project: Path):
    with FakePostmark(token="pm-test") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, max_retries=2)
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
        yield pm


def send(project: Path, *args: str, env: dict[str, str] | None = None):
    return run_process("send", "2026-10-digest", "--yes", *args, cwd=project, env=env or KEY)


def statuses(project: Path) -> dict[str, str]:
    report = run_process("report", "2026-10-digest", "--format", "json", cwd=project)
    return {r["email"]: r["status"] for r in json.loads(report.stdout)["recipients"]}


@pytest.mark.parametrize(
    "retry_after",
    [
        "nan",
        "soon-ish",
        ["1", "1"],  # the header twice: requests joins them as "1, 1"
        "-3",
        "1e999",
        "date",
    ],
)
def test_any_retry_after_is_read_or_ignored_never_a_crash(
    project: Path, postmark: FakePostmark, retry_after: object
) -> None:
    if retry_after == "date":
        retry_after = email.utils.formatdate(time.time() + 1, usegmt=True)
    postmark.faults.append(
        ("status", 429, {"ErrorCode": 429, "Message": "slow down"}, {"Retry-After": retry_after})
    )
    result = send(project)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Postmark answered HTTP 429; retrying in" in result.stderr
    assert "(attempt 2 of 3)" in result.stderr
    assert sorted(m["To"] for m in postmark.accepted) == sorted(
        set(m["To"] for m in postmark.accepted)
    )
    assert len(postmark.accepted) == ACTIVE
    assert set(statuses(project).values()) == {"sent"}


def test_a_redirect_from_the_api_is_an_error_naming_its_target(project: Path) -> None:
    with FakePostmark(token="pm-test") as elsewhere, FakePostmark(token="pm-test") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, max_retries=2)
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
        target = f"{elsewhere.url}/email/batch"
        pm.faults.append(("status", 307, None, {"Location": target}))
        result = send(project)
        assert result.returncode == 1
        assert f"a redirect to {target}" in result.stderr
        assert "Traceback" not in result.stderr
        assert elsewhere.requests == [], "the token never went to the redirect's target"
        assert set(statuses(project).values()) == {"pending"}, "nothing was sent"
        again = send(project)
        assert again.returncode == 0, again.stderr
        assert len(pm.accepted) == ACTIVE


def test_dry_run_needs_no_secret(project: Path, postmark: FakePostmark) -> None:
    result = send(project, "--dry-run", env={})
    assert result.returncode == 0, result.stderr
    assert f"{ACTIVE} recipient(s) via postmark" in result.stderr
    assert postmark.requests == []


def test_a_failed_test_copy_says_so_in_its_own_words(project: Path, postmark: FakePostmark) -> None:
    postmark.faults.extend([("status", 503, {}, {})] * 3)
    result = run_process(
        "send", "2026-10-digest", "--test", "editor@example.org", cwd=project, env=KEY
    )
    assert result.returncode == 1
    assert "The test copy could not be sent" in result.stderr
    assert "retrying in" in result.stderr
    assert "continues where it stopped" not in result.stderr
    assert "a test copy is not a delivery" in result.stderr


def test_progress_moves_every_second_at_a_rate_limit(project: Path) -> None:
    """At 4 messages a second, batches of 500 would leave the bar at 0 for two seconds;
    a batch holds one second's worth instead."""
    with FakePostmark(token="pm-test") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, rate_limit=4)
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
        dry = send(project, "--dry-run")
        assert "in 3 batch(es) of up to 4" in dry.stderr
        result = send(project)
        assert result.returncode == 0, result.stderr
        assert [len(r.body) for r in pm.batch_requests()] == [4, 4, 2]


def test_a_lost_response_among_sixty_is_unknown_not_a_failure(project: Path) -> None:
    """One dropped answer among 60 readers: the send finishes (exit 0), those readers are
    `unknown` with their own advice, and nothing pauses the campaign."""
    (project / "sixty.csv").write_text(
        "email,first_name\n" + "".join(f"reader{i}@example.org,R{i}\n" for i in range(50)),
        encoding="utf-8",
    )
    with FakePostmark(token="pm-test") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, batch_size=5)
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
        run_process("subscribers", "import", "sixty.csv", cwd=project)
        pm.faults.append(("drop_after_read",))
        result = send(project)
        assert result.returncode == 0, result.stderr
        assert "paused" not in result.stderr
        assert "The outcome for 5 recipient(s) is unknown" in result.stderr
        assert "--retry-unknown would send to them again, possibly twice" in result.stderr
        counted = list(statuses(project).values())
        assert counted.count("unknown") == 5 and counted.count("sent") == 55


def test_a_run_of_unknown_answers_pauses_with_its_own_advice(project: Path) -> None:
    (project / "sixty.csv").write_text(
        "email,first_name\n" + "".join(f"reader{i}@example.org,R{i}\n" for i in range(50)),
        encoding="utf-8",
    )
    with FakePostmark(token="pm-test") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, batch_size=5, concurrency=1)
        run_process("subscribers", "import", "sixty.csv", cwd=project)
        pm.faults.extend([("drop_after_read",)] * 10)
        result = send(project)
        assert result.returncode == 1
        assert "in a row were lost: the connection dropped" in result.stderr
        assert "The send was paused" in result.stderr and "--retry-unknown" in result.stderr
        assert "were not delivered" not in result.stderr
