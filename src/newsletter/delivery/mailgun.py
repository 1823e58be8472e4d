"""Mailgun batch sending: up to 1000 recipients a request, with recipient-variables.

The body goes once per request with ``%recipient.x%`` placeholders; the
``recipient-variables`` object gives each recipient their own values, so each
gets only their own message (without it, every recipient would see all the
others). Mailgun answers with one id per request and reports per recipient
through events, so results are ``queued``.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from ..errors import ConfigError, DeliveryError
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from ..render.message import format_address
from .base import HTTPRequest, HTTPTransport, json_or_none, results

REGIONS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}


def _placeholder(part: str, slot: int) -> str:
    return f"%recipient.{part}{slot}%"


class MailgunTransport(HTTPTransport):
    shared_body = True  # one body per request: every message of a batch of one variant
    name = "mailgun"
    provider = "Mailgun"
    max_batch = 1000
    default_base_url = REGIONS["us"]
    credentials_hint = (
        "Set NEWSLETTER_API_KEY to the Mailgun API key or the domain's sending key, and check "
        '[delivery] domain and region (EU domains need region = "eu").'
    )

    def __init__(self, api_key: str, domain: str, region: str | None = None, **kwargs: Any) -> None:
        if not kwargs.get("base_url"):
            region_key = (region or "us").lower()
            if region_key not in REGIONS:
                raise ConfigError(
                    f"[delivery] region {region!r} is not a Mailgun region.",
                    'Use region = "us" or region = "eu".',
                )
            kwargs["base_url"] = REGIONS[region_key]
        super().__init__(**kwargs)
        self.auth = ("api", api_key)
        self.domain = domain

    def form(self, messages: list[OutgoingMessage]) -> list[tuple[str, str]]:
        factory = messages[0].factory
        compiled = factory.compiled
        shared = factory.shared_content(messages[0].variant, _placeholder)
        fields: list[tuple[str, str]] = [
            ("from", factory.sender_display),
            ("subject", shared.subject),
            ("text", shared.text),
            ("html", shared.html),
            ("o:tag", compiled.slug[:128]),
            ("o:tracking", "no"),
            ("h:List-Unsubscribe", "%recipient.list_unsubscribe%"),
            ("h:List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("h:List-Id", messages[0].list_headers()["List-Id"]),
            ("v:campaign", compiled.slug),
            ("v:subscriber", "%recipient.subscriber%"),
        ]
        if factory.reply_to:
            fields.append(("h:Reply-To", format_address(*factory.reply_to)))
        variables: dict[str, dict[str, str]] = {}
        for message in messages:
            fields.append(("to", message.to_display))
            variables[message.to_address] = {
                **shared.substitutions(message),
                "list_unsubscribe": message.list_unsubscribe,
                "subscriber": str(message.recipient.subscriber_id),
            }
        # The placeholders are %recipient.KEY%; the variables are keyed by KEY.
        variables = {
            email: {k.removeprefix("%recipient.").removesuffix("%"): v for k, v in values.items()}
            for email, values in variables.items()
        }
        fields.append(("recipient-variables", json.dumps(variables, ensure_ascii=False)))
        return fields

    def build_request(self, messages: list[OutgoingMessage]) -> HTTPRequest:
        # multipart/form-data (each field as a part without a file name): the body is
        # sent as it is rather than percent-encoded.
        parts = [(name, (None, value.encode("utf-8"))) for name, value in self.form(messages)]
        return HTTPRequest(f"/v3/{self.domain}/messages", files=parts, auth=self.auth)

    def parse_response(
        self, response: requests.Response, messages: list[OutgoingMessage]
    ) -> list[SendResult]:
        data = json_or_none(response)
        if response.status_code == 200 and isinstance(data, dict) and data.get("id"):
            return results(messages, DeliveryStatus.QUEUED, message_id=str(data["id"]), raw=data)
        if response.status_code == 200:
            return results(
                messages,
                DeliveryStatus.UNKNOWN,
                f"Mailgun answered 200 without a message id: {response.text[:200]!r}",
            )
        message = data.get("message") if isinstance(data, dict) else response.text[:200]
        if response.status_code == 404:
            raise ConfigError(
                f"Mailgun does not know the domain {self.domain!r} ({message}).",
                'Check [delivery] domain, and region = "eu" for a domain in the EU region.',
            )
        raise DeliveryError(
            f"Mailgun rejected the request (HTTP {response.status_code}: {message}).",
            "Nothing in this batch was sent. Fix the cause and run the same send again.",
        )
