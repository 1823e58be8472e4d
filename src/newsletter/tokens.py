"""Signed, unforgeable links: unsubscribe and confirmation tokens carry an HMAC, not a
secret-free id; a sign-up form carries the time it was shown, signed the same way.
Each purpose derives a key of its own from the project secret, so a token made for one
can never pass for another."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_PURPOSE = b"newsletter-unsubscribe-v1"
# v1 signed a subscriber's id: those links no longer confirm anything (a sign-up's
# request is what a link stands for now, and a scanner's hidden link has its own key)
_CONFIRM = b"newsletter-signup-request-v2"
_CANARY = b"newsletter-signup-canary-v1"
_FORM = b"newsletter-signup-form-v1"

# The shape of a link's token, checked before any signature is computed: two base-36
# numbers and a base64url HMAC, ``<subscriber>.<campaign>.<signature>`` (unsubscribe) or
# ``<request>.<issued>.<signature>`` (confirmation, and its hidden canary link).
LINK_TOKEN = re.compile(r"[0-9a-z]{1,12}\.[0-9a-z]{1,12}\.[A-Za-z0-9_-]{1,43}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class LinkSigner:
    """Makes and checks unsubscribe tokens: ``<subscriber>.<campaign>.<signature>``.

    The ids are base-36 numbers, so a token reveals no address; the 128-bit
    HMAC-SHA256 signature makes it impossible to forge or to alter either id.
    """

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        self._key = hmac.new(key, _PURPOSE, hashlib.sha256).digest()
        # keyed once: each signature copies it (a send signs a link for every reader,
        # and keying a new HMAC costs more than the signature itself)
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)

    def _signature(self, payload: str) -> str:
        signer = self._keyed.copy()
        signer.update(payload.encode("ascii"))
        return _b64(signer.digest()[:16])

    def unsubscribe_token(self, subscriber_id: int, campaign_id: int = 0) -> str:
        payload = f"{_base36(subscriber_id)}.{_base36(campaign_id)}"
        return f"{payload}.{self._signature(payload)}"

    def verify_unsubscribe(self, token: str) -> tuple[int, int] | None:
        """(subscriber id, campaign id) of a genuine token, else None."""
        parts = token.split(".")
        if len(parts) != 3 or len(token) > 80 or not token.isascii():
            return None
        payload = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._signature(payload), parts[2]):
            return None
        try:
            return int(parts[0], 36), int(parts[1], 36)
        except ValueError:
            return None


def _base36(number: int) -> str:
    if number < 0:
        raise ValueError("ids are not negative")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


class TimedSigner:
    """Tokens that carry a time: ``<base-36 fields>.<signature>``; ``purpose`` keys them.

    Confirmation links are ``<request>.<issued>.<signature>``, a sign-up form's
    timestamp ``<issued>.<signature>`` (times in seconds since the epoch)."""

    def __init__(self, secret: str | bytes, purpose: bytes) -> None:
        key = secret.encode() if isinstance(secret, str) else secret
        self._key = hmac.new(key, purpose, hashlib.sha256).digest()

    def _signature(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()[:16])

    def sign(self, *numbers: int) -> str:
        payload = ".".join(_base36(n) for n in numbers)
        return f"{payload}.{self._signature(payload)}"

    def verify(self, token: str, fields: int) -> tuple[int, ...] | None:
        """The numbers of a genuine token with ``fields`` of them, else None."""
        parts = token.split(".")
        if len(parts) != fields + 1 or len(token) > 80 or not token.isascii():
            return None
        payload = ".".join(parts[:-1])
        if not hmac.compare_digest(self._signature(payload), parts[-1]):
            return None
        try:
            return tuple(int(p, 36) for p in parts[:-1])
        except ValueError:
            return None


def confirm_signer(secret: str | bytes) -> TimedSigner:
    """Signs confirmation links: (sign-up request id, time issued)."""
    return TimedSigner(secret, _CONFIRM)


def canary_signer(secret: str | bytes) -> TimedSigner:
    """Signs the confirmation email's hidden link, which only a scanner follows: (sign-up
    request id, time issued), under a key of its own."""
    return TimedSigner(secret, _CANARY)


def form_signer(secret: str | bytes) -> TimedSigner:
    """Signs the time a sign-up form was shown."""
    return TimedSigner(secret, _FORM)
