"""`check` looks up the sending domain's SPF, DKIM and DMARC records, asked of a real
local DNS server (tests/dns_server.py) through NEWSLETTER_DNS_SERVER; `--offline` asks
nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_process, set_delivery, set_newsletter
from dns_server import DNSServer

pytestmark = pytest.mark.slow

DOMAIN = "riverbend-clinicians.org"
SLUG = "2026-10-digest"
SPF = '"v=spf1 ip4:192.0.2.10 -all"'
DMARC = '"v=DMARC1; p=none; rua=mailto:dmarc@riverbend-clinicians.org"'
DNS_CODES = re.compile(r"^(spf|dkim|dmarc|dns)-")


@pytest.fixture
def domain_project(project: Path) -> Path:
    set_newsletter(project, **{"from": f"Riverbend Clinicians Collective <news@{DOMAIN}>"})
    return project


def with_key(project: Path, selector: str = "news2026") -> str:
    """A key made with `dkim keygen`, signing the outbox; its record as printed."""
    made = run_process("dkim", "keygen", "--selector", selector, cwd=project)
    assert made.returncode == 0, made.stderr
    set_delivery(project, transport="outbox", dkim_selector=selector)
    return made.stdout.strip().split(" IN TXT ", 1)[1]


def check(project: Path, server: DNSServer | str, *args: str):
    address = server if isinstance(server, str) else server.address
    done = run_process(
        "check",
        SLUG,
        "--format",
        "json",
        *args,
        cwd=project,
        env={"NEWSLETTER_DNS_SERVER": address},
    )
    found = [p for p in json.loads(done.stdout) if DNS_CODES.match(p["code"])]
    return done, found


def codes(found: list[dict]) -> list[str]:
    return sorted(p["code"] for p in found)


def test_all_three_present_and_right_find_nothing(domain_project: Path) -> None:
    dkim = with_key(domain_project)
    records = {
        DOMAIN: [SPF, '"google-site-verification=abc"'],
        f"_dmarc.{DOMAIN}": [DMARC],
        f"news2026._domainkey.{DOMAIN}": [dkim],
    }
    with DNSServer(records) as server:
        _, found = check(domain_project, server)
    assert found == [], found
    assert {DOMAIN, f"_dmarc.{DOMAIN}", f"news2026._domainkey.{DOMAIN}"} <= set(server.questions)


def test_all_three_missing_say_what_to_publish(domain_project: Path) -> None:
    with_key(domain_project)
    with DNSServer({}) as server:
        done, found = check(domain_project, server)
    assert codes(found) == ["dkim-missing", "dmarc-missing", "spf-missing"]
    by_code = {p["code"]: p for p in found}
    assert "v=spf1" in by_code["spf-missing"]["message"]
    assert f"_dmarc.{DOMAIN}" in by_code["dmarc-missing"]["message"]
    assert "dkim keygen --selector news2026" in by_code["dkim-missing"]["message"]
    assert by_code["dkim-missing"]["level"] == "error"
    assert done.returncode == 1


@pytest.mark.parametrize(
    ("spf", "expected"),
    [
        (['"v=spf1 +all"'], "any server"),
        (['"v=spf1 all"'], "any server"),
        ([SPF, '"v=spf1 include:_spf.example.net -all"'], "2 SPF records"),
        (['"v=spf1 ip4:192.0.2.10"'], "no all term"),
    ],
)
def test_a_wrong_spf_record(domain_project: Path, spf: list[str], expected: str) -> None:
    with DNSServer({DOMAIN: spf, f"_dmarc.{DOMAIN}": [DMARC]}) as server:
        _, found = check(domain_project, server)
    assert codes(found) == ["spf-wrong"]
    assert expected in found[0]["message"]


@pytest.mark.parametrize(
    ("dmarc", "expected"),
    [
        (['"v=DMARC1; p=maybe"'], "'maybe'"),
        (['"v=DMARC1; rua=mailto:x@riverbend-clinicians.org"'], "'missing'"),
        ([DMARC, '"v=DMARC1; p=reject"'], "2 DMARC records"),
    ],
)
def test_a_wrong_dmarc_record(domain_project: Path, dmarc: list[str], expected: str) -> None:
    with DNSServer({DOMAIN: [SPF], f"_dmarc.{DOMAIN}": dmarc}) as server:
        done, found = check(domain_project, server)
    assert codes(found) == ["dmarc-wrong"]
    assert expected in found[0]["message"]
    assert done.returncode == 1


def test_a_dkim_record_of_another_key_revoked_or_broken(domain_project: Path) -> None:
    ours = with_key(domain_project, "news2026")
    other = with_key(domain_project, "other")
    set_delivery(domain_project, transport="outbox", dkim_selector="news2026")
    name = f"news2026._domainkey.{DOMAIN}"
    base = {DOMAIN: [SPF], f"_dmarc.{DOMAIN}": [DMARC]}
    for record, expected in (
        (other, "another key"),
        ('"v=DKIM1; k=rsa; p="', "revoked"),
        ('"v=DKIM1; k=rsa; p=not*base64"', "another key"),
        ('"k=rsa"', "not one v=DKIM1 record"),
        ('"v=DKIM2; p=abc"', "not one v=DKIM1 record"),
    ):
        with DNSServer({**base, name: [record]}) as server:
            _, found = check(domain_project, server)
        assert codes(found) == ["dkim-wrong"], record
        assert expected in found[0]["message"]
        assert ours.split('"')[1][:30] in found[0]["message"] or "p=MII" in found[0]["message"]


def test_offline_asks_nothing(domain_project: Path) -> None:
    with_key(domain_project)
    with DNSServer({}) as server:
        _, found = check(domain_project, server, "--offline")
    assert found == [] and server.questions == []
    assert "--offline" in run_process("check", "--help", cwd=domain_project).stdout


def test_smtp_without_a_key_is_told_to_sign(domain_project: Path) -> None:
    set_delivery(domain_project, transport="smtp", host="127.0.0.1", security="none")
    with DNSServer({DOMAIN: [SPF], f"_dmarc.{DOMAIN}": [DMARC]}) as server:
        _, found = check(domain_project, server)
    assert codes(found) == ["dkim-unsigned"]
    assert "newsletter dkim keygen" in found[0]["message"]


def test_an_api_provider_signs_so_no_selector_is_asked(domain_project: Path) -> None:
    set_delivery(domain_project, transport="postmark")
    with DNSServer({DOMAIN: [SPF], f"_dmarc.{DOMAIN}": [DMARC]}) as server:
        _, found = check(domain_project, server)
    assert found == []
    assert not [q for q in server.questions if "_domainkey" in q]


def test_a_missing_key_file_is_a_finding(domain_project: Path) -> None:
    set_delivery(domain_project, transport="outbox", dkim_selector="absent")
    with DNSServer({DOMAIN: [SPF], f"_dmarc.{DOMAIN}": [DMARC]}) as server:
        _, found = check(domain_project, server)
    assert codes(found) == ["dkim-key"]
    assert "newsletter dkim keygen --selector absent" in found[0]["message"]


def test_a_reserved_example_domain_is_not_looked_up(project: Path) -> None:
    with DNSServer({}) as server:
        _, found = check(project, server)
    assert found == [] and server.questions == []


def test_a_dns_server_that_does_not_answer_is_a_warning(domain_project: Path) -> None:
    from smtp_server import free_port

    _, found = check(domain_project, f"127.0.0.1:{free_port()}")
    assert codes(found) == ["dns-lookup", "dns-lookup"]
    assert all("--offline" in p["message"] for p in found)


def test_a_malformed_dns_server_variable_says_how_to_write_it(domain_project: Path) -> None:
    done = run_process(
        "check", SLUG, cwd=domain_project, env={"NEWSLETTER_DNS_SERVER": "127.0.0.1:port"}
    )
    assert done.returncode == 1
    assert "host:port" in done.stderr
