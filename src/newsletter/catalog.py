"""The providers found by name, for the layers that must not look them up themselves.

The provider modules (``providers/<name>.py``) sit on top of ``config``, ``delivery``,
``events`` and ``webhooks``, and the registry (``providers/__init__.py``) imports none
of them; so none of them may import the registry back. What needs a provider by its
name (settings validated with each provider's ``[delivery]`` keys, the configured
transport, a webhook's verifier and reader, ``events import``) asks here, and this
module hands the provider's part down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from . import providers
from .addresses import Carrier
from .config import Settings, read_settings
from .delivery.base import Transport
from .errors import ConfigError, InputError
from .events import EventStore, ImportReport, Reader, Record
from .events import import_events as _import
from .events import read_export as _read_export
from .events import read_records as _read_records
from .webhooks import (
    Verifier,
    WebhookAnswer,
    WebhookSecrets,
    WebhookStore,
)
from .webhooks import receive_webhook as _receive
from .webhooks import webhook_secrets as _secrets

__all__ = [
    "carrier_for",
    "import_events",
    "load_settings",
    "local_file_transports",
    "make_transport",
    "read_export",
    "read_records",
    "receive_webhook",
    "rehearsal_transports",
    "transport_class",
    "webhook_secrets",
]


# -- settings -------------------------------------------------------------------------------
def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    """Find, parse and validate newsletter.toml, each provider's ``[delivery]`` keys as its
    module declares them."""
    return read_settings(explicit, providers)


# -- transports -----------------------------------------------------------------------------
def transport_class(name: str) -> type[Transport]:
    """The class of the transport called ``name``, without making one (no secrets needed)."""
    return providers.get(name).transport


def carrier_for(name: str) -> Carrier:
    """What the transport called ``name`` can carry (for imports and samples)."""
    return transport_class(name).carrier()


def rehearsal_transports() -> tuple[str, ...]:
    """The names of the transports whose sends are rehearsals (a real send may follow)."""
    return tuple(p.name for p in providers.every() if p.transport.rehearsal)


def local_file_transports() -> tuple[type[Transport], ...]:
    """The transports that write readers' messages to local files (erasure removes them)."""
    return tuple(p.transport for p in providers.every() if p.transport.local_files)


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


# -- events ---------------------------------------------------------------------------------
def _reader(provider: str) -> Reader:
    found = providers.find(provider)
    if found is None or found.read_event is None:
        readable = ", ".join(p.name for p in providers.with_events())
        raise InputError(f"Unknown provider {provider!r}.", f"Use one of: {readable}.")
    return found.read_event


def read_records(provider: str, items: list[object], where: str = "record") -> list[Record]:
    """Each item of a payload read by ``provider``'s reader."""
    return _read_records(_reader(provider), items, where)


def read_export(provider: str, data: bytes) -> list[Record]:
    """The records of ``provider``'s export file (see ``events.read_export``)."""
    return _read_export(provider, _reader(provider), data)


def import_events(
    store: EventStore, provider: str, data: bytes, soft_bounce_limit: int = 3
) -> ImportReport:
    """Apply the events of ``provider``'s export file; malformed records are skipped."""
    return _import(store, provider, _reader(provider), data, soft_bounce_limit)


# -- webhooks -------------------------------------------------------------------------------
def _verifiers() -> Mapping[str, Verifier]:
    return {p.name: p.webhook for p in providers.with_webhooks() if p.webhook is not None}


def webhook_secrets(transport: str, environ: Mapping[str, str] | None = None) -> WebhookSecrets:
    """The webhook secrets in the environment, for the providers that take webhooks."""
    return _secrets(transport, environ, _verifiers())


def receive_webhook(
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: WebhookSecrets,
    store: WebhookStore,
    soft_bounce_limit: int = 3,
    now: float | None = None,
    cache_dir: Path | None = None,
) -> WebhookAnswer:
    """``POST /webhooks/<provider>``: its verifier and reader found here, the request
    checked and applied by ``webhooks.receive_webhook``."""
    found = providers.find(provider)
    verifier = found.webhook if found is not None else None
    reader = found.read_event if found is not None else None
    return _receive(
        provider,
        verifier,
        reader,
        headers,
        body,
        secrets,
        store,
        soft_bounce_limit,
        now,
        cache_dir,
    )
