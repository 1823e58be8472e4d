"""The providers: each declared once, in a module of its own, found by its name.

A provider module, ``providers/<name>.py`` (after django-anymail's one backend per
provider), holds everything newsletter knows of that provider and ends in ``PROVIDER``:

- its transport class, and ``build``, which makes one from the settings;
- the ``[delivery]`` keys it reads (``Option``: types, default, whether it needs it) and
  the environment variables that hold its secrets (``Secret``);
- its webhook check (``webhooks.Verifier``; the secret is NEWSLETTER_WEBHOOK_SECRET_<NAME>);
- its events reader, with the tables that map each of its event types to a kind.

The shared machinery stays where it was: ``delivery/base.py`` (the transports' template
and retries), ``webhooks.py`` (receiving a request, secrets, replays) and ``events.py``
(reading JSON, records, imports). The provider modules sit on top of that machinery; this
registry sits below it and imports none of it (nor ``config``), so that nothing it
depends on depends on it. ``catalog.py`` hands what is found here by name down to the
modules that need it (config's validation, the transport, the webhook endpoints,
``events import``); no other module names a provider, so adding one is adding a module
here.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # for annotations only: the registry imports none of these when it runs
    from ..config import DeliverySettings, Settings, TrackingSettings
    from ..delivery.base import Transport
    from ..events import Read
    from ..webhooks import Verifier


@dataclass(frozen=True, slots=True)
class Option:
    """A ``[delivery]`` key a provider reads. One key may serve several providers
    (``region``); they must then declare it alike."""

    key: str
    types: tuple[type, ...] = (str,)
    default: Any = None
    required: bool = False  # its transport cannot be made without it
    hint: str = ""  # how to set it, said when it is required and missing


@dataclass(frozen=True, slots=True)
class Secret:
    """An environment variable that holds a secret the provider's transport needs."""

    variable: str
    purpose: str  # "to send through Postmark (its Server API token)"


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider, as its module declares it."""

    name: str  # its module's name: `transport = "<name>"`, /webhooks/<name>
    transport: type[Transport]
    build: Callable[[Setup], Transport]
    options: tuple[Option, ...] = ()
    secrets: tuple[Secret, ...] = ()
    webhook: Verifier | None = None  # None: no /webhooks/<name>
    read_event: Callable[[dict[str, Any]], Read] | None = None  # None: no events to read
    default: bool = False  # the transport of a project whose [delivery] names none
    # [delivery] keys every project has whatever its transport, whose default this
    # provider declares (the file-writing transport's folder, which erasure reads)
    common: tuple[Option, ...] = ()

    @property
    def label(self) -> str:
        """How messages to the user name it."""
        return self.transport.provider or self.name


@dataclass(frozen=True, slots=True)
class Setup:
    """What a provider's ``build`` is given: the settings, the campaign, and its secrets
    on demand (only then: a dry run needs none)."""

    provider: Provider
    settings: Settings
    campaign: str

    @property
    def delivery(self) -> DeliverySettings:
        return self.settings.delivery

    @property
    def tracking(self) -> TrackingSettings:
        """``[tracking]``: each transport sets its provider's per-message option from it,
        on or explicitly off."""
        return self.settings.tracking

    def option(self, key: str) -> Any:
        """One of the provider's ``[delivery]`` keys, validated (its default when unset)."""
        return self.settings.delivery.options[key]

    def secret(self, variable: str, purpose: str | None = None) -> str:
        """A declared secret from the environment, or a ConfigError saying how to set it."""
        declared = {s.variable: s.purpose for s in self.provider.secrets}
        return secret(variable, purpose or declared[variable])

    def http(self) -> dict[str, Any]:
        """The keyword arguments every HTTP transport takes."""
        d = self.delivery
        return {
            "base_url": d.base_url,
            "timeout": float(d.timeout),
            "max_retries": d.max_retries,
            "batch_size": d.batch_size,
        }


def secret(name: str, purpose: str) -> str:
    """A secret from the environment, or a ConfigError saying how to provide it. Secrets
    are never read from newsletter.toml."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(
            f"{name} is not set; it is needed {purpose}.",
            f"Export it in the environment before running, e.g. `export {name}=...`. "
            "Secrets are never read from newsletter.toml.",
        )
    return value


@functools.cache
def names() -> tuple[str, ...]:
    """Every provider's name: the modules of this package."""
    found = (m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return tuple(sorted(found))


def find(name: str) -> Provider | None:
    """The provider called ``name``, or None when there is none (any text may be asked:
    a webhook's path)."""
    return _load(name) if name in names() else None


def get(name: str) -> Provider:
    """The provider called ``name``, which must exist (validated settings name one)."""
    found = find(name)
    if found is None:
        raise KeyError(f"no provider {name!r}")
    return found


def every() -> list[Provider]:
    return [_load(name) for name in names()]


def with_webhooks() -> list[Provider]:
    return [p for p in every() if p.webhook is not None]


def with_events() -> list[Provider]:
    return [p for p in every() if p.read_event is not None]


def options_for(transport: str | None) -> Mapping[str, Option]:
    """The ``[delivery]`` keys of the provider ``transport`` names (every provider's when
    it names none): loading one provider's module, not all, at each command's start.
    With ``names``, what config's ``DeliveryOptions`` asks of the providers."""
    provider = find(transport) if transport is not None else None
    if provider is None:
        return delivery_options()
    return {option.key: option for option in provider.options}


@functools.cache
def default() -> Provider:
    """The provider a project uses when its ``[delivery]`` names none: the one flagged
    ``default`` in its module."""
    flagged = [p for p in every() if p.default]
    if len(flagged) != 1:
        raise TypeError(f"{len(flagged)} providers are flagged as the default, not one")
    return flagged[0]


def defaults() -> Mapping[str, Any]:
    """The defaults the providers declare for ``[delivery]`` keys every project has: the
    transport, and the default provider's ``common`` keys. With ``names`` and
    ``options_for``, what config's ``DeliveryOptions`` asks of the providers."""
    chosen = default()
    return {"transport": chosen.name, **{o.key: o.default for o in chosen.common}}


@functools.cache
def delivery_options() -> Mapping[str, Option]:
    """Every provider's ``[delivery]`` keys; a key several declare is declared alike."""
    found: dict[str, Option] = {}
    for provider in every():
        for option in provider.options:
            known = found.setdefault(option.key, option)
            if (known.types, known.default) != (option.types, option.default):
                raise TypeError(f"[delivery] {option.key} is declared differently by two providers")
    return found


@functools.cache
def _load(name: str) -> Provider:
    provider: Provider = importlib.import_module(f"{__name__}.{name}").PROVIDER
    if provider.name != name:
        raise TypeError(f"providers/{name}.py declares the provider {provider.name!r}")
    return provider
