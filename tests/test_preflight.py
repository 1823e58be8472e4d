"""`newsletter check`'s preflight: what the transport can do, readers' data, links and
templates, each through the real CLI in a child process."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_process, set_delivery, set_newsletter
from test_check import check, write

pytestmark = pytest.mark.slow


def test_a_non_ascii_reply_to_with_postmark_is_an_error_before_any_send(project: Path) -> None:
    from fakes.postmark import FakePostmark

    set_newsletter(project, reply_to="rédaction@riverbend-clinicians.example")
    run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    slug = write(project)
    assert check(project, slug)[0] == 0, "the outbox carries SMTPUTF8"
    with FakePostmark(token="t") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url)
        status, problems, _ = check(project, slug)
        assert status == 1
        [found] = [p for p in problems if p["code"] == "transport-cannot-send"]
        assert "reply_to" in found["message"] and "SMTPUTF8" in found["message"]
        assert "ASCII" in found["where"]
        env = {"NEWSLETTER_API_KEY": "t"}
        dry = run_process("send", slug, "--dry-run", cwd=project, env=env)
        assert dry.returncode == 1 and "reply_to" in dry.stderr, dry.stdout + dry.stderr
        real = run_process("send", slug, "--yes", cwd=project, env=env)
        assert real.returncode == 1 and "Sending" not in real.stdout
        assert pm.requests == []


def test_a_non_ascii_from_with_postmark_is_an_error(project: Path) -> None:
    set_newsletter(project, **{"from": "Jörg <jörg@riverbend-clinicians.example>"})
    set_delivery(project, transport="postmark")
    status, problems, _ = check(project, write(project))
    assert status == 1
    [found] = [p for p in problems if p["code"] == "transport-cannot-send"]
    assert "[newsletter] from" in found["message"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
        "http://192.168.1.20",
        "http://10.0.0.7/news",
        "http://localhost:8000",
        "http://news.local",
        "http://[::ffff:127.0.0.1]",
        "http://0.0.0.0",
    ],
)
def test_a_public_url_only_this_machine_can_reach_is_a_warning_for_a_real_send(
    project: Path, url: str
) -> None:
    set_newsletter(project, public_url=url)
    slug = write(project)
    status, problems, _ = check(project, slug)
    assert "local-public-url" not in {p["code"] for p in problems}, "the outbox reaches no one"
    set_delivery(project, transport="smtp", host="127.0.0.1", port=2525)
    status, problems, _ = check(project, slug)
    assert status == 0
    [found] = [p for p in problems if p["code"] == "local-public-url"]
    assert found["level"] == "warning" and url in found["message"]


def test_a_public_public_url_is_not_flagged(project: Path) -> None:
    set_newsletter(project, public_url="https://news.example.net")
    set_delivery(project, transport="smtp", host="127.0.0.1", port=2525)
    _, problems, _ = check(project, write(project))
    assert "local-public-url" not in {p["code"] for p in problems}
