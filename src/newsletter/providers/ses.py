"""Amazon SES v2 through botocore: one SendEmail per message, with our own MIME.

SES's bulk API needs stored templates, so each message goes as ``Raw`` content
(the same RFC 5322 bytes the outbox writes), in parallel across workers.
Credentials come from the standard AWS environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, an AWS profile or role), never from newsletter.toml.
botocore is an optional extra: ``pip install 'newsletter[ses]'``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable
from typing import Any

from .. import sns
from ..delivery.base import OneAtATime
from ..delivery.retry import RetryPolicy, TryAgain
from ..errors import ConfigError, CredentialsError, DeliveryError
from ..events import (
    Malformed,
    Read,
    iso_time,
    json_kind,
    load_json,
    mapping,
    our_subscriber,
    ours,
    string,
    unknown_event,
)
from ..models import DeliveryStatus, Event, EventKind, SendResult
from ..render import OutgoingMessage
from ..webhooks import (
    TOLERANCE,
    Answered,
    Rejected,
    Request,
    Verifier,
    WebhookAnswer,
    log,
    strict_b64decode,
)
from . import Option, Provider, Secret, Setup

_CREDENTIALS = {
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AccessDeniedException",
    "AccessDenied",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
}
_STOP = {
    "AccountSuspendedException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "ConfigurationSetDoesNotExistException",
    "NotFoundException",
}
_THROTTLED = {
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "LimitExceededException",
}


class SESTransport(OneAtATime):
    name = "ses"
    provider = "Amazon SES"  # its API takes ASCII local parts only (SMTPUTF8 is not offered)
    max_batch = 50  # messages a worker sends one by one before the batch is settled

    def __init__(
        self,
        region: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        batch_size: int | None = None,
        configuration_set: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(batch_size)
        try:
            import botocore.config
            import botocore.session
        except ImportError:
            raise ConfigError(
                "The ses transport needs botocore, which is not installed.",
                "Install it with: pip install 'newsletter[ses]'",
            ) from None
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise ConfigError(
                "The SES region is not set.",
                'Set region = "eu-west-1" (your SES region) under [delivery] in newsletter.toml.',
            )
        session = botocore.session.get_session()
        if session.get_credentials() is None:
            raise ConfigError(
                "No AWS credentials were found for SES.",
                "Export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for an IAM "
                "identity allowed to call ses:SendEmail.",
            )
        config = botocore.config.Config(
            # we retry ourselves; botocore's max_attempts counts retries, not attempts,
            # and its retries would repeat a timed-out or dropped SendEmail
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
            max_pool_connections=32,
        )
        self.client = session.create_client(
            "sesv2", region_name=region, endpoint_url=base_url or None, config=config
        )
        self.retry = RetryPolicy(max_retries, sleep)
        self.configuration_set = configuration_set

    def send_one(self, message: OutgoingMessage) -> SendResult:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        sid = message.recipient.subscriber_id
        compiled = message.factory.compiled
        request: dict[str, Any] = {
            "FromEmailAddress": message.factory.envelope_sender,
            "Destination": {"ToAddresses": [message.to_address]},
            "Content": {"Raw": {"Data": message.as_bytes()}},
            "EmailTags": [
                {"Name": "campaign", "Value": _tag(compiled.slug)},
                {"Name": "subscriber", "Value": str(sid)},
            ],
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set

        def attempt(_number: int) -> SendResult:
            try:
                answer = self.client.send_email(**request)
            except (ReadTimeoutError, ConnectionClosedError) as exc:
                return SendResult(
                    sid,
                    DeliveryStatus.UNKNOWN,
                    error=f"SES: the outcome is unknown ({exc.__class__.__name__})",
                )
            except EndpointConnectionError as exc:
                code = "EndpointConnectionError"
                raise TryAgain(f"SES answered {code}", outcome=(code, str(exc))) from None
            except ClientError as exc:
                refusal = exc.response
            else:
                if not answer.get("MessageId"):  # e.g. a 200 whose body was not JSON
                    return SendResult(
                        sid,
                        DeliveryStatus.UNKNOWN,
                        error="SES: the outcome is unknown (an answer without a MessageId)",
                    )
                return SendResult(sid, DeliveryStatus.SENT, message_id=answer["MessageId"])
            return self._refused(sid, refusal)

        def give_up(last: TryAgain, attempts: int) -> SendResult:
            code, text = last.outcome
            raise DeliveryError(
                f"SES kept failing ({code}: {text}); stopped after {attempts} attempts.",
                "Messages without a result were not sent. Run the same send again later; "
                "SES advises waiting up to 10 minutes after throttling.",
            )

        return self.retry.run(attempt, give_up, self.notify_retry)

    @staticmethod
    def _refused(sid: int, response: dict[str, Any]) -> SendResult:
        """SES's refusal as a result; ``TryAgain`` for throttling and its own errors."""
        error = response.get("Error", {})
        code = str(error.get("Code", ""))
        text = str(error.get("Message", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in _CREDENTIALS or status == 403:
            raise CredentialsError(
                f"SES refused the credentials ({code}: {text}).",
                "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and that the identity "
                "may call ses:SendEmail in this region.",
            )
        if code in _STOP:
            raise DeliveryError(
                f"SES cannot send for this account ({code}: {text}).",
                "Fix it in the SES console, then run the same send again.",
            )
        if code == "MessageRejected" or (status == 400 and code not in _THROTTLED):
            bad = "address" in text.lower() or "identit" in text.lower()
            return SendResult(
                sid,
                DeliveryStatus.REJECTED if code == "MessageRejected" else DeliveryStatus.FAILED,
                error=f"SES {code}: {text}",
                suppress=bad and "not verified" not in text.lower(),
                raw=response.get("Error"),
            )
        if code not in _THROTTLED and status < 500:
            return SendResult(sid, DeliveryStatus.FAILED, error=f"SES {code}: {text}")
        raise TryAgain(f"SES answered {code}", outcome=(code, text))

    def close(self) -> None:
        self.client.close()


def _tag(value: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in value)[:256]


K = EventKind


# -- events -------------------------------------------------------------------------------
# `eventType` (configuration-set event publishing) or `notificationType` (identity
# notifications) -> kind (SES developer guide, "Contents of event data that Amazon SES
# publishes to Amazon SNS" and "Amazon SNS notification contents for Amazon SES").
SES_EVENTS: dict[str, EventKind | None] = {
    "Bounce": None,  # by bounceType and bounceSubType: SES_BOUNCES
    "Complaint": None,  # by complaintSubType and complaintFeedbackType: SES_COMPLAINTS
    "Delivery": K.DELIVERED,
    "Send": K.SENT,  # the request succeeded and SES will try to deliver
    "Reject": K.FAILED,  # SES found a virus in our message and did not send it
    "Open": K.OPENED,
    "Click": K.CLICKED,
    "Rendering Failure": K.FAILED,  # a template did not render: not sent
    "DeliveryDelay": K.DEFERRED,  # a temporary issue (its delayType): SES keeps trying
    "Subscription": None,  # SES list management: by newTopicPreferences.unsubscribeAll
    "AmazonSnsSubscriptionSucceeded": K.UNKNOWN,  # SES's test message for a new topic
}
# A bounce's (bounceType, bounceSubType), "Bounce types". SES publishes only hard bounces
# and soft bounces it no longer retries.
SES_BOUNCES: dict[tuple[str, str], EventKind] = {
    ("Permanent", "General"): K.BOUNCED,  # "remove the recipient's address from your list"
    ("Permanent", "NoEmail"): K.BOUNCED,  # the address does not exist
    ("Permanent", "Suppressed"): K.DROPPED,  # on SES's suppression list: not sent
    ("Permanent", "OnAccountSuppressionList"): K.DROPPED,  # on the account's list: not sent
    ("Transient", "General"): K.SOFT_BOUNCED,  # "you may be able to send ... in the future"
    ("Transient", "MailboxFull"): K.SOFT_BOUNCED,
    ("Transient", "MessageTooLarge"): K.FAILED,  # about our message, not the address
    ("Transient", "ContentRejected"): K.FILTERED,  # our content
    ("Transient", "AttachmentRejected"): K.FILTERED,  # our attachment
    ("Undetermined", "Undetermined"): K.SOFT_BOUNCED,  # SES could not tell why: counted
}
SES_OTHER_BOUNCES: dict[str, EventKind] = {  # by bounceType, for a subtype not listed
    "Permanent": K.BOUNCED,
    "Transient": K.SOFT_BOUNCED,
    "Undetermined": K.SOFT_BOUNCED,
}
SES_OTHER_BOUNCE = K.SOFT_BOUNCED  # a bounceType not listed: counted, never at once
# A complaint's complaintFeedbackType, "Complaint types" (the IANA feedback types).
SES_COMPLAINTS: dict[str, EventKind] = {
    "abuse": K.COMPLAINED,  # unsolicited email
    "fraud": K.COMPLAINED,  # reported as fraud or phishing
    "other": K.COMPLAINED,  # any other complaint
    "virus": K.FILTERED,  # a virus report on the message, not the reader's wish
    "auth-failure": K.FILTERED,  # a report that our authentication failed
    "not-spam": K.UNKNOWN,  # a correction: "not spam"; recorded, nobody resubscribed by it
}
SES_UNTYPED_COMPLAINT = K.COMPLAINED  # no feedback report, as most ISPs send: a complaint
SES_SUPPRESSED_COMPLAINT = K.COMPLAINED  # complaintSubType OnAccountSuppressionList
SES_UNSUBSCRIBED_ALL = K.UNSUBSCRIBED  # Subscription with unsubscribeAll: out of every topic
SES_TOPICS_CHANGED = K.UNKNOWN  # other topic preferences: newsletter uses no SES topics
# Where each event type keeps its own object (with its timestamp) and its recipients.
_SES_OBJECTS = {
    "Bounce": ("bounce", "bouncedRecipients"),
    "Complaint": ("complaint", "complainedRecipients"),
    "Delivery": ("delivery", "recipients"),
    "Send": ("send", None),
    "Reject": ("reject", None),
    "Open": ("open", None),
    "Click": ("click", None),
    "Rendering Failure": ("failure", None),
    "DeliveryDelay": ("deliveryDelay", "delayedRecipients"),
    "Subscription": ("subscription", None),
}


def _ses_kind(name: str, data: dict[str, Any]) -> EventKind | None:
    if name == "Bounce":
        bounce = mapping(data, "bounce")
        bounce_type = string(bounce, "bounceType") or ""
        found = SES_BOUNCES.get((bounce_type, string(bounce, "bounceSubType") or ""))
        return found or SES_OTHER_BOUNCES.get(bounce_type, SES_OTHER_BOUNCE)
    if name == "Complaint":
        complaint = mapping(data, "complaint")
        if string(complaint, "complaintSubType") == "OnAccountSuppressionList":
            return SES_SUPPRESSED_COMPLAINT
        feedback = string(complaint, "complaintFeedbackType")
        return (
            SES_UNTYPED_COMPLAINT if feedback is None else SES_COMPLAINTS.get(feedback, K.UNKNOWN)
        )
    if name == "Subscription":
        topics = mapping(mapping(data, "subscription"), "newTopicPreferences")
        return SES_UNSUBSCRIBED_ALL if topics.get("unsubscribeAll") is True else SES_TOPICS_CHANGED
    return SES_EVENTS.get(name)


def _ses_message(item: dict[str, Any]) -> dict[str, Any]:
    """The SES event of an SNS envelope (as posted, or as saved from a queue), or the SES
    event itself (as exported from a Firehose stream)."""
    if item.get("Type") != "Notification":
        return item
    text = string(item, "Message")
    if text is None:
        raise Malformed("Message is empty")
    data = load_json(text.encode("utf-8"))
    if not isinstance(data, dict):
        raise Malformed("Message is not a JSON object")
    return data


def _ses_recipients(data: dict[str, Any], name: str, mail: dict[str, Any]) -> list[Any]:
    """Each recipient the event is about: an object with emailAddress, or an address."""
    holder, field_name = _SES_OBJECTS[name]
    where = f"{holder}.{field_name}" if field_name else "mail.destination"
    found = mapping(data, holder).get(field_name) if field_name else mail.get("destination")
    if found is None:
        return [None]
    if not isinstance(found, list):
        raise Malformed(f"{where} is {json_kind(found)}, not a list")
    for recipient in found:
        if not isinstance(recipient, str | dict):
            raise Malformed(f"{where} holds {json_kind(recipient)}")
    return found or [None]


def _ses_tag(tags: dict[str, Any], name: str) -> Any:
    """The first value of an SES message tag (tags are lists of values)."""
    values = tags.get(name)
    return values[0] if isinstance(values, list) and values else None


def _read_event(item: dict[str, Any]) -> Read:
    """An SES event; a webhook's replay key is the SNS ``MessageId`` (``webhooks.py``)."""
    data = _ses_message(item)
    name = string(data, "eventType") or string(data, "notificationType") or ""
    kind = _ses_kind(name, data)
    if kind is None or name not in _SES_OBJECTS:
        what = f"eventType {name}" if name else None
        events, _ = unknown_event("ses", data, what)
        return events, ()
    mail = mapping(data, "mail")
    tags = mapping(mail, "tags")
    own = mapping(data, _SES_OBJECTS[name][0])
    occurred_at = iso_time(own, "timestamp") or iso_time(mail, "timestamp")
    feedback_id = string(own, "feedbackId")
    summary = _ses_summary(name, own)
    engagement = _ses_engagement(name, own)
    events = []
    for recipient in _ses_recipients(data, name, mail):
        email = recipient if isinstance(recipient, str) else None
        detail = summary
        if isinstance(recipient, dict):
            email = string(recipient, "emailAddress")
            detail = string(recipient, "diagnosticCode") or summary
        events.append(
            Event(
                provider="ses",
                kind=kind,
                email=email or None,
                provider_message_id=string(mail, "messageId"),
                provider_event_id=f"{feedback_id}:{email or ''}" if feedback_id else None,
                occurred_at=occurred_at,
                campaign=ours(_ses_tag(tags, "campaign")),
                subscriber_id=our_subscriber(_ses_tag(tags, "subscriber")),
                detail=detail,
                raw=data,
                **engagement,
            )
        )
    return events, ()


def _ses_engagement(name: str, own: dict[str, Any]) -> dict[str, str | None]:
    """A Click's ``click.link``, and a Click's or an Open's ``userAgent``."""
    if name not in ("Click", "Open"):
        return {}
    link = string(own, "link") if name == "Click" else None
    return {"url": link, "user_agent": string(own, "userAgent")}


def _ses_summary(name: str, own: dict[str, Any]) -> str | None:
    """What the event's own object says, in a few words."""
    if name == "Bounce":
        parts = (string(own, "bounceType"), string(own, "bounceSubType"))
    elif name == "Complaint":
        parts = (string(own, "complaintFeedbackType"), string(own, "complaintSubType"))
    elif name == "DeliveryDelay":
        parts = (string(own, "delayType"),)
    elif name == "Reject":
        parts = (string(own, "reason"),)
    elif name == "Rendering Failure":
        parts = (string(own, "errorMessage"),)
    elif name == "Click":
        parts = (string(own, "link"),)
    elif name == "Delivery":
        parts = (string(own, "smtpResponse"),)
    elif name == "Subscription":
        parts = (string(own, "contactList"),)
    else:
        parts = ()
    return " ".join(p for p in parts if p) or None


# -- webhooks: SNS messages of our topic --------------------------------------------------
SNS_MAX_AGE = 7 * 24 * 3600  # SNS retries keep a message's Timestamp: past those, well
# within the 30 days replay keys are kept
_SNS_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,100}")
_SNS_AUTH_FIELDS = ("Signature", "SignatureVersion", "SigningCertURL")


def _webhook_key(secret: str) -> frozenset[str]:
    topics = frozenset(part.strip() for part in secret.split(",") if part.strip())
    if not topics or not all(sns.topic_region(topic) for topic in topics):
        raise ValueError(
            "it must be the ARN of the SNS topic SES publishes events to "
            "(arn:aws:sns:REGION:ACCOUNT:TOPIC), or several separated by commas"
        )
    return topics


def _sns_message(request: Request) -> tuple[dict[str, Any], str]:
    """The request's SNS message and its Type, every field the signature covers a string
    (the Subject may be null)."""
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
    return message, kind


def _check_webhook(topics: frozenset[str], request: Request) -> tuple[str, ...]:
    message, kind = _sns_message(request)
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


# -- the provider -------------------------------------------------------------------------
def _build(setup: Setup) -> SESTransport:
    http = setup.http()
    return SESTransport(
        region=setup.option("region"),
        configuration_set=configuration_set(setup),
        **http,
    )


def configuration_set(setup: Setup) -> str | None:
    """The configuration set every message names. SES has no per-message tracking
    option: it follows clicks and opens when the message's configuration set publishes
    Click and Open events. So with ``[tracking]`` on, messages name
    ``tracking_configuration_set`` (a ConfigError when unset); with it off, they name
    ``configuration_set``, which names a set explicitly, so that no default
    configuration set of the sending identity applies."""
    tracking = setup.tracking
    if not tracking.any:
        return setup.option("configuration_set")
    chosen = setup.option("tracking_configuration_set")
    if not chosen:
        on = " and ".join(k for k in ("clicks", "opens") if getattr(tracking, k))
        raise ConfigError(
            f"[tracking] {on} is on, but [delivery] tracking_configuration_set is not set in "
            f"{setup.settings.path}; SES tracks clicks and opens only through a "
            "configuration set.",
            'Set tracking_configuration_set = "newsletter-tracking" under [delivery]: an SES '
            "configuration set whose event destination publishes Open and Click events "
            "(besides those of configuration_set), or turn [tracking] off.",
        )
    return str(chosen)


PROVIDER = Provider(
    name="ses",
    transport=SESTransport,
    build=_build,
    # configuration_set: the set messages name with [tracking] off (its destinations
    # publish no Open or Click); tracking_configuration_set: with [tracking] on
    options=(
        Option("region"),
        Option("configuration_set"),
        Option("tracking_configuration_set"),
    ),
    # read by botocore, as the AWS tools do (or AWS_PROFILE, or the machine's role)
    secrets=(
        Secret("AWS_ACCESS_KEY_ID", "to send through Amazon SES"),
        Secret("AWS_SECRET_ACCESS_KEY", "to send through Amazon SES"),
    ),
    webhook=Verifier(_webhook_key, _check_webhook, legacy=False),  # came after the old variable
    read_event=_read_event,
)
