"""Postmark's batch API: up to 500 messages a request, one result per message."""

from __future__ import annotations

import json
from typing import Any

from ..errors import CredentialsError, DeliveryError
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from .base import HTTPTransport, Unknowable, json_or_none, unknown_results

# Postmark API error codes, per message (https://postmarkapp.com/developer/api/overview).
_INACTIVE = 406
_INVALID = {300}
_ACCOUNT = {
    10: "the server token was refused",
    405: "the account is not allowed to send",
    412: "the account is pending approval",
    413: "the account may not send",
}


class PostmarkTransport(HTTPTransport):
    name = "postmark"
    max_batch = 500
    default_base_url = "https://api.postmarkapp.com"

    def __init__(
        self,
        token: str,
        base_url: str = default_base_url,
        message_stream: str = "broadcast",
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, **kwargs)
        self._headers = {
            "X-Postmark-Server-Token": token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.message_stream = message_stream

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        compiled = message.factory.compiled
        item: dict[str, Any] = {
            "From": compiled.sender_display,
            "To": message.to_display,
            "Subject": message.subject,
            "HtmlBody": message.html,
            "TextBody": message.text,
            "MessageStream": self.message_stream,
            "Tag": compiled.slug[:1000],
            "Headers": [
                {"Name": k, "Value": v}
                for k, v in {**message.list_headers(), "Message-ID": message.message_id}.items()
            ],
            "Metadata": {
                "campaign": compiled.slug,
                "subscriber": str(message.recipient.subscriber_id),
            },
            "TrackOpens": False,
            "TrackLinks": "None",
        }
        if compiled.reply_to:
            item["ReplyTo"] = compiled.reply_to
        return item

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        body = json.dumps([self.payload(m) for m in messages], ensure_ascii=False).encode()
        try:
            response = self.post("/email/batch", body, self._headers)
        except Unknowable as exc:
            return unknown_results(messages, str(exc))
        data = json_or_none(response)
        if response.status_code == 401 or (
            isinstance(data, dict) and data.get("ErrorCode") in _ACCOUNT
        ):
            reason = _ACCOUNT.get(data.get("ErrorCode") if isinstance(data, dict) else 10, "")
            raise CredentialsError(
                f"Postmark refused the request (HTTP {response.status_code}: "
                f"{reason or _message(data)}).",
                "Set NEWSLETTER_API_KEY to the Server API token of the Postmark server that "
                "sends this newsletter (Postmark > Servers > API Tokens). Nothing was sent.",
            )
        if response.status_code != 200:
            raise DeliveryError(
                f"Postmark rejected the batch (HTTP {response.status_code}: {_message(data)}).",
                "Nothing in this batch was sent. Fix the cause and run the same send again.",
            )
        if not isinstance(data, list) or len(data) != len(messages):
            return unknown_results(
                messages,
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
        if code in _INVALID:
            return SendResult(sid, DeliveryStatus.INVALID, error=error, raw=item)
        return SendResult(sid, DeliveryStatus.FAILED, error=error, raw=item)


def _message(data: Any) -> str:
    if isinstance(data, dict):
        return f"{data.get('ErrorCode', '?')} {data.get('Message', '')}".strip()
    return "no readable error message"
