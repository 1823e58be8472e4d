"""newsletter.toml -> a typed, validated Settings object.

Every key is declared once: the common ones as fields of their section's frozen
dataclass (``NewsletterSettings`` ... ``ServeSettings``), each provider's ``[delivery]``
keys in its module (``providers``), which this module does not import: whoever reads the
settings hands it the providers' declarations as a ``DeliveryOptions``. An unknown key,
a wrong type or a missing required key is an error naming the key and the file. Secrets
are never read from the file, only from the environment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from .errors import ConfigError
from .language import DEFAULT_LANGUAGE, language_error
from .zones import SCHEDULE_EXAMPLE, MonthlyTime, parse_monthly

CONFIG_NAME = "newsletter.toml"

_REQUIRED = object()
_PROVIDED = object()  # the default is the providers' to say (``DeliveryOptions.defaults``)


class OptionSpec(Protocol):
    """A ``[delivery]`` key a provider declares: its name, TOML types and default."""

    @property
    def key(self) -> str: ...

    @property
    def types(self) -> tuple[type, ...]: ...

    @property
    def default(self) -> Any: ...


class DeliveryOptions(Protocol):
    """What validating ``[delivery]`` asks of the providers (the registry fulfils it):
    their names, the keys each one reads, and the defaults they declare for the keys
    every project has (the transport a project without one uses, its folder)."""

    def names(self) -> Sequence[str]: ...

    def options_for(self, transport: str | None) -> Mapping[str, OptionSpec]: ...

    def defaults(self) -> Mapping[str, Any]: ...


def _key(types: type | tuple[type, ...], default: Any = None, *, name: str = "") -> Any:
    """A key of the section: the TOML types it takes and its default (``_REQUIRED``:
    none); ``name`` when the key is not the field's name (``from``)."""
    accepted = types if isinstance(types, tuple) else (types,)
    return field(metadata={"types": accepted, "default": default, "key": name})


