"""Transports: one module per provider over one small interface (``base.Transport``)."""

from __future__ import annotations

import importlib

from ..addresses import Carrier
from ..config import Settings, secret
from ..errors import ConfigError
from .base import Transport
from .outbox import OutboxTransport

__all__ = ["Transport", "carrier_for", "make_transport", "transport_class"]

_CLASSES = {
    "outbox": "outbox:OutboxTransport",
    "postmark": "postmark:PostmarkTransport",
    "sendgrid": "sendgrid:SendGridTransport",
    "mailgun": "mailgun:MailgunTransport",
    "resend": "resend:ResendTransport",
    "ses": "ses:SESTransport",
    "smtp": "smtp:SMTPTransport",
}


def transport_class(name: str) -> type[Transport]:
    """The class of the transport called ``name``, without making one (no secrets needed)."""
    module, _, cls = _CLASSES[name].partition(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)


def carrier_for(name: str) -> Carrier:
    """What the transport called ``name`` can carry (for imports and samples)."""
    return transport_class(name).carrier()


def make_transport(settings: Settings, campaign_slug: str) -> Transport:
    """The configured transport, with its secrets taken from the environment."""
    d = settings.values["delivery"]
    name = d["transport"]
    common = {"batch_size": d["batch_size"]}
    http = {
        **common,
        "base_url": d["base_url"],
        "timeout": float(d["timeout"]),
        "max_retries": d["max_retries"],
    }

    def api_key(provider: str, what: str) -> str:
        return secret("NEWSLETTER_API_KEY", f"to send through {provider} ({what})")

    if name == "outbox":
        return OutboxTransport(settings.outbox_dir / campaign_slug, **common)
    if name == "postmark":
        from .postmark import PostmarkTransport

        return PostmarkTransport(
            api_key("Postmark", "its Server API token"), message_stream=d["message_stream"], **http
        )
    if name == "sendgrid":
        from .sendgrid import SendGridTransport

        if not d["base_url"] and (d["region"] or "").lower() == "eu":
            http["base_url"] = SendGridTransport.eu_base_url
        return SendGridTransport(api_key("SendGrid", "an API key with Mail Send access"), **http)
    if name == "mailgun":
        from .mailgun import MailgunTransport

        if not d["domain"]:
            raise ConfigError(
                f"[delivery] domain is not set in {settings.path}; Mailgun needs it.",
                'Add domain = "mg.example.org" (your Mailgun sending domain) under [delivery].',
            )
        return MailgunTransport(
            api_key("Mailgun", "the API key or a domain sending key"),
            domain=d["domain"],
            region=d["region"],
            **http,
        )
    if name == "resend":
        from .resend import ResendTransport

        return ResendTransport(api_key("Resend", "an API key, re_..."), **http)
    if name == "ses":
        from .ses import SESTransport

        return SESTransport(region=d["region"], configuration_set=d["configuration_set"], **http)
    if name == "smtp":
        from .smtp import SMTPTransport

        if not d["host"]:
            raise ConfigError(
                f"[delivery] host is not set in {settings.path}; the smtp transport needs it.",
                'Add host = "smtp.example.org" (and port, security, username) under [delivery].',
            )
        password = None
        if d["username"]:
            password = secret(
                "NEWSLETTER_SMTP_PASSWORD", f"to log in to {d['host']} as {d['username']}"
            )
        return SMTPTransport(
            d["host"],
            d["port"],
            d["security"],
            d["username"],
            password,
            timeout=float(d["timeout"]),
            max_retries=d["max_retries"],
            **common,
        )
    raise AssertionError(f"unknown transport {name}")  # config validation prevents this
