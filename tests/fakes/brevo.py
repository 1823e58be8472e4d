"""Local fake of Brevo's transactional email API (``POST /v3/smtp/email``) for tests.

Enforces the documented contract: the ``api-key`` header, a JSON body, ``sender`` and a
subject and content (or a ``templateId``), ``to`` (ignored when ``messageVersions`` is
given), 1..1000 message versions of 1..99 recipients each and 2000 in all, ``params`` of
at most 100 KB a version and 1000 KB in all, header values that are strings. Answers
201 ``{"messageId"}`` for one message, ``{"messageIds": [...]}`` (one per version, in
order) for versions. Errors always look like ``{"code": "...", "message": "..."}``; the
account's state (``credits``, ``state``) gives 402 and 403; ``rate_limit`` (requests a
minute) gives 429 with the ``x-sib-ratelimit-*`` headers. Faults: see :mod:`fakes.base`.
"""

import json
import threading
import uuid
from typing import Any, ClassVar

from .base import FakeProvider, Fault, Incoming, RateWindow, Reply, is_email, media_type
from .contract import Contract, Delivered, from_record

__all__ = [
    "MAX_PARAMS_BYTES",
    "MAX_RECIPIENTS",
    "MAX_TOTAL_PARAMS_BYTES",
    "MAX_VERSIONS",
    "MAX_VERSION_RECIPIENTS",
    "SEND_PATH",
    "FakeBrevo",
]

SEND_PATH = "/v3/smtp/email"
MAX_VERSIONS = 1000
MAX_VERSION_RECIPIENTS = 99
MAX_RECIPIENTS = 2000
MAX_PARAMS_BYTES = 100 * 1024
MAX_TOTAL_PARAMS_BYTES = 1000 * 1024
MAX_BODY_BYTES = 100 * 1024 * 1024
_VERSION_FIELDS = frozenset(
    {"to", "params", "bcc", "cc", "replyTo", "subject", "htmlContent", "textContent", "headers"}
)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"code": code, "message": message}, headers or {})


class _Invalid(Exception):
    def __init__(self, message: str, code: str = "invalid_parameter") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class FakeBrevo(FakeProvider):
    """A local HTTP server that mimics Brevo's ``POST /v3/smtp/email``.

    Mutable configuration: ``api_key``, ``credits`` (emails the account may still send,
    None = unlimited), ``state`` ("active", "under_validation" or "no_permission"),
    ``rate_limit`` (requests a minute, None = off), plus ``latency``, ``max_body_bytes``
    and ``faults``. Recordings: ``requests``, ``accepted`` (one record per message version:
    ``to`` (addresses), ``name``, ``subject``, ``html``, ``text``, ``headers`` (the top
    level's and the version's), ``tags``, ``sender``, ``reply_to``, ``id``), ``errors``.
    """

    name: ClassVar[str] = "FakeBrevo"
    default_max_body_bytes: ClassVar[int] = MAX_BODY_BYTES

    def __init__(
        self,
        api_key: str = "xkeysib-test",
        *,
        credits: int | None = None,
        rate_limit: int | None = None,
        latency: float = 0.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        keep_bodies: bool = True,
    ) -> None:
        super().__init__(latency=latency, max_body_bytes=max_body_bytes, keep_bodies=keep_bodies)
        self.api_key = api_key
        self.credits = credits
        self.state = "active"
        self.window = RateWindow(60.0, rate_limit)  # requests a minute
        self._lock_credits = threading.Lock()

    # -- provider hooks -------------------------------------------------------------

    def is_send_endpoint(self, req: Incoming) -> bool:
        return req.method == "POST" and req.path == SEND_PATH

    def error_reply(self, status: int, message: str) -> Reply:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "document_too_large"}
        return _error(status, codes.get(status, "internal_error"), message)

    def handle_other(self, req: Incoming) -> Reply:
        if req.path == SEND_PATH:
            return _error(405, "method_not_allowed", f"{req.method} is not allowed here")
        return super().handle_other(req)

    def handle_send(self, req: Incoming) -> Reply:
        key = req.headers.get("api-key")
        if not key:
            return _error(401, "unauthorized", "Key not found")
        if key != self.api_key:
            return _error(401, "unauthorized", "API Key is not enabled")
        if self.state == "under_validation":
            return _error(
                403,
                "account_under_validation",
                "Your account is under validation. Please contact our support team.",
            )
        if self.state == "no_permission":
            return _error(403, "permission_denied", "Unable to send email. Permission denied.")
        limited = self._rate_limited()
        if limited is not None:
            return limited
        if media_type(req.headers.get("Content-Type")) != "application/json":
            return _error(406, "not_acceptable", "Content-Type must be application/json")
        body = req.body
        if isinstance(body, bytes) or not isinstance(body, dict):
            return _error(400, "bad_request", "Input must be a valid JSON object")
        try:
            messages = _messages(body)
        except _Invalid as exc:
            return _error(400, exc.code, exc.message)
        with self._lock_credits:
            if self.credits is not None:
                if self.credits < len(messages):
                    return _error(402, "not_enough_credits", "Not enough credits to send")
                self.credits -= len(messages)
        ids = [f"<{uuid.uuid4().hex}@smtp-relay.mailin.fr>" for _ in messages]
        self._accept(
            self._entry(m["to"], i, lambda m=m, i=i: {**m, "id": i})
            for m, i in zip(messages, ids, strict=True)
        )
        if "messageVersions" in body:
            return self._with_rate_headers(Reply(201, {"messageIds": ids}))
        return self._with_rate_headers(Reply(201, {"messageId": ids[0]}))

    # -- rate limits ------------------------------------------------------------------

    def _rate_limited(self) -> Reply | None:
        wait = self.window.take()
        if wait is None:
            return None
        return _error(
            429,
            "too_many_requests",
            "The expected rate limit is exceeded.",
            {
                "x-sib-ratelimit-limit": str(self.window.limit),
                "x-sib-ratelimit-remaining": "0",
                "x-sib-ratelimit-reset": str(wait),
            },
        )

    def _with_rate_headers(self, reply: Reply) -> Reply:
        return self.window.annotated(reply, "x-sib-ratelimit-", 60)


