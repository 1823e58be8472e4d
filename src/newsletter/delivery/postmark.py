"""Postmark's batch API: up to 500 messages a request, one result per message."""

from __future__ import annotations

import json
from typing import Any

import requests

from ..errors import CredentialsError, DeliveryError
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from .base import HTTPRequest, HTTPTransport, json_array, json_or_none, results

# Postmark API error codes (postmarkapp.com/developer/api/overview#error-codes).
_INACTIVE = 406
_INVALID_REQUEST = 300
_ACCOUNT = {
    10: "the server token was refused",
    405: "the account is not allowed to send",
    412: "the account is pending approval",
    413: "the account may not send",
}


class PostmarkTransport(HTTPTransport):
    name = "postmark"
    provider = "Postmark"
    max_batch = 500
    default_base_url = "https://api.postmarkapp.com"
    credentials_hint = (
        "Set NEWSLETTER_API_KEY to the Server API token of the Postmark server that sends "
        "this newsletter (Postmark > Servers > API Tokens)."
    )

    def __init__(self, token: str, message_stream: str = "broadcast", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.headers = {
            "X-Postmark-Server-Token": token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.message_stream = message_stream

    def payload_json(self, message: OutgoingMessage) -> bytes:
        """One message as JSON, its bodies joined from pieces escaped once per campaign."""
        factory = message.factory
        compiled = factory.compiled
        headers = [
            {"Name": k, "Value": v}
            for k, v in {**message.list_headers(), "Message-ID": message.message_id}.items()
        ]
        fields: dict[str, Any] = {
            "From": factory.sender_display,
            "To": message.to_display,
            "Subject": message.subject,
            "MessageStream": self.message_stream,
            "Tag": compiled.slug[:1000],
            "Headers": headers,
            "Metadata": {
                "campaign": compiled.slug,
                "subscriber": str(message.recipient.subscriber_id),
            },
            "TrackOpens": False,
            "TrackLinks": "None",
        }
        if factory.reply_to_display:
            fields["ReplyTo"] = factory.reply_to_display
        head = json.dumps(fields, ensure_ascii=False)[:-1].encode("utf-8")
        return b"".join(
            (
                head,
                b', "HtmlBody": "',
                message.html_json(),
                b'", "TextBody": "',
                message.text_json(),
                b'"}',
            )
        )

    def build_request(self, messages: list[OutgoingMessage]) -> HTTPRequest:
        return HTTPRequest(
            "/email/batch", json_array(self.payload_json(m) for m in messages), self.headers
        )

    def parse_response(
        self, response: requests.Response, messages: list[OutgoingMessage]
    ) -> list[SendResult]:
        data = json_or_none(response)
        code = data.get("ErrorCode") if isinstance(data, dict) else None
        if code in _ACCOUNT:
            raise CredentialsError(
                f"Postmark refused the request (HTTP {response.status_code}: {_ACCOUNT[code]}).",
                f"{self.credentials_hint} Nothing was sent.",
            )
        if response.status_code != 200:
            raise DeliveryError(
                f"Postmark rejected the batch (HTTP {response.status_code}: {_message(data)}).",
                "Nothing in this batch was sent. Fix the cause and run the same send again.",
            )
        if not isinstance(data, list) or len(data) != len(messages):
            return results(
                messages,
                DeliveryStatus.UNKNOWN,
                "Postmark answered 200 but not with one result per message: "
                f"{response.text[:200]!r}",
            )
        return [self._result(m, item) for m, item in zip(messages, data, strict=True)]

    @staticmethod
    def _result(message: OutgoingMessage, item: Any) -> SendResult:
        sid = message.recipient.subscriber_id
        if not isinstance(item, dict):
            return SendResult(
                sid, DeliveryStatus.UNKNOWN, error=f"unreadable result {item!r}", raw=item
            )
        code = item.get("ErrorCode")
        if code == 0 and item.get("MessageID"):
            return SendResult(sid, DeliveryStatus.SENT, message_id=str(item["MessageID"]), raw=item)
        error = f"Postmark {code}: {item.get('Message', '')}"
        if code == _INACTIVE:
            return SendResult(sid, DeliveryStatus.REJECTED, error=error, suppress=True, raw=item)
        if code == _INVALID_REQUEST:
            bad_address = "address" in str(item.get("Message", "")).lower()
            return SendResult(
                sid, DeliveryStatus.INVALID, error=error, suppress=bad_address, raw=item
            )
        return SendResult(sid, DeliveryStatus.FAILED, error=error, raw=item)


def _message(data: Any) -> str:
    if isinstance(data, dict):
        return f"{data.get('ErrorCode', '?')} {data.get('Message', '')}".strip()
    return "no readable error message"
