"""Campaign files (``campaigns/<slug>.md``) -> Campaign.

A sequence's steps are campaign files too: ``sequences/<name>/<stem>.md``, slug
``<name>--<stem>`` (``--`` is kept for them), with ``after:`` in their front matter.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
from pathlib import Path
from typing import Any

from .config import DURATION_EXAMPLES, Settings, parse_duration
from .content import ArticleReader, excerpt_from_html, split_front_matter
from .content.urls import written_address
from .errors import InputError
from .language import language_error
from .models import DEFAULT_GREETING, Article, Audience, Campaign
from .zones import UTC, at_wall_clock, zone

GREETING_EXAMPLE = '"Dear " ~ recipient.first_name_or("colleague") ~ ","'

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
    "greeting",
    "archive",
    "send_at",
    "local_time",
    "lang",
}
STEP_SEPARATOR = "--"  # <sequence>--<step file stem>: a sequence step's slug
_ARTICLE_KEYS = {"path", "url", "feed", "excerpt", "image", "title"}
_AUDIENCE_KEYS = {"tags_any", "tags_all", "exclude_tags"}


def _is_path(campaign: str) -> bool:
    as_path = Path(campaign)
    return as_path.suffix == ".md" or len(as_path.parts) > 1


def step_of(settings: Settings, path: Path) -> tuple[str, str] | None:
    """(sequence, step file stem) when ``path`` is a step, ``sequences/<name>/<stem>.md``."""
    folder = path.resolve().parent
    if folder.parent != settings.sequences_dir.resolve():
        return None
    return folder.name, path.stem


def campaign_slug(settings: Settings, campaign: str) -> str:
    """The slug CAMPAIGN (a slug or a file's path) names, without reading the file."""
    if not _is_path(campaign):
        return campaign
    step = step_of(settings, Path(campaign))
    return STEP_SEPARATOR.join(step) if step else Path(campaign).stem


def campaign_path(settings: Settings, campaign: str) -> Path:
    """The file for CAMPAIGN, given as a path or as a slug in ``campaigns/`` (a
    sequence step's slug, ``<sequence>--<stem>``: its file in ``sequences/<sequence>/``)."""
    if _is_path(campaign):
        if not Path(campaign).is_file():
            raise InputError(f"Campaign file {campaign} does not exist.", "Check the path.")
        return Path(campaign).resolve()
    if STEP_SEPARATOR in campaign:
        return _step_path(settings, campaign)
    candidate = settings.campaigns_dir / f"{campaign}.md"
    if not candidate.is_file():
        known = sorted(p.stem for p in settings.campaigns_dir.glob("*.md"))
        raise InputError(
            f"No campaign '{campaign}': {candidate} does not exist.",
            f"Known campaigns: {', '.join(known) or 'none'}. Pass a slug or a file path.",
        )
    return candidate


def _step_path(settings: Settings, slug: str) -> Path:
    """The file of the sequence step ``slug`` (``<sequence>--<stem>``)."""
    sequence, _, stem = slug.partition(STEP_SEPARATOR)
    configured_sequence(settings, sequence, slug)
    candidate = settings.sequences_dir / sequence / f"{stem}.md"
    if not candidate.is_file():
        known = sorted(
            f"{sequence}{STEP_SEPARATOR}{p.stem}"
            for p in (settings.sequences_dir / sequence).glob("*.md")
        )
        raise InputError(
            f"No step '{slug}': {candidate} does not exist.",
            f"Steps of {sequence}: {', '.join(known) or 'none'}. A step's slug is "
            "<sequence>--<file name without .md>.",
        )
    return candidate


def configured_sequence(settings: Settings, sequence: str, what: str) -> None:
    """InputError unless ``[sequences.<sequence>]`` is in newsletter.toml."""
    if sequence in settings.sequences:
        return
    raise InputError(
        f"{what}: there is no sequence '{sequence}' in {settings.path}.",
        f"Add a [sequences.{sequence}] section (it may be empty) to newsletter.toml, or "
        f"check the name; configured: {', '.join(sorted(settings.sequences)) or 'none'}.",
    )


def enterable_sequence(settings: Settings, name: str) -> None:
    """InputError unless readers can be entered into sequence ``name``: configured, and
    with its folder of steps."""
    configured_sequence(settings, name, f"--enter {name}")
    folder = settings.sequences_dir / name
    if not folder.is_dir():
        raise InputError(
            f"--enter {name}: the sequence has no folder {folder}/; nothing was imported.",
            "Create the folder with one campaign file per step (each with `after:`), then "
            "import again.",
        )


def _identity(settings: Settings, path: Path, source: str) -> tuple[str, str | None]:
    """The campaign's slug, and its sequence when it is a step."""
    step = step_of(settings, path)
    names = step or (path.stem,)
    for name in names:
        if not SLUG.match(name) or STEP_SEPARATOR in name:
            raise InputError(
                f"{source}: '{name}' is not a usable campaign slug.",
                "Name the file with lowercase letters, digits, '-' or '_', e.g. "
                "2026-10-digest.md ('--' is kept for sequence steps, <sequence>--<step>).",
            )
    if step is None:
        return path.stem, None
    configured_sequence(settings, step[0], source)
    return STEP_SEPARATOR.join(step), step[0]


def _after(meta: dict[str, Any], source: str, sequence: str | None) -> Any:
    """A step's ``after`` (required); other campaigns have none."""
    if sequence is None:
        if "after" in meta:
            raise InputError(
                f"{source}: `after` is only for the steps of a sequence "
                "(files in sequences/<name>/).",
                "Remove it, or move the file into a sequence's folder.",
            )
        return None
    after = parse_duration(meta.get("after"))
    if after is None:
        given = f"is {meta['after']!r}" if "after" in meta else "is missing"
        raise InputError(
            f"{source}: `after` {given}; a step says when it is due after the reader "
            "entered the sequence.",
            f"Write a number and a unit (m, h, d or w), e.g. after: 3d ({DURATION_EXAMPLES}).",
        )
    return after


def _send_at(
    meta: dict[str, Any], source: str, sequence: str | None
) -> tuple[dt.datetime | None, str | None]:
    """The campaign's ``send_at`` (and the zone it names); a step of a sequence has none."""
    if sequence and ("send_at" in meta or "local_time" in meta):
        raise InputError(
            f"{source}: `send_at` and `local_time` are for campaigns in campaigns/; a step "
            "of a sequence goes to each reader `after` they entered it.",
            "Remove send_at/local_time from the step, or move the file to campaigns/ to "
            "send it once to everyone at that time.",
        )
    return parse_send_at(meta.get("send_at"), source)


def step_after(settings: Settings, path: Path) -> Any:
    """A step file's ``after``, from its front matter alone (its articles are not read)."""
    sequence = _identity(settings, path, str(path))[1]
    meta, _ = split_front_matter(_text(path), str(path))
    return _after(meta, str(path), sequence)


def _text(path: Path) -> str:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source} is not UTF-8 text (byte {exc.start}).",
            "Save the campaign file as UTF-8 text (any editor can); it is Markdown with "
            "YAML front matter.",
        ) from None
    return text


