"""Sign-up with double opt-in, as library calls ``newsletter serve`` makes.

    sign_up(desk, form, client)      the form: bots held off, the person recorded
                                     ``pending`` with their consent, one confirmation
                                     email (at most one per address a day, a cap per hour)
    check_confirmation(desk, token)  what a confirmation link stands for
    confirm(desk, token)             pending -> active (only ever on a POST), welcome email

A ``SignupDesk`` holds what these use of a project: its settings, the store's link
secret, subscribers and membership, the composer (the newsletter's details, the
transport's address rules) and a transport factory.

The visitor sees the same answer whatever happened; ``SignupResult.outcome`` says what
did, for the log and the tests. Nothing here raises to the visitor: a transport that
fails is one line on stderr, without the address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import sys
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .catalog import make_transport
from .errors import InputError, NewsletterError, mask_address, redact
from .models import Campaign, DeliveryStatus, Recipient, SubscriberStatus
from .render import CompiledCampaign, FieldCatalog, MessageFactory, compile_campaign
from .store.signups import Consent, LogAction, SignupLimits, SignupOutcome
from .tokens import LinkSigner, confirm_signer, form_signer

if TYPE_CHECKING:
    from .composer import Composer
    from .config import Settings, SignupSettings
    from .delivery import Transport
    from .store import LinkSecret, Membership, Store, Subscribers

CONFIRMATIONS = "_confirmations"  # the outbox folder: no campaign slug starts with "_"
WELCOMES = "_welcome"
HONEYPOT = "website"  # the field people leave empty (hidden from them)
MAX_EMAIL = 254
MAX_NAME = 100
MAX_SOURCE = 300
FORM_MAX_AGE = dt.timedelta(days=1)  # a form shown longer ago than this is stale


class BotReason(StrEnum):
    HONEYPOT = "honeypot"
    TOO_FAST = "too_fast"
    FORGED = "forged_timestamp"
    STALE = "stale_form"


@dataclass(frozen=True, slots=True)
class SignupForm:
    """What a sign-up POST carried. ``form_token`` is None when the form had none (an
    embedded form on the blog: then only the honeypot and the limits apply)."""

    email: str
    first_name: str = ""
    last_name: str = ""
    honeypot: str = ""
    form_token: str | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class SignupResult:
    outcome: str  # a SignupOutcome or a BotReason
    sent: bool  # whether a confirmation email went out


class ConfirmState(StrEnum):
    INVALID = "invalid"  # tampered with, or not a token at all
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # no such subscriber (erased), or no longer pending/active
    PENDING = "pending"
    ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class Confirmation:
    state: ConfirmState
    subscriber_id: int | None = None
    welcomed: bool = False


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class SignupDesk:
    """What sign-up and confirmation use of a project. ``emails`` keeps the confirmation
    and welcome emails once compiled."""

    settings: Settings
    secret: LinkSecret
    subscribers: Subscribers
    membership: Membership
    composer: Composer
    make_transport: Callable[[Settings, str], Transport] = make_transport
    emails: dict[str, CompiledCampaign] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings, store: Store, composer: Composer) -> SignupDesk:
        return cls(settings, store.secret, store.subscribers, store.membership, composer)


def _epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


# -- tokens -----------------------------------------------------------------------
def form_token(secret: LinkSecret, now: dt.datetime | None = None) -> str:
    """The signed time a sign-up form is shown at."""
    return form_signer(secret.current()).sign(_epoch(now or utcnow()))


def confirm_token(secret: LinkSecret, subscriber_id: int, issued: dt.datetime | None = None) -> str:
    return confirm_signer(secret.current()).sign(subscriber_id, _epoch(issued or utcnow()))


def confirm_url(
    settings: Settings, secret: LinkSecret, subscriber_id: int, issued: dt.datetime | None = None
) -> str:
    return f"{settings.public_url}/confirm/{confirm_token(secret, subscriber_id, issued)}"


def client_hash(secret: LinkSecret, client: str) -> str:
    """A keyed hash of the client's address: enough to count its sign-ups, never the
    address itself."""
    key = hmac.new(secret.current().encode(), b"newsletter-client-v1", "sha256")
    return hmac.new(key.digest(), client.encode(), hashlib.sha256).hexdigest()[:32]


# -- input -----------------------------------------------------------------------
def clean_name(value: str) -> str:
    """A name as typed, without control characters (no line breaks) or runs of spaces."""
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in value)
    return " ".join(text.split())


def clean_source(value: str) -> str:
    """The page a form was on: an http(s) URL without its query or fragment (which may
    hold anyone's data), printable and short; "" otherwise."""
    value = value.strip()
    if not value or len(value) > 2000:
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    if not shown.isprintable():
        return ""
    return shown[:MAX_SOURCE]


def valid_form(composer: Composer, form: SignupForm) -> SignupForm:
    """The form with its address normalised and names cleaned; InputError when it cannot
    be a sign-up (the visitor is told what to fix)."""
    email = form.email.strip()
    if not email or len(email) > MAX_EMAIL:
        raise InputError("Please enter your email address (at most 254 characters).")
    try:
        email = composer.sendable_address(email)
    except InputError:
        raise InputError("That does not look like an email address; please check it.") from None
    first, last = clean_name(form.first_name), clean_name(form.last_name)
    if len(first) > MAX_NAME or len(last) > MAX_NAME:
        raise InputError(f"A name may have at most {MAX_NAME} characters.")
    return replace(form, email=email, first_name=first, last_name=last)


# -- sign-up ----------------------------------------------------------------------
def bot_reason(
    secret: LinkSecret, signup: SignupSettings, form: SignupForm, now: dt.datetime
) -> BotReason | None:
    if form.honeypot.strip():
        return BotReason.HONEYPOT
    if form.form_token is None:  # an embedded form: honeypot and limits only
        return None
    found = form_signer(secret.current()).verify(form.form_token.strip(), 1)
    if found is None:
        return BotReason.FORGED
    shown = dt.datetime.fromtimestamp(found[0], dt.UTC)
    if now - shown < dt.timedelta(seconds=signup.min_seconds):
        return BotReason.TOO_FAST
    if now - shown > FORM_MAX_AGE:
        return BotReason.STALE
    return None


def sign_up(
    desk: SignupDesk, form: SignupForm, client: str, now: dt.datetime | None = None
) -> SignupResult:
    """A sign-up form was sent: hold off bots, record the person ``pending`` with their
    consent, send one confirmation email. InputError only for a form that cannot be a
    sign-up (no usable address); every other outcome looks the same to the visitor."""
    now = now or utcnow()
    form = valid_form(desk.composer, form)
    s = desk.settings.signup
    reason = bot_reason(desk.secret, s, form, now)
    if reason is not None:
        return SignupResult(str(reason), False)
    decision = desk.membership.sign_up(
        form.email,
        form.first_name,
        form.last_name,
        Consent(clean_source(form.source), s.form_version, client_hash(desk.secret, client)),
        SignupLimits(s.per_client_per_hour, s.per_address_per_hour, s.max_confirmations_per_hour),
        now,
    )
    if decision.outcome is SignupOutcome.CAPPED:
        _say_capped_once(now, s.max_confirmations_per_hour)
    if decision.outcome is not SignupOutcome.CONFIRMATION:
        return SignupResult(str(decision.outcome), False)
    assert decision.subscriber_id is not None and decision.log_id is not None
    recipient = Recipient(decision.subscriber_id, form.email, form.first_name, form.last_name)
    url = confirm_url(desk.settings, desk.secret, decision.subscriber_id, now)
    error = send_one(desk, "confirm", recipient, {"confirm_url": url})
    if error is not None:
        desk.membership.mark_failed(decision.log_id, error)
        return SignupResult(str(decision.outcome), False)
    return SignupResult(str(decision.outcome), True)


_capped: set[str] = set()
_capped_lock = threading.Lock()


def _say_capped_once(now: dt.datetime, cap: int) -> None:
    """One line on stderr the first time in an hour the cap holds a confirmation back."""
    hour = now.strftime("%Y-%m-%dT%H")
    with _capped_lock:
        if hour in _capped:
            return
        _capped.add(hour)
    print(
        f"newsletter serve: {cap} confirmation emails went out in the last hour "
        "([signup] max_confirmations_per_hour); further sign-ups this hour are recorded "
        "as pending without an email.",
        file=sys.stderr,
        flush=True,
    )


# -- confirmation -----------------------------------------------------------------
def check_confirmation(
    desk: SignupDesk, token: str, now: dt.datetime | None = None
) -> Confirmation:
    """What a confirmation link stands for; changes nothing."""
    now = now or utcnow()
    found = confirm_signer(desk.secret.current()).verify(token, 2)
    if found is None:
        return Confirmation(ConfirmState.INVALID)
    subscriber_id, issued = found
    age = now - dt.datetime.fromtimestamp(issued, dt.UTC)
    if age > dt.timedelta(days=desk.settings.signup.confirm_days) or age < -dt.timedelta(minutes=5):
        return Confirmation(ConfirmState.EXPIRED, subscriber_id)
    status = desk.subscribers.status_of(subscriber_id)
    if status is SubscriberStatus.PENDING:
        return Confirmation(ConfirmState.PENDING, subscriber_id)
    if status is SubscriberStatus.ACTIVE:
        return Confirmation(ConfirmState.ACTIVE, subscriber_id)
    return Confirmation(ConfirmState.UNKNOWN, subscriber_id)


def confirm(desk: SignupDesk, token: str, now: dt.datetime | None = None) -> Confirmation:
    """The person confirmed (a POST from the confirmation page): pending -> active, with
    the welcome email when ``[signup] welcome``. Twice is harmless."""
    now = now or utcnow()
    checked = check_confirmation(desk, token, now)
    if checked.state is not ConfirmState.PENDING or checked.subscriber_id is None:
        return checked
    before = desk.membership.confirm(checked.subscriber_id, now)
    if before is not SubscriberStatus.PENDING:
        state = ConfirmState.ACTIVE if before is SubscriberStatus.ACTIVE else ConfirmState.UNKNOWN
        return Confirmation(state, checked.subscriber_id)
    welcomed = False
    if desk.settings.signup.welcome:
        subscriber = desk.subscribers.by_id(checked.subscriber_id)
        if subscriber is not None:
            token_ = LinkSigner(desk.secret.current()).unsubscribe_token(checked.subscriber_id, 0)
            welcomed = (
                send_one(
                    desk,
                    "welcome",
                    Recipient.of(subscriber),
                    {"unsubscribe_url": f"{desk.settings.public_url}/u/{token_}"},
                )
                is None
            )
            if welcomed:
                desk.membership.log(checked.subscriber_id, LogAction.WELCOME_SENT, _iso(now))
    return Confirmation(ConfirmState.ACTIVE, checked.subscriber_id, welcomed)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the emails -------------------------------------------------------------------
# The emails' opening paragraph (the templates' ``body_html`` and ``body_text``).
_BODIES = {
    "confirm": "Someone, hopefully you, asked to receive {{ newsletter.name }} at this "
    "address. Please confirm with the link below; until you do, we will send you nothing "
    "else.",
    "welcome": "Thank you for confirming: you are now subscribed to {{ newsletter.name }}. "
    "The next issue will come to this address.",
}


def compiled_email(desk: SignupDesk, kind: str) -> CompiledCampaign:
    """The confirmation (``confirm``) or welcome (``welcome``) email, compiled once per
    desk: the project's templates/<kind>.mjml and .txt override the built-ins."""
    cache = desk.emails
    if kind not in cache:
        s = desk.settings.signup
        campaign = Campaign(
            slug=CONFIRMATIONS if kind == "confirm" else WELCOMES,
            subject=s.confirm_subject if kind == "confirm" else s.welcome_subject,
            body=_BODIES[kind],
            path=f"the {kind} email",
            template=kind,
            utm_campaign="",
        )
        cache[kind] = compile_campaign(
            desk.composer.info(),
            campaign,
            FieldCatalog(),
            links=("confirm_url",) if kind == "confirm" else (),
            context={"confirm_days": s.confirm_days},
        )
    return cache[kind]


def send_one(
    desk: SignupDesk, kind: str, recipient: Recipient, links: dict[str, str]
) -> str | None:
    """Send one sign-up email through the project's transport, quickly: no retries, the
    transport's timeout cut to ``[signup] send_timeout``. None when it went; else the
    reason, also logged on stderr as one line without the address or any secret."""
    settings = desk.settings
    values = {
        **settings.values,
        "delivery": {
            **settings.values["delivery"],
            "max_retries": 0,
            "timeout": min(float(settings.delivery.timeout), float(settings.signup.send_timeout)),
        },
    }
    quick = type(settings)(path=settings.path, values=values)
    fields: dict[str, Any] = {
        "email": recipient.email,
        "first_name": recipient.first_name,
        "last_name": recipient.last_name,
        "name": " ".join(p for p in (recipient.first_name, recipient.last_name) if p),
        "web_url": "",
        "unsubscribe_url": "",
        **links,
    }
    transport = None
    try:
        compiled = compiled_email(desk, kind)
        transport = desk.make_transport(quick, compiled.slug)
        factory = MessageFactory(
            compiled,
            unsubscribe_mailto=settings.newsletter.unsubscribe_mailto,
            transactional=kind == "confirm",
            carrier=transport.carrier(),
        )
        result = transport.send_batch([factory.message(recipient, fields)])[0]
        if result.status in (DeliveryStatus.SENT, DeliveryStatus.QUEUED):
            return None
        reason = f"{result.status}: {result.error or 'no reason given'}"
    except NewsletterError as exc:
        reason = exc.message
    except Exception as exc:  # a transport's bug must not reach the visitor
        reason = f"{type(exc).__name__}: {exc}"
    finally:
        if transport is not None:
            transport.close()
    reason = redact(" ".join(reason.split())).replace(
        recipient.email, mask_address(recipient.email)
    )
    print(
        f"newsletter serve: the {kind} email to {mask_address(recipient.email)} was not sent "
        f"({settings.transport}): {reason[:300]}",
        file=sys.stderr,
        flush=True,
    )
    return reason[:300]


__all__ = [
    "CONFIRMATIONS",
    "HONEYPOT",
    "BotReason",
    "ConfirmState",
    "Confirmation",
    "SignupDesk",
    "SignupForm",
    "SignupResult",
    "check_confirmation",
    "confirm",
    "confirm_token",
    "confirm_url",
    "form_token",
    "sign_up",
]
