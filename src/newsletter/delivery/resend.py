"""Resend's batch API: up to 100 emails a request, an Idempotency-Key per batch.

The key is derived from the campaign and the batch's recipients, so a retry
after a timeout or a dropped connection is recognised by Resend and never
delivers twice; ``x-batch-validation: permissive`` makes one bad address fail
alone instead of the whole batch.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from typing import Any

import requests

from ..errors import DeliveryError
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from .base import HTTPRequest, HTTPTransport, json_array, json_or_none, results
from .retry import TryAgain

_TAG_VALUE = re.compile(r"[^A-Za-z0-9_-]")


class ResendTransport(HTTPTransport):
    name = "resend"
    provider = "Resend"
    max_batch = 100
    default_base_url = "https://api.resend.com"
    idempotent_requests = True
    credentials_hint = "Set NEWSLETTER_API_KEY to a Resend API key with sending access (re_...)."

    def __init__(self, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "x-batch-validation": "permissive",
        }

    @staticmethod
    def idempotency_key(messages: list[OutgoingMessage]) -> str:
        compiled = messages[0].factory.compiled
        ids = ",".join(f"{m.recipient.subscriber_id}:{m.recipient.email}" for m in messages)
        # a test copy is meant to arrive each time it is asked for
        nonce = secrets.token_hex(8) if messages[0].factory.test else ""
        digest = hashlib.sha256(f"{compiled.slug}\n{ids}\n{nonce}".encode())
        return f"nl-{_TAG_VALUE.sub('-', compiled.slug)[:100]}-{digest.hexdigest()[:40]}"

    def email_json(self, message: OutgoingMessage) -> bytes:
        factory = message.factory
        compiled = factory.compiled
        fields: dict[str, Any] = {
            "from": factory.sender_display,
            "to": [message.to_display],
            "subject": message.subject,
            "headers": {**message.list_headers(), "Message-ID": message.message_id},
            "tags": [
                {"name": "campaign", "value": _TAG_VALUE.sub("_", compiled.slug)[:256]},
                {"name": "subscriber", "value": str(message.recipient.subscriber_id)},
            ],
        }
        if factory.reply_to_display:
            fields["reply_to"] = factory.reply_to_display
        head = json.dumps(fields, ensure_ascii=False)[:-1].encode("utf-8")
        return b"".join(
            (head, b', "html": "', message.html_json(), b'", "text": "', message.text_json(), b'"}')
        )

    def post(self, request: HTTPRequest) -> requests.Response:
        """As the base, and a 409 ``concurrent_idempotent_requests`` (the same batch still
        in progress at Resend, after a timeout) is waited out and asked again."""

        def attempt(_number: int) -> requests.Response:
            response = HTTPTransport.post(self, request)
            data = json_or_none(response) if response.status_code == 409 else None
            if isinstance(data, dict) and data.get("name") == "concurrent_idempotent_requests":
                raise TryAgain("Resend is still working on this batch", outcome=response)
            return response

        return self.retry.run(attempt, lambda last, _attempts: last.outcome, self.notify_retry)

    def build_request(self, messages: list[OutgoingMessage]) -> HTTPRequest:
        headers = {**self.headers, "Idempotency-Key": self.idempotency_key(messages)}
        return HTTPRequest(
            "/emails/batch", json_array(self.email_json(m) for m in messages), headers
        )

    def parse_response(
        self, response: requests.Response, messages: list[OutgoingMessage]
    ) -> list[SendResult]:
        data = json_or_none(response)
        if response.status_code not in (200, 201, 202):
            name = data.get("name") if isinstance(data, dict) else None
            message = data.get("message") if isinstance(data, dict) else response.text[:200]
            raise DeliveryError(
                f"Resend rejected the batch (HTTP {response.status_code} {name or ''}: {message}).",
                "Nothing in this batch was sent. Fix the cause and run the same send again.",
            )
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            return results(
                messages,
                DeliveryStatus.UNKNOWN,
                f"Resend answered without results: {response.text[:200]!r}",
            )
        errors = {
            e.get("index"): str(e.get("message"))
            for e in data.get("errors") or []
            if isinstance(e, dict)
        }
        ids = iter(data["data"])
        out = []
        for index, message in enumerate(messages):
            sid = message.recipient.subscriber_id
            if index in errors:
                error = errors[index]
                bad_address = "email" in error.lower() or "address" in error.lower()
                out.append(
                    SendResult(
                        sid,
                        DeliveryStatus.INVALID if bad_address else DeliveryStatus.FAILED,
                        error=f"Resend: {error}",
                        suppress=bad_address,
                    )
                )
                continue
            item = next(ids, None)
            if not isinstance(item, dict) or not item.get("id"):
                out.append(SendResult(sid, DeliveryStatus.UNKNOWN, error="Resend returned no id"))
                continue
            out.append(SendResult(sid, DeliveryStatus.SENT, message_id=str(item["id"]), raw=item))
        return out
