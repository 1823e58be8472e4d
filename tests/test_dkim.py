"""DKIM: `newsletter dkim keygen`, and the signature on the smtp and outbox transports'
messages, verified by dkimpy against the printed record served by a real local DNS server."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import dkim as dkimpy
import dns.resolver
import pytest

from conftest import run_process, set_delivery
from dns_server import DNSServer
from node_peers import mailauth_dkim, needs_mailauth
from smtp_server import SMTPServer

DOMAIN = "riverbend-clinicians.example"
SLUG = "2026-10-digest"
# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

SIGNED = [
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
]


def send(project: Path, *args: str):
    imported = run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    assert imported.returncode == 0, imported.stderr
    return run_process("send", SLUG, *args, cwd=project)


def keygen(project: Path, *args: str):
    return run_process("dkim", "keygen", *args, cwd=project)


def record_zone_text(stdout: str, selector: str) -> tuple[str, str]:
    """The printed record: its name, and its text as zone-file strings."""
    line = stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"(\S+)\. IN TXT (\".*\")", line)
    assert match, line
    assert match.group(1) == f"{selector}._domainkey.{DOMAIN}"
    return match.group(1), match.group(2)


def resolver_dnsfunc(server: DNSServer):
    """dkimpy's DNS lookup, asked of the local DNS server through dnspython."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = server.port

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver.resolve(name.decode().rstrip("."), "TXT", lifetime=timeout)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(answer[0].strings)

    return dnsfunc


@pytest.fixture
def signed_project(project: Path):
    made = keygen(project, "--selector", "news2026")
    assert made.returncode == 0, made.stderr
    name, text = record_zone_text(made.stdout, "news2026")
    set_delivery(project, transport="outbox", dkim_selector="news2026")
    with DNSServer({name: [text]}) as server:
        yield project, server


def test_keygen_writes_an_owner_only_key_and_prints_the_record_in_255_byte_strings(
    project: Path,
) -> None:
    made = keygen(project, "--selector", "news2026", "--bits", "2048")
    assert made.returncode == 0, made.stderr
    key = project / "dkim" / "news2026.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    _, text = record_zone_text(made.stdout, "news2026")
    strings = re.findall(r'"([^"]*)"', text)
    assert len(strings) == 2 and all(len(s.encode()) <= 255 for s in strings)
    assert "".join(strings).startswith("v=DKIM1; k=rsa; p=MII")
    assert 'dkim_selector = "news2026"' in made.stderr


def test_keygen_refuses_to_replace_a_key_unless_forced(project: Path) -> None:
    assert keygen(project, "--selector", "s1").returncode == 0
    key = project / "dkim" / "s1.pem"
    first = key.read_bytes()
    again = keygen(project, "--selector", "s1")
    assert again.returncode != 0
    assert "already exists" in again.stderr and "--force" in again.stderr
    assert key.read_bytes() == first
    forced = keygen(project, "--selector", "s1", "--force")
    assert forced.returncode == 0, forced.stderr
    assert key.read_bytes() != first


