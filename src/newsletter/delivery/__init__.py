"""Transports: the one small interface the sender needs (``base.Transport``), the
template HTTP transports share, and one retry policy (``retry``). Each provider's own
transport is in its module under ``providers``; these functions find it by name."""

from __future__ import annotations

from .. import providers
from ..addresses import Carrier
from ..config import Settings
from ..errors import ConfigError
from .base import Transport

__all__ = ["Transport", "carrier_for", "make_transport", "transport_class"]


def transport_class(name: str) -> type[Transport]:
    """The class of the transport called ``name``, without making one (no secrets needed)."""
    return providers.get(name).transport


def carrier_for(name: str) -> Carrier:
    """What the transport called ``name`` can carry (for imports and samples)."""
    return transport_class(name).carrier()


def make_transport(settings: Settings, campaign_slug: str) -> Transport:
    """The configured transport, with its secrets taken from the environment."""
    provider = providers.get(settings.delivery.transport)
    for option in provider.options:
        if option.required and settings.delivery.options[option.key] is None:
            raise ConfigError(
                f"[delivery] {option.key} is not set in {settings.path}; the "
                f"{provider.name} transport needs it.",
                option.hint,
            )
    return provider.build(providers.Setup(provider, settings, campaign_slug))
