"""Sign-up with double opt-in, as library calls ``newsletter serve`` makes.

    sign_up(desk, form, client)       the form: bots held off, the request recorded
                                      (a new address ``pending``, without names); the
                                      confirmation email is queued, never sent here
    deliver_confirmations(desk)       the queue: confirmations sent, within the hourly
                                      cap shared out round-robin between networks
    expire_signups(desk)              requests older than ``confirm_days`` deleted, and
                                      the pending people who have nothing else
    check_confirmation(desk, token)   what a confirmation link stands for
    saw_scanner(desk, token)          the email's hidden link was followed (a scanner)
    confirm(desk, token, how, agent)  pending -> active (only ever on a POST): a button
                                      press always, the page's own script only when no
                                      scanner was seen (README, "Only a person confirms")

A ``SignupDesk`` holds what these use of a project: its settings, the store's link
secret, subscribers, membership and sign-up requests, the composer (the newsletter's
details, the transport's address rules) and a transport factory.

The visitor sees the same answer whatever happened, after the same database work;
``SignupResult.outcome`` says what did, for the log and the tests. Nothing here raises
to the visitor but InputError (a form that cannot be a sign-up): a transport that fails
is one line on stderr, without the address.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
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
from .event_rules import scanner_agent
from .guards import disposable_domain, pow_challenge, pow_verify
from .models import DEFAULT_GREETING, Campaign, DeliveryStatus, Recipient, SubscriberStatus
from .render import CompiledCampaign, FieldCatalog, MessageFactory, compile_campaign
from .store.erasure import keyed, mailbox_key
from .store.signup_requests import MailState, RequestForm, RequestKeys, RequestLimits, when
from .store.signups import LogAction, SignupOutcome
from .tokens import LinkSigner, TimedSigner, canary_signer, confirm_signer, form_signer

if TYPE_CHECKING:
    from .composer import Composer
    from .config import Settings, SignupSettings
    from .delivery import Transport
    from .store import LinkSecret, Membership, SignupRequests, Store, Subscribers

CONFIRMATIONS = "_confirmations"  # the outbox folder: no campaign slug starts with "_"
WELCOMES = "_welcome"
HONEYPOT = "website"  # the field people leave empty (hidden from them)
MAX_EMAIL = 254
MAX_NAME = 100
MAX_SOURCE = 300
FORM_MAX_AGE = dt.timedelta(days=1)  # a form shown longer ago than this is stale
IPV4_NETWORK, IPV6_NETWORK = 24, 48  # a client's wider network, for per_network_per_hour
NETWORK_SHARE = 10  # no network gets more than a tenth of the hourly cap


class BotReason(StrEnum):
    HONEYPOT = "honeypot"
    TOO_FAST = "too_fast"
    FORGED = "forged_timestamp"
    STALE = "stale_form"
    NO_ORIGIN = "no_token_no_origin"  # neither the page's token nor an allowed origin
    NO_PROOF = "no_proof_of_work"


@dataclass(frozen=True, slots=True)
class SignupForm:
    """What a sign-up POST carried. ``form_token`` is None when the form had none (a
    form embedded on the blog: then it must come from an allowed origin, which
    ``allowed_origin`` says). ``proof`` is the ALTCHA field, when the page asked for one."""

    email: str
    first_name: str = ""
    last_name: str = ""
    honeypot: str = ""
    form_token: str | None = None
    source: str = ""
    allowed_origin: bool = False
    proof: str | None = None


@dataclass(frozen=True, slots=True)
class SignupResult:
    outcome: str  # a SignupOutcome or a BotReason
    queued: bool  # whether a confirmation email waits in the queue


class ConfirmState(StrEnum):
    INVALID = "invalid"  # tampered with, or not a token at all
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # no such request (expired, erased), used, or the person gone
    PENDING = "pending"
    PRESS = "press"  # pending: the page's script is not enough, the person presses
    ACTIVE = "active"


class How(StrEnum):
    """How a confirmation page was posted."""

    AUTO = "auto"  # by the page's script, about 1.5 s after it opened
    BUTTON = "button"  # by the person's press


@dataclass(frozen=True, slots=True)
class Confirmation:
    state: ConfirmState
    request_id: int | None = None
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
    requests: SignupRequests
    composer: Composer
    make_transport: Callable[[Settings, str], Transport] = make_transport
    emails: dict[str, CompiledCampaign] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings, store: Store, composer: Composer) -> SignupDesk:
        return cls(
            settings,
            store.secret,
            store.subscribers,
            store.membership,
            store.signup_requests,
            composer,
        )


def _epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


# -- tokens -----------------------------------------------------------------------
def form_token(secret: LinkSecret, now: dt.datetime | None = None) -> str:
    """The signed time a sign-up form is shown at."""
    return form_signer(secret.current()).sign(_epoch(now or utcnow()))


def confirm_token(secret: LinkSecret, request_id: int, issued: dt.datetime | None = None) -> str:
    """The confirmation link's token: the sign-up request and when the link was made."""
    return confirm_signer(secret.current()).sign(request_id, _epoch(issued or utcnow()))


