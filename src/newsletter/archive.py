"""The public archive: the campaigns a real send delivered, newest first, as an index
page, each campaign's stored web version and an Atom feed (RFC 4287).

Nothing is rebuilt: every page is the web version ``Project.send`` stored when the
campaign's real send began (``campaign_pages``), the email for no one, so the archive
shows what readers got even after the campaign file, its articles or the templates
changed. A campaign whose front matter says ``archive: false`` keeps its web version
(its emails link there) but is not listed; one that only went to the outbox was a
rehearsal and is never published.

``newsletter serve`` answers ``/archive`` and ``/archive/feed.xml`` from
``load_archive``, ``index_html`` and ``feed_xml``; ``newsletter archive --out DIR``
is ``write_archive``: the same as static files, written atomically, with a manifest
so that only files it wrote itself are ever removed.

Atom ids never depend on where the archive is published: the feed and each entry
have a ``urn:uuid:`` id derived from the newsletter's sender address (and the
campaign's slug), so they stay the same when ``public_url`` changes or is unset.
Without ``public_url`` (and without ``--base-url`` for the static files) the feed's
links are relative references, which RFC 4287 resolves against the feed's own
address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import json
import os
import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from .catalog import rehearsal_transports
from .errors import InputError, os_error
from .files import publish_files
from .language import DEFAULT_LANGUAGE, direction
from .tokens import LINK_TOKEN

if TYPE_CHECKING:
    from .config import Settings
    from .store import Ledger

ATOM = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml"
MANIFEST = ".newsletter-archive.json"  # in DIR: the files `newsletter archive` wrote
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # campaigns.SLUG: safe as a file name
# What XML 1.0 cannot carry, and the C1 controls: never written, in XML or in HTML
_NOT_TEXT = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# An unsubscribe link with its token (tokens.py: <subscriber>.<campaign>.<signature>)
_UNSUBSCRIBE = re.compile(r"(?:https?://[^\s\"'<>/]+)?/u/" + LINK_TOKEN.pattern)
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One published campaign: its stored subject and preheader, when its real send
    began (``sent_at``) and last finished (``updated_at``), both RFC 3339 UTC."""

    slug: str
    subject: str
    preheader: str
    sent_at: str
    updated_at: str

    @property
    def date(self) -> str:
        """The day it went out, for people: "October 12, 2026"."""
        day = _when(self.sent_at)
        return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"

    @property
    def iso_date(self) -> str:
        return _when(self.sent_at).date().isoformat()


@dataclass(frozen=True, slots=True)
class Archive:
    """The archive as it stands: the newsletter's name, its public address ("" when
    unset), the ids of its feed and entries, and the entries, newest first."""

    name: str
    public_url: str
    identity: str  # the sender's address: what the Atom ids are derived from
    entries: tuple[ArchiveEntry, ...]
    language: str = DEFAULT_LANGUAGE  # [newsletter] language: the index page's lang and dir

    @property
    def feed_id(self) -> str:
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'newsletter:{self.identity}')}"

    def entry_id(self, entry: ArchiveEntry) -> str:
        name = f"newsletter:{self.identity}:{entry.slug}"
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"

    @property
    def updated(self) -> str:
        """The newest entry's time; an empty archive was never updated (the epoch)."""
        return max((e.updated_at for e in self.entries), default="1970-01-01T00:00:00Z")


@dataclass(frozen=True, slots=True)
class Links:
    """Where the archive's parts are, for one way of publishing it: the index, the
    feed, each campaign's page (``pages`` + slug + ``suffix``) and the sign-up page
    (None: no link)."""

    index: str
    feed: str
    pages: str
    suffix: str = ""
    subscribe: str | None = None

    def page(self, slug: str) -> str:
        return f"{self.pages}{quote(slug)}{self.suffix}"


def served_links(public_url: str = "") -> Links:
    """`newsletter serve`'s addresses: under ``public_url`` (absolute, for the feed), or
    relative to the site's root when it is ""."""
    base = public_url.rstrip("/")
    return Links(f"{base}/archive", f"{base}/archive/feed.xml", f"{base}/c/", "", "/subscribe")