def _frozen(value: Any) -> Any:
    """A TOML list or table as an immutable value."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return MappingProxyType(value)
    return value


class _Section:
    """A section of newsletter.toml as a frozen dataclass (see ``_key``)."""

    @classmethod
    def keys(cls) -> dict[str, tuple[tuple[type, ...], Any]]:
        """key -> (accepted types, default) of the keys this section declares."""
        return {
            f.metadata["key"] or f.name: (f.metadata["types"], f.metadata["default"])
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if "types" in f.metadata
        }

    @classmethod
    def from_values(cls, values: Mapping[str, Any], **extra: Any) -> Any:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        given = {
            f.name: _frozen(values[f.metadata["key"] or f.name])
            for f in fields
            if "types" in f.metadata
        }
        return cls(**given, **extra)


@dataclass(frozen=True, slots=True)
class NewsletterSettings(_Section):
    """[newsletter]: who sends it, and where readers reach it."""

    name: str = _key(str, _REQUIRED)
    from_: str = _key(str, _REQUIRED, name="from")
    reply_to: str | None = _key(str)
    postal_address: str | None = _key(str)
    public_url: str | None = _key(str)
    list_id: str | None = _key(str)
    language: str = _key(str, DEFAULT_LANGUAGE)
    unsubscribe_mailto: str | None = _key(str)


@dataclass(frozen=True, slots=True)
class ContentSettings(_Section):
    """[content]: where articles come from, and how they are read and linked."""

    articles: str = _key(str, "articles")
    images: str = _key(str, "images")  # the project's own images, served under /images/
    feeds: tuple[str, ...] = _key(list, [])
    excerpt_words: int = _key(int, 60)
    cache: str = _key(str, ".newsletter/cache")
    # seconds a server may stay silent at any one moment, and for a whole fetch
    fetch_timeout: float = _key((int, float), 15)
    fetch_deadline: float = _key((int, float), 30)
    utm: bool = _key(bool, True)
    utm_source: str = _key(str, "newsletter")
    utm_medium: str = _key(str, "email")


@dataclass(frozen=True, slots=True)
class DatabaseSettings(_Section):
    """[database]"""

    url: str = _key(str, "sqlite:///newsletter.db")


@dataclass(frozen=True, slots=True)
class DeliverySettings(_Section):
    """[delivery]: the transport and how hard it is driven. ``options`` holds the
    provider-specific keys (every provider's, each validated as its module declares it)."""

    transport: str = _key(str, _PROVIDED)
    base_url: str | None = _key(str)
    rate_limit: float = _key((int, float), 0)
    concurrency: int = _key(int, 4)
    batch_size: int | None = _key(int)
    timeout: float = _key((int, float), 30)
    max_retries: int = _key(int, 5)
    outbox: str = _key(str, _PROVIDED)  # the folder the file-writing transport fills
    max_failure_rate: float = _key((int, float), 0.2)
    # requests in a row whose answer was lost (a dropped connection) that pause a send
    max_lost_in_a_row: int = _key(int, 3)
    soft_bounce_limit: int = _key(int, 3)
    # a sender on another host that stops renewing its claim is presumed dead after this
    lease_seconds: int = _key(int, 300)
    # DKIM for the transports that send the message themselves (smtp, outbox)
    dkim_selector: str | None = _key(str)
    dkim_key_file: str | None = _key(str)  # default: dkim/<selector>.pem
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class DigestSettings(_Section):
    """[digest]: the monthly digest campaign."""

    subject: str = _key(str, "{{ newsletter.name }}: {{ period.strftime('%B %Y') }}")
    template: str = _key(str, "digest")
    intro: str = _key(str, "")
    max_articles: int = _key(int, 6)
    audience: Mapping[str, Any] = _key(dict, {})
    sources: tuple[str, ...] | None = _key(list)
    max_lateness_days: int = _key(int, 7)
    # "DAY HH:MM [Area/City]": when `newsletter run` writes and sends last month's digest
    schedule: str | None = _key(str)

    @property
    def monthly(self) -> MonthlyTime | None:
        """``schedule`` parsed (validated when the file was read); None when unset."""
        return parse_monthly(self.schedule) if self.schedule else None


@dataclass(frozen=True, slots=True)
class ServeSettings(_Section):
    """[serve]: how much `newsletter serve` takes on at once (see web/server.py)."""

    threads: int = _key(int, 8)
    connection_limit: int = _key(int, 500)
    max_request_bytes: int = _key(int, 1024 * 1024)
    request_timeout: int = _key(int, 30)
    idle_timeout: int = _key(int, 30)
    # proxies whose X-Forwarded-For names the client (sign-up's per-client limits): none
    # by default; list the proxy in front of serve, which must overwrite the header
    # (README, "Behind a proxy")
    trusted_proxies: tuple[str, ...] = _key(list, [])


@dataclass(frozen=True, slots=True)
class SignupSettings(_Section):
    """[signup]: the sign-up form of `newsletter serve` and its double opt-in."""

    # seconds a person takes at least between seeing the form and sending it
    min_seconds: int = _key((int, float), 3)
    confirm_days: int = _key(int, 7)  # how long a confirmation link works
    form_version: str = _key(str, "v1")  # names the consent wording below, kept as proof
    consent_text: str = _key(
        str,
        "Yes, send me {name} by email. I can unsubscribe at any time with the link in every email.",
    )
    description: str = _key(str, "Our newsletter: new articles from the blog, about once a month.")
    confirm_subject: str = _key(str, "Please confirm your subscription to {{ newsletter.name }}")
    welcome: bool = _key(bool, False)
    welcome_subject: str = _key(str, "Welcome to {{ newsletter.name }}")
    # a client is one IPv4 address or one IPv6 network of this prefix length (a /64 is
    # what one home or phone gets)
    per_client_per_hour: int = _key(int, 5)
    ipv6_prefix: int = _key(int, 64)
    # a network is an IPv4 /24 or an IPv6 /48
    per_network_per_hour: int = _key(int, 20)
    # an address counts with its +tag and the dots of its local part removed
    per_address_per_hour: int = _key(int, 3)
    max_confirmations_per_hour: int = _key(int, 100)  # shared out between networks
    send_timeout: int = _key((int, float), 10)  # seconds one confirmation email may take
    # sites whose pages may post the sign-up form without the built-in page's token;
    # [] means the host of public_url and the hosts of [content] feeds
    allowed_origins: tuple[str, ...] = _key(list, [])
    block_disposable: bool = _key(bool, True)  # refuse throwaway-address domains
    proof_of_work: bool = _key(bool, False)  # the built-in page makes the browser work
    proof_of_work_max_number: int = _key(int, 100_000)  # its difficulty (ALTCHA)
    # a visit to the confirmation link this soon after the email went out is taken
    # for a mail scanner's: the person presses a button (README, "Only a person confirms")
    scanner_window: int = _key((int, float), 120)


@dataclass(frozen=True, slots=True)
class TrackingSettings(_Section):
    """[tracking]: whether the provider may follow readers' clicks and opens. Both off
    by default (a readership of clinicians); each transport then turns its provider's
    tracking off on every request where the API allows it (README, "Click and open
    tracking")."""

    clicks: bool = _key(bool, False)  # links go through the provider's redirect
    opens: bool = _key(bool, False)  # the provider adds its tracking image

    @property
    def any(self) -> bool:
        return self.clicks or self.opens


@dataclass(frozen=True, slots=True)
class SequenceSettings:
    """[sequences.<name>]: who enters the sequence in ``sequences/<name>/`` (active
    readers, filtered as a campaign's ``audience``), and how overdue a step added later
    may be for a reader and still reach them (``grace``)."""

    name: str
    audience: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    grace: dt.timedelta = dt.timedelta(days=1)


SEQUENCE_KEYS = ("audience", "grace")
DURATION_EXAMPLES = "0d, 36h, 3d, 2w or 90m"
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: Any) -> dt.timedelta | None:
    """``0d``, ``36h``, ``3d``, ``2w``, ``90m`` as a timedelta; None for anything else."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


SECTIONS: dict[str, type[_Section]] = {
    "newsletter": NewsletterSettings,
    "content": ContentSettings,
    "database": DatabaseSettings,
    "delivery": DeliverySettings,
    "digest": DigestSettings,
    "serve": ServeSettings,
    "signup": SignupSettings,
    "tracking": TrackingSettings,
}

# section -> key -> (accepted python types, default): the keys every project has
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    name: section.keys() for name, section in SECTIONS.items()
}

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    list: "a list",
    dict: "a table",
    bool: "true or false",
}


@dataclass(frozen=True, slots=True)
class Settings:
    """The project's configuration, validated, with paths made absolute.

    Each section is a typed, frozen record (``settings.delivery.rate_limit``);
    ``values`` and ``get`` give the same values by name."""

    path: Path
    values: dict[str, dict[str, Any]] = field(repr=False)
    newsletter: NewsletterSettings = field(init=False, repr=False)
    content: ContentSettings = field(init=False, repr=False)
    database: DatabaseSettings = field(init=False, repr=False)
    delivery: DeliverySettings = field(init=False, repr=False)
    digest: DigestSettings = field(init=False, repr=False)
    serve: ServeSettings = field(init=False, repr=False)
    signup: SignupSettings = field(init=False, repr=False)
    tracking: TrackingSettings = field(init=False, repr=False)
    sequences: Mapping[str, SequenceSettings] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name, section in SECTIONS.items():
            extra = {}
            if section is DeliverySettings:  # validated: the provider's keys, defaults in
                given = self.values[name]
                extra["options"] = MappingProxyType(
                    {k: _frozen(v) for k, v in given.items() if k not in SCHEMA[name]}
                )
            object.__setattr__(self, name, section.from_values(self.values[name], **extra))
        given = self.values.get("sequences", {})
        sequences = {
            name: SequenceSettings(
                name,
                MappingProxyType(dict(keys.get("audience") or {})),
                parse_duration(keys.get("grace", "1d")) or dt.timedelta(days=1),
            )
            for name, keys in given.items()
        }
        object.__setattr__(self, "sequences", MappingProxyType(sequences))

    @property
    def root(self) -> Path:
        return self.path.parent

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    def resolve(self, relative: str | os.PathLike[str]) -> Path:
        """A path from the config file, relative to the file's folder."""
        return (self.root / relative).resolve()

    # -- [newsletter] -------------------------------------------------------
    @property
    def name(self) -> str:
        return self.newsletter.name

    @property
    def sender(self) -> tuple[str, str]:
        """(display name, address) of ``from``."""
        return parseaddr(self.newsletter.from_)

    @property
    def public_url(self) -> str:
        url = self.newsletter.public_url
        if not url:
            raise ConfigError(
                f"[newsletter] public_url is not set in {self.path}.",
                "Set it to the https address where `newsletter serve` is reachable, e.g. "
                'public_url = "https://news.example.org"; unsubscribe and web-version '
                "links are built from it.",
            )
        return url.rstrip("/")

    # -- [database] ---------------------------------------------------------
    @property
    def database_url(self) -> str:
        url = os.environ.get("NEWSLETTER_DATABASE_URL") or self.database.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            relative = url[len("sqlite:///") :]
            if relative != ":memory:":
                url = "sqlite:///" + str(self.resolve(relative))
        return url

    # -- paths --------------------------------------------------------------
    @property
    def articles_dir(self) -> Path:
        return self.resolve(self.content.articles)

    @property
    def images_dir(self) -> Path:
        return self.resolve(self.content.images)

    @property
    def cache_dir(self) -> Path:
        return self.resolve(self.content.cache)

    @property
    def campaigns_dir(self) -> Path:
        return self.root / "campaigns"

    @property
    def sequences_dir(self) -> Path:
        return self.root / "sequences"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def outbox_dir(self) -> Path:
        return self.resolve(self.delivery.outbox)

    def dkim_key(self) -> tuple[str, str, Path] | None:
        """``(selector, domain, key file)`` when ``[delivery] dkim_selector`` is set, the
        domain being the From address's; a ConfigError when the key file is missing."""
        selector = self.delivery.dkim_selector
        if selector is None:
            return None
        key_file = self.resolve(self.delivery.dkim_key_file or dkim_key_default(selector))
        if not key_file.is_file():
            raise ConfigError(
                f"[delivery] dkim_selector is {selector!r}, but its key {key_file} does not exist.",
                f"Make it with `newsletter dkim keygen --selector {selector}` and publish the "
                "DNS record it prints, or remove dkim_selector to send unsigned.",
            )
        return selector, self.sender[1].rpartition("@")[2], key_file

    @property
    def transport(self) -> str:
        return self.delivery.transport