def load_campaign(settings: Settings, campaign: str, reader: ArticleReader) -> Campaign:
    """Read and validate a campaign file, with its articles."""
    path = campaign_path(settings, campaign)
    source = str(path)
    text = _text(path)
    meta, body = split_front_matter(text, source)
    stripped = body.lstrip()
    body_line = 1 + text[: len(text) - len(stripped)].count("\n")
    slug, sequence = _identity(settings, path, source)
    after = _after(meta, source, sequence)
    unknown = set(meta) - _FRONT_MATTER_KEYS - ({"after"} if sequence else set())
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
    utm_campaign = meta.get("utm_campaign", slug)
    archive = meta.get("archive", sequence is None)  # a step is not listed unless asked
    if not isinstance(archive, bool):
        raise InputError(
            f"{source}: `archive` must be true or false, not {archive!r}.",
            "Write `archive: false` to keep this campaign out of the public archive "
            "(its web version still works for the readers who got it).",
        )
    send_at, send_zone = _send_at(meta, source, sequence)
    return Campaign(
        slug=slug,
        subject=subject,
        body=body.strip(),
        path=source,
        template=str(meta.get("template") or "digest"),
        preheader=str(meta.get("preheader") or ""),
        sender=meta.get("from"),
        reply_to=meta.get("reply_to"),
        audience=parse_audience(meta.get("audience"), source),
        articles=[_article(reader, item, source) for item in articles_meta],
        utm_campaign="" if utm_campaign is False else str(utm_campaign or slug).lower(),
        greeting=_greeting(meta.get("greeting", True), source),
        body_line=body_line,
        archive=archive,
        sequence=sequence,
        after=after,
        send_at=send_at,
        send_zone=send_zone,
        local_time=_local_time(meta.get("local_time", False), send_at, source),
        lang=_lang(meta.get("lang"), source),
    )


