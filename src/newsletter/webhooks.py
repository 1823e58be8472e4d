"""`POST /webhooks/<provider>`: each provider's own secret, its scheme checked strictly,
each event applied once.

Each provider's secret is NEWSLETTER_WEBHOOK_SECRET_<PROVIDER>. How it is checked, and
the provider's own id that a replay is known by, is the provider's ``Verifier``, declared
in its module (``providers/<name>.py``) with the helpers here: basic or bearer
credentials, strict base64, timestamps within ``TOLERANCE``.

A provider without a secret has no endpoint: 404, the same answer as an unknown name.
The old single NEWSLETTER_WEBHOOK_SECRET is still taken for one provider only, that of
``[delivery] transport``, and only one whose verifier allows it (not those that came
later, such as SES). A request whose events were all seen before is acknowledged (200
``already received``) and changes nothing: providers retry until they get a 2xx, and an
attacker's replay must not count. A malformed request gets 400 or 401 with a short
reason, never a 5xx; a 5xx says that something on our side failed (an SNS certificate or
confirmation that could not be fetched), so that the provider tries again.

The provider modules import this one; this one never looks a provider up: it is handed
the provider's verifier and reader (``catalog.py`` finds them by name).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

from .events import Malformed, Reader, Record, load_json, read_records
from .models import Event, RecordedEvent

TOLERANCE = 600  # seconds between a signed timestamp and our clock
LEGACY_SECRET = "NEWSLETTER_WEBHOOK_SECRET"

log = logging.getLogger(__name__)


def secret_variable(provider: str) -> str:
    """The environment variable holding ``provider``'s webhook secret."""
    return f"{LEGACY_SECRET}_{provider.upper()}"


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    status: int
    text: str

    @property
    def status_line(self) -> str:
        return f"{self.status} {HTTPStatus(self.status).phrase}"


NOT_FOUND = WebhookAnswer(404, "not found")


class Rejected(Exception):
    """A request that is not a genuine, fresh webhook, or not a readable one."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Answered(Exception):
    """A genuine request that its check handled whole (an SNS subscription confirmed)."""

    def __init__(self, answer: WebhookAnswer) -> None:
        super().__init__(answer.text)
        self.answer = answer


# -- reading a request ----------------------------------------------------------------------
_UNREAD = object()


@dataclass(slots=True)  # mutable: json() keeps the body once parsed
class Request:
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    now: float
    cache_dir: Path | None = None  # where fetched things (SNS certificates) are kept
    _json: Any = field(default=_UNREAD, repr=False)

    def header(self, name: str, limit: int = 256) -> str:
        """A header the check needs: present, ASCII (WSGI gives other bytes as Latin-1
        characters), and of a sane length; else 401."""
        value = self.headers.get(name, "").strip()
        if not value:
            raise Rejected(401, f"no {name} header")
        if not value.isascii() or not value.isprintable() or len(value) > limit:
            raise Rejected(401, f"malformed {name} header")
        return value

    def json(self) -> Any:
        if self._json is _UNREAD:
            try:
                self._json = load_json(self.body)
            except Malformed as exc:
                raise Rejected(400, str(exc)) from None
        return self._json


_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def strict_b64decode(text: str) -> bytes | None:
    """Standard base64 in its one canonical form (padded, no other characters, unused
    bits zero), or None: a signature has exactly one spelling."""
    if not _B64.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def checked_timestamp(text: str) -> str:
    """A signed Unix timestamp as sent: digits only; else 401."""
    if not _TIMESTAMP.fullmatch(text):
        raise Rejected(401, "malformed timestamp")
    return text


def fresh(timestamp: str, now: float) -> None:
    if abs(now - int(timestamp)) > TOLERANCE:
        raise Rejected(400, "stale timestamp (a replay, or the clocks disagree)")


def digest(data: bytes) -> bytes:
    """SHA-256: secrets are compared as digests, of equal length, in constant time."""
    return hashlib.sha256(data).digest()


def authorization(request: Request, schemes: Collection[str]) -> tuple[str, bytes]:
    """(scheme, credentials) of the Authorization header, in one of ``schemes``: a
    ``bearer`` token, or ``basic`` auth's ``user:password`` (strict base64); else 401."""
    scheme, _, value = request.header("authorization", limit=1024).partition(" ")
    scheme = scheme.lower()
    if scheme not in schemes:
        raise Rejected(401, f"{' or '.join(schemes)} auth needed")
    if scheme == "bearer":
        return scheme, value.strip().encode()
    raw = strict_b64decode(value.strip())
    if raw is None or b":" not in raw:
        raise Rejected(401, "malformed basic auth")
    return scheme, raw