def canary_token(secret: LinkSecret, request_id: int, issued: dt.datetime | None = None) -> str:
    """The hidden link's token (same shape, its own key): only a scanner follows it."""
    return canary_signer(secret.current()).sign(request_id, _epoch(issued or utcnow()))


def confirm_url(
    settings: Settings, secret: LinkSecret, request_id: int, issued: dt.datetime | None = None
) -> str:
    return f"{settings.public_url}/confirm/{confirm_token(secret, request_id, issued)}"


def client_networks(client: str, ipv6_prefix: int) -> tuple[str, str]:
    """(the client, its network) as text: an IPv4 address and its /24; an IPv6 client's
    /``ipv6_prefix`` network (a /64 is one home or phone) and its /48. Anything that is
    not an address (no REMOTE_ADDR) is one client of its own."""
    try:
        ip = ipaddress.ip_address(client.strip())
    except ValueError:
        return f"other:{client.strip()[:64]}", "other"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip), str(ipaddress.ip_network(f"{ip}/{IPV4_NETWORK}", strict=False))
    own = ipaddress.ip_network(f"{ip}/{ipv6_prefix}", strict=False)
    wide = ipaddress.ip_network(f"{ip}/{min(IPV6_NETWORK, ipv6_prefix)}", strict=False)
    return str(own), str(wide)


def request_keys(secret: LinkSecret, email: str, client: str, ipv6_prefix: int) -> RequestKeys:
    """The keyed hashes a sign-up is counted by: its mailbox, its client, its network."""
    key = secret.current()
    own, wide = client_networks(client, ipv6_prefix)
    return RequestKeys(mailbox_key(key, email), keyed(key, "client", own), keyed(key, "net", wide))


# -- where a form may come from -----------------------------------------------------
def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, lowercased, without a default port; None when
    it has no http(s) origin."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins(settings: Settings) -> frozenset[str]:
    """The sites whose pages may post the sign-up form without the built-in page's token:
    ``[signup] allowed_origins``, or else public_url's and the ``[content] feeds``'."""
    listed = settings.signup.allowed_origins
    if not listed:
        listed = (settings.newsletter.public_url or "", *settings.content.feeds)
    return frozenset(o for o in (origin_of(u) for u in listed) if o)


# -- input -----------------------------------------------------------------------
_NAME_PUNCTUATION = frozenset(" '’‘-‐.")
_DOMAIN_LIKE = re.compile(r"\.[^\W\d_]{2}")  # a period before two letters: a domain


def clean_name(value: str) -> str:
    """A name as typed, without control characters (no line breaks) or runs of spaces."""
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in value)
    return " ".join(unicodedata.normalize("NFC", text).split())


def check_name(name: str) -> str:
    """A cleaned name, or InputError saying what a name may hold."""
    if len(name) > MAX_NAME:
        raise InputError(f"A name may have at most {MAX_NAME} characters.")
    lowered = name.lower()
    if "@" in name or "://" in name or "www." in lowered or _DOMAIN_LIKE.search(name):
        raise InputError(
            "A name cannot hold a web address, an email address or a domain name; "
            "please enter just your name."
        )
    if any(not (unicodedata.category(c)[0] in "LM" or c in _NAME_PUNCTUATION) for c in name):
        raise InputError("A name may hold letters, spaces, apostrophes, hyphens and periods only.")
    return name


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
    first = check_name(clean_name(form.first_name))
    last = check_name(clean_name(form.last_name))
    return replace(form, email=email, first_name=first, last_name=last)


def refuse_disposable(signup: SignupSettings, email: str) -> None:
    """InputError for an address at a throwaway-address domain (``block_disposable``)."""
    if signup.block_disposable and disposable_domain(email):
        domain = email.rpartition("@")[2]
        raise InputError(
            f"Addresses at {domain} are throwaway addresses, which cannot receive "
            "the newsletter for long; please use an address of your own."
        )


def proof_challenge(secret: LinkSecret, signup: SignupSettings) -> dict[str, object] | None:
    """The proof of work the built-in page asks for (``[signup] proof_of_work``), or None."""
    if not signup.proof_of_work:
        return None
    return pow_challenge(secret.current(), signup.proof_of_work_max_number)


