"""Local fake of Amazon SES v2 ``SendEmail`` (``POST /v2/email/outbound-emails``) for tests.

Verifies AWS Signature Version 4 for real, by recomputing it with botocore over the
request as received, and enforces the documented body contract (Simple, Raw or Template
content, 50 recipients, 15 headers, tag syntax, 1000-character raw lines, an ASCII
header section and ASCII addresses (a non-ASCII local part is refused, a domain must
be in A-labels), sandbox ``verified`` identities). Errors carry ``X-Amzn-ErrorType`` and ``{"message": ...}``.
Faults: see :mod:`fakes.base`; throttling looks like::

    ("status", 429, {"message": "Maximum sending rate exceeded."},
     {"X-Amzn-ErrorType": "TooManyRequestsException"})
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any, ClassVar

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .base import FakeProvider, Fault, Incoming, Reply, bare_address, is_email
from .contract import Contract, Delivered

__all__ = [
    "MAX_HEADERS",
    "MAX_RAW_BYTES",
    "MAX_RECIPIENTS",
    "SEND_PATH",
    "FakeSES",
]

SEND_PATH = "/v2/email/outbound-emails"
SERVICE = "ses"
MAX_RECIPIENTS = 50
MAX_HEADERS = 15
MAX_LINE = 1000  # characters per raw message line, CRLF included
MAX_RAW_BYTES = 40 * 1024 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024  # a 40 MB raw message, base64-encoded, in JSON
MAX_CLOCK_SKEW = 15 * 60
_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]{64})"
)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


class _Rejected(Exception):
    """An error answer: HTTP status, ``X-Amzn-ErrorType`` and message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def _bad(message: str) -> _Rejected:
    return _Rejected(400, "BadRequestException", message)


def _rejected(message: str) -> _Rejected:
    return _Rejected(400, "MessageRejected", message)


def _aws_reply(status: int, body: Any, kind: str | None = None) -> Reply:
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if kind is not None:
        headers["X-Amzn-ErrorType"] = kind
    return Reply(status, body, headers)