def static_links(subscribe: str | None = None) -> Links:
    """The static folder's own addresses, relative to its index (hosted anywhere)."""
    return Links("index.html", "feed.xml", "c/", ".html", subscribe)


@dataclass(frozen=True, slots=True)
class ArchiveFiles:
    """What ``write_archive`` did in ``out``: the files it wrote or found unchanged, the
    files of campaigns no longer archived it removed, and those it left because they
    changed since it wrote them."""

    out: Path
    entries: int
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    removed: tuple[Path, ...]
    kept: tuple[Path, ...]


# -- the archive ----------------------------------------------------------------------------
def load_archive(settings: Settings, ledger: Ledger) -> Archive:
    """The archive from the ledger: no page is read yet."""
    entries = tuple(
        ArchiveEntry(
            slug=row.slug,
            subject=_text(row.subject),
            preheader=_text(row.preheader),
            sent_at=row.sent_at,
            updated_at=row.updated_at,
        )
        for row in ledger.archived_campaigns(rehearsal_transports())
        if _SLUG.match(row.slug)
    )
    _, sender = parseaddr(settings.get("newsletter", "from") or "")
    return Archive(
        name=_text(settings.name),
        public_url=(settings.newsletter.public_url or "").rstrip("/"),
        identity=sender.lower() or settings.name,
        entries=entries,
        language=settings.get("newsletter", "language"),
    )


def campaign_page(ledger: Ledger, public_url: str, slug: str) -> str | None:
    """A listed campaign's page: its stored web version, unsubscribe links made neutral
    (the stored page has none: this only makes sure). None: not in the archive.
    ``public_url``: the newsletter's, without its trailing slash (``Archive.public_url``)."""
    if not _SLUG.match(slug):
        return None
    page = ledger.campaign_page(slug)
    if page is None:
        return None
    return public_page(page.html, public_url)


def public_page(page: str, public_url: str = "") -> str:
    """``page`` with every unsubscribe link that carries a token replaced by the
    newsletter's general unsubscribe page."""
    return _UNSUBSCRIBE.sub(f"{public_url}/unsubscribe", page)


# -- the index page ---------------------------------------------------------------------
_STYLE = """
:root{color-scheme:light dark}
*{box-sizing:border-box}
body{margin:0;font:17px/1.55 Georgia,'Times New Roman',serif;color:#222;background:#fbfaf7}
.wrap{max-width:40rem;margin:0 auto;padding:2.5rem 1.25rem 3rem}
a{color:#2f6f5e}
a:focus-visible{outline:3px solid #2f6f5e;outline-offset:2px}
.name{margin:0;font-size:.95rem;letter-spacing:.04em;text-transform:uppercase;color:#555}
h1{margin:.2em 0 .4em;font-size:2rem;line-height:1.2}
.intro{margin:0 0 2rem}
.button{display:inline-block;margin:.2rem 0;margin-inline-end:.6rem;padding:.45em 1.2em;
border-radius:4px;
background:#2f6f5e;color:#fff;text-decoration:none}
ol{list-style:none;margin:0;padding:0}
li{padding:1.1rem 0;border-top:1px solid #ddd8cc}
h2{margin:0;font-size:1.25rem;line-height:1.3}
h2,p{overflow-wrap:anywhere}
.date{margin:.2rem 0 .3rem;font-size:.9rem;color:#555}
.preheader{margin:0}
footer{margin-top:2rem;padding-top:1rem;border-top:1px solid #ddd8cc;font-size:.9rem;color:#555}
@media (prefers-color-scheme:dark){
body{color:#e8ece9;background:#161c1a}
a{color:#8fd1bd}
a:focus-visible{outline-color:#8fd1bd}
.name,.date,footer{color:#b7c2bd}
.button{background:#8fd1bd;color:#10201b}
li,footer{border-color:#34403c}
}
"""


