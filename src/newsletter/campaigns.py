"""Campaign files (``campaigns/<slug>.md``) -> Campaign."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .config import Settings
from .content import read_markdown_article, split_front_matter
from .errors import InputError
from .models import Article, Audience, Campaign

SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_FRONT_MATTER_KEYS = {
    "subject",
    "preheader",
    "template",
    "from",
    "reply_to",
    "audience",
    "articles",
    "utm_campaign",
}
_ARTICLE_KEYS = {"path", "url", "feed", "excerpt", "image", "title"}
_AUDIENCE_KEYS = {"tags_any", "tags_all", "exclude_tags"}


def campaign_path(settings: Settings, campaign: str) -> Path:
    """The file for CAMPAIGN, given as a path or as a slug in ``campaigns/``."""
    as_path = Path(campaign)
    if as_path.suffix == ".md" or len(as_path.parts) > 1:
        if not as_path.is_file():
            raise InputError(f"Campaign file {campaign} does not exist.", "Check the path.")
        return as_path.resolve()
    candidate = settings.campaigns_dir / f"{campaign}.md"
    if not candidate.is_file():
        known = sorted(p.stem for p in settings.campaigns_dir.glob("*.md"))
        raise InputError(
            f"No campaign '{campaign}': {candidate} does not exist.",
            f"Known campaigns: {', '.join(known) or 'none'}. Pass a slug or a file path.",
        )
    return candidate


def load_campaign(settings: Settings, campaign: str) -> Campaign:
    """Read and validate a campaign file, with its articles."""
    path = campaign_path(settings, campaign)
    source = str(path)
    meta, body = split_front_matter(path.read_text(encoding="utf-8"), source)
    slug = path.stem
    if not SLUG.match(slug):
        raise InputError(
            f"{source}: '{slug}' is not a usable campaign slug.",
            "Name the file with lowercase letters, digits, '-' or '_', e.g. 2026-10-digest.md.",
        )
    unknown = set(meta) - _FRONT_MATTER_KEYS
    if unknown:
        raise InputError(
            f"{source}: unknown front matter key(s): {', '.join(sorted(unknown))}.",
            f"Known keys: {', '.join(sorted(_FRONT_MATTER_KEYS))}.",
        )
    subject = str(meta.get("subject") or "").strip()
    if not subject:
        raise InputError(
            f"{source}: the campaign has no subject.", "Add `subject:` to its front matter."
        )
    articles_meta = meta.get("articles") or []
    if not isinstance(articles_meta, list):
        raise InputError(f"{source}: `articles` must be a list.")
    excerpt_words = settings.get("content", "excerpt_words")
    return Campaign(
        slug=slug,
        subject=subject,
        body=body.strip(),
        path=source,
        template=str(meta.get("template") or "digest"),
        preheader=str(meta.get("preheader") or ""),
        sender=meta.get("from"),
        reply_to=meta.get("reply_to"),
        audience=_audience(meta.get("audience"), source),
        articles=[_article(settings, item, source, excerpt_words) for item in articles_meta],
        utm_campaign=str(meta.get("utm_campaign") or slug),
    )


def _audience(value: Any, source: str) -> Audience:
    if value is None:
        return Audience()
    if not isinstance(value, dict) or set(value) - _AUDIENCE_KEYS:
        raise InputError(
            f"{source}: `audience` must be a mapping with {', '.join(sorted(_AUDIENCE_KEYS))}.",
        )

    def tags(key: str) -> tuple[str, ...]:
        items = value.get(key) or []
        if isinstance(items, str):
            items = [items]
        return tuple(str(t).strip().lower() for t in items if str(t).strip())

    return Audience(tags("tags_any"), tags("tags_all"), tags("exclude_tags"))


def _article(settings: Settings, item: Any, source: str, excerpt_words: int) -> Article:
    if isinstance(item, str):
        item = {"url": item} if item.startswith(("http://", "https://")) else {"path": item}
    if not isinstance(item, dict) or set(item) - _ARTICLE_KEYS:
        raise InputError(
            f"{source}: each item of `articles` must be a path, a URL, or a mapping with "
            f"{', '.join(sorted(_ARTICLE_KEYS))}; got {item!r}.",
        )
    if "path" not in item:
        kind = "url" if "url" in item else "feed"
        raise InputError(
            f"{source}: article {item.get(kind)!r} is a {kind} source, which this version "
            "cannot read yet.",
            "Save the article as a Markdown file under articles/ and list its path.",
        )
    article = read_markdown_article(settings.resolve(item["path"]), excerpt_words)
    for key in ("title", "excerpt", "image"):
        if item.get(key):
            setattr(article, key, str(item[key]).strip())
    return article