def dkim_key_default(selector: str) -> str:
    """Where ``newsletter dkim keygen`` writes the key of ``selector``, and where
    ``[delivery]`` looks for it without ``dkim_key_file``."""
    return f"dkim/{selector}.pem"


def find_config(explicit: str | os.PathLike[str] | None = None, start: Path | None = None) -> Path:
    """The config file: ``explicit``, else $NEWSLETTER_CONFIG, else the nearest ancestor's."""
    chosen = explicit or os.environ.get("NEWSLETTER_CONFIG")
    if chosen:
        path = Path(chosen).expanduser()
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(
                f"Config file {path} does not exist.",
                "Check the --config option or NEWSLETTER_CONFIG.",
            )
        return path.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"No {CONFIG_NAME} found in {here} or any folder above it.",
        "Run the command inside a newsletter project, pass --config FILE, "
        "or create a project with `newsletter init DIR`.",
    )


def read_settings(explicit: str | os.PathLike[str] | None, options: DeliveryOptions) -> Settings:
    """Find, parse and validate newsletter.toml, the ``[delivery]`` keys as ``options``
    declare them (``catalog.load_settings`` hands the providers' registry)."""
    path = find_config(explicit)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid TOML: {exc}.", "Fix the syntax at that line."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text.", "Save it as UTF-8.") from None
    return Settings(path=path, values=validate(raw, path, options))