class FakeSES(FakeProvider):
    """A local HTTP server that mimics SES v2 ``POST /v2/email/outbound-emails``.

    Mutable configuration: ``access_key``, ``secret_key``, ``region``, ``verified``
    (None = production access; else a sandbox where every recipient must be one of
    these addresses or domains), ``configuration_sets`` (None = any name), plus ``latency``, ``max_body_bytes`` and ``faults``.
    Recordings: ``requests``, ``accepted`` (``to``, ``cc``, ``bcc``, ``from``,
    ``reply_to``, ``raw`` (bytes or None), ``message`` (parsed ``EmailMessage`` or None),
    ``simple`` (dict or None), ``template`` (dict or None), ``tags`` (name -> value),
    ``configuration_set``, ``list_management``, ``id``; lean mode: ``to``/``id``),
    ``errors``.
    """

    name: ClassVar[str] = "FakeSES"
    default_max_body_bytes: ClassVar[int] = MAX_BODY_BYTES

    def __init__(
        self,
        access_key: str = "AKIDTEST",
        secret_key: str = "secret",
        region: str = "us-east-1",
        *,
        verified: Iterable[str] | None = None,
        configuration_sets: Iterable[str] | None = None,
        latency: float = 0.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        keep_bodies: bool = True,
    ) -> None:
        super().__init__(latency=latency, max_body_bytes=max_body_bytes, keep_bodies=keep_bodies)
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.verified: set[str] | None = None if verified is None else {v.lower() for v in verified}
        # the account's configuration sets (None: any name is one)
        self.configuration_sets: set[str] | None = (
            None if configuration_sets is None else set(configuration_sets)
        )

    # -- provider hooks -------------------------------------------------------------

    def is_send_endpoint(self, req: Incoming) -> bool:
        return req.method == "POST" and req.path == SEND_PATH

    def error_reply(self, status: int, message: str) -> Reply:
        kinds = {404: "NotFoundException", 413: "BadRequestException", 500: "InternalFailure"}
        return _aws_reply(status, {"message": message}, kinds.get(status, "BadRequestException"))

    def handle_send(self, req: Incoming) -> Reply:
        """Verify the signature, validate the body, record the message."""
        try:
            self._verify_signature(req)
            record = _check(req.body, self.verified, self.region)
            self._check_configuration_set(record["configuration_set"])
        except _Rejected as exc:
            return _aws_reply(exc.status, {"message": exc.message}, exc.kind)
        message_id = f"{secrets.token_hex(8)}-{uuid.uuid4()}-000000"
        self._accept([self._entry(record["to"], message_id, lambda: {**record, "id": message_id})])
        return _aws_reply(200, {"MessageId": message_id})

    def _check_configuration_set(self, name: str | None) -> None:
        """A ConfigurationSetName the account does not have is refused (SES v2:
        NotFoundException, 404), as a message sent through it would not be tracked."""
        known = self.configuration_sets
        if name is not None and known is not None and name not in known:
            raise _Rejected(404, "NotFoundException", f"Configuration set <{name}> does not exist.")

    # -- signature ------------------------------------------------------------------

    def _verify_signature(self, req: Incoming) -> None:
        """Recompute the SigV4 signature with botocore and compare."""

        def mismatch(message: str) -> _Rejected:
            return _Rejected(403, "SignatureDoesNotMatch", message)

        header = req.headers.get("Authorization")
        if not header:
            raise mismatch("Request is missing Authentication Token")
        match = _AUTH.fullmatch(header.strip())
        if match is None:
            raise mismatch(f"Authorization header is not a valid AWS4-HMAC-SHA256 one: {header}")
        parts = match["cred"].split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise mismatch(f"Invalid credential scope: {match['cred']}")
        access_key, date, region, service, _ = parts
        if access_key != self.access_key:
            raise _Rejected(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if region != self.region:
            raise mismatch(f"Credential should be scoped to a valid region, not '{region}'.")
        if service != SERVICE:
            raise mismatch(f"Credential should be scoped to correct service: '{SERVICE}'.")
        amz_date = req.headers.get("X-Amz-Date", "")
        try:
            signed_at = datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise mismatch("Missing or malformed X-Amz-Date header.") from None
        if amz_date[:8] != date:
            raise mismatch("Credential date does not match X-Amz-Date.")
        if abs(time.time() - signed_at.timestamp()) > MAX_CLOCK_SKEW:
            raise _Rejected(
                403, "InvalidSignatureException", f"Signature expired: {amz_date} is out of range."
            )
        signed = match["signed"].split(";")
        if "host" not in signed:
            raise mismatch("The host header must be signed.")
        claimed = req.headers.get("X-Amz-Content-SHA256")
        if claimed is not None and claimed != hashlib.sha256(req.raw).hexdigest():
            raise mismatch("The provided X-Amz-Content-SHA256 does not match the body.")
        headers: dict[str, str] = {}
        for name in signed:
            values = req.headers.get_all(name)
            if values is None:
                raise mismatch(f"Signed header '{name}' is missing from the request.")
            headers[name] = ",".join(values)
        url = f"http://{headers['host']}{req.target}"
        aws = AWSRequest(method=req.method, url=url, headers=headers, data=req.raw)
        aws.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key), SERVICE, self.region)
        string_to_sign = signer.string_to_sign(aws, signer.canonical_request(aws))
        expected = signer.signature(string_to_sign, aws)
        if not hmac.compare_digest(expected, match["sig"]):
            raise mismatch(
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method."
            )


# -- body validation -------------------------------------------------------------------


