"""Sending: exactly one personalised message per active subscriber, and never twice."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest

from conftest import connect, run_process, set_delivery
from fakes.postmark import FakePostmark

ACTIVE = 10  # subscribers.example.csv: 12 rows, one unsubscribed, one bounced


def import_example(run) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0


def report(run, slug: str = "2026-10-digest") -> dict:
    return json.loads(run("report", slug, "--format", "json").stdout)


# -- outbox -----------------------------------------------------------------
def test_outbox_send_writes_one_eml_per_active_subscriber(project: Path, run) -> None:
    import_example(run)
    result = run("send", "2026-10-digest", "--yes")
    assert result.exit_code == 0, result.stderr
    files = sorted((project / "outbox" / "2026-10-digest").glob("*.eml"))
    assert len(files) == ACTIVE
    recipients = set()
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipients.add(msg["To"].addresses[0].addr_spec)
        text = msg.get_body(("plain",)).get_content()
        first = msg["To"].addresses[0].display_name.split(" ")[0]
        assert f"Hello {first}," in text or "Hello there," in text
    assert (
        "kai.moreno@example.com" not in recipients and "leah.goldberg@example.net" not in recipients
    )
    data = report(run)
    assert data["campaign"] == "2026-10-digest"
    assert data["counts"]["sent"] == ACTIVE
    assert all(r["status"] == "sent" and r["provider_message_id"] for r in data["recipients"])

    again = run("send", "2026-10-digest", "--yes")
    assert again.exit_code == 0
    assert "already sent" in again.stderr and "nothing to send" in again.stderr
    assert len(list((project / "outbox" / "2026-10-digest").glob("*.eml"))) == ACTIVE


def test_dry_run_sends_nothing(project: Path, run) -> None:
    import_example(run)
    result = run("send", "2026-10-digest", "--dry-run")
    assert result.exit_code == 0
    assert f"{ACTIVE} recipient(s) via outbox, in 1 batch(es) of up to 500" in result.stderr
    assert not (project / "outbox").exists()
    assert run("report", "2026-10-digest").exit_code == 1


@pytest.mark.slow
def test_send_without_terminal_or_yes_refuses(project: Path) -> None:
    run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    result = run_process("send", "2026-10-digest", cwd=project)
    assert result.returncode == 1
    assert "Add --yes" in result.stderr
    assert not (project / "outbox").exists()


def test_confirmation_prompt_shows_count(project: Path, run) -> None:
    import_example(run)
    # CliRunner gives no terminal either, so the prompt is tested on its refusal path
    # above; here --limit and resumption: two runs of 4 then the rest.
    first = run("send", "2026-10-digest", "--yes", "--limit", "4")
    assert first.exit_code == 0
    assert "still pending" in first.stderr
    assert report(run)["counts"] == {
        "pending": 6,
        "sent": 4,
        "failed": 0,
        "unknown": 0,
        "skipped": 0,
    }
    second = run("send", "2026-10-digest", "--yes")
    assert "6 recipient(s)" in second.stderr
    assert report(run)["counts"]["sent"] == ACTIVE
    assert len(list((project / "outbox" / "2026-10-digest").glob("*.eml"))) == ACTIVE


def test_audience_tags(project: Path, run) -> None:
    import_example(run)
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "template: digest",
            "template: digest\naudience:\n  tags_any: [ce]\n  exclude_tags: [volunteer]",
        )
    )
    run("send", "2026-10-digest", "--yes")
    sent = {r["email"] for r in report(run)["recipients"]}
    assert sent == {
        "dana.whitfield@example.org",
        "renee.castillo@example.net",
        "intake.office@example.net",
        "amara.nwosu@example.org",
    }


def test_unsubscribed_after_queueing_is_skipped(project: Path, run) -> None:
    import_example(run)
    run("send", "2026-10-digest", "--yes", "--limit", "1")
    db = connect(project)
    db.execute(
        "UPDATE subscribers SET status = 'unsubscribed' WHERE email = 'mina.park@example.org'"
    )
    db.close()
    run("send", "2026-10-digest", "--yes")
    statuses = {r["email"]: r["status"] for r in report(run)["recipients"]}
    assert statuses["mina.park@example.org"] == "skipped"
    assert list(statuses.values()).count("sent") == ACTIVE - 1


def test_test_copy_is_marked_and_not_recorded(project: Path, run) -> None:
    import_example(run)
    result = run("send", "2026-10-digest", "--test", "editor@example.org")
    assert result.exit_code == 0
    path = project / "outbox" / "2026-10-digest" / "test-editor@example.org.eml"
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert msg["Subject"].startswith("[TEST] ")
    assert run("report", "2026-10-digest").exit_code == 1


def test_build_writes_html_text_and_eml(project: Path, run) -> None:
    import_example(run)
    result = run("build", "2026-10-digest", "--to", "zoe.hartmann@example.com", "--out", "preview")
    assert result.exit_code == 0, result.stderr
    html = (project / "preview" / "email.html").read_text(encoding="utf-8")
    text = (project / "preview" / "email.txt").read_text(encoding="utf-8")
    assert "Hello Zoë," in html and "Hello Zoë," in text
    msg = email.message_from_bytes(
        (project / "preview" / "sample.eml").read_bytes(), policy=email.policy.default
    )
    assert msg["To"].addresses[0].addr_spec == "zoe.hartmann@example.com"
    assert run("report", "2026-10-digest").exit_code == 1, "build records no delivery"


@pytest.mark.slow
def test_unknown_campaign_and_broken_campaign(project: Path) -> None:
    result = run_process("build", "no-such-campaign", cwd=project)
    assert result.returncode == 1
    assert "No campaign 'no-such-campaign'" in result.stderr and "2026-10-digest" in result.stderr
    (project / "campaigns" / "broken.md").write_text(
        "---\nsubject: Hi\narticles:\n  - articles/missing.md\n---\nBody\n"
    )
    result = run_process("build", "broken", cwd=project)
    assert result.returncode == 1 and "missing.md does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_undefined_variable_exits_1_before_any_request(project: Path) -> None:
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(path.read_text(encoding="utf-8").replace("Warmly,", "{{ sign_off }},"))
    with FakePostmark(token="pm-test") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url)
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
        result = run_process(
            "send", "2026-10-digest", "--yes", cwd=project, env={"NEWSLETTER_API_KEY": "pm-test"}
        )
        assert result.returncode == 1
        assert "'sign_off' is undefined" in result.stderr
        assert "2026-10-digest.md" in result.stderr
        assert "Traceback" not in result.stderr
        assert pm.requests == []


# -- postmark ---------------------------------------------------------------
@pytest.fixture
def postmark(project: Path):
    with FakePostmark(token="pm-test") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, max_retries=2)
        yield pm


KEY = {"NEWSLETTER_API_KEY": "pm-test"}


def test_postmark_delivers_one_personalised_message_each_then_none(
    project: Path, run, postmark
) -> None:
    import_example(run)
    result = run("send", "2026-10-digest", "--yes", env=KEY)
    assert result.exit_code == 0, result.stderr
    assert len(postmark.batch_requests()) == 1
    request = postmark.batch_requests()[0]
    assert request.headers["X-Postmark-Server-Token"] == "pm-test"
    to = [m["To"] for m in postmark.accepted]
    assert len(to) == len(set(to)) == ACTIVE
    for message in postmark.accepted:
        assert message["MessageStream"] == "broadcast"
        headers = {h["Name"]: h["Value"] for h in message["Headers"]}
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["List-Unsubscribe"].startswith(
            "<https://news.riverbend-clinicians.example/u/"
        )
        assert headers["List-Unsubscribe"].split(">")[0][1:] in message["HtmlBody"]
        name = message["To"].split(" <")[0].strip('"').split(" ")[0]
        assert f"Hello {name}," in message["TextBody"] or "Hello there," in message["TextBody"]
    data = report(run)
    ids = {m["_MessageID"] for m in postmark.accepted}
    assert {r["provider_message_id"] for r in data["recipients"]} == ids

    again = run("send", "2026-10-digest", "--yes", env=KEY)
    assert again.exit_code == 0 and "nothing to send" in again.stderr
    assert len(postmark.batch_requests()) == 1


def test_postmark_batches_at_500(project: Path, run, postmark) -> None:
    many = project / "many.csv"
    many.write_text(
        "email,first_name\n" + "".join(f"reader{i}@example.com,R{i}\n" for i in range(1203))
    )
    run("subscribers", "import", str(many))
    result = run("send", "2026-10-digest", "--yes", env=KEY)
    assert result.exit_code == 0, result.stderr
    sizes = [len(r.body) for r in postmark.batch_requests()]
    assert sorted(sizes) == [203, 500, 500]
    assert len(set(postmark.accepted_to())) == 1203


@pytest.mark.slow
def test_missing_api_key_exits_1_without_a_request(project: Path, postmark) -> None:
    run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    result = run_process("send", "2026-10-digest", "--yes", cwd=project)
    assert result.returncode == 1
    assert "NEWSLETTER_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert postmark.requests == []


@pytest.mark.slow
def test_refused_token_exits_1_and_nothing_is_marked_sent(project: Path, run, postmark) -> None:
    import_example(run)
    result = run_process(
        "send", "2026-10-digest", "--yes", cwd=project, env={"NEWSLETTER_API_KEY": "wrong-token"}
    )
    assert result.returncode == 1
    assert "Postmark refused the credentials (HTTP 401" in result.stderr
    assert "wrong-token" not in result.stderr
    assert postmark.accepted == []
    assert report(run)["counts"]["pending"] == ACTIVE
    # once the key is right, everyone gets it exactly once
    assert run("send", "2026-10-digest", "--yes", env=KEY).exit_code == 0
    assert len(postmark.accepted) == ACTIVE


def test_inactive_recipient_is_rejected_suppressed_and_exit_3(project: Path, run, postmark) -> None:
    import_example(run)
    postmark.inactive.add("marcus.bell@example.com")
    result = run("send", "2026-10-digest", "--yes", env=KEY)
    assert result.exit_code == 3
    assert "newsletter report 2026-10-digest" in result.stderr
    data = report(run)
    marcus = next(r for r in data["recipients"] if r["email"] == "marcus.bell@example.com")
    assert marcus["status"] == "rejected" and "406" in marcus["error"]
    assert data["counts"]["sent"] == ACTIVE - 1
    status = {
        r["email"]: r["status"]
        for r in json.loads(run("subscribers", "list", "--format", "json").stdout)
    }
    assert status["marcus.bell@example.com"] == "bounced"


def test_server_errors_are_retried(project: Path, run, postmark) -> None:
    import_example(run)
    postmark.faults.extend(
        [
            ("status", 500, {"ErrorCode": 0, "Message": "boom"}, {}),
            ("status", 429, {"ErrorCode": 429, "Message": "slow down"}, {"Retry-After": "0"}),
        ]
    )
    result = run("send", "2026-10-digest", "--yes", env=KEY)
    assert result.exit_code == 0, result.stderr
    assert len(postmark.batch_requests()) == 3
    assert len(postmark.accepted) == ACTIVE


@pytest.mark.slow
def test_provider_down_stops_and_resumes_without_loss(project: Path, run, postmark) -> None:
    import_example(run)
    postmark.faults.extend([("status", 503, {}, {})] * 3)
    result = run_process("send", "2026-10-digest", "--yes", cwd=project, env=KEY)
    assert result.returncode == 1
    assert "answered HTTP 503; gave up after 3 attempts" in result.stderr
    assert postmark.accepted == []
    assert run("send", "2026-10-digest", "--yes", env=KEY).exit_code == 0
    assert len(postmark.accepted) == ACTIVE


def test_dropped_connection_is_unknown_and_never_resent(project: Path, run, postmark) -> None:
    import_example(run)
    postmark.faults.append(("drop_after_read",))
    result = run("send", "2026-10-digest", "--yes", env=KEY)
    assert result.exit_code == 0  # not a failure: most likely delivered, and said so
    assert f"The outcome for {ACTIVE} recipient(s) is unknown" in result.stderr
    assert report(run)["counts"]["unknown"] == ACTIVE
    assert len(postmark.accepted) == ACTIVE  # the provider did take them
    again = run("send", "2026-10-digest", "--yes", env=KEY)
    assert "nothing to send" in again.stderr
    assert len(postmark.accepted) == ACTIVE
    retried = run("send", "2026-10-digest", "--yes", "--retry-unknown", env=KEY)
    assert retried.exit_code == 0
    assert len(postmark.accepted) == 2 * ACTIVE
    assert report(run)["counts"]["sent"] == ACTIVE


def nonzero(data: dict) -> dict[str, int]:
    return {status: n for status, n in data["counts"].items() if n}


def import_readers(project: Path, run, count: int) -> None:
    many = project / "many.csv"
    many.write_text(
        "email,first_name\n" + "".join(f"r{i}@example.com,R{i}\n" for i in range(count))
    )
    assert run("subscribers", "import", str(many)).exit_code == 0


@pytest.mark.parametrize("concurrency", [1, 3])
def test_one_lost_response_among_60_readers_is_not_a_pause(
    project: Path, run, postmark, concurrency: int
) -> None:
    import_readers(project, run, 60)
    set_delivery(
        project,
        transport="postmark",
        base_url=postmark.url,
        max_retries=2,
        batch_size=20,
        concurrency=concurrency,
    )
    postmark.faults.append(("drop_after_read",))
    result = run("send", "2026-10-digest", "--yes", env=KEY)
    assert result.exit_code == 0, result.stderr
    assert "paused" not in result.stderr
    assert nonzero(report(run)) == {"sent": 40, "unknown": 20}
    assert len(postmark.accepted) == 60
    again = run("send", "2026-10-digest", "--yes", env=KEY)
    assert again.exit_code == 0 and "nothing to send" in again.stderr
    assert len(postmark.accepted) == 60, "unknown readers are never sent again unasked"


def test_lost_requests_in_a_row_pause_the_send(project: Path, run, postmark) -> None:
    import_readers(project, run, 60)
    set_delivery(project, transport="postmark", base_url=postmark.url, batch_size=10, concurrency=1)
    postmark.faults.extend([("drop_after_read",)] * 3)
    result = run("send", "2026-10-digest", "--yes", env=KEY)
    assert result.exit_code == 1
    assert "last 3 requests in a row were lost" in result.stderr
    assert "max_lost_in_a_row" in result.stderr
    assert nonzero(report(run)) == {"unknown": 30, "pending": 30}
    resumed = run("send", "2026-10-digest", "--yes", env=KEY)
    assert resumed.exit_code == 0, resumed.stderr
    assert nonzero(report(run)) == {"unknown": 30, "sent": 30}
    assert len(postmark.accepted) == 60, "nobody got a second copy"


def test_lost_requests_in_a_row_is_a_setting(project: Path, run, postmark) -> None:
    import_readers(project, run, 30)
    set_delivery(
        project,
        transport="postmark",
        base_url=postmark.url,
        batch_size=10,
        concurrency=1,
        max_lost_in_a_row=2,
    )
    postmark.faults.extend([("drop_after_read",)] * 2)
    result = run("send", "2026-10-digest", "--yes", env=KEY)
    assert result.exit_code == 1 and "last 2 requests in a row" in result.stderr
    set_delivery(project, transport="postmark", base_url=postmark.url, max_lost_in_a_row=-1)
    refused = run("send", "2026-10-digest", "--yes", env=KEY)
    assert refused.exit_code == 1 and "max_lost_in_a_row" in refused.stderr


def test_rerun_after_everyone_was_rejected_exits_3_in_the_totals_words(
    project: Path, run, postmark
) -> None:
    import_example(run)
    postmark.inactive.update(a for a in _active_addresses(project))
    first = run("send", "2026-10-digest", "--yes", env=KEY)
    assert first.exit_code == 3, first.stderr
    assert f"0 sent, {ACTIVE} failed" in first.stderr
    assert f"Campaign totals: {ACTIVE} rejected" in first.stderr
    assert "`failed` counts every recipient the totals call rejected" in first.stderr
    again = run("send", "2026-10-digest", "--yes", env=KEY)
    assert again.exit_code == 3, again.stderr
    assert "nothing to send" in again.stderr
    assert f"{ACTIVE} recipient(s) of 2026-10-digest failed" in again.stderr
    assert "rejected, invalid or failed" in again.stderr
    assert len(postmark.accepted) == 0


def _active_addresses(project: Path) -> list[str]:
    rows = (project / "subscribers.example.csv").read_text().splitlines()[1:]
    return [row.split(",")[0] for row in rows]


def test_garbage_answer_is_unknown(project: Path, run, postmark) -> None:
    import_example(run)
    postmark.faults.append(("garbage",))
    assert run("send", "2026-10-digest", "--yes", env=KEY).exit_code == 0
    errors = {r["error"] for r in report(run)["recipients"]}
    assert len(errors) == 1 and "not with one result per message" in errors.pop()


@pytest.mark.slow
def test_postal_address_required_for_a_real_send(project: Path, run, postmark) -> None:
    import_example(run)
    path = project / "newsletter.toml"
    path.write_text(
        "\n".join(x for x in path.read_text().splitlines() if not x.startswith("postal_address"))
    )
    result = run_process("send", "2026-10-digest", "--yes", cwd=project, env=KEY)
    assert result.returncode == 1 and "postal_address is not set" in result.stderr
    assert postmark.requests == []