def schema(
    options: DeliveryOptions, transport: str | None = None
) -> dict[str, dict[str, tuple[tuple[type, ...], Any]]]:
    """SCHEMA, with the [delivery] keys of ``transport``'s provider (None: every
    provider's), and the defaults the providers declare in place of ``_PROVIDED``."""
    defaults = options.defaults()
    common = {
        key: (types, defaults[key] if default is _PROVIDED else default)
        for key, (types, default) in SCHEMA["delivery"].items()
    }
    declared = {o.key: (o.types, o.default) for o in options.options_for(transport).values()}
    return {**SCHEMA, "delivery": {**common, **declared}}


def validate(
    raw: dict[str, Any], path: Path, options: DeliveryOptions
) -> dict[str, dict[str, Any]]:
    """Check ``raw`` against the schema; return every key with its default filled in
    (``[sequences.<name>]`` tables as they are, checked, under ``sequences``)."""
    raw = dict(raw)
    sequences = _check_sequences(raw.pop("sequences", {}), path)
    full = _schema_for(raw, options)
    _check_sections(raw, full, path)
    values = {section: _section_values(raw, section, keys, path) for section, keys in full.items()}
    _check_values(values, path, options)
    return values | {"sequences": sequences}


def _check_sequences(given: Any, path: Path) -> dict[str, dict[str, Any]]:
    """The ``[sequences.<name>]`` tables: known keys, a duration for ``grace``, a table
    for ``audience`` (its tags are checked where the sequence is loaded)."""
    example = '[sequences.welcome]\ngrace = "1d"\naudience = { tags_any = ["ce"] }'
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        raise ConfigError(
            f"[sequences] in {path} must hold one table per sequence, [sequences.<name>].",
            f"For example:\n{example}",
        )
    for name, keys in given.items():
        unknown = sorted(set(keys) - set(SEQUENCE_KEYS))
        if unknown:
            raise ConfigError(
                f"Unknown key(s) {', '.join(unknown)} in [sequences.{name}] of {path}.",
                f"Known keys: {', '.join(SEQUENCE_KEYS)}. For example:\n{example}",
            )
        if "grace" in keys and parse_duration(keys["grace"]) is None:
            raise ConfigError(
                f"[sequences.{name}] grace in {path} is {keys['grace']!r}, which is not a "
                "duration.",
                f"Write a number and a unit (m, h, d or w), e.g. {DURATION_EXAMPLES}.",
            )
        if not isinstance(keys.get("audience", {}), dict):
            raise ConfigError(
                f"[sequences.{name}] audience in {path} must be a table.",
                'For example: audience = { tags_any = ["ce"], exclude_tags = ["staff"] }',
            )
    return given


