"""Email addresses in the form a transport can carry (RFC 5321, 6531, 5891).

Addresses are stored as imported and normalised: a domain in Unicode
(``bücher.de``), a local part as the reader gave it. What goes out is the
*wire form*: the domain always as IDNA A-labels (``xn--bcher-kva.de``), which
every path accepts, SMTPUTF8 or not; the local part as it is. A local part that
is not ASCII (``ñoño@``) needs SMTPUTF8 end to end, so only a transport that
can carry it may take such a reader; for the others the reader is refused at
import, or settled ``invalid`` alone when the message is made.
"""

from __future__ import annotations

import contextlib
import functools
import unicodedata
from dataclasses import dataclass
from email.utils import parseaddr

from email_validator import EmailNotValidError, validate_email

from .errors import ConfigError, RecipientError

MAX_ADDRESS = 254  # octets, RFC 5321 4.5.3.1.3 (the path is 256 with its angle brackets)
MAX_LOCAL = 64  # octets, RFC 5321 4.5.3.1.1
MAX_LABEL = 63  # octets, RFC 1035


@functools.lru_cache(maxsize=4096)
def ascii_domain(domain: str) -> str:
    """``domain`` as IDNA A-labels (punycode); an ASCII domain as it is.

    Raises ValueError for a domain that has no A-label form.
    """
    if domain.isascii():
        return domain
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).ascii_domain
    except EmailNotValidError as exc:
        raise ValueError(f"the domain {domain!r} has no ASCII (IDNA) form: {exc}") from None


def wire_form(address: str) -> tuple[str, bool]:
    """(the address as it is sent, whether it needs SMTPUTF8); ValueError with the reason.

    The lengths RFC 5321 sets (254 octets in all, 64 before the @, 63 per domain
    label) are checked on this form, in UTF-8 octets.
    """
    if address.isascii():
        local, _, domain = address.rpartition("@")
        if len(address) <= MAX_ADDRESS and len(local) <= MAX_LOCAL:
            return address, False  # the common case: nothing to convert
        sent = address
    else:
        local, _, domain = address.rpartition("@")
        sent = f"{local}@{ascii_domain(domain)}"
    octets = len(sent.encode("utf-8"))
    if octets > MAX_ADDRESS:
        raise ValueError(
            f"the address is {octets} octets long as sent ({sent}), over the limit of {MAX_ADDRESS}"
        )
    local_octets = len(local.encode("utf-8"))
    if local_octets > MAX_LOCAL:
        raise ValueError(
            f"the part before the @ is {local_octets} octets long, over the limit of {MAX_LOCAL}"
        )
    for label in sent.rpartition("@")[2].split("."):
        if len(label) > MAX_LABEL:
            raise ValueError(
                f"the domain label {label!r} is {len(label)} octets long, over the limit "
                f"of {MAX_LABEL}"
            )
    return sent, not local.isascii()


def domain_as_sent(address: str) -> str:
    """``address`` with its domain in A-labels; as it is when it has none."""
    if address.isascii():
        return address
    local, at, domain = address.rpartition("@")
    try:
        return f"{local}@{ascii_domain(domain)}" if at else address
    except ValueError:
        return address  # left for the address check to refuse with its reason


def own_wire_form(address: str) -> tuple[str, bool]:
    """``wire_form`` for the newsletter's own addresses (checked when sending starts)."""
    try:
        return wire_form(address.strip())
    except ValueError:
        return domain_as_sent(address.strip()), False


def canonical_address(address: str) -> str:
    """One spelling per mailbox, for matching: lowercased, NFC, the domain in Unicode.

    ``Ana@XN--BCHER-KVA.de``, ``ana@Bücher.de`` and ``ana@bücher.de`` are one person
    here (the list already treats addresses as case-insensitive). Text that is not an
    address comes back stripped and lowercased.
    """
    text = unicodedata.normalize("NFC", address.strip()).lower()
    local, at, domain = text.rpartition("@")
    if not at:
        return text
    return f"{local}@{_unicode_domain(domain)}"


def address_forms(address: str) -> set[str]:
    """The lowercased spellings one address takes: as given, canonical, domain in A-labels."""
    given = address.strip().lower()
    canonical = canonical_address(address)
    forms = {given, canonical}
    local, at, domain = canonical.rpartition("@")
    if at:
        with contextlib.suppress(ValueError):  # no A-label form: the others will do
            forms.add(f"{local}@{ascii_domain(domain).lower()}")
    return {f for f in forms if f}


@functools.lru_cache(maxsize=4096)
def _unicode_domain(domain: str) -> str:
    import idna  # email-validator's own IDNA library

    try:
        return idna.decode(idna.encode(domain, uts46=True))
    except (idna.IDNAError, UnicodeError, ValueError):
        return domain


def parse_mailbox(text: str) -> tuple[str, str]:
    """(display name, address) of ``Name <addr>``, ``"Quoted, Name" <addr>`` or ``addr``."""
    return parseaddr(text)


@dataclass(frozen=True, slots=True)
class Carrier:
    """What a transport can carry, for the check each reader's address goes through.

    ``smtputf8``: True when the transport can carry a non-ASCII local part (the
    outbox; an SMTP server that offers SMTPUTF8), False when it cannot (the
    providers' HTTP APIs), None when only the connection can tell (SMTP): then
    the message is made and the transport decides when it sends.
    """

    name: str = "the outbox"
    smtputf8: bool | None = True
    # why it cannot, completing "that needs SMTPUTF8, which ..."
    lacks: str = "its API does not offer"

    def problem(self, address: str) -> str | None:
        """Why this transport cannot carry ``address``, or None (for imports)."""
        try:
            _, utf8 = wire_form(address)
        except ValueError as exc:
            return str(exc)
        if utf8 and self.smtputf8 is False:
            local = address.rpartition("@")[0]
            return (
                f"{self.name} cannot deliver to a non-ASCII local part ({local!r}): that "
                f"needs SMTPUTF8, which {self.lacks}"
            )
        return None

    def wire(self, address: str) -> tuple[str, bool]:
        """(the form to send, whether it needs SMTPUTF8), or RecipientError saying why not.

        Runs once per message, when the message is made: a reader this transport
        cannot reach is settled ``invalid`` alone, and nothing is sent for them.
        """
        try:
            sent, utf8 = wire_form(address)
        except ValueError as exc:
            raise RecipientError(f"{address}: {exc}; it cannot be sent to.") from None
        if utf8 and self.smtputf8 is False:
            raise RecipientError(
                f"{self.problem(address)}. Ask the reader for an address whose part before "
                "the @ is plain ASCII, or send through an SMTP server that offers SMTPUTF8."
            )
        return sent, utf8

    def check_sender(self, key: str, text: str | None) -> None:
        """A ConfigError when the newsletter's own address (``from``, ``reply_to``) cannot go."""
        if not text:
            return
        address = parse_mailbox(text)[1]
        try:
            _, utf8 = wire_form(address)
        except ValueError as exc:
            raise ConfigError(
                f"[newsletter] {key} ({address}) cannot be used: {exc}.",
                f"Change {key} in newsletter.toml.",
            ) from None
        if utf8 and self.smtputf8 is False:
            raise ConfigError(
                f"[newsletter] {key} ({address}) has a non-ASCII local part, and "
                f"{self.name} cannot send that: it needs SMTPUTF8, which {self.lacks}.",
                f"Use an address whose part before the @ is plain ASCII for {key}.",
            )
