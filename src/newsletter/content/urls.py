"""Addresses found in pages and feeds: resolved as a browser resolves them, and used
only when the result is a web (http or https) address.

A page or feed is data: its canonical link, ``og:url``, JSON-LD ``url``, an entry's
link or an image may be relative (``/blog/slug``: many CMSs write them so), or not a
web address at all (``javascript:``, ``data:``, ``mailto:``, ``file:``). A relative
one is resolved against the address the page was fetched from; one that is still not
an http(s) address after that is never an article's link or image.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from ..errors import InputError

WEB_SCHEMES = frozenset({"http", "https"})
# What browsers drop from an address before parsing it (WHATWG URL): the ASCII tab and
# newlines anywhere, and control characters and spaces at either end.
_DROPPED = re.compile(r"[\t\n\r]")
_ENDS = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean(value: str | None) -> str | None:
    if not isinstance(value, str):
        return None
    value = _ENDS.sub("", _DROPPED.sub("", value))
    if not value or _CONTROL.search(value):
        return None
    return value.replace(" ", "%20")


def is_relative(value: str | None) -> bool:
    """A relative reference (``/blog/slug``, ``image.jpg``, ``//cdn.example/x``): no scheme."""
    value = _clean(value)
    if value is None:
        return False
    try:
        return not urlsplit(value).scheme
    except ValueError:
        return False


def web_address(value: str | None, base: str | None) -> str | None:
    """``value`` resolved against ``base`` (the address of the page it is on), if that
    gives an http(s) address with a host; else None: ``javascript:``, ``data:``,
    ``mailto:``, ``file:`` and the like, and a relative reference without a base."""
    value = _clean(value)
    if value is None:
        return None
    try:
        if not urlsplit(value).scheme:  # relative: only what has no scheme is resolved
            if base:
                value = urljoin(base, value)
            elif value.startswith("//"):
                value = "https:" + value
        parts = urlsplit(value)
    except ValueError:  # e.g. a broken [IPv6] host
        return None
    if parts.scheme.lower() not in WEB_SCHEMES or not parts.hostname:
        return None
    return value


def first_web_address(candidates: Iterable[str | None], base: str | None) -> str | None:
    """The first of ``candidates`` that is a web address once resolved against ``base``."""
    for candidate in candidates:
        found = web_address(candidate, base)
        if found:
            return found
    return None


def written_address(value: str | None, key: str, source: str) -> str | None:
    """An address a person wrote (front matter, a campaign's override): as written, or an
    InputError when it is not a web address at all (``javascript:``, ``data:``, ...).

    A relative one is kept: ``newsletter check`` names it, and ``send`` refuses it.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    if is_relative(value) or web_address(value, None):
        return value
    shown = value if len(value) <= 80 else value[:77] + "..."
    raise InputError(
        f"{source}: `{key}: {shown}` is not a web address; an article's {key} is used only "
        "when it is an http(s) address.",
        f"Write the full address, e.g. `{key}: https://blog.example.org/...`.",
    )