# -- sign-up ----------------------------------------------------------------------
def bot_reason(
    secret: LinkSecret, signup: SignupSettings, form: SignupForm, now: dt.datetime
) -> BotReason | None:
    if form.honeypot.strip():
        return BotReason.HONEYPOT
    # with proof_of_work, every sign-up carries one: only serve's page can make it
    if signup.proof_of_work and not pow_verify((form.proof or "").strip(), secret.current()):
        return BotReason.NO_PROOF
    if form.form_token is None:  # a form embedded on the blog: only from its origin
        return None if form.allowed_origin else BotReason.NO_ORIGIN
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
    """A sign-up form was sent: hold off bots, record the request (a new address
    ``pending``) and queue its confirmation email. InputError only for a form that cannot
    be a sign-up; every other outcome looks the same to the visitor, and takes the same
    work: nothing is sent here."""
    now = now or utcnow()
    form = valid_form(desk.composer, form)
    s = desk.settings.signup
    refuse_disposable(s, form.email)
    reason = bot_reason(desk.secret, s, form, now)
    if reason is not None:
        return SignupResult(str(reason), False)
    outcome, _ = desk.requests.record(
        RequestForm(
            form.email, form.first_name, form.last_name, clean_source(form.source), s.form_version
        ),
        request_keys(desk.secret, form.email, client, s.ipv6_prefix),
        RequestLimits(s.per_client_per_hour, s.per_network_per_hour, s.per_address_per_hour),
        now,
    )
    return SignupResult(str(outcome), outcome is SignupOutcome.CONFIRMATION)


