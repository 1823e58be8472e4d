"""SendGrid v3 mail/send: one body per request, one personalization per recipient.

The campaign's HTML and text go once per request with a placeholder for each
merge field; each personalization carries that recipient's values as
``substitutions``, their own List-Unsubscribe header and ``custom_args`` that
come back in events. SendGrid answers 202 with one X-Message-Id for the whole
request and reports per recipient only through events, so results are
``queued``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests

from ..errors import DeliveryError
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from .base import HTTPRequest, HTTPTransport, json_or_none, results

_BAD_EMAIL_FIELD = re.compile(r"^personalizations\.(\d+)\.to\.\d+\.email$")
_NOT_IN_NAME = re.compile(r"[,;]")


def _placeholder(part: str, slot: int) -> str:
    return f"-nl{part}{slot}-"


class SendGridTransport(HTTPTransport):
    shared_body = True  # one body per request: every message of a batch of one variant
    name = "sendgrid"
    provider = "SendGrid"
    max_batch = 1000
    default_base_url = "https://api.sendgrid.com"
    eu_base_url = "https://api.eu.sendgrid.com"
    credentials_hint = (
        "Set NEWSLETTER_API_KEY to a SendGrid API key with the Mail Send permission "
        "(Settings > API Keys)."
    )

    def __init__(self, api_key: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def payload(self, messages: list[OutgoingMessage]) -> dict[str, Any]:
        factory = messages[0].factory
        compiled = factory.compiled
        shared = factory.shared_content(messages[0].variant, _placeholder)
        payload: dict[str, Any] = {
            "from": _email(*factory.sender),
            "subject": shared.subject,
            "content": [
                {"type": "text/plain", "value": shared.text},
                {"type": "text/html", "value": shared.html},
            ],
            "personalizations": [self._personalization(m, shared) for m in messages],
            "categories": [compiled.slug[:255]],
            "custom_args": {"campaign": compiled.slug},
            "tracking_settings": {
                "click_tracking": {"enable": False},
                "open_tracking": {"enable": False},
            },
        }
        if factory.reply_to:
            payload["reply_to"] = _email(*factory.reply_to)
        return payload

    @staticmethod
    def _personalization(message: OutgoingMessage, shared: Any) -> dict[str, Any]:
        return {
            "to": [_email(message.to_name, message.to_address)],
            "substitutions": shared.substitutions(message),
            "headers": message.list_headers(),
            "custom_args": {"subscriber": str(message.recipient.subscriber_id)},
        }

    def build_request(self, messages: list[OutgoingMessage]) -> HTTPRequest:
        body = json.dumps(self.payload(messages), ensure_ascii=False).encode("utf-8")
        return HTTPRequest("/v3/mail/send", body, self.headers)

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        # A 400 that names a recipient's address is a bad address, not a bad request:
        # mark those invalid and send the rest again (nothing of a 400 was sent).
        invalid: dict[int, SendResult] = {}
        remaining = list(messages)
        for _ in range(3):
            try:
                sent = super().send_batch(remaining)
            except _BadAddresses as exc:
                for index, error in exc.bad.items():
                    message = remaining[index]
                    invalid[message.recipient.subscriber_id] = SendResult(
                        message.recipient.subscriber_id,
                        DeliveryStatus.INVALID,
                        error=f"SendGrid: {error}",
                        suppress=True,
                    )
                remaining = [m for i, m in enumerate(remaining) if i not in exc.bad]
                if remaining:
                    continue
                sent = []
            by_id = {r.subscriber_id: r for r in sent} | invalid
            return [by_id[m.recipient.subscriber_id] for m in messages]
        raise DeliveryError("SendGrid kept rejecting addresses in the same batch.")

    def parse_response(
        self, response: requests.Response, messages: list[OutgoingMessage]
    ) -> list[SendResult]:
        if response.status_code == 202:
            message_id = response.headers.get("X-Message-Id")
            return results(messages, DeliveryStatus.QUEUED, message_id=message_id)
        if 200 <= response.status_code < 300:  # taken, but not as documented: may go out
            return results(
                messages,
                DeliveryStatus.UNKNOWN,
                f"SendGrid answered HTTP {response.status_code} instead of 202: "
                f"{response.text[:200]!r}",
            )
        errors = (json_or_none(response) or {}).get("errors") if response.content else None
        errors = errors if isinstance(errors, list) else []
        if response.status_code == 400:
            bad = {}
            for error in errors:
                match = _BAD_EMAIL_FIELD.match(str(error.get("field") or ""))
                if match and int(match.group(1)) < len(messages):
                    bad[int(match.group(1))] = str(error.get("message"))
            if bad and len(bad) == len(errors):
                raise _BadAddresses(bad)
        detail = "; ".join(
            f"{e.get('field') or ''} {e.get('message', '')}".strip()
            for e in errors
            if isinstance(e, dict)
        )
        raise DeliveryError(
            f"SendGrid rejected the request (HTTP {response.status_code}: "
            f"{detail or response.text[:200] or 'no message'}).",
            "Nothing in this batch was sent. Fix the cause and run the same send again.",
        )


class _BadAddresses(Exception):
    def __init__(self, bad: dict[int, str]) -> None:
        self.bad = bad


def _email(name: str, address: str) -> dict[str, str]:
    """``{"email", "name"}``; SendGrid documents that a name may not hold ``,`` or ``;``
    (its parser would take part of the name for the address), so those go."""
    name = " ".join(w for w in _NOT_IN_NAME.sub(" ", name).split(" ") if w)
    return {"email": address, **({"name": name} if name else {})}