# -- the providers' checks ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Verifier:
    """How one provider's secret becomes a key, and how its requests are checked."""

    load_key: Callable[[str], Any]  # ValueError: the secret is not usable, and why
    check: Callable[[Any, Request], tuple[str, ...]]  # Rejected, or the request's replay keys
    # the body: True a JSON array of events, False one event, None either
    batch: bool | None = False
    legacy: bool = True  # the old single NEWSLETTER_WEBHOOK_SECRET may serve it
    # its secret is a public key (SendGrid's ECDSA verification key), which anyone may
    # read; the others' is a shared secret, which a public key can never be
    public_key: bool = False


@functools.lru_cache(maxsize=32)
def _load_key(verifier: Verifier, secret: str) -> Any:
    """A provider's key from its secret, parsed once."""
    return verifier.load_key(secret)


# -- secrets --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WebhookSecrets:
    """Each provider's webhook secret, and what is worth a warning about them."""

    by_provider: Mapping[str, str]
    notes: tuple[str, ...] = ()
    # providers whose secret was refused (answered 503 until it is fixed), and why: each
    # error names the variable to set
    refused: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def get(self, provider: str) -> str | None:
        return self.by_provider.get(provider)


def looks_like_public_key(secret: str) -> bool:
    """True for a public key, PEM or base64 DER (SendGrid's verification key is one), or
    a secret that holds one as its password (``user:<key>``) or signing key
    (``whsec_<key>``)."""
    if "-----BEGIN" in secret:
        return True
    parts = {secret, secret.partition(":")[2], secret.removeprefix("whsec_")}
    return any(_public_key_der(part) for part in parts if part)


def _public_key_der(text: str) -> bool:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    der = strict_b64decode(text)
    if der is None or len(der) < 32:
        return False
    try:
        serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


def _wrong_kind(verifier: Verifier, secret: str) -> str | None:
    """Why ``secret`` cannot be the kind of key ``verifier`` takes, or None."""
    if verifier.public_key:
        try:
            _load_key(verifier, secret)
        except ValueError as exc:
            return f"it cannot be this provider's verification key, a public key ({exc})"
        return None
    if looks_like_public_key(secret):
        return (
            "it holds a public key (such as SendGrid's verification key), which anyone can "
            "read and so sign with; this provider's secret is a shared one"
        )
    return None


