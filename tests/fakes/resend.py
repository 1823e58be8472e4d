"""Local fake of Resend's batch email API (``POST /emails/batch``) for tests.

Enforces the documented contract: 1..100 emails, ``x-batch-validation`` strict (default,
all or nothing) or permissive (partial success), ``Idempotency-Key`` replays for 24 h,
and an optional per-second rate limit. Errors always look like
``{"statusCode": n, "message": "...", "name": "..."}``. Faults: see :mod:`fakes.base`.
"""

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import FakeProvider, Fault, Incoming, RateWindow, Reply, bare_address, is_email
from .contract import Contract, Delivered, from_record

__all__ = [
    "BATCH_PATH",
    "IDEMPOTENCY_TTL",
    "MAX_BATCH_EMAILS",
    "MAX_BODY_BYTES",
    "MAX_RECIPIENTS",
    "FakeResend",
]

BATCH_PATH = "/emails/batch"
MAX_BATCH_EMAILS = 100
MAX_RECIPIENTS = 50
MAX_TAGS = 75
MAX_TAG_CHARS = 256
MAX_IDEMPOTENCY_KEY = 256
IDEMPOTENCY_TTL = 24 * 3600.0
MAX_BODY_BYTES = 40 * 1024 * 1024
_TAG = re.compile(r"[A-Za-z0-9_-]+")
_NOT_IN_BATCH = ("attachments", "scheduled_at")


def _error(status: int, name: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"statusCode": status, "message": message, "name": name}, headers or {})


class _Invalid(Exception):
    def __init__(self, message: str, name: str = "validation_error") -> None:
        super().__init__(message)
        self.message = message
        self.name = name


@dataclass
class _Replay:
    digest: str
    reply: Reply
    stored_at: float


