"""DKIM (RFC 6376): the newsletter's signing key, the DNS record that publishes it, and
the signature the ``smtp`` and ``outbox`` transports add to every message.

The key is an RSA key in a PEM file readable by its owner only. The signature is
rsa-sha256, relaxed/relaxed, and covers the headers Gmail and Yahoo look at (those a
message has): From, To, Subject, Date, Message-ID, List-Unsubscribe and
List-Unsubscribe-Post.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .files import write_private

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from .config import Settings

SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
KEY_SIZES = (1024, 2048, 3072, 4096)
DNS_STRING = 255  # the longest character-string of a TXT record (RFC 1035)
SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")  # one DNS label
_HEADER_NAME = re.compile(rb"^([!-9;-~]+):", re.MULTILINE)


def generate_key(bits: int = 2048) -> bytes:
    """A new RSA private key, PEM (PKCS #8), unencrypted."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_key(path: Path, bits: int = 2048, force: bool = False) -> bytes:
    """Write a new key to ``path`` (0600, whole or not at all) and return it; an existing
    key is kept unless ``force``: the record published for it would stop matching."""
    if path.exists() and not force:
        raise ConfigError(
            f"{path} already exists: a new key would no longer match the DNS record "
            "published for it.",
            "Keep it, choose another --selector (a new record, then switch), or add --force.",
        )
    pem = generate_key(bits)
    write_private(path, pem)
    return pem


def public_key_b64(pem: bytes) -> str:
    """The ``p=`` value: the public key's SubjectPublicKeyInfo, base64."""
    from cryptography.hazmat.primitives import serialization

    key = _load(pem)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def record_value(pem: bytes) -> str:
    """The TXT record's text, as one string."""
    return f"v=DKIM1; k=rsa; p={public_key_b64(pem)}"


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def txt_record(selector: str, domain: str, pem: bytes) -> str:
    """The record to publish, zone-file style: the text cut into strings of at most 255
    bytes, which DNS joins again."""
    value = record_value(pem)
    parts = [value[i : i + DNS_STRING] for i in range(0, len(value), DNS_STRING)]
    quoted = " ".join(f'"{part}"' for part in parts)
    return f"{record_name(selector, domain)}. IN TXT {quoted}"


def _load(pem: bytes) -> rsa.RSAPrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"The DKIM key is not an unencrypted PEM private key ({exc}).",
            "Make a new one with `newsletter dkim keygen --selector S --force`.",
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(
            "The DKIM key is not an RSA key.",
            "Make one with `newsletter dkim keygen --selector S --force`.",
        )
    return key


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs whole messages for ``domain`` with the key of ``selector``."""

    selector: str
    domain: str
    pem: bytes

    @classmethod
    def load(cls, selector: str, domain: str, path: Path) -> Signer:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the DKIM key {path} ({exc.strerror}).",
                f"Make it with `newsletter dkim keygen --selector {selector}`.",
            ) from None
        _load(pem)  # a bad key is an error before anything is sent
        return cls(selector, domain, pem)

    def sign(self, message: bytes) -> bytes:
        """``message`` with a DKIM-Signature header in front."""
        import dkim as dkimpy  # loaded by the first message signed, not by every command

        head = message.split(b"\r\n\r\n", 1)[0]
        present = {name.lower() for name in _HEADER_NAME.findall(head)}
        headers = [h.encode() for h in SIGNED_HEADERS if h.lower().encode() in present]
        signature = dkimpy.sign(
            message,
            self.selector.encode("ascii"),
            self.domain.encode("idna"),
            self.pem,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=b"rsa-sha256",
            include_headers=headers,
        )
        return signature + message


def signer_for(settings: Settings) -> Callable[[bytes], bytes] | None:
    """What signs each whole message with the ``[delivery] dkim_selector`` key, for the
    transports that send messages themselves; None when no key is configured."""
    found = settings.dkim_key()
    return None if found is None else Signer.load(*found).sign