SEND_AT_FORMS = (
    "Write it as an ISO 8601 date-time with an offset, send_at: 2026-12-10T09:00:00+01:00, "
    "or with a time-zone name, send_at: 2026-12-10 09:00 Europe/Berlin."
)
_ZONED = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2}(?::\d{2})?)\s+(\S+)$")


def parse_send_at(value: Any, source: str) -> tuple[dt.datetime | None, str | None]:
    """``send_at`` as (an aware datetime, the IANA zone it names or None); an InputError
    that shows both forms when it is not one of them."""
    if value is None:
        return None, None
    if isinstance(value, dt.datetime):  # YAML read an ISO timestamp itself
        if value.tzinfo is None:
            raise _send_at_error(source, value, "it has no offset nor time zone")
        return value, None
    if not isinstance(value, str):
        raise _send_at_error(source, value, "it is not a date and time")
    text = value.strip()
    match = _ZONED.match(text)
    if match:
        return _zoned(match, source, value)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _send_at_error(source, value, "it is not a date and time") from None
    if moment.tzinfo is None:
        raise _send_at_error(source, value, "it has no offset nor time zone")
    return moment, None


def _zoned(match: re.Match[str], source: str, value: str) -> tuple[dt.datetime, str]:
    """ "2026-12-10 09:00 Europe/Berlin": the wall-clock time in that zone."""
    name = match[3]
    tz = zone(name)
    if tz is None:
        raise InputError(
            f"{source}: send_at {value!r} names the time zone {name!r}, which is not a known "
            "IANA time zone.",
            "Use an Area/City name such as Europe/Berlin, America/New_York or "
            "Pacific/Auckland (see `timedatectl list-timezones`), or an offset: "
            "send_at: 2026-12-10T09:00:00+01:00.",
        )
    try:
        day = dt.date.fromisoformat(match[1])
        time = dt.time.fromisoformat(match[2].zfill(5) if len(match[2]) == 4 else match[2])
    except ValueError:
        raise _send_at_error(source, value, "it is not a date and time") from None
    # as written, on the zone's clocks (a gap moves forward, a repeated hour is the first)
    return at_wall_clock(day, time, tz).astimezone(tz), tz.key


def _send_at_error(source: str, value: Any, why: str) -> InputError:
    return InputError(f"{source}: send_at {value!r} is not usable: {why}.", SEND_AT_FORMS)


def _lang(value: Any, source: str) -> str:
    """The front matter's ``lang:`` ("" when absent: the newsletter's own language)."""
    if value is None:
        return ""
    problem = language_error(value)
    if problem:
        raise InputError(f"{source}: lang {problem}")
    return str(value)