# -- the request's contract -------------------------------------------------------------


def _people(value: Any, field: str, limit: int | None = None) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise _Invalid(f"{field} is missing or empty", "missing_parameter")
    if limit is not None and len(value) > limit:
        raise _Invalid(f"{field} may hold at most {limit} recipients")
    for person in value:
        _person(person, field)
    return value


def _person(person: Any, field: str) -> None:
    if not isinstance(person, dict) or not isinstance(person.get("email"), str):
        raise _Invalid(f"email is missing in {field}", "missing_parameter")
    if not is_email(person["email"]):
        raise _Invalid(f"email is not valid in {field}")
    name = person.get("name")
    if name is not None and not isinstance(name, str):
        raise _Invalid(f"name is not valid in {field}")


def _text(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise _Invalid(f"{field} is not valid")
    return value


def _headers(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
    ):
        raise _Invalid(f"{field} must be an object of string values")
    return value


def _params_size(value: Any, field: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, dict):
        raise _Invalid(f"{field} must be an object")
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_PARAMS_BYTES:
        raise _Invalid(f"{field} must not exceed 100 KB")
    return size


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages a request sends, one per version (or one); _Invalid when it breaks
    the contract, and then nothing is sent."""
    templated = body.get("templateId") is not None
    sender = body.get("sender")
    if sender is None and not templated:
        raise _Invalid("sender is missing", "missing_parameter")
    if sender is not None:
        _person(sender, "sender")
    subject, html, text = (_text(body, f) for f in ("subject", "htmlContent", "textContent"))
    if not templated and not subject:
        raise _Invalid("subject is missing", "missing_parameter")
    if not templated and not (html or text):
        raise _Invalid("htmlContent or textContent is missing", "missing_parameter")
    if body.get("replyTo") is not None:
        _person(body["replyTo"], "replyTo")
    headers = _headers(body.get("headers"), "headers")
    tags = body.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise _Invalid("tags must be an array of strings")
    total_params = _params_size(body.get("params"), "params")
    common = {
        "sender": sender,
        "reply_to": body.get("replyTo"),
        "tags": tags or [],
    }
    versions = body.get("messageVersions")
    if versions is None:  # one message to `to`
        to = _people(body.get("to"), "to", MAX_RECIPIENTS)
        version = {"to": to}
        return [_message(common, version, subject, html, text, headers)]
    if not isinstance(versions, list) or not versions:
        raise _Invalid("messageVersions must be a non-empty array")
    if len(versions) > MAX_VERSIONS:
        raise _Invalid(f"messageVersions may hold at most {MAX_VERSIONS} versions")
    recipients = 0
    out = []
    for i, version in enumerate(versions):
        where = f"messageVersions[{i}]"
        if not isinstance(version, dict):
            raise _Invalid(f"{where} must be an object")
        unknown = set(version) - _VERSION_FIELDS
        if unknown:
            raise _Invalid(f"{where}.{sorted(unknown)[0]} is not a valid field")
        # a bad address is named as Brevo names it: by its field, not by its version
        to = _people(version.get("to"), "to", MAX_VERSION_RECIPIENTS)
        recipients += len(to)
        if recipients > MAX_RECIPIENTS:
            raise _Invalid(f"a request may hold at most {MAX_RECIPIENTS} recipients in all")
        for field in ("cc", "bcc"):
            if version.get(field) is not None:
                recipients += len(_people(version[field], field))
        total_params += _params_size(version.get("params"), f"{where}.params")
        if total_params > MAX_TOTAL_PARAMS_BYTES:
            raise _Invalid("params of all versions must not exceed 1000 KB in all")
        v_subject, v_html, v_text = (
            _text(version, f) for f in ("subject", "htmlContent", "textContent")
        )
        v_headers = {**headers, **_headers(version.get("headers"), f"{where}.headers")}
        out.append(
            _message(
                common,
                version,
                v_subject or subject,
                v_html if v_html is not None else html,
                v_text if v_text is not None else text,
                v_headers,
            )
        )
    return out


def _message(
    common: dict[str, Any],
    version: dict[str, Any],
    subject: str | None,
    html: str | None,
    text: str | None,
    headers: dict[str, str],
) -> dict[str, Any]:
    return {
        **common,
        "to": [p["email"] for p in version["to"]],
        "name": [p.get("name") for p in version["to"]],
        "copies": [p["email"] for f in ("cc", "bcc") for p in version.get(f) or []],
        "subject": subject,
        "html": html or "",
        "text": text or "",
        "headers": headers,
    }


# -- for the shared contract tests (test_transports.py) -----------------------------------
class BrevoContract(Contract):
    transport, label, status, batch_limit = "brevo", "Brevo", "sent", MAX_VERSIONS
    env: ClassVar = {"NEWSLETTER_API_KEY": "xkeysib-right"}
    wrong_env: ClassVar = {"NEWSLETTER_API_KEY": "xkeysib-wrong-4711"}
    wrong_secret, missing_names = "xkeysib-wrong-4711", "NEWSLETTER_API_KEY"
    batching = (1203, [3] + [100] * 12)  # claimed 1,000 at a time, posted 100 a request
    # a 400 for the whole request, naming no version: halves are sent until it is found
    refuses_typo = ("invalid", "Brevo: email is not valid in to", [11, 5, 6, 3, 3, 1, 2, 1, 1])
    fake: FakeBrevo

    def __init__(self) -> None:
        self.fake = FakeBrevo(api_key="xkeysib-right")

    def delivered(self) -> list[Delivered]:
        return [from_record(m, m["to"], m["copies"]) for m in self.fake.accepted]

    def request_sizes(self) -> list[int]:
        return [len(r.body["messageVersions"]) for r in self.fake.send_requests()]

    def rate_limited(self) -> Fault:
        return (
            "status",
            429,
            {"code": "too_many_requests", "message": "The expected rate limit is exceeded."},
            {
                "x-sib-ratelimit-limit": "100",
                "x-sib-ratelimit-remaining": "0",
                "x-sib-ratelimit-reset": "0",
            },
        )

    def server_error(self) -> Fault:
        return ("status", 500, {"code": "internal_error", "message": "Internal server error"})