def _schema_for(
    raw: dict[str, Any], options: DeliveryOptions
) -> dict[str, dict[str, tuple[tuple[type, ...], Any]]]:
    """The schema ``raw`` is checked against: its transport's keys (the default
    transport's when it names none), or every provider's when it sets a key of
    another provider's (kept, checked) or a misspelling."""
    delivery = raw.get("delivery")
    transport = delivery.get("transport") if isinstance(delivery, dict) else None
    if not isinstance(transport, str):
        transport = options.defaults()["transport"]
    full = schema(options, transport)
    if isinstance(delivery, dict) and any(key not in full["delivery"] for key in delivery):
        full = schema(options)
    return full


def _check_sections(raw: dict[str, Any], full: Mapping[str, Any], path: Path) -> None:
    for section in raw:
        if section not in full:
            raise ConfigError(
                f"Unknown section [{section}] in {path}.",
                f"Known sections: {', '.join(f'[{s}]' for s in full)}.",
            )
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{section} in {path} must be a [section] table.")


def _section_values(
    raw: dict[str, Any],
    section: str,
    keys: Mapping[str, tuple[tuple[type, ...], Any]],
    path: Path,
) -> dict[str, Any]:
    """One section's keys, each given one checked for its type, the others defaulted."""
    given = raw.get(section, {})
    for key in given:
        if key not in keys:
            raise ConfigError(
                f"Unknown key '{key}' in [{section}] of {path}.",
                f"Known keys in [{section}]: {', '.join(keys)}. Check the spelling; "
                "secrets such as API keys belong in the environment, not in this file.",
            )
    values: dict[str, Any] = {}
    for key, (types, default) in keys.items():
        if key not in given:
            if default is _REQUIRED:
                raise ConfigError(
                    f"Missing required key '{key}' in [{section}] of {path}.",
                    f'Add it, e.g. {key} = "..." under [{section}].',
                )
            values[key] = default
            continue
        value = given[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            expected = " or ".join(_TYPE_NAMES[t] for t in types)
            raise ConfigError(
                f"[{section}] {key} in {path} must be {expected}, not {value!r}.",
            )
        values[key] = value
    return values


def _check_networks(value: list[Any], path: Path) -> None:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError):
            raise ConfigError(
                f"[serve] trusted_proxies in {path} holds {item!r}, which is not an IP "
                "address or network.",
                'Write addresses or networks, e.g. trusted_proxies = ["127.0.0.1", "10.0.0.0/8"].',
            ) from None