def webhook_secrets(
    transport: str, environ: Mapping[str, str] | None, verifiers: Mapping[str, Verifier]
) -> WebhookSecrets:
    """The secrets in the environment: NEWSLETTER_WEBHOOK_SECRET_<PROVIDER> each, and the
    old NEWSLETTER_WEBHOOK_SECRET for the configured transport's provider alone;
    ``verifiers``: each provider that takes webhooks, by name."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    source: dict[str, str] = {}
    for provider in verifiers:
        value = env.get(secret_variable(provider), "").strip()
        if value:
            found[provider], source[provider] = value, secret_variable(provider)
    notes = _legacy_notes(transport, env, verifiers, found, source)
    errors: list[str] = []
    for provider, secret in list(found.items()):
        error = _refusal(provider, source[provider], verifiers[provider], secret)
        if error is not None:
            del found[provider]
            errors.append(error)
            notes = [n for n in notes if not n.startswith(f"{source[provider]} is deprecated")]
            continue
        try:
            _load_key(verifiers[provider], secret)
        except ValueError as exc:
            notes.append(
                f"{source[provider]} is not usable: {exc}. /webhooks/{provider} answers 503 "
                "until it is fixed."
            )
    refused = tuple(p for p in verifiers if p not in found and p in source)
    return WebhookSecrets(found, tuple(notes), refused, tuple(errors))


def _legacy_notes(
    transport: str,
    env: Mapping[str, str],
    verifiers: Mapping[str, Verifier],
    found: dict[str, str],
    source: dict[str, str],
) -> list[str]:
    """Take the old NEWSLETTER_WEBHOOK_SECRET into ``found`` for the transport's provider
    when it may serve it; what to tell the operator about it."""
    legacy = env.get(LEGACY_SECRET, "").strip()
    legacy_verifier = verifiers.get(transport)
    if not legacy:
        return []
    if legacy_verifier is not None and not legacy_verifier.legacy:
        return [
            f"{LEGACY_SECRET} is ignored: /webhooks/{transport} takes only "
            f"{secret_variable(transport)}. Set that, and remove {LEGACY_SECRET}."
        ]
    if legacy_verifier is None:
        return [
            f"{LEGACY_SECRET} is ignored: the {transport} transport gets no webhooks here. "
            "Set NEWSLETTER_WEBHOOK_SECRET_<PROVIDER> for the provider whose events you "
            "receive, and remove it."
        ]
    if transport in found:
        return [f"{LEGACY_SECRET} is ignored: {secret_variable(transport)} is set. Remove it."]
    found[transport], source[transport] = legacy, LEGACY_SECRET
    return [
        f"{LEGACY_SECRET} is deprecated: it now serves only /webhooks/{transport} (the "
        f"[delivery] transport). Rename it to {secret_variable(transport)}; every other "
        "provider needs its own NEWSLETTER_WEBHOOK_SECRET_<PROVIDER>."
    ]


def _refusal(provider: str, variable: str, verifier: Verifier, secret: str) -> str | None:
    """The error that refuses ``secret`` (from ``variable``) for ``provider``, or None
    when it may serve: a public key where a shared secret belongs (from any variable),
    or the old single secret where it cannot be this provider's kind of key."""
    reason = _wrong_kind(verifier, secret)
    if reason is None or (verifier.public_key and variable != LEGACY_SECRET):
        return None  # a provider's own key that does not parse: "not usable" says it
    own = secret_variable(provider)
    kind = "verification key" if verifier.public_key else "webhook secret"
    fix = f"Set {own} to {provider}'s own {kind}"
    if variable == LEGACY_SECRET:
        fix += f" and remove {LEGACY_SECRET}"
    if not verifier.public_key:
        fix += f"; a SendGrid verification key goes in {secret_variable('sendgrid')}"
    return (
        f"{variable} is refused for /webhooks/{provider}: {reason}. {fix}. "
        f"/webhooks/{provider} answers 503 until then."
    )


_reported: set[str] = set()
_reported_lock = threading.Lock()


def unreported_notes(secrets: WebhookSecrets) -> list[str]:
    """The notes this process has not reported yet; each is reported once."""
    return _unreported(secrets.notes)


def unreported_errors(secrets: WebhookSecrets) -> list[str]:
    """The errors (refused secrets) this process has not reported yet; each once."""
    return _unreported(secrets.errors)


def _unreported(messages: Sequence[str]) -> list[str]:
    with _reported_lock:
        new = [m for m in messages if m not in _reported]
        _reported.update(new)
    return new


# -- receiving ------------------------------------------------------------------------------
class WebhookStore(Protocol):
    def claim_nonces(self, provider: str, nonces: Sequence[str]) -> set[str]: ...

    def release_nonces(self, provider: str, nonces: Sequence[str]) -> None: ...

    def record(self, event: Event, soft_bounce_limit: int = 3) -> RecordedEvent: ...


