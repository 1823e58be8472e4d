"""`check`'s look at the sending domain: the SPF, DKIM and DMARC records of the From
address's domain, asked of the DNS with dnspython.

Receivers (Gmail and Yahoo for bulk mail) want all three: SPF names the servers that
send as the domain, DKIM proves the message came from it, DMARC says both must align.
Each finding says what is missing or wrong and the record that fixes it.
``NEWSLETTER_DNS_SERVER`` (``host`` or ``host:port``) sends the questions to one server
instead of the system's resolvers: for tests, against a local DNS server.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable

import dns.exception
import dns.resolver

from .catalog import transport_class
from .checks import Problem
from .config import Settings
from .dkim import public_key_b64
from .errors import ConfigError

DNS_SERVER_VARIABLE = "NEWSLETTER_DNS_SERVER"
LIFETIME = 5.0  # seconds for one question, every retry included
# Names that can have no records (RFC 2606, RFC 6761): nothing to look up.
_RESERVED = ("example", "test", "invalid", "localhost", "example.com", "example.net", "example.org")

Lookup = Callable[[str], list[str]]


class LookupFailed(Exception):
    """The DNS did not answer (no server, a timeout, SERVFAIL)."""


def resolver() -> dns.resolver.Resolver:
    """The system's resolver, or the server ``NEWSLETTER_DNS_SERVER`` names."""
    server = os.environ.get(DNS_SERVER_VARIABLE, "").strip()
    if not server:
        return dns.resolver.Resolver()
    host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{DNS_SERVER_VARIABLE} is {server!r}, which is not host:port.",
            f"Write it as {DNS_SERVER_VARIABLE}=127.0.0.1:5353 (it is for testing), or unset it.",
        )
    chosen = dns.resolver.Resolver(configure=False)
    chosen.nameservers = [host]
    chosen.port = int(port)
    return chosen


def txt_lookup(chosen: dns.resolver.Resolver) -> Lookup:
    """The TXT records of a name, each as one string (its strings joined); [] for none."""

    def lookup(name: str) -> list[str]:
        try:
            answer = chosen.resolve(name, "TXT", lifetime=LIFETIME)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.DNSException, OSError) as exc:
            raise LookupFailed(f"{exc.__class__.__name__}: {exc}") from None
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    return lookup


def from_domain(settings: Settings) -> str:
    """The From address's domain, in its ASCII (IDNA) form."""
    domain = settings.sender[1].rpartition("@")[2].rstrip(".").lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def reserved(domain: str) -> bool:
    return any(domain == name or domain.endswith("." + name) for name in _RESERVED)


def domain_problems(settings: Settings, lookup: Lookup | None = None) -> list[Problem]:
    """What the DNS of the From domain lacks or gets wrong for SPF, DKIM and DMARC."""
    domain = from_domain(settings)
    if reserved(domain):
        return []
    lookup = lookup or txt_lookup(resolver())
    questions: list[tuple[str, Callable[[list[str]], list[Problem]]]] = [
        (domain, lambda records: spf_problems(domain, records)),
        (f"_dmarc.{domain}", lambda records: dmarc_problems(domain, records)),
    ]
    problems = _dkim_questions(settings, domain, questions)
    for name, judge in questions:
        try:
            records = lookup(name)
        except LookupFailed as exc:
            problems.append(
                Problem(
                    "warning",
                    "dns-lookup",
                    f"Could not look up the TXT records of {name} ({exc}). Run check again "
                    "when the DNS answers, or add --offline to leave the DNS out.",
                    f"DNS {name}",
                )
            )
            continue
        problems.extend(judge(records))
    return problems


def _dkim_questions(
    settings: Settings,
    domain: str,
    questions: list[tuple[str, Callable[[list[str]], list[Problem]]]],
) -> list[Problem]:
    """Adds the configured selector's record to ``questions``; the problems found
    without the DNS (unsigned smtp mail, a key that cannot be read)."""
    transport = transport_class(settings.transport)
    if not transport.dkim_signing:
        return []  # the provider signs: its dashboard shows the records to publish
    selector = settings.delivery.dkim_selector
    if selector is None:  # a rehearsal reaches no receiver: unsigned is harmless there
        return [] if transport.rehearsal else [_unsigned_smtp()]
    try:
        found = settings.dkim_key()
        assert found is not None
        expected = public_key_b64(found[2].read_bytes())
    except (ConfigError, OSError) as exc:
        text = str(exc).replace("\n", " ")
        return [Problem("error", "dkim-key", text, "[delivery] dkim_selector")]
    name = f"{selector}._domainkey.{domain}"
    questions.append((name, lambda records: dkim_problems(name, selector, expected, records)))
    return []


