"""Transports: one module per provider over one small interface (``base.Transport``)."""

from __future__ import annotations

from ..config import Settings, secret
from ..errors import ConfigError
from .base import Transport
from .outbox import OutboxTransport
from .postmark import PostmarkTransport

__all__ = ["OutboxTransport", "PostmarkTransport", "Transport", "make_transport"]


def make_transport(settings: Settings, campaign_slug: str) -> Transport:
    """The configured transport, with its secret taken from the environment."""
    delivery = settings.values["delivery"]
    name = delivery["transport"]
    if name == "outbox":
        return OutboxTransport(settings.outbox_dir / campaign_slug)
    if name == "postmark":
        return PostmarkTransport(
            token=secret("NEWSLETTER_API_KEY", "to send through Postmark (its Server API token)"),
            base_url=delivery["base_url"] or PostmarkTransport.default_base_url,
            message_stream=delivery["message_stream"],
            timeout=float(delivery["timeout"]),
            max_retries=delivery["max_retries"],
            batch_size=delivery["batch_size"],
        )
    raise ConfigError(
        f"The {name} transport is not available in this version.",
        'Use transport = "outbox" or "postmark" in [delivery] of newsletter.toml.',
    )