class FakeResend(FakeProvider):
    """A local HTTP server that mimics Resend's ``POST /emails/batch``.

    Mutable configuration: ``api_key``, ``rate_limit`` (requests per second, None = off),
    ``clock`` (seconds; drives the 24 h idempotency window), plus ``latency``,
    ``max_body_bytes`` and ``faults``. Recordings: ``requests``, ``accepted`` (each email
    as sent plus ``id`` and ``idempotency_key``), ``errors``. ``accepted_to()`` lists
    the bare ``to`` addresses.
    """

    name: ClassVar[str] = "FakeResend"
    default_max_body_bytes: ClassVar[int] = MAX_BODY_BYTES

    def __init__(
        self,
        api_key: str = "re_test",
        *,
        rate_limit: int | None = None,
        clock: Callable[[], float] = time.time,
        latency: float = 0.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        keep_bodies: bool = True,
    ) -> None:
        super().__init__(latency=latency, max_body_bytes=max_body_bytes, keep_bodies=keep_bodies)
        self.api_key = api_key
        self.window = RateWindow(1.0, rate_limit)  # requests a second
        self.clock = clock
        # seconds a batch stays "in progress" once its key is registered (a slow send)
        self.processing_delay = 0.0
        self._replays: dict[str, _Replay] = {}
        self._in_flight: set[str] = set()
        self._replay_lock = threading.Lock()

    def reset(self) -> None:
        """Clear recordings, faults, errors, stored idempotency keys and the rate window."""
        super().reset()
        with self._replay_lock:
            self._replays.clear()
        self.window.clear()

    # -- provider hooks -------------------------------------------------------------

    def is_send_endpoint(self, req: Incoming) -> bool:
        return req.method == "POST" and req.path == BATCH_PATH

    def error_reply(self, status: int, message: str) -> Reply:
        names = {404: "not_found", 405: "method_not_allowed", 413: "validation_error"}
        return _error(status, names.get(status, "application_error"), message)

    def handle_send(self, req: Incoming) -> Reply:
        """Authenticate, rate-limit, replay or validate and send a batch."""
        auth = req.headers.get("Authorization")
        if not auth:
            return _error(401, "missing_api_key", "Missing API key in the authorization header.")
        if auth != f"Bearer {self.api_key}":
            return _error(403, "invalid_api_key", "API key is invalid")
        key = req.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
            return _error(
                400,
                "invalid_idempotency_key",
                f"The idempotency key must be between 1 and {MAX_IDEMPOTENCY_KEY} characters.",
            )
        limited = self._rate_limited()
        if limited is not None:
            return limited
        if key is None:
            return self._with_rate_headers(self._send_batch(req, None))
        digest = hashlib.sha256(_canonical(req.body)).hexdigest()
        with self._replay_lock:
            now = self.clock()
            stored = self._replays.get(key)
            if stored is not None and now - stored.stored_at >= IDEMPOTENCY_TTL:
                stored = None
                del self._replays[key]
            if stored is None and key in self._in_flight:
                return _error(
                    409,
                    "concurrent_idempotent_requests",
                    "Same idempotency key used while original request is still in progress.",
                )
            if stored is None:
                self._in_flight.add(key)
        if stored is not None:
            if stored.digest != digest:
                return _error(
                    409,
                    "invalid_idempotent_request",
                    "Same idempotency key used with a different request payload. "
                    "Change your idempotency key or payload.",
                )
            return self._with_rate_headers(stored.reply)
        try:
            if self.processing_delay:
                time.sleep(self.processing_delay)
            reply = self._send_batch(req, key)
        except BaseException:
            with self._replay_lock:
                self._in_flight.discard(key)
            raise
        with self._replay_lock:
            self._in_flight.discard(key)
            if 200 <= reply.status < 300:  # only successes are replayed
                self._replays[key] = _Replay(digest, reply, now)
        return self._with_rate_headers(reply)

    # -- internals ------------------------------------------------------------------

    def _send_batch(self, req: Incoming, key: str | None) -> Reply:
        emails = req.body
        if isinstance(emails, bytes):
            return _error(422, "validation_error", "The request body must be valid JSON.")
        if not isinstance(emails, list) or not emails:
            return _error(422, "validation_error", "The request body must be an array of emails.")
        if len(emails) > MAX_BATCH_EMAILS:
            return _error(
                422,
                "validation_error",
                f"Too many emails: a batch may contain at most {MAX_BATCH_EMAILS} emails.",
            )
        mode = req.headers.get("x-batch-validation", "strict").strip().lower()
        if mode not in ("strict", "permissive"):
            return _error(
                422, "validation_error", "x-batch-validation must be 'strict' or 'permissive'."
            )
        problems: list[tuple[int, _Invalid]] = []
        for i, email in enumerate(emails):
            try:
                _check_email(email)
            except _Invalid as exc:
                problems.append((i, exc))
        if problems and mode == "strict":
            i, exc = problems[0]
            return _error(422, exc.name, f"emails[{i}]: {exc.message}")
        bad = {i for i, _ in problems}
        data: list[dict[str, str]] = []
        accepted: list[dict[str, Any]] = []
        for i, email in enumerate(emails):
            if i in bad:
                continue
            email_id = str(uuid.uuid4())
            data.append({"id": email_id})
            accepted.append(
                self._entry(
                    email["to"],
                    email_id,
                    lambda e=email, i=email_id: {**e, "id": i, "idempotency_key": key},
                )
            )
        self._accept(accepted)
        if mode == "strict":
            return Reply(200, {"data": data})
        errors = [{"index": i, "message": exc.message} for i, exc in problems]
        return Reply(200, {"data": data, "errors": errors})

    def _rate_limited(self) -> Reply | None:
        """Count this request; a 429 reply if it is over ``rate_limit`` per second."""
        wait = self.window.take()
        if wait is None:
            return None
        limit, reset = self.window.limit, str(wait)
        return _error(
            429,
            "rate_limit_exceeded",
            "Too many requests. You can only make "
            f"{limit} requests per second. See rate limit response headers for more "
            "information. Or contact support to increase rate limit.",
            {
                "ratelimit-limit": str(limit),
                "ratelimit-remaining": "0",
                "ratelimit-reset": reset,
                "retry-after": reset,
            },
        )

    def _with_rate_headers(self, reply: Reply) -> Reply:
        return self.window.annotated(reply, "ratelimit-", 1)


def _canonical(body: Any) -> bytes:
    """Bytes that compare equal for equal request bodies (JSON key order ignored)."""
    if isinstance(body, bytes):
        return body
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _address_list(email: dict[str, Any], field: str, *, limit: int | None = None) -> list[str]:
    value = email.get(field)
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _Invalid(f"The `{field}` field must be a string or an array of strings.")
    if limit is not None and len(values) > limit:
        raise _Invalid(f"The `{field}` field may contain at most {limit} addresses.")
    for v in values:
        if not is_email(bare_address(v)):
            raise _Invalid(
                f"Invalid `{field}` field. The email address needs to follow the "
                "`email@example.com` or `Name <email@example.com>` format."
            )
    return values