def _unsigned_smtp() -> Problem:
    return Problem(
        "warning",
        "dkim-unsigned",
        "The smtp transport sends unsigned mail: Gmail and Yahoo want a DKIM signature of "
        "the From domain for bulk mail and one-click unsubscribe. Run `newsletter dkim keygen "
        '--selector S`, publish the record it prints, and set dkim_selector = "S" under '
        "[delivery] (unless the SMTP server signs for you).",
        "[delivery] dkim_selector",
    )


def spf_problems(domain: str, records: list[str]) -> list[Problem]:
    spf = [r for r in records if r.lower().startswith("v=spf1")]
    where = f"DNS {domain} TXT"
    if not spf:
        return [
            Problem(
                "warning",
                "spf-missing",
                f"{domain} has no SPF record. Publish a TXT record on {domain} naming the servers "
                'that send as it, e.g. "v=spf1 include:<your provider\'s SPF domain> -all" (or '
                "ip4:<your SMTP server's address>).",
                where,
            )
        ]
    if len(spf) > 1:
        return [
            Problem(
                "error",
                "spf-wrong",
                f"{domain} has {len(spf)} SPF records, and receivers then ignore them all "
                "(RFC 7208). Merge them into one v=spf1 record.",
                where,
            )
        ]
    terms = spf[0].lower().split()[1:]
    if "+all" in terms or "all" in terms:
        return [
            Problem(
                "error",
                "spf-wrong",
                f"The SPF record of {domain} ends in +all, which lets any server send as "
                f"{domain}. End it in -all (or ~all) after the servers that do send.",
                where,
            )
        ]
    if not any(t.endswith("all") or t.startswith("redirect=") for t in terms):
        return [
            Problem(
                "warning",
                "spf-wrong",
                f"The SPF record of {domain} has no all term, so it says nothing of other "
                "servers. End it in -all (or ~all).",
                where,
            )
        ]
    return []


def dkim_problems(name: str, selector: str, expected: str, records: list[str]) -> list[Problem]:
    where = f"DNS {name} TXT"
    if not records:
        return [
            Problem(
                "error",
                "dkim-missing",
                f"There is no DKIM record at {name}, so every signed message fails DKIM. "
                f"Publish the record `newsletter dkim keygen --selector {selector}` printed "
                "(run it again with another selector if it is lost).",
                where,
            )
        ]
    tags = _tags(records[0])
    published = re.sub(r"\s+", "", tags.get("p", ""))
    if len(records) > 1 or tags.get("v", "DKIM1") != "DKIM1" or "p" not in tags:
        problem = f"The DKIM record at {name} is not one v=DKIM1 record with a p= key."
    elif not published:
        problem = f"The DKIM record at {name} is revoked (p= is empty)."
    elif not _same_key(published, expected):
        problem = (
            f"The DKIM record at {name} holds another key than [delivery] dkim_key_file, "
            "so every signed message fails DKIM."
        )
    else:
        return []
    return [
        Problem(
            "error",
            "dkim-wrong",
            f"{problem} Publish the one record `newsletter dkim keygen` printed for this key: "
            f'{name} TXT "v=DKIM1; k=rsa; p={expected[:16]}…".',
            where,
        )
    ]


def _same_key(published: str, expected: str) -> bool:
    try:
        return base64.b64decode(published, validate=True) == base64.b64decode(expected)
    except ValueError:
        return False


def dmarc_problems(domain: str, records: list[str]) -> list[Problem]:
    name = f"_dmarc.{domain}"
    dmarc = [r for r in records if r.replace(" ", "").upper().startswith("V=DMARC1")]
    where = f"DNS {name} TXT"
    fix = (
        f'Publish one TXT record at {name}: "v=DMARC1; p=none; rua=mailto:dmarc@{domain}" '
        "to start (p=quarantine once the reports show all your mail aligned)."
    )
    if not dmarc:
        return [Problem("warning", "dmarc-missing", f"{domain} has no DMARC record. {fix}", where)]
    policy = _tags(dmarc[0]).get("p", "").lower()
    if len(dmarc) > 1 or policy not in ("none", "quarantine", "reject"):
        reason = (
            f"{len(dmarc)} DMARC records (receivers then ignore them)"
            if len(dmarc) > 1
            else f"a DMARC record whose policy p= is {policy or 'missing'!r}"
        )
        return [Problem("error", "dmarc-wrong", f"{domain} has {reason}. {fix}", where)]
    return []


def _tags(record: str) -> dict[str, str]:
    """``k=v; k=v`` tag lists (DKIM, DMARC), keys lowercased, values trimmed."""
    tags = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip()
    return tags
