"""Local fake of Postmark's batch email API (``POST /email/batch``) for tests.

The fake enforces the documented request contract, records every request and
every accepted message, and supports fault injection (see :mod:`fakes.base`)::

    with FakePostmark(token="t") as pm:
        pm.faults.append(("status", 429, {"ErrorCode": 429, "Message": "Slow down"},
                          {"Retry-After": "1"}))
        client.send(base_url=pm.url, token="t", ...)
        assert pm.accepted_to() == ["a@example.com"]
"""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from .base import (
    FakeProvider,
    Fault,
    Incoming,
    RecordedRequest,
    Reply,
    bare_address,
    looks_like_email,
    media_type,
    split_addresses,
)
from .contract import Contract, Delivered

__all__ = [
    "BATCH_PATH",
    "DEFAULT_STREAMS",
    "MAX_BATCH_MESSAGES",
    "MAX_BODY_BYTES",
    "MAX_RECIPIENTS",
    "TRACK_LINKS",
    "FakePostmark",
    "Fault",
    "RecordedRequest",
]

BATCH_PATH = "/email/batch"
MAX_BATCH_MESSAGES = 500
MAX_RECIPIENTS = 50
MAX_BODY_BYTES = 50 * 1024 * 1024
DEFAULT_STREAMS = frozenset({"outbound", "broadcast"})
# TrackLinks values (postmark.js models/message/SupportingTypes.ts, LinkTrackingOptions)
TRACK_LINKS = ("None", "HtmlAndText", "HtmlOnly", "TextOnly")

_BAD_TOKEN = {"ErrorCode": 10, "Message": "Request does not contain a valid Server API token."}
_INVALID_JSON = {"ErrorCode": 402, "Message": "Received invalid JSON input."}
_INACTIVE_MSG = (
    "You tried to send to a recipient that has been marked as inactive. "
    "Found inactive addresses: {addrs}. Inactive recipients are ones that have generated "
    "a hard bounce, a spam complaint, or a manual suppression."
)


def _error(code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"ErrorCode": code, "Message": message, **extra}


class FakePostmark(FakeProvider):
    """A local HTTP server that mimics Postmark's ``POST /email/batch`` endpoint.

    Mutable configuration: ``token``, ``streams``, ``inactive`` (lowercase emails),
    ``latency`` (seconds slept per request), ``max_body_bytes`` and ``faults`` (FIFO).
    Recordings: ``requests``, ``accepted`` (message dicts plus ``"_MessageID"``; in lean
    mode ``{"to": To, "id": MessageID}``) and ``errors`` (unexpected exceptions raised
    inside the handler).
    """

    name: ClassVar[str] = "FakePostmark"
    default_max_body_bytes: ClassVar[int] = MAX_BODY_BYTES

    def __init__(
        self,
        token: str = "test-token",
        *,
        streams: Iterable[str] | None = None,
        inactive: Iterable[str] | None = None,
        latency: float = 0.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        keep_bodies: bool = True,
    ) -> None:
        super().__init__(latency=latency, max_body_bytes=max_body_bytes, keep_bodies=keep_bodies)
        self.token = token
        self.streams: set[str] = set(DEFAULT_STREAMS if streams is None else streams)
        self.inactive: set[str] = {addr.lower() for addr in inactive or ()}

    def batch_requests(self) -> list[RecordedRequest]:
        """Return the recorded ``POST /email/batch`` requests."""
        return self.send_requests()

    def accepted_to(self) -> list[str]:
        """Return the raw ``To`` value of every accepted message, in acceptance order."""
        return super().accepted_to()

    # -- provider hooks -------------------------------------------------------------

    def is_send_endpoint(self, req: Incoming) -> bool:
        return req.method == "POST" and req.path == BATCH_PATH

    def error_reply(self, status: int, message: str) -> Reply:
        return Reply(status, _error(0, message))

    def handle_send(self, req: Incoming) -> Reply:
        """Validate a batch request and accept its valid messages."""
        if req.headers.get("X-Postmark-Server-Token") != self.token:
            return Reply(401, dict(_BAD_TOKEN))
        accepts = {media_type(v) for h in req.headers.get_all("Accept") or [] for v in h.split(",")}
        if "application/json" not in accepts:
            return Reply(422, _error(300, "The 'Accept' header must include 'application/json'."))
        if media_type(req.headers.get("Content-Type")) != "application/json":
            return Reply(422, _error(300, "The 'Content-Type' header must be 'application/json'."))
        messages = req.body
        if not isinstance(messages, list):  # bytes (not JSON) or another JSON value
            return Reply(422, dict(_INVALID_JSON))
        if len(messages) > MAX_BATCH_MESSAGES:
            return Reply(422, _error(410, "Too many batch messages"))
        inactive = {addr.lower() for addr in set(self.inactive)}
        streams = set(self.streams)
        results: list[dict[str, Any]] = []
        accepted: list[dict[str, Any]] = []
        for msg in messages:
            problem = _check_message(msg, inactive, streams)
            if problem is not None:
                results.append(problem)
                continue
            message_id = str(uuid.uuid4())
            accepted.append(
                self._entry(
                    msg["To"], message_id, lambda m=msg, i=message_id: {**m, "_MessageID": i}
                )
            )
            results.append(
                {
                    "To": msg["To"],
                    "SubmittedAt": datetime.now(UTC).isoformat(),
                    "MessageID": message_id,
                    "ErrorCode": 0,
                    "Message": "OK",
                }
            )
        self._accept(accepted)
        return Reply(200, results)

    def _recipients_of(self, record: dict[str, Any]) -> list[str]:
        return [record["To"] if "To" in record else record["to"]]