def _check_email(email: Any) -> None:
    """Raise :class:`_Invalid` if one batch item breaks the contract."""
    if not isinstance(email, dict):
        raise _Invalid("Each email must be an object.")
    for field in _NOT_IN_BATCH:
        if email.get(field) is not None:
            raise _Invalid(f"The `{field}` field is not supported in batch emails.")
    sender = email.get("from")
    if not isinstance(sender, str) or not sender:
        raise _Invalid("Missing `from` field.", "missing_required_field")
    if not is_email(bare_address(sender)):
        raise _Invalid(
            "Invalid `from` field. The email address needs to follow the `email@example.com` "
            "or `Name <email@example.com>` format.",
            "invalid_from_address",
        )
    if email.get("to") in (None, "", []):
        raise _Invalid("Missing `to` field.", "missing_required_field")
    _address_list(email, "to", limit=MAX_RECIPIENTS)
    for field in ("cc", "bcc", "reply_to"):
        _address_list(email, field)
    subject = email.get("subject")
    if not isinstance(subject, str) or not subject:
        raise _Invalid("Missing `subject` field.", "missing_required_field")
    html, text = email.get("html"), email.get("text")
    if any(v is not None and not isinstance(v, str) for v in (html, text)):
        raise _Invalid("The `html` and `text` fields must be strings.")
    if not html and not text and email.get("react") is None:
        raise _Invalid("Missing `html` or `text` field.", "missing_required_field")
    headers = email.get("headers")
    if headers is not None and not (
        isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise _Invalid("The `headers` field must be an object of string values.")
    _check_tags(email.get("tags"))


def _check_tags(tags: Any) -> None:
    if tags is None:
        return
    if not isinstance(tags, list):
        raise _Invalid("The `tags` field must be an array.")
    if len(tags) > MAX_TAGS:
        raise _Invalid(f"Too many tags: at most {MAX_TAGS}.")
    for tag in tags:
        if not isinstance(tag, dict) or not isinstance(tag.get("name"), str):
            raise _Invalid("Each tag must be an object with a `name`.", "missing_required_field")
        for part in ("name", "value"):
            value = tag.get(part)
            if value is None and part == "value":
                continue
            if (
                not isinstance(value, str)
                or len(value) > MAX_TAG_CHARS
                or _TAG.fullmatch(value) is None
            ):
                raise _Invalid(
                    f"Invalid tag {part} {value!r}: tags may only contain ASCII letters "
                    f"(a-z, A-Z), numbers (0-9), underscores (_), or dashes (-), and be at "
                    f"most {MAX_TAG_CHARS} characters long."
                )


# -- for the shared contract tests (test_transports.py) -----------------------------------
class ResendContract(Contract):
    transport, label, status, batch_limit = "resend", "Resend", "sent", 100
    env: ClassVar = {"NEWSLETTER_API_KEY": "re_right"}
    wrong_env: ClassVar = {"NEWSLETTER_API_KEY": "re_wrong_4711"}
    wrong_secret, missing_names = "re_wrong_4711", "NEWSLETTER_API_KEY"
    batching = (250, [50, 100, 100])
    idempotent = True
    # in permissive mode it sends the rest and reports the bad one by its index
    refuses_typo = ("invalid", "Resend: Invalid `to` field.", [11])
    fake: FakeResend

    def __init__(self) -> None:
        self.fake = FakeResend(api_key="re_right")

    def delivered(self) -> list[Delivered]:
        return [
            from_record(
                m, [bare_address(a) for a in m["to"]], [*(m.get("cc") or []), *(m.get("bcc") or [])]
            )
            for m in self.fake.accepted
        ]

    def request_sizes(self) -> list[int]:
        return [len(r.body) for r in self.fake.send_requests()]

    def rate_limited(self) -> Fault:
        # ratelimit-reset and retry-after are seconds from now
        return (
            "status",
            429,
            {"statusCode": 429, "message": "Too many requests.", "name": "rate_limit_exceeded"},
            {
                "ratelimit-limit": "2",
                "ratelimit-remaining": "0",
                "ratelimit-reset": "0",
                "retry-after": "0",
            },
        )

    def server_error(self) -> Fault:
        body = {"statusCode": 500, "message": "Internal error", "name": "internal_server_error"}
        return ("status", 500, body)
