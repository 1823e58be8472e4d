"""Campaign tracking parameters on the links of an email (UTM)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class UTM:
    """``utm_source``, ``utm_medium`` and ``utm_campaign``, lowercase."""

    campaign: str
    source: str = "newsletter"
    medium: str = "email"

    def tag(self, url: str) -> str:
        """``url`` with the parameters added (or replaced); query and fragment kept.

        Only http(s) links are tagged; mailto: and others are left alone.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return url
        ours = {"utm_source": self.source, "utm_medium": self.medium, "utm_campaign": self.campaign}
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
        query += [(k, v.lower()) for k, v in ours.items()]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def tag_html(self, fragment: str) -> str:
        """Every http(s) ``href`` in an HTML fragment, tagged."""
        return _HREF.sub(
            lambda m: f'{m.group(1)}"{_attr(self.tag(_unattr(m.group(2))))}"', fragment
        )


_HREF = re.compile(r'(\bhref=)"([^"]*)"', re.I)


def _unattr(value: str) -> str:
    return value.replace("&amp;", "&")


def _attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;")
