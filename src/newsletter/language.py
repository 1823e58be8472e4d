"""A language tag (BCP 47) and the direction its script is written in.

``[newsletter] language`` and a campaign's ``lang:`` name the language; emails and the
pages of ``serve`` carry it as ``lang``, and ``dir="rtl"`` when it is written right to left.
"""

from __future__ import annotations

import re
from typing import Literal

DEFAULT_LANGUAGE = "en"

# language [-script] [-region] [-variant]* [-extension]* [-x-private], RFC 5646 section 2.1
_TAG = re.compile(
    r"""^(?:
        (?P<language>[a-z]{2,3}(?:-[a-z]{3}){0,3})
        (?:-(?P<script>[a-z]{4}))?
        (?:-(?:[a-z]{2}|[0-9]{3}))?
        (?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*
        (?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*
        (?:-x(?:-[a-z0-9]{1,8})+)?
    )$""",
    re.IGNORECASE | re.VERBOSE,
)

# languages whose usual script runs right to left
_RTL_LANGUAGES = frozenset(
    [
        "ar",
        "arc",
        "ckb",
        "dv",
        "fa",
        "he",
        "iw",
        "khw",
        "ks",
        "lrc",
        "mzn",
        "nqo",
        "pnb",
        "ps",
        "sd",
        "syr",
        "ug",
        "ur",
        "yi",
    ]
)
# scripts written right to left (ISO 15924): a script subtag (`az-Arab`, `ku-Latn`) decides
_RTL_SCRIPTS = frozenset(
    [
        "adlm",
        "arab",
        "aran",
        "armi",
        "avst",
        "cprt",
        "hatr",
        "hebr",
        "khar",
        "lydi",
        "mand",
        "mani",
        "mend",
        "nbat",
        "narb",
        "nkoo",
        "orkh",
        "palm",
        "phli",
        "phlp",
        "phnx",
        "prti",
        "rohg",
        "samr",
        "sarb",
        "sogd",
        "sogo",
        "syrc",
        "thaa",
        "yezi",
    ]
)

Direction = Literal["ltr", "rtl"]


def language_error(tag: object) -> str | None:
    """Why ``tag`` is not a language tag ("" never is), or None when it is one."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        return (
            f"{tag!r} is not a BCP 47 language tag. Write a language code, with a region "
            'if you like: "en", "ar", "he", "pt-BR", "zh-Hant".'
        )
    return None


def direction(tag: str) -> Direction:
    """``rtl`` for a language written right to left (its script subtag decides when given)."""
    found = _TAG.match(tag)
    if found is None:
        return "ltr"
    script = (found.group("script") or "").lower()
    if script:
        return "rtl" if script in _RTL_SCRIPTS else "ltr"
    return "rtl" if found.group("language").lower() in _RTL_LANGUAGES else "ltr"


def direction_context(tag: str) -> dict[str, str]:
    """What templates see: ``lang``, ``dir``, and the sides a line ``start``s and ``end``s on."""
    dir_ = direction(tag)
    start, end = ("right", "left") if dir_ == "rtl" else ("left", "right")
    return {"lang": tag, "dir": dir_, "start": start, "end": end}