def receive_webhook(
    provider: str,
    verifier: Verifier | None,
    reader: Reader | None,
    headers: Mapping[str, str],
    body: bytes,
    secrets: WebhookSecrets,
    store: WebhookStore,
    soft_bounce_limit: int = 3,
    now: float | None = None,
    cache_dir: Path | None = None,
) -> WebhookAnswer:
    """Check a webhook request of ``provider`` with its ``verifier`` (None: it takes
    none), and apply the events its ``reader`` finds that were not seen before.
    ``cache_dir`` keeps what a check fetches (SNS signing certificates) across processes."""
    for error in unreported_errors(secrets):
        log.error("Error: %s", error)
    for note in unreported_notes(secrets):
        log.warning("Warning: %s", note)
    if provider in secrets.refused:
        return WebhookAnswer(503, "this webhook's secret is not usable; see the server's log")
    secret = secrets.get(provider)
    if verifier is None or reader is None or secret is None:
        return NOT_FOUND
    try:
        key = _load_key(verifier, secret)
    except ValueError:
        return WebhookAnswer(503, "this webhook's secret is not usable; see the server's log")
    request = Request(
        {name.lower(): value for name, value in headers.items()},
        body,
        time.time() if now is None else now,
        cache_dir,
    )
    try:
        request_keys = verifier.check(key, request)
        records = _records(verifier, reader, request)
    except Rejected as exc:
        return WebhookAnswer(exc.status, exc.reason)
    except Answered as exc:
        return exc.answer
    return _apply(provider, request_keys, records, store, soft_bounce_limit)


def _records(verifier: Verifier, reader: Reader, request: Request) -> list[Record]:
    data = request.json()
    if verifier.batch is True and not isinstance(data, list):
        raise Rejected(400, "expected a JSON array of events")
    if verifier.batch is False and not isinstance(data, dict):
        raise Rejected(400, "expected a JSON object")
    if verifier.batch is None and not isinstance(data, list | dict):
        raise Rejected(400, "expected a JSON object, or an array of them")
    records = read_records(reader, data if isinstance(data, list) else [data])
    if records and all(r.problem for r in records):
        first = records[0]
        where = f"{first.where}: " if len(records) > 1 else ""
        raise Rejected(400, f"malformed event: {where}{first.problem}"[:160])
    return records


def _apply(
    provider: str,
    request_keys: tuple[str, ...],
    records: list[Record],
    store: WebhookStore,
    soft_bounce_limit: int,
) -> WebhookAnswer:
    """Claim the replay keys, then record the events of the records none of whose keys
    was seen before; keys claimed for events that could not be recorded are released,
    so that the provider's retry is applied."""
    readable = [r for r in records if not r.problem]
    if request_keys and store.claim_nonces(provider, request_keys):
        return WebhookAnswer(200, "already received")
    fresh: list[Record] = []
    applied = done = 0
    try:
        fresh = _fresh(provider, readable, store)
        if readable and not fresh:
            return WebhookAnswer(200, "already received")
        for record in fresh:
            for event in record.events:
                store.record(event, soft_bounce_limit)
                applied += 1
            done += 1
    except BaseException:
        unapplied = [k for r in fresh[done:] for k in r.keys]
        with contextlib.suppress(Exception):
            store.release_nonces(provider, [*request_keys, *unapplied])
        raise
    return WebhookAnswer(200, _applied_text(applied, len(records), len(readable), len(fresh)))


def _fresh(provider: str, readable: list[Record], store: WebhookStore) -> list[Record]:
    """The records none of whose replay keys was seen before (in an earlier request, or
    in an earlier record of this one); all their keys are claimed."""
    seen = store.claim_nonces(provider, [k for r in readable for k in r.keys])
    taken: set[str] = set()
    fresh = []
    for record in readable:
        if not any(k in seen or k in taken for k in record.keys):
            fresh.append(record)
        taken.update(record.keys)
    return fresh


def _applied_text(applied: int, records: int, readable: int, fresh: int) -> str:
    text = f"{applied} event(s)"
    if readable > fresh:
        text += f"; {readable - fresh} already received"
    if records > readable:
        text += f"; {records - readable} malformed, skipped"
    return text
