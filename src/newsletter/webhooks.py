"""`POST /webhooks/<provider>`: each provider's own secret, its scheme checked strictly,
each event applied once.

Each provider's secret is NEWSLETTER_WEBHOOK_SECRET_<PROVIDER>; its check, and the
provider's own id that a replay is known by:

- postmark: basic auth with the secret's ``user:password``; ``ID`` (else ``MessageID``)
  with ``RecordType``, per record.
- sendgrid: ECDSA P-256 over ``timestamp + body`` with the verification key (the
  secret); ``sg_event_id``, per event.
- mailgun: hex HMAC-SHA256 of ``timestamp + token`` with the signing key; the token,
  and ``event-data.id``.
- resend: Svix, base64 HMAC-SHA256 of ``id.timestamp.body`` with the ``whsec_`` key;
  ``svix-id``.
- ses: SES events come through Amazon SNS; the secret is the ARN of the SNS topic SES
  publishes to (several: separated by commas). The SNS signature is checked against the
  signing certificate (``sns.py``), and only messages of those topics are taken: AWS
  signs every topic's messages alike. A SubscriptionConfirmation is confirmed; replays are
  known by the SNS ``MessageId``.

A provider without a secret has no endpoint: 404, the same answer as an unknown name.
The old single NEWSLETTER_WEBHOOK_SECRET is still taken for one provider only, that of
``[delivery] transport`` (never for SES, which came later). Signed timestamps must be
within ``TOLERANCE`` (SNS's, which retries keep, within ``SNS_MAX_AGE``). A request whose
events were all seen before is acknowledged (200 ``already received``) and changes
nothing: providers retry until they get a 2xx, and an attacker's replay must not count.
A malformed request gets 400 or 401 with a short reason, never a 5xx; a 5xx says that
something on our side failed (an SNS certificate or confirmation that could not be
fetched), so that the provider tries again.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

from . import sns
from .events import Malformed, Record, load_json, read_records
from .models import Event, RecordedEvent

TOLERANCE = 600  # seconds between a signed timestamp and our clock
SNS_MAX_AGE = 7 * 24 * 3600  # SNS retries keep a message's Timestamp: past those, well
# within the 30 days replay keys are kept
LEGACY_SECRET = "NEWSLETTER_WEBHOOK_SECRET"
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

log = logging.getLogger(__name__)


def secret_variable(provider: str) -> str:
    """The environment variable holding ``provider``'s webhook secret."""
    return f"{LEGACY_SECRET}_{provider.upper()}"


@dataclass(frozen=True)
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


@dataclass
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


def _timestamp(text: str) -> str:
    if not _TIMESTAMP.fullmatch(text):
        raise Rejected(401, "malformed timestamp")
    return text


def _fresh(timestamp: str, now: float) -> None:
    if abs(now - int(timestamp)) > TOLERANCE:
        raise Rejected(400, "stale timestamp (a replay, or the clocks disagree)")


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# -- Postmark: basic auth ------------------------------------------------------------------
def _postmark_key(secret: str) -> tuple[bytes, bytes]:
    user, colon, password = secret.partition(":")
    if not (colon and user and password):
        raise ValueError("it must be user:password, the credentials in Postmark's webhook URL")
    return _digest(user.encode()), _digest(password.encode())


def _check_postmark(key: tuple[bytes, bytes], request: Request) -> tuple[str, ...]:
    scheme, _, credentials = request.header("authorization", limit=1024).partition(" ")
    if scheme.lower() != "basic":
        raise Rejected(401, "basic auth needed")
    raw = strict_b64decode(credentials.strip())
    if raw is None or b":" not in raw:
        raise Rejected(401, "malformed basic auth")
    user, _, password = raw.partition(b":")
    # digests of equal length, compared in constant time, both compared whatever the first
    same_user = hmac.compare_digest(_digest(user), key[0])
    same_password = hmac.compare_digest(_digest(password), key[1])
    if not (same_user & same_password):
        raise Rejected(401, "wrong credentials")
    return ()