def _local_time(value: Any, send_at: dt.datetime | None, source: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(
            f"{source}: `local_time` must be true or false, not {value!r}.",
            "Write `local_time: true` to send at send_at's time on each reader's own clocks.",
        )
    if value and send_at is None:
        raise InputError(
            f"{source}: `local_time: true` needs a send_at.",
            "Add send_at: 2026-12-10 09:00 Europe/Berlin (the time each reader gets it, on "
            "their own clocks), or remove local_time.",
        )
    return value


def send_at_in_past(campaign: Campaign, now: dt.datetime) -> str | None:
    """The message when the campaign's ``send_at`` has passed by ``now`` (None if not)."""
    if campaign.send_at is None or campaign.send_at > now:
        return None
    return (
        f"send_at {describe_time(campaign.send_at, campaign.send_zone)} of {campaign.slug} "
        "is in the past; remove it to send now, or set a future time"
    )


def describe_time(moment: dt.datetime, zone_name: str | None = None) -> str:
    """A time as people read it: "2026-12-10 09:00 Europe/Berlin (08:00 UTC)"."""
    tz = zone(zone_name) if zone_name else None
    local = moment.astimezone(tz) if tz else moment
    label = zone_name or local.strftime("%z")
    utc = moment.astimezone(UTC)
    same_day = utc.date() == local.date()
    return (
        f"{local:%Y-%m-%d %H:%M} {label} ("
        + (f"{utc:%H:%M}" if same_day else f"{utc:%Y-%m-%d %H:%M}")
        + " UTC)"
    )


def _greeting(value: Any, source: str) -> str:
    """The greeting expression: the built-in one, the file's own, or "" for none."""
    if value is True or value is None:
        return DEFAULT_GREETING
    if value is False:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise InputError(
            f"{source}: `greeting` must be a Jinja2 expression over recipient, or false.",
            f"For example: greeting: '{GREETING_EXAMPLE}'",
        )
    return value.strip()


def parse_audience(value: Any, source: str) -> Audience:
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
        if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
            raise InputError(
                f"{source}: `audience: {key}` must be a tag or a list of tags, not {items!r}.",
                f"For example: `{key}: [ce, therapist]`.",
            )
        return tuple(t.strip().lower() for t in items if t.strip())

    return Audience(tags("tags_any"), tags("tags_all"), tags("exclude_tags"))


def _article(reader: ArticleReader, item: Any, source: str) -> Article:
    """One ``articles`` item: a path, a URL, or a mapping with path/url/feed and overrides."""
    item = _article_item(item, source)
    article = _featured(reader, item, source)
    overrides = _article_overrides(reader, item, source)
    # a new record: the one read may be shared (a feed's entry serves every campaign)
    return dataclasses.replace(article, **overrides) if overrides else article


def _article_item(item: Any, source: str) -> dict[str, Any]:
    """The item as a mapping (a string is its path or URL); InputError if it is not one."""
    if isinstance(item, str):
        item = {"url": item} if item.startswith(("http://", "https://")) else {"path": item}
    if (
        not isinstance(item, dict)
        or set(item) - _ARTICLE_KEYS
        or not ({"path", "url", "feed"} & set(item))
    ):
        raise InputError(
            f"{source}: each item of `articles` must be a path, a URL, or a mapping with "
            f"path, url or feed (and optionally title, excerpt, image); got {item!r}.",
        )
    return item


def _featured(reader: ArticleReader, item: dict[str, Any], source: str) -> Article:
    """The article the item names: a feed's entry, or the one article of a page or file."""
    if "feed" in item:
        link = item.get("url")
        return reader.feed_entry(str(item["feed"]), None if link is None else str(link))
    found = reader.read(str(item.get("path") or item.get("url")))
    if len(found) != 1:
        raise InputError(
            f"{source}: {item.get('path') or item.get('url')} is not one article "
            f"({len(found)} found).",
            "To feature a feed's entry, write `- feed: FEED` with `url: ENTRY-LINK`.",
        )
    return found[0]


def _article_overrides(reader: ArticleReader, item: dict[str, Any], source: str) -> dict[str, str]:
    """What the campaign file says instead of the article: title, image, excerpt."""
    overrides: dict[str, str] = {}
    if item.get("title"):
        overrides["title"] = str(item["title"]).strip()
    image = reader.published_image(written_address(str(item.get("image") or ""), "image", source))
    if image:
        overrides["image"] = image
    if item.get("excerpt"):
        overrides["excerpt_html"], overrides["excerpt"] = excerpt_from_html(
            f"<p>{html.escape(str(item['excerpt']).strip())}</p>", None
        )
    return overrides


def scheduled_heads(settings: Settings) -> tuple[list[Campaign], list[InputError]]:
    """The campaigns in ``campaigns/`` with a ``send_at``, read from their front matter
    only (no articles, no body: what `newsletter run` and `schedule` need to decide),
    and the errors of files whose front matter mentions send_at but cannot be read."""
    heads: list[Campaign] = []
    errors: list[InputError] = []
    for path in sorted(settings.campaigns_dir.glob("*.md")):
        try:
            text = path.read_text(encoding="utf-8").lstrip("\ufeff")
        except (OSError, UnicodeDecodeError):
            continue  # `send` and `check` say what is wrong with such a file
        if "send_at" not in text.split("\n---", 1)[0] or not SLUG.match(path.stem):
            continue
        try:
            head = _head(path, text)
        except InputError as exc:
            errors.append(exc)
            continue
        if head is not None:
            heads.append(head)
    return heads, errors


def _head(path: Path, text: str) -> Campaign | None:
    source = str(path)
    meta, _ = split_front_matter(text, source)
    send_at, send_zone = parse_send_at(meta.get("send_at"), source)
    if send_at is None:
        return None
    return Campaign(
        slug=path.stem,
        subject=str(meta.get("subject") or path.stem).strip(),
        body="",
        path=source,
        audience=parse_audience(meta.get("audience"), source),
        send_at=send_at,
        send_zone=send_zone,
        local_time=_local_time(meta.get("local_time", False), send_at, source),
    )