def index_html(archive: Archive, links: Links) -> str:
    """The index: the newsletter's name, a sign-up link, the feed, and each campaign
    (subject, date, preheader) linking to its page; every text escaped here."""

    def e(text: str) -> str:
        return html.escape(_text(text))

    name = e(archive.name)
    subscribe = (
        f"<a class='button' href='{e(links.subscribe)}'>Subscribe</a>" if links.subscribe else ""
    )
    feed = f"<a href='{e(links.feed)}'>Atom feed</a>"
    if archive.entries:
        items = "".join(
            "<li><article>"
            f"<h2 dir='auto'><a href='{e(links.page(entry.slug))}'>{e(entry.subject)}</a></h2>"
            f"<p class='date'><time datetime='{e(entry.iso_date)}'>{e(entry.date)}</time></p>"
            + (
                f"<p class='preheader' dir='auto'>{e(entry.preheader)}</p>"
                if entry.preheader
                else ""
            )
            + "</article></li>"
            for entry in archive.entries
        )
        listing = f"<ol>{items}</ol>"
        intro = f"Every issue of {name} we have sent, newest first."
    else:
        listing = (
            "<p dir='auto'>No issues have been published yet. The first one will appear here.</p>"
        )
        intro = f"Issues of {name} appear here once they are sent."
    return (
        f"<!doctype html><html lang='{e(archive.language)}' dir='{direction(archive.language)}'>"
        "<head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Past issues · {name}</title>"
        f"<link rel='alternate' type='{ATOM_TYPE}' title='{name}' href='{e(links.feed)}'>"
        f"<style>{' '.join(_STYLE.split())}</style></head>"
        "<body><div class='wrap'><header>"
        f"<p class='name' dir='auto'>{name}</p><h1 dir='auto'>Past issues</h1>"
        f"<p class='intro' dir='auto'>{intro}</p>"
        f"<p>{subscribe}{feed}</p>"
        "</header>"
        f"<main>{listing}</main>"
        f"<footer><p dir='auto'>Follow new issues in a feed reader: {feed}.</p></footer>"
        "</div></body></html>"
    )


# -- the Atom feed ----------------------------------------------------------------------
def feed_xml(archive: Archive, links: Links) -> bytes:
    """The archive as an Atom 1.0 feed (RFC 4287), UTF-8: one entry per campaign with its
    subject as title, its preheader as summary and its page as the alternate link. The
    pages' HTML is not included: feed readers link to it."""
    feed = ET.Element("feed", xmlns=ATOM)  # every element in Atom's (default) namespace
    _sub(feed, "id", archive.feed_id)
    _sub(feed, "title", archive.name)
    _sub(feed, "subtitle", f"Past issues of {archive.name}")
    _sub(feed, "updated", archive.updated)
    ET.SubElement(feed, "link", rel="self", type=ATOM_TYPE, href=links.feed)
    ET.SubElement(feed, "link", rel="alternate", type="text/html", href=links.index)
    author = ET.SubElement(feed, "author")
    _sub(author, "name", archive.name)
    _sub(feed, "generator", "newsletter")
    for entry in archive.entries:
        item = ET.SubElement(feed, "entry")
        _sub(item, "id", archive.entry_id(entry))
        _sub(item, "title", entry.subject)
        _sub(item, "published", entry.sent_at)
        _sub(item, "updated", entry.updated_at)
        ET.SubElement(item, "link", rel="alternate", type="text/html", href=links.page(entry.slug))
        if entry.preheader:
            _sub(item, "summary", entry.preheader)
    out = io.BytesIO()
    ET.ElementTree(feed).write(out, encoding="utf-8", xml_declaration=True)
    return out.getvalue() + b"\n"


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = _text(text)
    return element


# -- the static folder -------------------------------------------------------------------
def write_archive(
    settings: Settings, ledger: Ledger, out: Path, base_url: str | None = None
) -> ArchiveFiles:
    """The archive as static files in ``out``: ``index.html``, ``c/<campaign>.html`` and
    ``feed.xml``, with relative links so the folder can be hosted anywhere; the feed's
    links are absolute under ``base_url`` (where the folder is published) or else the
    web versions under ``public_url``.

    Every file is written to a temporary file beside it first, and only once all of
    them are written are they renamed into place: a failure leaves the folder as it
    was. Files of campaigns no longer archived are removed only when the manifest
    (``.newsletter-archive.json``) says this command wrote them and they are unchanged
    since; nothing else in ``out`` is touched."""
    if base_url is not None:
        base_url = _published_at(base_url)
    _check_folder(out)
    archive = load_archive(settings, ledger)
    files = _archive_files(ledger, archive, base_url)
    try:
        before = _read_manifest(out)
        written, unchanged = publish_files(out, files)
        removed, kept = _remove_stale(out, before, files)
        manifest = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
        publish_files(out, {MANIFEST: _manifest_bytes(manifest)})
    except OSError as exc:
        raise os_error(exc, "newsletter archive") or exc from None
    return ArchiveFiles(
        out=out,
        entries=len(archive.entries),
        written=tuple(out / n for n in written),
        unchanged=tuple(out / n for n in unchanged),
        removed=tuple(removed),
        kept=tuple(kept),
    )