def _addresses(value: Any, field: str) -> list[str]:
    """Validate a list of (possibly ``Name <addr>``) addresses; return them as given."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{field} must be a list of strings.")
    for entry in value:
        if not is_email(bare_address(entry)):
            raise _rejected(f"Illegal address: {entry}")
    return value


def _check(body: Any, verified: set[str] | None, region: str) -> dict[str, Any]:
    """Validate a SendEmail body; return the record to keep (without ``id``)."""
    if isinstance(body, bytes) or not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    content = body.get("Content")
    if not isinstance(content, dict):
        raise _bad("Content is required.")
    kinds = [k for k in ("Simple", "Raw", "Template") if content.get(k) is not None]
    if len(kinds) != 1:
        raise _bad("Content must contain exactly one of Simple, Raw or Template.")

    destination = body.get("Destination")
    if destination is not None and not isinstance(destination, dict):
        raise _bad("Destination must be an object.")
    destination = destination or {}
    to = _addresses(destination.get("ToAddresses"), "ToAddresses")
    cc = _addresses(destination.get("CcAddresses"), "CcAddresses")
    bcc = _addresses(destination.get("BccAddresses"), "BccAddresses")
    sender = body.get("FromEmailAddress")

    simple = template = message = raw = None
    if kinds == ["Simple"]:
        simple = _check_simple(content["Simple"])
    elif kinds == ["Template"]:
        template = _check_template(content["Template"])
    else:
        raw, message = _check_raw(content["Raw"])
        if not (to or cc or bcc):
            to = _header_addresses(message, "To")
            cc = _header_addresses(message, "Cc")
            bcc = _header_addresses(message, "Bcc")
        if sender is None and message.get("From"):
            sender = str(message["From"])
    if not isinstance(sender, str) or not sender:
        raise _bad("FromEmailAddress is required.")
    if not is_email(bare_address(sender)):
        raise _rejected(f"Illegal address: {sender}")
    recipients = to + cc + bcc
    if not recipients:
        raise _bad("At least one recipient is required in Destination.")
    if len(recipients) > MAX_RECIPIENTS:
        raise _bad(f"Recipient count exceeds {MAX_RECIPIENTS}.")
    if verified is not None:
        unverified = [r for r in recipients if not _is_verified(bare_address(r), verified)]
        if unverified:
            raise _rejected(
                "Email address is not verified. The following identities failed the check "
                f"in region {region.upper()}: {', '.join(unverified)}"
            )

    reply_to = _addresses(body.get("ReplyToAddresses"), "ReplyToAddresses")
    tags = _check_tags(body.get("EmailTags"))
    config_set = body.get("ConfigurationSetName")
    if config_set is not None and not (isinstance(config_set, str) and config_set):
        raise _bad("ConfigurationSetName must be a non-empty string.")
    lists = body.get("ListManagementOptions")
    if lists is not None and not (
        isinstance(lists, dict)
        and isinstance(lists.get("ContactListName"), str)
        and isinstance(lists.get("TopicName", ""), str)
    ):
        raise _bad("ListManagementOptions requires a ContactListName string.")
    return {
        "to": to,
        "cc": cc,
        "bcc": bcc,
        "from": sender,
        "reply_to": reply_to,
        "raw": raw,
        "message": message,
        "simple": simple,
        "template": template,
        "tags": tags,
        "configuration_set": config_set,
        "list_management": lists,
    }


def _is_verified(addr: str, verified: set[str]) -> bool:
    addr = addr.lower()
    return addr in verified or addr.rpartition("@")[2] in verified


def _data(value: Any, field: str, *, required: bool = True) -> str | None:
    """The ``Data`` of a ``{Data, Charset}`` object."""
    if value is None and not required:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("Data"), str):
        raise _bad(f"{field}.Data is required and must be a string.")
    return value["Data"]


def _check_simple(simple: Any) -> dict[str, Any]:
    if not isinstance(simple, dict):
        raise _bad("Content.Simple must be an object.")
    _data(simple.get("Subject"), "Simple.Subject")
    body = simple.get("Body")
    if not isinstance(body, dict):
        raise _bad("Simple.Body is required.")
    text = _data(body.get("Text"), "Simple.Body.Text", required=False)
    html = _data(body.get("Html"), "Simple.Body.Html", required=False)
    if text is None and html is None:
        raise _bad("Simple.Body must contain Text, Html or both.")
    headers = simple.get("Headers")
    if headers is not None:
        if not isinstance(headers, list) or not all(
            isinstance(h, dict)
            and isinstance(h.get("Name"), str)
            and isinstance(h.get("Value"), str)
            for h in headers
        ):
            raise _bad("Simple.Headers must be a list of {Name, Value} strings.")
        if len(headers) > MAX_HEADERS:
            raise _bad(f"Simple.Headers may contain at most {MAX_HEADERS} headers.")
    return simple


def _check_template(template: Any) -> dict[str, Any]:
    if not isinstance(template, dict):
        raise _bad("Content.Template must be an object.")
    sources = [k for k in ("TemplateName", "TemplateArn", "TemplateContent") if template.get(k)]
    if len(sources) != 1:
        raise _bad("Template needs exactly one of TemplateName, TemplateArn or TemplateContent.")
    data = template.get("TemplateData")
    if data is not None:
        try:
            parsed = json.loads(data) if isinstance(data, str) else None
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise _bad("TemplateData must be a string holding a JSON object.")
    return template


def _check_raw(raw: Any) -> tuple[bytes, EmailMessage]:
    if not isinstance(raw, dict) or not isinstance(raw.get("Data"), str):
        raise _bad("Raw.Data is required and must be a base64 string.")
    try:
        data = base64.b64decode(raw["Data"], validate=True)
    except (binascii.Error, ValueError):
        raise _bad("Raw.Data is not valid base64.") from None
    if not data:
        raise _bad("Raw.Data is empty.")
    if len(data) > MAX_RAW_BYTES:
        raise _rejected(f"Message length exceeds {MAX_RAW_BYTES} bytes.")
    if not data.split(b"\r\n\r\n", 1)[0].isascii():
        # SES: header fields are 7-bit ASCII; non-ASCII text goes in MIME encoded-words
        raise _bad("The raw message has non-ASCII characters in its header section.")
    for number, line in enumerate(data.split(b"\n"), 1):
        if len(line.rstrip(b"\r")) + 2 > MAX_LINE:
            raise _rejected(
                f"Line {number} of the raw message is longer than {MAX_LINE} characters "
                "(CRLF included)."
            )
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    if not message.keys():
        raise _bad("Raw.Data does not hold an RFC 5322 message (no headers).")
    return data, message


def _header_addresses(message: EmailMessage, name: str) -> list[str]:
    values = [str(v) for v in message.get_all(name) or []]
    addrs = [addr for _, addr in getaddresses(values) if addr]
    for addr in addrs:
        if not is_email(addr):
            raise _rejected(f"Illegal address: {addr}")
    return addrs


def _check_tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, list):
        raise _bad("EmailTags must be a list.")
    out: dict[str, str] = {}
    for tag in tags:
        name = tag.get("Name") if isinstance(tag, dict) else None
        value = tag.get("Value") if isinstance(tag, dict) else None
        for part in (name, value):
            if not isinstance(part, str) or _TAG.fullmatch(part) is None:
                raise _bad(
                    f"Invalid tag {part!r}: tag names and values may contain only ASCII "
                    "letters, numbers, underscores (_) and dashes (-), at most 256 characters."
                )
        assert isinstance(name, str) and isinstance(value, str)
        out[name] = value
    return out


# -- for the shared contract tests (test_transports.py) -----------------------------------
class SESContract(Contract):
    transport, label, status, batch_limit = "ses", "SES", "sent", 1  # one SendEmail each
    env: ClassVar = {"AWS_ACCESS_KEY_ID": "AKIDRIVERBEND", "AWS_SECRET_ACCESS_KEY": "right/secret"}
    wrong_env: ClassVar = {**env, "AWS_SECRET_ACCESS_KEY": "wrong/secret/4711"}
    wrong_secret, missing_names = "wrong/secret/4711", "AWS_ACCESS_KEY_ID"
    batching = (60, [1] * 60)  # one SendEmail per message
    says_when = False  # SES throttling carries no header saying how long to wait
    refuses_typo = ("rejected", "SES MessageRejected: Illegal address", [1] * 11)
    fake: FakeSES

    def __init__(self) -> None:
        self.fake = FakeSES(
            access_key="AKIDRIVERBEND", secret_key="right/secret", region="eu-west-1"
        )

    def delivery(self) -> dict[str, Any]:
        return {**super().delivery(), "region": "eu-west-1"}

    def delivered(self) -> list[Delivered]:
        out = []
        for m in self.fake.accepted:
            message = m["message"]  # the raw MIME message as SES received it
            assert [a.addr_spec for a in message["To"].addresses] == m["to"]
            out.append(
                Delivered(
                    to=m["to"],
                    copies=m["cc"] + m["bcc"],
                    text=message.get_body(("plain",)).get_content(),
                    html=message.get_body(("html",)).get_content(),
                    list_unsubscribe=str(message["List-Unsubscribe"]),
                    list_unsubscribe_post=str(message["List-Unsubscribe-Post"]),
                    message_id=m["id"],
                )
            )
        return out

    def request_sizes(self) -> list[int]:
        return [len(r.body["Destination"]["ToAddresses"]) for r in self.fake.send_requests()]

    def rate_limited(self) -> Fault:
        return (
            "status",
            429,
            {"message": "Maximum sending rate exceeded."},
            {"X-Amzn-ErrorType": "TooManyRequestsException"},
        )

    def server_error(self) -> Fault:
        return (
            "status",
            500,
            {"message": "Internal failure."},
            {"X-Amzn-ErrorType": "InternalFailure"},
        )
