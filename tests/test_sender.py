"""The sender's pacing and safety valves: rate limit, retries, failure-rate pause."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from conftest import run_process, set_delivery
from fakes.postmark import FakePostmark
from newsletter.delivery.base import retry_delay
from newsletter.dispatch import TokenBucket
from newsletter.providers.postmark import PostmarkTransport


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_keeps_the_average_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(100, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire(50)
    # 500 messages at 100/s: the first second's worth is free, the rest is paid for
    assert abs(clock.now - 4.0) < 1e-9
    assert TokenBucket(0).acquire(10_000) == 0.0


def make_response(status: int, headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


def test_retry_delay_reads_retry_after_and_reset_headers() -> None:
    import time

    assert retry_delay(make_response(429, {"Retry-After": "7"})) == 7
    assert retry_delay(make_response(429, {"Retry-After": "100000"})) == 600
    assert retry_delay(make_response(429, {"ratelimit-reset": "3"})) == 3
    reset = retry_delay(make_response(429, {"X-RateLimit-Reset": str(int(time.time()) + 20)}))
    assert reset is not None and 18 <= reset <= 20
    assert retry_delay(make_response(500, {})) is None


def test_429_retry_after_is_honoured_by_every_worker() -> None:
    clock = Clock()
    with FakePostmark(token="t") as pm:
        pm.faults.append(
            ("status", 429, {"ErrorCode": 429, "Message": "slow"}, {"Retry-After": "4"})
        )
        transport = PostmarkTransport("t", base_url=pm.url, sleep=clock.sleep)
        response = transport.post(transport_request())
        assert response.status_code == 200
        assert 4 in clock.slept  # the provider's word, not our backoff
        assert len(pm.batch_requests()) == 2


def transport_request():
    from newsletter.delivery.base import HTTPRequest

    return HTTPRequest(
        "/email/batch",
        b"[]",
        {
            "X-Postmark-Server-Token": "t",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
    )


@pytest.mark.slow
def test_failure_rate_pauses_the_campaign(project: Path) -> None:
    many = project / "many.csv"
    many.write_text(
        "email,first_name\n" + "".join(f"reader{i}@example.com,R{i}\n" for i in range(300))
    )
    run_process("subscribers", "import", str(many), cwd=project)
    with FakePostmark(token="t") as pm:
        pm.inactive.update(f"reader{i}@example.com" for i in range(0, 300, 2))  # half are dead
        set_delivery(
            project,
            transport="postmark",
            base_url=pm.url,
            batch_size=50,
            concurrency=1,
            max_failure_rate=0.3,
        )
        result = run_process(
            "send", "2026-10-digest", "--yes", cwd=project, env={"NEWSLETTER_API_KEY": "t"}
        )
        assert result.returncode == 1
        assert "the send was paused" in result.stderr
        assert "max_failure_rate" in result.stderr
        data = json.loads(
            run_process("report", "2026-10-digest", "--format", "json", cwd=project).stdout
        )
        assert data["status"] == "paused"
        assert data["counts"]["pending"] == 250, "stopped after the first batch"
        assert len(pm.batch_requests()) == 1


@pytest.mark.slow
def test_rate_limit_shows_an_estimate(project: Path) -> None:
    run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    set_delivery(project, transport="outbox", rate_limit=2)
    result = run_process("send", "2026-10-digest", "--dry-run", cwd=project)
    assert "At 2 messages/s this takes about 5 s." in result.stderr