def test_keygen_out_and_a_hostile_selector(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "keys" / "k.pem"
    made = keygen(project, "--selector", "s2", "--bits", "1024", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert f'dkim_key_file = "{out}"' in made.stderr
    for hostile in ("../../etc", "a b", "x._domainkey", "-bad", ""):
        refused = keygen(project, "--selector", hostile)
        assert refused.returncode == 2, hostile
        assert "DNS label" in refused.stderr or "selector" in refused.stderr
    assert not (project / "dkim" / "..").resolve().joinpath("etc.pem").exists()


def test_outbox_messages_verify_against_the_printed_record_and_fail_when_changed(
    signed_project,
) -> None:
    project, server = signed_project
    sent = send(project, "--yes")
    assert sent.returncode == 0, sent.stderr
    files = sorted((project / "outbox" / SLUG).glob("*.eml"))
    assert files
    dnsfunc = resolver_dnsfunc(server)
    for path in files:
        raw = path.read_bytes()
        assert raw.startswith(b"DKIM-Signature:")
        assert dkimpy.verify(raw, dnsfunc=dnsfunc), path.name
        tags = dict(
            part.strip().split("=", 1)
            for part in re.sub(rb"\s+", b"", raw.split(b"\r\n\r\n")[0].split(b"\r\nFrom:")[0])
            .decode()
            .split(":", 1)[1]
            .split(";")
            if part.strip()
        )
        assert tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
        assert tags["d"] == DOMAIN and tags["s"] == "news2026"
        assert sorted(tags["h"].lower().encode().split(b":")) == sorted(SIGNED)
        changed = raw.replace(b"Subject: ", b"Subject: Re: ", 1)
        assert not dkimpy.verify(changed, dnsfunc=dnsfunc)
        body_changed = raw[:-40] + raw[-40:].replace(b"-", b"+", 1)
        assert body_changed != raw and not dkimpy.verify(body_changed, dnsfunc=dnsfunc)
    assert f"news2026._domainkey.{DOMAIN}" in server.questions


def test_a_signature_fails_against_another_key_record(signed_project) -> None:
    project, server = signed_project
    other = keygen(project, "--selector", "other")
    _, text = record_zone_text(other.stdout, "other")
    server.records[f"news2026._domainkey.{DOMAIN}"] = [text]
    assert send(project, "--yes").returncode == 0
    raw = next((project / "outbox" / SLUG).glob("*.eml")).read_bytes()
    assert not dkimpy.verify(raw, dnsfunc=resolver_dnsfunc(server))


def test_smtp_messages_arrive_signed_and_verify(signed_project) -> None:
    project, server = signed_project
    with SMTPServer() as smtp:
        set_delivery(
            project,
            transport="smtp",
            host="127.0.0.1",
            port=smtp.port,
            security="none",
            concurrency=1,
            dkim_selector="news2026",
        )
        sent = send(project, "--yes")
        assert sent.returncode == 0, sent.stderr
        received = smtp.handler.received
    assert received
    dnsfunc = resolver_dnsfunc(server)
    for item in received:
        assert item.raw.startswith(b"DKIM-Signature:")
        assert dkimpy.verify(item.raw, dnsfunc=dnsfunc)


def test_unsigned_without_a_selector(project: Path) -> None:
    assert send(project, "--yes").returncode == 0
    raw = next((project / "outbox" / SLUG).glob("*.eml")).read_bytes()
    assert b"DKIM-Signature" not in raw


def test_a_missing_key_says_how_to_make_one_and_sends_nothing(project: Path) -> None:
    set_delivery(project, transport="outbox", dkim_selector="absent")
    sent = send(project, "--yes")
    assert sent.returncode != 0
    assert "newsletter dkim keygen --selector absent" in sent.stderr
    assert not list((project / "outbox").glob(f"{SLUG}/*.eml"))


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"dkim_key_file": "dkim/x.pem"}, "without dkim_selector"),
        ({"dkim_selector": "a.b"}, "not a DNS label"),
        ({"dkim_selector": 7}, "must be"),
    ],
)
def test_dkim_settings_are_validated(project: Path, keys: dict, expected: str) -> None:
    set_delivery(project, transport="outbox", **keys)
    sent = run_process("send", SLUG, "--dry-run", cwd=project)
    assert sent.returncode != 0
    assert expected in sent.stderr


def test_a_key_that_is_not_a_key_is_refused(project: Path) -> None:
    (project / "dkim").mkdir()
    (project / "dkim" / "bad.pem").write_text("not a key")
    set_delivery(project, transport="outbox", dkim_selector="bad")
    sent = send(project, "--yes")
    assert sent.returncode != 0
    assert "not an unencrypted PEM private key" in sent.stderr
    assert "keygen" in sent.stderr


@needs_mailauth
def test_a_second_verifier_node_mailauth_passes_the_signed_outbox(signed_project) -> None:
    project, server = signed_project
    assert send(project, "--yes").returncode == 0
    files = sorted((project / "outbox" / SLUG).glob("*.eml"))
    changed = files[0].with_name("changed.eml.txt")
    changed.write_bytes(files[0].read_bytes().replace(b"Subject: ", b"Subject: Re: ", 1))
    found = mailauth_dkim(server.address, [*files, changed])
    for path in files:
        assert found[path] == [
            {"domain": DOMAIN, "selector": "news2026", "result": "pass", "comment": None}
        ], path.name
    assert [r["result"] for r in found[changed]] == ["fail"]