def _check_values(values: dict[str, dict[str, Any]], path: Path, options: DeliveryOptions) -> None:
    """What each key's type alone does not say: addresses, ranges, known names."""
    _check_newsletter(values["newsletter"], path)
    _check_delivery(values["delivery"], path, options)
    _check_serve(values["serve"], path)
    _check_signup(values["signup"], path)
    _check_delivery_limits(values["delivery"], path)
    _check_content(values["content"], path)
    _check_digest(values["digest"], path)


def _check_newsletter(newsletter: dict[str, Any], path: Path) -> None:
    _, address = parseaddr(newsletter["from"])
    if "@" not in address:
        raise ConfigError(
            f"[newsletter] from in {path} is not an email address: {newsletter['from']!r}.",
            'Write it as from = "Display Name <news@example.org>".',
        )
    for key in ("reply_to",):
        v = newsletter[key]
        if v is not None and "@" not in parseaddr(v)[1]:
            raise ConfigError(f"[newsletter] {key} in {path} is not an email address: {v!r}.")
    problem = language_error(newsletter["language"])
    if problem:
        raise ConfigError(f"[newsletter] language in {path}: {problem}")
    url = newsletter["public_url"]
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError(
            f"[newsletter] public_url in {path} must start with https:// (got {url!r}).",
        )


def _check_delivery(delivery: dict[str, Any], path: Path, options: DeliveryOptions) -> None:
    if delivery["transport"] not in options.names():
        raise ConfigError(
            f"[delivery] transport in {path} is {delivery['transport']!r}, which is not a "
            "known transport.",
            f"Use one of: {', '.join(options.names())}.",
        )
    for key in ("concurrency", "max_retries"):
        if delivery[key] < (1 if key == "concurrency" else 0):
            raise ConfigError(f"[delivery] {key} in {path} is out of range: {delivery[key]}.")
    _check_dkim(delivery, path)


_DKIM_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _check_dkim(delivery: dict[str, Any], path: Path) -> None:
    selector = delivery["dkim_selector"]
    if selector is None:
        if delivery["dkim_key_file"] is not None:
            raise ConfigError(
                f"[delivery] dkim_key_file in {path} is set without dkim_selector.",
                'Add dkim_selector = "..." (the selector its DNS record is published under).',
            )
        return
    if not _DKIM_SELECTOR.fullmatch(selector):
        raise ConfigError(
            f"[delivery] dkim_selector in {path} is {selector!r}, which is not a DNS label.",
            'Use letters, digits and inner hyphens, e.g. dkim_selector = "news2026".',
        )