def deliver_confirmations(desk: SignupDesk, now: dt.datetime | None = None) -> int:
    """Send the queued confirmation emails that may go now: at most
    ``max_confirmations_per_hour`` an hour in all, taken round-robin across networks, no
    network more than a tenth of that (at least one). The rest wait. How many went."""
    s = desk.settings.signup
    cap = s.max_confirmations_per_hour
    share = max(1, cap // NETWORK_SHARE)
    sent = 0
    while True:
        moment = now or utcnow()
        claimed = desk.requests.claim(cap, share, moment)
        if not claimed:
            break
        for item in claimed:
            issued = when(item.claimed_at) or moment
            links = {
                "confirm_url": confirm_url(desk.settings, desk.secret, item.request_id, issued),
                "canary_url": f"{desk.settings.public_url}/confirm/"
                + canary_token(desk.secret, item.request_id, issued),
            }
            # no name: what a visitor typed never reaches an inbox
            error = send_one(desk, "confirm", Recipient(item.subscriber_id, item.email), links)
            if error is None:
                desk.requests.finish(item.request_id, MailState.SENT, _iso(utcnow()))
                sent += 1
            else:
                desk.requests.finish(item.request_id, MailState.FAILED, None, error)
    if desk.requests.queued():
        _say_capped_once(now or utcnow(), cap)
    return sent


def expire_signups(desk: SignupDesk, now: dt.datetime | None = None) -> tuple[int, int]:
    """Delete the sign-up requests older than ``confirm_days`` and the pending people
    who have nothing but those: (requests, people) deleted."""
    return desk.requests.expire(desk.settings.signup.confirm_days, now or utcnow())


_capped: set[str] = set()
_capped_lock = threading.Lock()


def _say_capped_once(now: dt.datetime, cap: int) -> None:
    """One line on stderr the first time in an hour the limits hold a confirmation back."""
    hour = now.strftime("%Y-%m-%dT%H")
    with _capped_lock:
        if hour in _capped:
            return
        _capped.add(hour)
    print(
        "newsletter: confirmation emails wait in the queue: this hour's limit is reached "
        f"([signup] max_confirmations_per_hour = {cap}, at most "
        f"{max(1, cap // NETWORK_SHARE)} for one network); they go as the hour allows.",
        file=sys.stderr,
        flush=True,
    )


# -- confirmation -----------------------------------------------------------------
def _verified(
    desk: SignupDesk, signer: TimedSigner, token: str, now: dt.datetime
) -> tuple[ConfirmState | None, int | None]:
    """(INVALID or EXPIRED or None, the request id) of a link's token."""
    found = signer.verify(token, 2)
    if found is None:
        return ConfirmState.INVALID, None
    request_id, issued = found
    age = now - dt.datetime.fromtimestamp(issued, dt.UTC)
    if age > dt.timedelta(days=desk.settings.signup.confirm_days) or age < -dt.timedelta(minutes=5):
        return ConfirmState.EXPIRED, request_id
    return None, request_id


def check_confirmation(
    desk: SignupDesk, token: str, now: dt.datetime | None = None
) -> Confirmation:
    """What a confirmation link stands for; changes nothing."""
    now = now or utcnow()
    refused, request_id = _verified(desk, confirm_signer(desk.secret.current()), token, now)
    if refused is not None or request_id is None:
        return Confirmation(refused or ConfirmState.INVALID, request_id)
    row = desk.requests.row(request_id)
    if row is None or row.status is None:
        return Confirmation(ConfirmState.UNKNOWN, request_id)
    if row.status is SubscriberStatus.ACTIVE:
        return Confirmation(ConfirmState.ACTIVE, request_id)
    if row.used_at is None and row.status in (
        SubscriberStatus.PENDING,
        SubscriberStatus.UNSUBSCRIBED,
    ):
        return Confirmation(ConfirmState.PENDING, request_id)
    return Confirmation(ConfirmState.UNKNOWN, request_id)


def saw_scanner(desk: SignupDesk, token: str, now: dt.datetime | None = None) -> bool:
    """Whether ``token`` is a confirmation email's hidden link; when it is, its request
    is marked as seen by a scanner (the person's own link then needs a press)."""
    now = now or utcnow()
    refused, request_id = _verified(desk, canary_signer(desk.secret.current()), token, now)
    if refused is ConfirmState.INVALID or request_id is None:
        return False
    if refused is None:
        desk.requests.saw_scanner(request_id, now)
    return True


def _needs_press(desk: SignupDesk, request_id: int, user_agent: str, now: dt.datetime) -> bool:
    """Whether a post by the page's script may be a scanner's: one followed the hidden
    link, the email went out less than ``scanner_window`` ago, or the user agent is a
    scanner's or a script's."""
    row = desk.requests.row(request_id)
    mailed = when(row.mailed_at) if row else None
    if row is None or row.scanner_at is not None or mailed is None:
        return True
    if now - mailed < dt.timedelta(seconds=desk.settings.signup.scanner_window):
        return True
    return scanner_agent(user_agent)


def confirm(
    desk: SignupDesk,
    token: str,
    how: How = How.BUTTON,
    user_agent: str = "",
    now: dt.datetime | None = None,
) -> Confirmation:
    """The confirmation page was posted: pending -> active, with the request's names and
    consent (and the welcome email when ``[signup] welcome``). A post by the page's
    script (``How.AUTO``) that may be a scanner's changes nothing: PRESS, the person
    presses the button. The link then works no more."""
    now = now or utcnow()
    checked = check_confirmation(desk, token, now)
    if checked.state is not ConfirmState.PENDING or checked.request_id is None:
        return checked
    if how is How.AUTO and _needs_press(desk, checked.request_id, user_agent, now):
        return Confirmation(ConfirmState.PRESS, checked.request_id)
    before = desk.requests.confirm(checked.request_id, now)
    if before is SubscriberStatus.ACTIVE:
        return Confirmation(ConfirmState.ACTIVE, checked.request_id)
    if before not in (SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED):
        return Confirmation(ConfirmState.UNKNOWN, checked.request_id)
    row = desk.requests.row(checked.request_id)
    welcomed = bool(row and row.subscriber_id and _welcome(desk, row.subscriber_id, now))
    return Confirmation(ConfirmState.ACTIVE, checked.request_id, welcomed)


def _welcome(desk: SignupDesk, subscriber_id: int, now: dt.datetime) -> bool:
    """The welcome email, when ``[signup] welcome``; whether it went."""
    if not desk.settings.signup.welcome:
        return False
    subscriber = desk.subscribers.by_id(subscriber_id)
    if subscriber is None:
        return False
    token_ = LinkSigner(desk.secret.current()).unsubscribe_token(subscriber_id, 0)
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
        desk.membership.log(subscriber_id, LogAction.WELCOME_SENT, _iso(now))
    return welcomed


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
            # the confirmation greets nobody by name: a visitor typed it, unchecked
            greeting='"Hello,"' if kind == "confirm" else DEFAULT_GREETING,
        )
        cache[kind] = compile_campaign(
            desk.composer.info(),
            campaign,
            FieldCatalog(),
            links=("confirm_url", "canary_url") if kind == "confirm" else (),
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
        f"newsletter: the {kind} email to {mask_address(recipient.email)} was not sent "
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
    "How",
    "SignupDesk",
    "SignupForm",
    "SignupResult",
    "allowed_origins",
    "check_confirmation",
    "confirm",
    "confirm_token",
    "confirm_url",
    "deliver_confirmations",
    "expire_signups",
    "form_token",
    "origin_of",
    "saw_scanner",
    "sign_up",
]
