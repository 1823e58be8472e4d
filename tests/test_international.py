"""International addresses: each transport sends what it can carry, and only that.

Given readers at an internationalised domain (info@bücher.de), with a non-ASCII
local part (ñoño@, JÜRGEN.MÜLLER@) and with a 254-character address, when the
campaign is sent through the outbox, SMTP (with and without SMTPUTF8) or a
provider's API, then every reader ends ``sent`` (or ``queued``) or ``invalid``
with a reason that says why and what to do, everyone else gets exactly one
message, nothing is left ``sending``, and no request carries what the provider
cannot take.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import set_delivery, set_newsletter
from fakes.base import is_email
from fakes.postmark import FakePostmark
from node_peers import mailparser, needs_mailparser
from smtp_server import SMTPServer, parse_message
from test_transports import PROVIDERS, no_ambient_aws  # noqa: F401 - a fixture, used by name

SLUG = "2026-10-digest"
LONG = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".org"
IDN = "info@bücher.de"
IDN_SENT = "info@xn--bcher-kva.de"
NON_ASCII = ("ñoño@example.com", "JÜRGEN.MÜLLER@example.de")
ASCII = ("plain@example.com", "renee.castillo@example.net")
READERS = f"""email,first_name,last_name
{ASCII[0]},Plain,Reader
{ASCII[1]},Renée,Castillo
{IDN},Ülrike,Händler
{NON_ASCII[0]},Ñoño,Pérez
{NON_ASCII[1]},Jürgen,Müller
{LONG},Long,Address
"""
# the form each address goes out in, where any path can carry it
SENT = {ASCII[0]: ASCII[0], ASCII[1]: ASCII[1], IDN: IDN_SENT, LONG: LONG}
KEY = {"NEWSLETTER_API_KEY": "pm-test"}


def postmark_refusal(local: str) -> str:
    return (
        f"Postmark cannot deliver to a non-ASCII local part ('{local}'): that needs SMTPUTF8, "
        "which its API does not offer"
    )


@pytest.fixture
def readers(project: Path) -> Path:
    path = project / "readers.csv"
    path.write_text(READERS, encoding="utf-8")
    return path


@pytest.fixture
def imported(run, readers: Path) -> None:
    """All six readers in the list (imported while the outbox, which takes them all, is set)."""
    result = run("subscribers", "import", str(readers))
    assert result.exit_code == 0, result.stderr
    assert "6 added" in result.stderr and "0 rejected" in result.stderr


def report(run) -> dict:
    result = run("report", SLUG, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def settled(run) -> dict[str, tuple[str, str | None]]:
    """email -> (status, error); and nothing may be left claimed or in doubt."""
    data = report(run)
    assert data["counts"].get("sending", 0) == 0
    assert data["counts"].get("unknown", 0) == 0
    assert data["counts"].get("pending", 0) == 0
    return {r["email"]: (r["status"], r["error"]) for r in data["recipients"]}


def header_section(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


# -- import ---------------------------------------------------------------------------
def test_import_refuses_what_the_configured_provider_cannot_carry(
    project: Path, run, readers: Path
) -> None:
    set_delivery(project, transport="postmark")  # no secret is needed to know that
    result = run("subscribers", "import", str(readers))
    assert result.exit_code == 0, result.stderr
    assert f"line 5: ñoño@example.com: {postmark_refusal('ñoño')}" in result.stderr
    assert f"line 6: JÜRGEN.MÜLLER@example.de: {postmark_refusal('JÜRGEN.MÜLLER')}" in result.stderr
    assert "4 added, 0 updated, 0 unchanged, 2 rejected" in result.stderr
    listed = json.loads(run("subscribers", "list", "--format", "json").stdout)
    assert sorted(r["email"] for r in listed) == sorted(SENT)  # stored as given: bücher.de


@pytest.mark.parametrize("transport", ["outbox", "smtp"])
def test_import_takes_every_address_for_the_outbox_and_smtp(
    project: Path, run, readers: Path, transport: str
) -> None:
    # SMTP: whether the server offers SMTPUTF8 is known only once connected
    set_delivery(project, transport=transport, host="smtp.example.org")
    result = run("subscribers", "import", str(readers))
    assert result.exit_code == 0, result.stderr
    assert "6 added" in result.stderr and "0 rejected" in result.stderr


def test_import_checks_lengths_on_the_form_that_is_sent(project: Path, run) -> None:
    # 236 characters in Unicode, 292 once the domain is in A-labels: too long to send
    domain = ".".join(["ü" * 20] * 8) + ".de"
    too_long = "a" * 64 + "@" + domain
    local_too_long = "é" * 40 + "@example.com"  # 40 characters, 80 octets in UTF-8
    path = project / "long.csv"
    path.write_text(f"email\n{LONG}\n{too_long}\n{local_too_long}\n", encoding="utf-8")
    result = run("subscribers", "import", str(path))
    assert "1 added" in result.stderr and "2 rejected" in result.stderr, result.stderr
    assert re.search(r"line 3: a+@ü+\S*: .*(254|too long)", result.stderr)
    assert "line 4: " + local_too_long + ": The part before the @ is 80 octets long" in (
        result.stderr
    )


# -- outbox -----------------------------------------------------------------------------
def test_outbox_writes_every_reader_in_the_form_that_is_sent(
    project: Path, run, imported: None
) -> None:
    result = run("send", SLUG, "--yes")
    assert result.exit_code == 0, result.stderr
    assert {e: s for e, (s, _) in settled(run).items()} == dict.fromkeys(
        [*SENT, *NON_ASCII], "sent"
    )
    files = sorted((project / "outbox" / SLUG).glob("*.eml"))
    assert len(files) == 6
    seen = {}
    for path in files:
        raw = path.read_bytes()
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
        msg = parse_message(raw)
        assert msg.defects == []
        [to] = msg["To"].addresses
        seen[to.addr_spec] = path
        if to.addr_spec in NON_ASCII:  # RFC 6532: UTF-8 headers only where they must be
            assert [type(d).__name__ for d in msg["To"].defects] == ["NonASCIILocalPartDefect"]
            assert not header_section(raw).isascii()
            header_section(raw).decode("utf-8")
        else:
            assert msg["To"].defects == () and header_section(raw).isascii()
    assert sorted(seen) == sorted([*SENT.values(), *NON_ASCII])
    assert len(seen[LONG].name) < 255  # the file name of a 254-character address fits

    forgotten = run("subscribers", "forget", LONG, "--yes")
    assert forgotten.exit_code == 0, forgotten.stderr
    assert not seen[LONG].exists(), "forget finds the file of a long address too"


@pytest.mark.slow
@needs_mailparser
def test_mailparser_reads_the_outbox_files(project: Path, run, imported: None) -> None:
    assert run("send", SLUG, "--yes").exit_code == 0
    files = sorted((project / "outbox" / SLUG).glob("*.eml"))
    parsed = mailparser(files)
    names = {
        "plain@example.com": "Plain Reader",
        "renee.castillo@example.net": "Renée Castillo",
        IDN: "Ülrike Händler",  # mailparser shows the domain in Unicode again
        "ñoño@example.com": "Ñoño Pérez",
        "JÜRGEN.MÜLLER@example.de": "Jürgen Müller",
        LONG: "Long Address",
    }
    got = {p["to"][0]["address"]: p["to"][0]["name"] for p in parsed.values()}
    assert got == names
    for item in parsed.values():
        assert item["from"] == [
            {
                "name": "Riverbend Clinicians Collective",
                "address": "news@riverbend-clinicians.example",
            }
        ]
        assert item["subject"].startswith("October at Riverbend")


# -- a provider's API ---------------------------------------------------------------------
@pytest.fixture
def postmark(project: Path) -> Iterator[FakePostmark]:
    with FakePostmark(token="pm-test") as pm:
        yield pm
        assert pm.errors == []


def test_postmark_settles_who_it_cannot_carry_invalid_and_sends_everyone_else_once(
    project: Path, run, imported: None, postmark: FakePostmark
) -> None:
    set_newsletter(project, **{"from": "Bücherfreunde Zürich <news@bücher.de>"})
    set_delivery(project, transport="postmark", base_url=postmark.url, max_retries=1)
    result = run("send", SLUG, "--yes", env=KEY)
    assert result.exit_code == 3, result.stderr
    rows = settled(run)
    for address, local in zip(NON_ASCII, ("ñoño", "JÜRGEN.MÜLLER"), strict=True):
        status, error = rows[address]
        assert status == "invalid"
        assert error.startswith(postmark_refusal(local) + ".")
        assert "Ask the reader for an address whose part before the @ is plain ASCII" in error
    assert {e: s for e, (s, _) in rows.items() if e not in NON_ASCII} == dict.fromkeys(SENT, "sent")
    [request] = postmark.batch_requests()
    assert len(request.body) == len(SENT), "the readers it cannot carry were never in a request"
    assert Counter(postmark.accepted_to()) == Counter(
        f'"{name}" <{SENT[address]}>'
        for address, name in (
            (ASCII[0], "Plain Reader"),
            (ASCII[1], "Renée Castillo"),
            (IDN, "Ülrike Händler"),
            (LONG, "Long Address"),
        )
    )
    assert {m["From"] for m in postmark.accepted} == {
        '"Bücherfreunde Zürich" <news@xn--bcher-kva.de>'
    }
    again = run("send", SLUG, "--yes", env=KEY)
    assert again.exit_code == 3 and "nothing to send" in again.stderr  # the invalid remain
    assert len(postmark.batch_requests()) == 1


def test_the_postmark_fake_refuses_what_postmark_refuses(postmark: FakePostmark) -> None:
    def item(to: str) -> dict:
        return {"From": "news@example.org", "To": to, "Subject": "Hi", "TextBody": "Hi"}

    answer = requests.post(
        f"{postmark.url}/email/batch",
        json=[item("ñoño@example.com"), item("info@bücher.de"), item(IDN_SENT)],
        headers={"X-Postmark-Server-Token": "pm-test", "Accept": "application/json"},
        timeout=10,
    ).json()
    assert [a["ErrorCode"] for a in answer] == [300, 300, 0]
    assert answer[0]["Message"] == "Invalid 'To' address: 'ñoño@example.com'."
    assert not is_email("ñoño@example.com") and not is_email(IDN) and is_email(IDN_SENT)


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_every_provider_api_gets_only_what_it_can_carry(
    project: Path, run, imported: None, name: str
) -> None:
    provider = PROVIDERS[name]()
    with provider.fake:
        set_delivery(project, **provider.delivery(), max_retries=1, timeout=10)
        result = run("send", SLUG, "--yes", env=provider.env)
        assert result.exit_code == 3, result.stderr
        rows = settled(run)
        assert {e: s for e, (s, _) in rows.items()} == {
            **dict.fromkeys(SENT, provider.status),
            **dict.fromkeys(NON_ASCII, "invalid"),
        }
        assert "needs SMTPUTF8" in rows["ñoño@example.com"][1]
        delivered = Counter(a for d in provider.delivered() for a in d.to)
        assert delivered == Counter(SENT.values())
        assert provider.fake.errors == []


# -- SMTP ---------------------------------------------------------------------------------
def smtp_send(project: Path, run, smtp: SMTPServer, *args: str):
    set_delivery(
        project, transport="smtp", host="127.0.0.1", port=smtp.port, security="none", max_retries=1
    )
    return run("send", SLUG, "--yes", *args)


def test_smtp_with_smtputf8_carries_every_reader(project: Path, run, imported: None) -> None:
    with SMTPServer(smtputf8=True) as smtp:
        result = smtp_send(project, run, smtp)
        assert result.exit_code == 0, result.stderr
        assert {e: s for e, (s, _) in settled(run).items()} == dict.fromkeys(
            [*SENT, *NON_ASCII], "sent"
        )
        received = smtp.handler.received
        assert Counter(r for item in received for r in item.recipients) == Counter(
            [*SENT.values(), *NON_ASCII]
        )
        for item in received:
            [rcpt] = item.recipients
            assert [a.addr_spec for a in item.message["To"].addresses] == [rcpt]
            assert item.sender == "news@riverbend-clinicians.example"
            if rcpt in NON_ASCII:
                assert "SMTPUTF8" in item.mail_options
                assert not header_section(item.raw).isascii()
            else:
                assert "SMTPUTF8" not in item.mail_options  # only where it must be
                assert header_section(item.raw).isascii()


def test_smtp_without_smtputf8_settles_those_readers_invalid_and_sends_the_rest(
    project: Path, run, imported: None
) -> None:
    with SMTPServer(smtputf8=False) as smtp:
        result = smtp_send(project, run, smtp)
        assert result.exit_code == 3, result.stderr
        rows = settled(run)
        for address, local in zip(NON_ASCII, ("ñoño", "JÜRGEN.MÜLLER"), strict=True):
            status, error = rows[address]
            assert status == "invalid"
            assert error.startswith(
                "The SMTP server 127.0.0.1 does not offer SMTPUTF8, which a non-ASCII local "
                f"part ('{local}') needs"
            )
            assert "Ask the reader for an address" in error
        assert {e: s for e, (s, _) in rows.items() if e not in NON_ASCII} == dict.fromkeys(
            SENT, "sent"
        )
        received = smtp.handler.received
        assert Counter(r for item in received for r in item.recipients) == Counter(SENT.values())
        assert all(header_section(item.raw).isascii() for item in received)
        again = run("send", SLUG, "--yes")
        assert again.exit_code == 3 and "nothing to send" in again.stderr  # the invalid remain
        assert len(smtp.handler.received) == len(SENT)


# -- build, preview, send --test -----------------------------------------------------------
def test_build_for_an_address_the_provider_cannot_carry_says_why(
    project: Path, run, postmark: FakePostmark
) -> None:
    set_delivery(project, transport="postmark", base_url=postmark.url)
    result = run("build", SLUG, "--to", "ñoño@example.com")
    assert result.exit_code == 1
    assert f"ñoño@example.com: {postmark_refusal('ñoño')}." in result.stderr
    assert "Traceback" not in result.stderr
    bad = run("build", SLUG, "--to", "not an address")
    assert bad.exit_code == 1 and "is not a usable email address" in bad.stderr


def test_build_for_such_an_address_through_the_outbox_makes_a_valid_message(
    project: Path, run
) -> None:
    result = run("build", SLUG, "--to", "ñoño@bücher.de")
    assert result.exit_code == 0, result.stderr
    raw = (project / "build" / SLUG / "sample.eml").read_bytes()
    msg = parse_message(raw)
    assert [a.addr_spec for a in msg["To"].addresses] == ["ñoño@xn--bcher-kva.de"]
    assert msg.defects == []


def test_send_test_to_an_address_the_provider_cannot_carry_sends_nothing(
    project: Path, run, postmark: FakePostmark
) -> None:
    set_delivery(project, transport="postmark", base_url=postmark.url)
    set_newsletter(project, postal_address="214 Mill Street, Easthampton, MA 01027, USA")
    result = run("send", SLUG, "--test", "ñoño@example.com", env=KEY)
    assert result.exit_code == 1
    assert postmark_refusal("ñoño") in result.stderr and "Traceback" not in result.stderr
    assert postmark.requests == []
    ok = run("send", SLUG, "--test", IDN, env=KEY)
    assert ok.exit_code == 0, ok.stderr
    assert postmark.accepted_to() == [f"{IDN_SENT}"]


def test_send_test_over_smtp_without_smtputf8_reports_invalid(project: Path, run) -> None:
    with SMTPServer(smtputf8=False) as smtp:
        result = smtp_send(project, run, smtp, "--test", "ñoño@example.com")
        assert result.exit_code == 0, result.stderr
        assert "Test copy to ñoño@example.com: invalid (The SMTP server" in result.stderr
        assert smtp.handler.received == []


def test_preview_shows_such_a_reader_as_they_would_get_it(project: Path, run, imported) -> None:
    from newsletter.project import Project
    from newsletter.web.preview import PreviewApp

    set_delivery(project, transport="postmark")
    proj = Project.load()
    try:
        app = PreviewApp(proj, SLUG)
        reader = next(r for r in app.recipients() if r.email == "ñoño@example.com")
        state = app.state(str(reader.subscriber_id))
        assert state["error"] is None
        headers = dict(state["headers"])
        assert headers["To"].endswith("<ñoño@example.com>")
        assert "Ñoño" in app.email_html(str(reader.subscriber_id))
    finally:
        proj.close()


def test_a_sender_address_the_provider_cannot_carry_stops_before_any_request(
    project: Path, run, imported: None, postmark: FakePostmark
) -> None:
    set_newsletter(project, **{"from": "Ñoño <ñoño@example.org>"})
    set_delivery(project, transport="postmark", base_url=postmark.url)
    result = run("send", SLUG, "--yes", env=KEY)
    assert result.exit_code == 1
    assert "[newsletter] from (ñoño@example.org) has a non-ASCII local part" in result.stderr
    assert postmark.requests == []


def test_a_reply_to_with_an_international_domain_goes_in_a_labels(
    project: Path, run, imported: None
) -> None:
    set_newsletter(project, reply_to="Redaktion Bücher <redaktion@bücher.de>")
    assert run("send", SLUG, "--yes").exit_code == 0
    path = next((project / "outbox" / SLUG).glob("*plain@example.com.eml"))
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert [(a.display_name, a.addr_spec) for a in msg["Reply-To"].addresses] == [
        ("Redaktion Bücher", "redaktion@xn--bcher-kva.de")
    ]
    assert msg["Reply-To"].defects == ()


def test_sendgrid_takes_a_reader_whose_name_has_a_comma(project: Path, run) -> None:
    # SendGrid documents that a name may not hold "," or ";": the name goes without them,
    # rather than the whole request being refused for one reader
    path = project / "names.csv"
    path.write_text(
        'email,first_name,last_name\nbell@example.com,Marcus,"Bell, PsyD; LCSW"\n'
        "plain@example.com,Plain,Reader\n",
        encoding="utf-8",
    )
    assert run("subscribers", "import", str(path)).exit_code == 0
    provider = PROVIDERS["sendgrid"]()
    with provider.fake:
        set_delivery(project, **provider.delivery(), max_retries=1)
        result = run("send", SLUG, "--yes", env=provider.env)
        assert result.exit_code == 0, result.stderr
        [request] = provider.fake.send_requests()
        names = [p["to"][0].get("name") for p in request.body["personalizations"]]
        assert sorted(names) == ["Marcus Bell PsyD LCSW", "Plain Reader"]