def _sendable(addr: str) -> bool:
    """An address Postmark takes: no SMTPUTF8 through the API, so ASCII only (a non-ASCII
    local part is an invalid address; an internationalised domain must be in A-labels)."""
    return looks_like_email(addr) and addr.isascii()


def _check_message(msg: Any, inactive: set[str], streams: set[str]) -> dict[str, Any] | None:
    """Return a per-item error result, or None if the message is acceptable.

    Optional fields that are JSON ``null`` are treated as absent.
    """
    if not isinstance(msg, dict):
        return _error(300, "Invalid message: each batch item must be a JSON object.")

    sender = msg.get("From")
    if not isinstance(sender, str) or not sender.strip():
        return _error(300, "Invalid 'From' address: ''.")
    senders = split_addresses(sender)
    if len(senders) != 1 or not _sendable(bare_address(senders[0])):
        return _error(300, f"Invalid 'From' address: '{sender}'.")

    to = msg.get("To")
    if not isinstance(to, str) or not split_addresses(to):
        return _error(300, "Zero recipients specified")
    recipients: list[str] = []
    for field in ("To", "Cc", "Bcc"):
        value = msg.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            return _error(300, f"Invalid '{field}' address: '{value}'.")
        for entry in split_addresses(value):
            addr = bare_address(entry)
            if not _sendable(addr):
                return _error(300, f"Invalid '{field}' address: '{entry}'.")
            recipients.append(addr)
    if len(recipients) > MAX_RECIPIENTS:
        return _error(
            300,
            f"Too many recipients: {len(recipients)} "
            f"(To, Cc and Bcc may list at most {MAX_RECIPIENTS} in total).",
        )

    subject = msg.get("Subject")
    if not isinstance(subject, str) or not subject.strip():
        return _error(300, "Missing or empty 'Subject'.")

    html, text = msg.get("HtmlBody"), msg.get("TextBody")
    if any(b is not None and not isinstance(b, str) for b in (html, text)):
        return _error(300, "'HtmlBody' and 'TextBody' must be strings.")
    if not html and not text:
        return _error(300, "Provide either email TextBody or HtmlBody or both.")

    headers = msg.get("Headers")
    if headers is not None and not (
        isinstance(headers, list)
        and all(
            isinstance(h, dict)
            and isinstance(h.get("Name"), str)
            and h["Name"].strip()
            and isinstance(h.get("Value"), str)
            for h in headers
        )
    ):
        return _error(300, 'Invalid \'Headers\': expected a list of {"Name", "Value"} objects.')

    tracking = _check_tracking(msg)
    if tracking is not None:
        return tracking

    stream = msg.get("MessageStream")
    if stream is not None:
        if not isinstance(stream, str):
            return _error(300, "Invalid 'MessageStream': expected a string.")
        if stream not in streams:
            return _error(1235, "The message stream for the provided 'ID' was not found.")

    blocked = list(dict.fromkeys(a for a in recipients if a.lower() in inactive))
    if blocked:
        addrs = ", ".join(blocked)
        return _error(406, _INACTIVE_MSG.format(addrs=addrs), To=addrs)
    return None


def _check_tracking(msg: dict[str, Any]) -> dict[str, Any] | None:
    """``TrackOpens`` is a boolean; ``TrackLinks`` one of Postmark's four spellings (its
    LinkTrackingOptions; the real API refuses any other, e.g. "none" or true)."""
    opens = msg.get("TrackOpens")
    if opens is not None and not isinstance(opens, bool):
        return _error(300, f"Invalid 'TrackOpens' value: {opens!r}. It must be true or false.")
    links = msg.get("TrackLinks")
    if links is not None and links not in TRACK_LINKS:
        return _error(
            300,
            f"Invalid 'TrackLinks' value: {links!r}. It must be one of: {', '.join(TRACK_LINKS)}.",
        )
    return None


def tracking_of(message: dict[str, Any]) -> dict[str, Any]:
    """The tracking fields an accepted message carried (absent ones left out)."""
    return {k: message[k] for k in ("TrackOpens", "TrackLinks") if k in message}


# -- for the shared contract tests (test_transports.py) -----------------------------------
class PostmarkContract(Contract):
    transport, label, status, batch_limit = "postmark", "Postmark", "sent", 500
    env: ClassVar = {"NEWSLETTER_API_KEY": "pm-right"}
    wrong_env: ClassVar = {"NEWSLETTER_API_KEY": "pm-wrong-4711"}
    wrong_secret, missing_names = "pm-wrong-4711", "NEWSLETTER_API_KEY"
    batching = (1203, [203, 500, 500])
    says_when = False  # Postmark documents no Retry-After or rate-limit header
    fake: FakePostmark

    def __init__(self) -> None:
        self.fake = FakePostmark(token="pm-right")

    def delivered(self) -> list[Delivered]:
        out = []
        for m in self.fake.accepted:
            headers = {h["Name"]: h["Value"] for h in m.get("Headers") or []}
            copies = [m[f] for f in ("Cc", "Bcc") if m.get(f)]
            out.append(
                Delivered(
                    to=[bare_address(a) for a in split_addresses(m["To"])],
                    copies=[bare_address(a) for c in copies for a in split_addresses(c)],
                    text=m["TextBody"],
                    html=m["HtmlBody"],
                    list_unsubscribe=headers["List-Unsubscribe"],
                    list_unsubscribe_post=headers["List-Unsubscribe-Post"],
                    message_id=m["_MessageID"],
                )
            )
        return out

    def request_sizes(self) -> list[int]:
        return [len(r.body) for r in self.fake.send_requests()]

    def rate_limited(self) -> Fault:
        return ("status", 429, {"ErrorCode": 429, "Message": "Rate limit exceeded."})

    def server_error(self) -> Fault:
        return ("status", 500, {"ErrorCode": 0, "Message": "Internal server error."})
