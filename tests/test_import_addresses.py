"""The import's shortcut for plain addresses answers as email-validator does in full.

``validate_address`` checks an ASCII dot-atom local part at a domain it has seen
without asking email-validator about the whole address. Given ordinary and hostile
addresses (every kind of local part, IDN and A-label domains, the length limits on
both sides of them, line breaks, look-alike characters), when both checks run, then
they accept the same addresses with the same normalised form, and reject the same
ones with the same reason, whether the domain was seen before or not.
"""

from __future__ import annotations

import itertools

from email_validator import EmailNotValidError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter import audience
from newsletter.audience import checked_in_full, validate_address

LOCALS = [
    "reader",
    "Reader.Name",
    "a",
    "first.last",
    "x+tag",
    "o'brien",
    "!#$%&'*+-/=?^_`{|}~",
    "a" * 64,
    "a" * 65,
    "a." * 32 + "b",
    ".lead",
    "trail.",
    "two..dots",
    '"quoted"',
    '"with space"',
    "with space",
    "tab\there",
    "semi;colon",
    "comma,here",
    "paren(comment)",
    "at@sign",
    "back\\slash",
    "",
    "ñoño",
    "José.Núñez",
    "用户",
    "ｆｕｌｌｗｉｄｔｈ",
    "\u200bzero.width",
    "rtl\u200fmark",
    "e\u0301",  # e and a combining accent: NFC makes it é
    "ǅ",
    "=HYPERLINK(1)",
    "-dash",
    "under_score",
    "12345",
]

DOMAINS = [
    "example.com",
    "EXAMPLE.COM",
    "Example.Org",
    "sub.domain.example.co.uk",
    "exämple.org",
    "EXÄMPLE.ORG",
    "xn--exmple-cua.org",
    "XN--EXMPLE-CUA.ORG",
    "bücher.de",
    "例え.jp",
    "пример.рф",
    "xn--e1afmkfd.xn--p1ai",
    "ｅｘａｍｐｌｅ.com",
    "example.com.",
    ".example.com",
    "example..com",
    "-example.com",
    "example-.com",
    "ex_ample.com",
    "localhost",
    "example",
    "x.local",
    "x.invalid",
    "x.test",
    "x.onion",
    "123.456",
    "1.2.3.4",
    "[1.2.3.4]",
    "[IPv6:::1]",
    "a" * 63 + ".com",
    "a" * 64 + ".com",
    "ä" * 30 + ".com",
    ".".join(["abcdefghi"] * 24) + ".com",
    ".".join(["abcdefghi"] * 25) + ".com",
    "example.com\r\nBcc: x@y.com",
    "exa\x00mple.com",
    "example.com ",
    " example.com",
    "exam ple.com",
    "",
]

WHOLE = [
    "",
    "@",
    "no-at-sign",
    "@example.com",
    "reader@",
    "a@b@example.com",
    "reader＠example.com",
    "reader@example.com\n",
    "reader\r@example.com",
    "reader@example.com\x00",
    " reader@example.com",
    "reader@example.com ",
    "Reader <reader@example.com>",
    "mailto:reader@example.com",
    "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 57,
    "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 58,
    "a" * 60 + "@" + "ä" * 60 + "." + "c" * 63 + "." + "d" * 63 + ".com",
]


def _answer(check: object, address: str) -> tuple[str, str]:
    try:
        return "accepted", check(address)  # type: ignore[operator]
    except EmailNotValidError as exc:
        return "rejected", str(exc)


def _compare(addresses: list[str]) -> int:
    """Both checks over the addresses, first with no domain seen, then with all seen;
    how many the shortcut accepted."""
    audience._domain.cache_clear()
    full = [_answer(checked_in_full, a) for a in addresses]
    for seen in ("cold", "warm"):
        fast = [_answer(validate_address, a) for a in addresses]
        differ = [(a, f, s) for a, f, s in zip(addresses, full, fast, strict=True) if f != s]
        assert not differ, (seen, differ[:5])
    return sum(1 for kind, _ in full if kind == "accepted")


def test_the_shortcut_answers_as_the_full_check_for_every_pair_of_parts() -> None:
    addresses = [f"{local}@{domain}" for local, domain in itertools.product(LOCALS, DOMAINS)]
    accepted = _compare(addresses + WHOLE)
    # the corpus has both outcomes in number, or it would prove little
    assert 200 < accepted < len(addresses) - 200


def test_the_shortcut_keeps_to_the_length_limits_as_sent() -> None:
    """At and around 64 octets before the @, 254 in all, 63 a label: in ASCII, and with
    a domain that is longer once in A-labels than as typed."""
    addresses = []
    for local_length, label, total in itertools.product(
        (63, 64, 65), ("b", "ü", "例"), range(248, 258)
    ):
        local = "a" * local_length
        domain_length = total - local_length - 1
        labels, left = [], domain_length - 4  # ".com"
        while left > 0:
            size = min(left, 63)
            labels.append(label * size if size > 1 else "x")
            left -= size + 1
        addresses.append(f"{local}@{'.'.join(labels)}.com")
    # a domain of short non-ASCII labels, within 254 as typed but not in A-labels
    for local_length, count in itertools.product((1, 40, 64), range(6, 12)):
        addresses.append(f"{'a' * local_length}@{'.'.join(['ü' * 20] * count)}.com")
    _compare(addresses)


_ATEXT = "abcXYZ019!#$%&'*+-/=?^_`{|}~."
_PIECES = st.one_of(
    st.text(alphabet=_ATEXT, min_size=0, max_size=70),
    st.text(min_size=0, max_size=12),
    st.sampled_from(LOCALS),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    local=_PIECES,
    domain=st.one_of(st.sampled_from(DOMAINS), st.text(alphabet="abcäü-.XN", max_size=30)),
)
def test_the_shortcut_answers_as_the_full_check_for_generated_addresses(
    local: str, domain: str
) -> None:
    _compare([f"{local}@{domain}"])