def _published_at(base_url: str) -> str:
    """``--base-url`` without its trailing slash; InputError unless it is an http(s) address."""
    base_url = base_url.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", base_url):
        raise InputError(
            f"--base-url must be an http(s) address, not {base_url!r}.",
            "Give the address the folder will be published at, e.g. "
            "https://blog.example.org/newsletter.",
        )
    return base_url


def _archive_files(ledger: Ledger, archive: Archive, base_url: str | None) -> dict[str, bytes]:
    """The folder's files by name: each campaign's page, the index and the feed."""
    public = archive.public_url
    files: dict[str, bytes] = {}
    for entry in archive.entries:
        page = campaign_page(ledger, public, entry.slug)
        if page is not None:
            files[f"c/{entry.slug}.html"] = page.encode("utf-8")
    subscribe = f"{public}/subscribe" if public else None
    files["index.html"] = index_html(archive, static_links(subscribe)).encode("utf-8")
    files["feed.xml"] = feed_xml(archive, _feed_links(base_url, public))
    return files


def _feed_links(base_url: str | None, public: str) -> Links:
    """The feed's links: under ``base_url``, else the web versions under ``public_url``."""
    if base_url:
        return Links(f"{base_url}/", f"{base_url}/feed.xml", f"{base_url}/c/", ".html")
    if public:
        return served_links(public)
    return static_links()  # relative references, resolved against feed.xml's own address


def _remove_stale(
    out: Path, before: dict[str, str], files: dict[str, bytes]
) -> tuple[list[Path], list[Path]]:
    """(removed, kept): the files an earlier run wrote (``before``, name -> SHA-256) that
    this one does not; each is removed only when it is unchanged since, else kept."""
    removed, kept = [], []
    for name, digest in before.items():
        if name in files:
            continue
        path = _inside(out, name)
        if path is None or not path.is_file() or path.is_symlink():
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            path.unlink()
            removed.append(path)
        else:
            kept.append(path)
    return removed, kept


def _check_folder(out: Path) -> None:
    """``out`` as a folder we can write in (created when missing); InputError if not."""
    if out.exists() and not out.is_dir():
        raise InputError(
            f"{out} is a file, not a folder.",
            "Give --out a folder (it is created if missing); the archive writes index.html, "
            "feed.xml and c/<campaign>.html in it.",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"The folder {out} could not be created: {exc.strerror or exc}.",
            "Choose a folder you can write in.",
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(
            f"The folder {out} is not writable.",
            "Choose a folder you can write in, or change its permissions.",
        )


def _read_manifest(out: Path) -> dict[str, str]:
    """The files an earlier run wrote (name -> SHA-256); none when there is no manifest
    or it is not ours."""
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}


def _manifest_bytes(files: dict[str, str]) -> bytes:
    data = {"written_by": "newsletter archive", "files": dict(sorted(files.items()))}
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def _inside(out: Path, name: str) -> Path | None:
    """``out / name`` when ``name`` is a plain relative path that stays inside ``out``."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or any(p in ("..", ".", "") for p in parts):
        return None
    return out / name


# -- text -----------------------------------------------------------------------------------
def _text(value: str) -> str:
    """Text as XML 1.0 and HTML can carry it: control characters removed."""
    return _NOT_TEXT.sub("", value or "")


def _when(stamp: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


__all__ = [
    "Archive",
    "ArchiveEntry",
    "ArchiveFiles",
    "Links",
    "campaign_page",
    "feed_xml",
    "index_html",
    "load_archive",
    "public_page",
    "served_links",
    "static_links",
    "write_archive",
]
