"""The sign-up's two guards that need no database: throwaway-address domains, from the
maintained ``disposable-email-domains`` list, and an ALTCHA proof of work, made and
checked by the maintained ``altcha`` package (its v1 API, the one the public ALTCHA
widget protocol speaks). No third party is asked and no cookie is set: the challenge
is signed with a key of this project's, and the browser solves it on the page
(``web/templates/_pow.html``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
import unicodedata
import urllib.parse
from importlib import metadata

BLOCKLIST_PACKAGE = "disposable-email-domains"
POW_ALGORITHM = "SHA-256"
POW_LIFETIME = dt.timedelta(minutes=20)  # how long a challenge may be solved and sent
_POW_PURPOSE = b"newsletter-altcha-pow-v1"  # the key's own purpose: never the link secret

# What a genuine payload looks like, checked before any hash is computed.
_MAX_PAYLOAD = 1_000  # characters of base64; ours are about 300
_MAX_NUMBER = 10**9  # a number no challenge of ours asks for
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SALT = re.compile(r"[0-9a-f]{24}\?expires=\d{1,12}&")
_DOTS = re.compile("[.\u3002\uff0e\uff61]")  # the full stops IDNA reads as dots
_MAX_DOMAIN = 1_000  # characters: longer input is no domain (253 at most)


# -- disposable domains -------------------------------------------------------------
def disposable_domain(domain: str) -> bool:
    """Whether ``domain`` (or the domain of an address given whole), or any domain it
    is under (``x.mailinator.com``), is on the blocklist. Case does not matter; a
    Unicode domain is compared in its ASCII form, as IDNA 2003 maps it (``ß`` to
    ``ss``, full-width letters to ASCII) and as IDNA 2008 keeps it. Input that is no
    domain at all is not on the list: False, never an exception."""
    return any(_listed(form) for form in _ascii_forms(domain))


def blocklist_version() -> str:
    """The list as ``check`` names it: "disposable-email-domains 0.0.293 (10,181 domains)"."""
    try:
        version = metadata.version(BLOCKLIST_PACKAGE)
    except metadata.PackageNotFoundError:  # vendored or run from a source tree
        version = "unknown version"
    from disposable_email_domains import blocklist

    return f"{BLOCKLIST_PACKAGE} {version} ({len(blocklist):,} domains)"


def _ascii_forms(domain: object) -> set[str]:
    if not isinstance(domain, str) or len(domain) > _MAX_DOMAIN:
        return set()
    text = domain.strip().rpartition("@")[2]
    text = _DOTS.sub(".", unicodedata.normalize("NFC", text)).strip(".").lower()
    if not text:
        return set()
    forms = set()
    with contextlib.suppress(UnicodeError, ValueError):  # IDNA 2003: nameprep maps
        forms.add(text.encode("idna").decode("ascii").lower())  # case, width, ß
    with contextlib.suppress(UnicodeError, ValueError):  # IDNA 2008: labels as they are
        forms.add(".".join(_a_label(label) for label in text.split(".")))
    return forms


def _a_label(label: str) -> str:
    return label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")


def _listed(domain: str) -> bool:
    from disposable_email_domains import blocklist

    labels = domain.split(".")
    return any(".".join(labels[i:]) in blocklist for i in range(len(labels) - 1))


# -- proof of work (ALTCHA) ---------------------------------------------------------
def pow_key(secret: str | bytes) -> str:
    """The HMAC key of the challenges, derived from ``secret`` (the store's link secret)
    for this purpose alone, so it never equals the secret nor another purpose's key."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, _POW_PURPOSE, hashlib.sha256).hexdigest()


def pow_challenge(key: str, max_number: int, now: dt.datetime | None = None) -> dict[str, object]:
    """A fresh challenge as the page needs it (the ALTCHA widget's JSON): ``algorithm``,
    ``challenge``, ``salt`` (with its expiry, ``POW_LIFETIME`` after ``now``),
    ``signature`` and ``maxnumber``. ``key`` is the caller's secret (the store's link
    secret); the challenge is signed with a key derived from it."""
    if max_number < 1:
        raise ValueError(f"max_number must be at least 1, not {max_number}.")
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("now must carry its time zone (datetime.now(datetime.UTC)).")
    from altcha import create_challenge_v1

    made = create_challenge_v1(
        algorithm=POW_ALGORITHM,
        max_number=max_number,
        hmac_key=pow_key(key),
        expires=now + POW_LIFETIME,
    )
    return {
        "algorithm": made.algorithm,
        "challenge": made.challenge,
        "salt": made.salt,
        "signature": made.signature,
        "maxnumber": made.max_number,
    }


def pow_verify(payload: str, key: str) -> bool:
    """Whether ``payload`` (the base64 JSON the page writes into the ``altcha`` field)
    solves a challenge signed under ``key`` that has not expired and that this
    process has not accepted before. Anything malformed, expired, altered or replayed
    is False; it never raises.

    The replay memory is this process's own (bounded, the oldest forgotten first): a
    payload could pass once in each of several ``serve`` processes within its 20
    minutes, and the per-client limits, counted in the database, bound that."""
    fields = _payload_fields(payload)
    if fields is None or not _unexpired(fields["salt"]):
        return False
    from altcha import verify_solution_v1

    try:
        ok, _error = verify_solution_v1(fields, pow_key(key), check_expires=True)
    except Exception:  # the library's own refusals are answers; anything else is "no"
        return False
    return bool(ok) and _SPENT.spend(fields["signature"], _expires(fields["salt"]))


def _payload_fields(payload: object) -> dict | None:
    """The payload's five fields, each of the shape ours have, else None."""
    if not isinstance(payload, str) or not 0 < len(payload) <= _MAX_PAYLOAD:
        return None
    try:
        fields = json.loads(base64.b64decode(payload.strip(), validate=True))
    except (binascii.Error, ValueError, UnicodeError, RecursionError):
        return None
    if not isinstance(fields, dict):
        return None
    number = fields.get("number")
    if type(number) is not int or not 0 <= number <= _MAX_NUMBER:
        return None
    texts = {name: fields.get(name) for name in ("challenge", "salt", "signature")}
    if fields.get("algorithm") != POW_ALGORITHM or not all(
        isinstance(value, str) for value in texts.values()
    ):
        return None
    if not (
        _HEX64.fullmatch(texts["challenge"])
        and _HEX64.fullmatch(texts["signature"])
        and _SALT.fullmatch(texts["salt"])
    ):
        return None
    return {"algorithm": POW_ALGORITHM, "number": number, **texts}


def _expires(salt: str) -> float:
    return float(urllib.parse.parse_qs(salt.partition("?")[2])["expires"][0])


def _unexpired(salt: str) -> bool:
    return _expires(salt) >= time.time()


class _Spent:
    """The signatures of the payloads accepted so far, each until its challenge expires:
    thread-safe, at most ``limit`` of them (then the oldest is forgotten first)."""

    def __init__(self, limit: int = 50_000) -> None:
        self._limit = limit
        self._until: dict[str, float] = {}  # signature -> expiry, oldest first
        self._lock = threading.Lock()

    def spend(self, signature: str, expires: float) -> bool:
        """True the first time a signature is spent, False after."""
        with self._lock:
            if signature in self._until:
                return False
            if len(self._until) >= self._limit:
                now = time.time()
                self._until = {s: t for s, t in self._until.items() if t >= now}
                while len(self._until) >= self._limit:
                    del self._until[next(iter(self._until))]
            self._until[signature] = expires
            return True


_SPENT = _Spent()