# -- SendGrid: ECDSA P-256 -----------------------------------------------------------------
def _sendgrid_key(secret: str) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        if "-----BEGIN" in secret:
            key = serialization.load_pem_public_key(secret.encode())
        else:
            der = strict_b64decode(secret)
            if der is None:
                raise ValueError("it is neither base64 nor PEM")
            key = serialization.load_der_public_key(der)
    except UnsupportedAlgorithm:
        raise ValueError("it is not an ECDSA P-256 public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("it is not an ECDSA P-256 public key")
    return key


def _check_sendgrid(key: Any, request: Request) -> tuple[str, ...]:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature,
        encode_dss_signature,
    )

    signature = request.header("x-twilio-email-event-webhook-signature")
    timestamp = _timestamp(request.header("x-twilio-email-event-webhook-timestamp"))
    der = strict_b64decode(signature)
    try:
        r, s = decode_dss_signature(der or b"")  # one DER SEQUENCE, no trailing bytes
    except ValueError:
        raise Rejected(401, "malformed signature") from None
    if encode_dss_signature(r, s) != der or not (0 < r < P256_ORDER and 0 < s < P256_ORDER):
        raise Rejected(401, "malformed signature")  # not minimal DER, or out of range
    # (r, s) and (r, n - s) are the same signature; take the low-S form. Refusing high S
    # would refuse half of what common signers (OpenSSL, Go, Java) make, and nothing here
    # depends on the signature's bytes: replays are known by their events' ids.
    canonical = encode_dss_signature(r, min(s, P256_ORDER - s))
    try:
        key.verify(canonical, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Rejected(401, "bad signature") from None
    _fresh(timestamp, request.now)
    return ()


# -- Mailgun: HMAC in the body ---------------------------------------------------------------
_MAILGUN_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def _mailgun_key(secret: str) -> bytes:
    return secret.encode()


def _check_mailgun(key: bytes, request: Request) -> tuple[str, ...]:
    body = request.json()
    if not isinstance(body, dict):
        raise Rejected(400, "expected a JSON object")
    signature = body.get("signature")
    if not isinstance(signature, dict):
        raise Rejected(401, "no signature")
    token, timestamp, given = (signature.get(k) for k in ("token", "timestamp", "signature"))
    if not (isinstance(token, str) and _MAILGUN_TOKEN.fullmatch(token)):
        raise Rejected(401, "malformed token")
    if not isinstance(timestamp, str):
        raise Rejected(401, "malformed timestamp")
    _timestamp(timestamp)
    if not (isinstance(given, str) and _HEX_SHA256.fullmatch(given)):
        raise Rejected(401, "malformed signature")
    expected = hmac.new(key, f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Rejected(401, "bad signature")
    _fresh(timestamp, request.now)
    return (f"token:{token}",)


# -- Resend: Svix ----------------------------------------------------------------------------
_SVIX_ID = re.compile(r"[\x21-\x7e]{1,256}")
_MAX_SIGNATURES = 16


def _svix_key(secret: str) -> bytes:
    key = strict_b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else None
    if key is None or len(key) < 16:
        raise ValueError("it must be the whsec_... signing secret Resend shows")
    return key


def _check_svix(key: bytes, request: Request) -> tuple[str, ...]:
    msg_id = request.header("svix-id")
    if not _SVIX_ID.fullmatch(msg_id):
        raise Rejected(401, "malformed svix-id header")
    timestamp = _timestamp(request.header("svix-timestamp"))
    signatures = request.header("svix-signature", limit=4096).split()
    signed = f"{msg_id}.{timestamp}.".encode() + request.body
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    given = [
        strict_b64decode(part[3:])
        for part in signatures[:_MAX_SIGNATURES]
        if part.startswith("v1,")
    ]
    # compare with each, so that the time taken says nothing of which one matched
    matches = [hmac.compare_digest(expected, g) for g in given if g is not None]
    if not any(matches):
        raise Rejected(401, "bad signature")
    _fresh(timestamp, request.now)
    return (f"svix:{msg_id}",)


# -- SES: SNS messages of our topic ---------------------------------------------------------
_SNS_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,100}")
_SNS_AUTH_FIELDS = ("Signature", "SignatureVersion", "SigningCertURL")


def _ses_key(secret: str) -> frozenset[str]:
    topics = frozenset(part.strip() for part in secret.split(",") if part.strip())
    if not topics or not all(sns.topic_region(topic) for topic in topics):
        raise ValueError(
            "it must be the ARN of the SNS topic SES publishes events to "
            "(arn:aws:sns:REGION:ACCOUNT:TOPIC), or several separated by commas"
        )
    return topics


def _check_ses(topics: frozenset[str], request: Request) -> tuple[str, ...]:
    message = request.json()
    if not isinstance(message, dict):
        raise Rejected(400, "expected a JSON object")
    kind = message.get("Type")
    if not isinstance(kind, str) or kind not in sns.SIGNED_FIELDS:
        raise Rejected(400, "not an SNS message")
    for name in _SNS_AUTH_FIELDS:
        if not isinstance(message.get(name), str):
            raise Rejected(401, f"no {name}")
    for name in sns.SIGNED_FIELDS[kind]:
        value = message.get(name)
        if not (isinstance(value, str) or (name == "Subject" and value is None)):
            raise Rejected(400, f"{name} is not a string")
    if not _SNS_MESSAGE_ID.fullmatch(message["MessageId"]):
        raise Rejected(400, "malformed MessageId")
    if message["TopicArn"] not in topics:
        raise Rejected(401, "not a topic of NEWSLETTER_WEBHOOK_SECRET_SES")
    signature = strict_b64decode(message["Signature"])
    if signature is None:
        raise Rejected(401, "malformed signature")
    try:
        sns.verify(message, signature, sns.Certificates(request.cache_dir))
    except sns.NotGenuine as exc:
        raise Rejected(exc.status, exc.reason) from None
    _fresh_sns(message["Timestamp"], request.now)
    if kind == "SubscriptionConfirmation":
        raise Answered(_confirm(message))
    if kind == "UnsubscribeConfirmation":
        log.warning("Warning: SNS unsubscribed /webhooks/ses from %s.", message["TopicArn"])
        raise Answered(WebhookAnswer(200, "unsubscribe confirmation noted"))
    return (f"sns:{message['MessageId']}",)


def _fresh_sns(timestamp: str, now: float) -> None:
    try:
        signed_at = dt.datetime.fromisoformat(timestamp) if len(timestamp) <= 64 else None
    except ValueError:
        signed_at = None
    if signed_at is None or signed_at.tzinfo is None:
        raise Rejected(400, "malformed Timestamp")
    age = now - signed_at.timestamp()
    if age > SNS_MAX_AGE or age < -TOLERANCE:
        raise Rejected(400, "stale Timestamp (a replay, or the clocks disagree)")


def _confirm(message: dict[str, Any]) -> WebhookAnswer:
    """Confirm a verified subscription of our topic by following its SubscribeURL."""
    try:
        sns.confirm_subscription(message)
    except sns.NotGenuine as exc:
        raise Rejected(exc.status, exc.reason) from None
    except sns.FetchFailed as exc:
        log.warning(
            "Warning: the SNS subscription to %s was not confirmed: %s", message["TopicArn"], exc
        )
        return WebhookAnswer(502, f"the subscription could not be confirmed ({exc})")
    log.warning("Confirmed the SNS subscription of /webhooks/ses to %s.", message["TopicArn"])
    return WebhookAnswer(200, "subscription confirmed")


# -- the providers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Verifier:
    """How one provider's secret becomes a key, and how its requests are checked."""

    load_key: Callable[[str], Any]  # ValueError: the secret is not usable, and why
    check: Callable[[Any, Request], tuple[str, ...]]  # Rejected, or the request's replay keys
    batch: bool = False  # the body is a JSON array of events, not one event
    legacy: bool = True  # the old single NEWSLETTER_WEBHOOK_SECRET may serve it


VERIFIERS: dict[str, Verifier] = {
    "postmark": Verifier(_postmark_key, _check_postmark),
    "sendgrid": Verifier(_sendgrid_key, _check_sendgrid, batch=True),
    "mailgun": Verifier(_mailgun_key, _check_mailgun),
    "resend": Verifier(_svix_key, _check_svix),
    "ses": Verifier(_ses_key, _check_ses, legacy=False),
}


@functools.lru_cache(maxsize=32)
def _load_key(provider: str, secret: str) -> Any:
    """``provider``'s key from its secret, parsed once."""
    return VERIFIERS[provider].load_key(secret)


# -- secrets --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookSecrets:
    """Each provider's webhook secret, and what is worth a warning about them."""

    by_provider: Mapping[str, str]
    notes: tuple[str, ...] = ()

    def get(self, provider: str) -> str | None:
        return self.by_provider.get(provider)


def webhook_secrets(transport: str, environ: Mapping[str, str] | None = None) -> WebhookSecrets:
    """The secrets in the environment: NEWSLETTER_WEBHOOK_SECRET_<PROVIDER> each, and the
    old NEWSLETTER_WEBHOOK_SECRET for the configured transport's provider alone."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    source: dict[str, str] = {}
    for provider in VERIFIERS:
        value = env.get(secret_variable(provider), "").strip()
        if value:
            found[provider], source[provider] = value, secret_variable(provider)
    notes = []
    legacy = env.get(LEGACY_SECRET, "").strip()
    legacy_verifier = VERIFIERS.get(transport)
    if legacy:
        if legacy_verifier is not None and not legacy_verifier.legacy:
            notes.append(
                f"{LEGACY_SECRET} is ignored: /webhooks/{transport} takes only "
                f"{secret_variable(transport)}. Set that, and remove {LEGACY_SECRET}."
            )
        elif legacy_verifier is None:
            notes.append(
                f"{LEGACY_SECRET} is ignored: the {transport} transport gets no webhooks here. "
                "Set NEWSLETTER_WEBHOOK_SECRET_<PROVIDER> for the provider whose events you "
                "receive, and remove it."
            )
        elif transport in found:
            notes.append(
                f"{LEGACY_SECRET} is ignored: {secret_variable(transport)} is set. Remove it."
            )
        else:
            found[transport], source[transport] = legacy, LEGACY_SECRET
            notes.append(
                f"{LEGACY_SECRET} is deprecated: it now serves only /webhooks/{transport} (the "
                f"[delivery] transport). Rename it to {secret_variable(transport)}; every other "
                "provider needs its own NEWSLETTER_WEBHOOK_SECRET_<PROVIDER>."
            )
    for provider, secret in found.items():
        try:
            _load_key(provider, secret)
        except ValueError as exc:
            notes.append(
                f"{source[provider]} is not usable: {exc}. /webhooks/{provider} answers 503 "
                "until it is fixed."
            )
    return WebhookSecrets(found, tuple(notes))


_reported: set[str] = set()
_reported_lock = threading.Lock()


def unreported_notes(secrets: WebhookSecrets) -> list[str]:
    """The notes this process has not reported yet; each is reported once."""
    with _reported_lock:
        new = [note for note in secrets.notes if note not in _reported]
        _reported.update(new)
    return new


# -- receiving ------------------------------------------------------------------------------
class WebhookStore(Protocol):
    def claim_nonces(self, provider: str, nonces: Sequence[str]) -> set[str]: ...

    def release_nonces(self, provider: str, nonces: Sequence[str]) -> None: ...

    def record_event(self, event: Event, soft_bounce_limit: int = 3) -> RecordedEvent: ...


def receive_webhook(
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: WebhookSecrets,
    store: WebhookStore,
    soft_bounce_limit: int = 3,
    now: float | None = None,
    cache_dir: Path | None = None,
) -> WebhookAnswer:
    """Check a webhook request of ``provider``, and apply the events not seen before.
    ``cache_dir`` keeps what a check fetches (SNS signing certificates) across processes."""
    for note in unreported_notes(secrets):
        log.warning("Warning: %s", note)
    verifier = VERIFIERS.get(provider)
    secret = secrets.get(provider)
    if verifier is None or secret is None:
        return NOT_FOUND
    try:
        key = _load_key(provider, secret)
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
        records = _records(provider, verifier, request)
    except Rejected as exc:
        return WebhookAnswer(exc.status, exc.reason)
    except Answered as exc:
        return exc.answer
    return _apply(provider, request_keys, records, store, soft_bounce_limit)


def _records(provider: str, verifier: Verifier, request: Request) -> list[Record]:
    data = request.json()
    if verifier.batch and not isinstance(data, list):
        raise Rejected(400, "expected a JSON array of events")
    if not verifier.batch and not isinstance(data, dict):
        raise Rejected(400, "expected a JSON object")
    records = read_records(provider, data if verifier.batch else [data])
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
        seen = store.claim_nonces(provider, [k for r in readable for k in r.keys])
        taken: set[str] = set()
        for record in readable:
            if not any(k in seen or k in taken for k in record.keys):
                fresh.append(record)
            taken.update(record.keys)
        if readable and not fresh:
            return WebhookAnswer(200, "already received")
        for record in fresh:
            for event in record.events:
                store.record_event(event, soft_bounce_limit)
                applied += 1
            done += 1
    except BaseException:
        unapplied = [k for r in fresh[done:] for k in r.keys]
        with contextlib.suppress(Exception):
            store.release_nonces(provider, [*request_keys, *unapplied])
        raise
    text = f"{applied} event(s)"
    if len(readable) > len(fresh):
        text += f"; {len(readable) - len(fresh)} already received"
    if len(records) > len(readable):
        text += f"; {len(records) - len(readable)} malformed, skipped"
    return WebhookAnswer(200, text)