def _check_delivery_limits(delivery: dict[str, Any], path: Path) -> None:
    if delivery["batch_size"] is not None and delivery["batch_size"] < 1:
        raise ConfigError(f"[delivery] batch_size in {path} must be at least 1.")
    if not 0 <= delivery["max_failure_rate"] <= 1:
        raise ConfigError(
            f"[delivery] max_failure_rate in {path} must be between 0 and 1 "
            f"(got {delivery['max_failure_rate']}).",
            "It is the share of failed recipients that pauses a send; 0 turns the check off.",
        )
    if delivery["max_lost_in_a_row"] < 0:
        raise ConfigError(
            f"[delivery] max_lost_in_a_row in {path} must be 0 or more "
            f"(got {delivery['max_lost_in_a_row']}).",
            "It is how many requests in a row with a lost answer pause a send; 0 never "
            "pauses for that.",
        )
    if delivery["rate_limit"] < 0 or delivery["timeout"] <= 0:
        raise ConfigError(f"[delivery] rate_limit and timeout in {path} must be positive.")


def _check_serve(serve: dict[str, Any], path: Path) -> None:
    for key, value in serve.items():
        if key == "trusted_proxies":
            _check_networks(value, path)
        elif value < 1:
            raise ConfigError(f"[serve] {key} in {path} must be at least 1, not {value}.")


def _check_signup(signup: dict[str, Any], path: Path) -> None:
    for key in ("confirm_days", "per_client_per_hour", "per_address_per_hour", "send_timeout"):
        if signup[key] < 1:
            raise ConfigError(f"[signup] {key} in {path} must be at least 1, not {signup[key]}.")
    for key in ("per_network_per_hour", "proof_of_work_max_number"):
        if signup[key] < 1:
            raise ConfigError(f"[signup] {key} in {path} must be at least 1, not {signup[key]}.")
    if not 32 <= signup["ipv6_prefix"] <= 128:
        raise ConfigError(
            f"[signup] ipv6_prefix in {path} must be between 32 and 128, not "
            f"{signup['ipv6_prefix']}.",
            "64 groups the addresses of one home or phone network, as providers hand them out.",
        )
    if signup["scanner_window"] < 0:
        raise ConfigError(f"[signup] scanner_window in {path} must not be negative.")
    if signup["min_seconds"] < 0 or signup["max_confirmations_per_hour"] < 0:
        raise ConfigError(
            f"[signup] min_seconds and max_confirmations_per_hour in {path} must not be negative."
        )
    _check_origins(signup["allowed_origins"], path)


_ORIGIN = re.compile(r"https?://(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?", re.IGNORECASE)


def _check_origins(origins: Any, path: Path) -> None:
    """``[signup] allowed_origins``: each scheme://host[:port], nothing more."""
    if not isinstance(origins, list | tuple):
        origins = [origins]
    for item in origins:
        if not isinstance(item, str) or not _ORIGIN.fullmatch(item.strip()):
            raise ConfigError(
                f"[signup] allowed_origins in {path} holds {item!r}, which is not an origin.",
                "Write each as scheme://host or scheme://host:port, without a path, e.g. "
                'allowed_origins = ["https://blog.example.org"].',
            )


def _check_content(content: dict[str, Any], path: Path) -> None:
    for key in ("fetch_timeout", "fetch_deadline"):
        if content[key] <= 0:
            raise ConfigError(
                f"[content] {key} in {path} must be a number of seconds above 0 "
                f"(got {content[key]}).",
                "fetch_timeout is how long a server may stay silent, fetch_deadline how long "
                "a whole page or feed may take (default 15 and 30).",
            )
    feeds = content["feeds"]
    if not all(isinstance(f, str) for f in feeds):
        raise ConfigError(f"[content] feeds in {path} must be a list of strings.")


def _check_digest(digest: dict[str, Any], path: Path) -> None:
    text = digest["schedule"]
    if text is None:
        return
    try:
        monthly = parse_monthly(text)
    except ValueError as exc:
        raise ConfigError(
            f"[digest] schedule in {path} is not usable: {exc}.", f"Write it as {SCHEDULE_EXAMPLE}."
        ) from None
    if monthly.day > digest["max_lateness_days"]:
        raise ConfigError(
            f"[digest] schedule in {path} sends on day {monthly.day}, after [digest] "
            f"max_lateness_days ({digest['max_lateness_days']}): the digest would always be "
            "too late to send.",
            f"Choose a day up to {digest['max_lateness_days']}, or raise max_lateness_days.",
        )
