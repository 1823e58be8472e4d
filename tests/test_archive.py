"""The public archive (issue 15): `serve`'s /archive and /archive/feed.xml over real
HTTP, and `newsletter archive --out DIR` as real files.

Campaigns are sent for real through the local Postmark fake: a campaign that only went
to the outbox is a rehearsal and never published. Readers with names and addresses in
several scripts get every campaign; nothing of theirs may appear anywhere in the
archive.
"""

from __future__ import annotations

import html
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
import requests

from conftest import CHROMIUM, CHROMIUM_ARGS, connect, copy_example, run_process, set_delivery
from fakes.postmark import FakePostmark
from newsletter.archive import (
    Archive,
    ArchiveEntry,
    feed_xml,
    index_html,
    public_page,
    served_links,
    static_links,
)
from web_servers import Running

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

ATOM = "{http://www.w3.org/2005/Atom}"
PUBLIC = "https://news.riverbend-clinicians.example"
KEY = {"NEWSLETTER_API_KEY": "pm-test"}
HOSTILE_SUBJECT = "Fees & \"rates\" <script>alert('x')</script> ]]> for 'members'"
# (control characters: the unit test below; the email's own MJML cannot take them today)
HOSTILE_PREHEADER = "Bring {{ 7*7 }} questions & <b>notes</b> ]]>, please"

# Readers whose data must never be published: (email, first name, last name)
READERS = [
    ("zoe.nunez@example.org", "Zoë", "Ñúñez"),
    ("xiaolong.li@example.cn", "李小龍", "李"),
    ("ahmad.quillfeather@example.net", "أحمد", "Quillfeather"),
    ("renee.dufour@bücher.example", "Renée", "Dufour"),
    ("zephyrine.okonkwo@example.com", "Zephyrine", "Okonkwo"),
]
CAMPAIGNS = {
    "first-issue": ("Our first issue: rest between sessions", "Why the minutes between matter."),
    "second-issue": (HOSTILE_SUBJECT, HOSTILE_PREHEADER),
    "members-only": ("A note for members only", "Not for the public archive."),
}


def campaign_file(subject: str, preheader: str, extra: str = "") -> str:
    quoted = '"' + subject.replace("\\", "\\\\").replace('"', '\\"') + '"'
    pre = '"' + preheader.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return (
        f"---\nsubject: {quoted}\npreheader: {pre}\ntemplate: announcement\n{extra}"
        "articles:\n  - articles/2026-11-03-winter-workshop-boundaries-and-ethics.md\n---\n\n"
        "A short note from the editors.\n"
    )


def send(root: Path, slug: str, env: dict[str, str] | None = None) -> None:
    done = run_process("send", slug, "--yes", cwd=root, env=env)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[dict]]]:
    """A project whose readers got two archived campaigns and one with `archive: false`
    through Postmark (the last one first rehearsed to the outbox while it was still
    archived), and two campaigns only rehearsed to the outbox (one with `archive: false`).
    Yields the project and the
    messages Postmark accepted."""
    root = copy_example(tmp_path_factory.mktemp("archive") / "project")
    lines = ["email,first_name,last_name"] + [f"{e},{f},{last}" for e, f, last in READERS]
    (root / "readers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    imported = run_process("subscribers", "import", "readers.csv", cwd=root)
    assert imported.returncode == 0, imported.stderr
    for slug, (subject, preheader) in CAMPAIGNS.items():
        (root / "campaigns" / f"{slug}.md").write_text(
            campaign_file(subject, preheader), encoding="utf-8"
        )
    send(root, "winter-workshop")  # the outbox only: a rehearsal
    (root / "campaigns" / "rehearsed-only.md").write_text(
        campaign_file("A rehearsal nobody got", "Tried on the outbox.", extra="archive: false\n"),
        encoding="utf-8",
    )
    send(root, "rehearsed-only")  # a rehearsal with `archive: false`
    send(root, "members-only")  # rehearsed while still meant for the archive
    (root / "campaigns" / "members-only.md").write_text(
        campaign_file(*CAMPAIGNS["members-only"], extra="archive: false\n"), encoding="utf-8"
    )
    with FakePostmark(token="pm-test") as pm:
        set_delivery(root, transport="postmark", base_url=pm.url)
        for slug in ("first-issue", "members-only", "second-issue"):
            send(root, slug, KEY)
        accepted = list(pm.accepted)
    set_delivery(root, transport="outbox")
    yield root, accepted


@pytest.fixture(scope="module")
def server(published: tuple[Path, list[dict]]) -> Iterator[Running]:
    running = Running(["serve", "--port", "0"], published[0])
    yield running
    running.stop()


def local(running: Running, url: str) -> str:
    """A public_url address, as the local server's."""
    assert url.startswith(PUBLIC + "/"), url
    return running.url + url.removeprefix(PUBLIC)


def hrefs(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r"href='([^']*)'", page)]


def check_atom(data: bytes, entries: int) -> ET.Element:
    """RFC 4287's required structure, read with xml.etree."""
    root = ET.fromstring(data)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{name}") is not None, name
    assert root.find(f"{ATOM}id").text.startswith("urn:uuid:")
    rels = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert set(rels) == {"self", "alternate"}
    found = root.findall(f"{ATOM}entry")
    assert len(found) == entries
    for entry in found:
        for name in ("id", "title", "updated", "published", "link"):
            assert entry.find(f"{ATOM}{name}") is not None, name
        assert entry.find(f"{ATOM}id").text.startswith("urn:uuid:")
    return root


# -- serve ------------------------------------------------------------------------------------
def test_serve_lists_the_sent_campaigns_newest_first(published, server: Running) -> None:
    index = requests.get(server.url + "/archive", timeout=10)
    assert index.status_code == 200
    assert index.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in index.headers["Content-Security-Policy"]
    assert index.headers["Cache-Control"] == "public, max-age=300"
    page = index.text
    assert "Riverbend Clinicians Collective" in page
    assert "href='/subscribe'" in page and "href='/archive/feed.xml'" in page
    first = page.index("Our first issue: rest between sessions")
    second = page.index(html.escape(HOSTILE_SUBJECT))
    assert second < first, "newest first"
    assert "Why the minutes between matter." in page
    assert re.search(r"<time datetime='\d{4}-\d\d-\d\d'>\w+ \d{1,2}, \d{4}</time>", page)
    # not listed: the campaign with `archive: false`, the outbox-only rehearsal
    assert "members only" not in page and "members-only" not in page
    assert "winter" not in page.lower()
    pages = [h for h in hrefs(page) if h.startswith("/c/")]
    assert pages == ["/c/second-issue", "/c/first-issue"]
    for path in pages:
        answer = requests.get(server.url + path, timeout=10)
        assert answer.status_code == 200 and "Hello there," in answer.text
    # the opted-out campaign's web version still works: its emails link to it
    assert requests.get(server.url + "/c/members-only", timeout=10).status_code == 200
    assert requests.get(server.url + "/archive/", timeout=10).text == page
    assert requests.get(server.url + "/archive/nothing", timeout=10).status_code == 404
    head = requests.head(server.url + "/archive", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert requests.post(server.url + "/archive", timeout=10).status_code == 405
    again = requests.get(
        server.url + "/archive", headers={"If-None-Match": index.headers["ETag"]}, timeout=10
    )
    assert again.status_code == 304 and again.content == b""


def test_a_rehearsal_has_no_web_version(published, server: Running) -> None:
    """Only a real send's page is served at /c/: a campaign that went only to the outbox
    is 404 there, listed in the archive or not; the real sends' pages are served."""
    for slug in ("winter-workshop", "rehearsed-only"):
        answer = requests.get(f"{server.url}/c/{slug}", timeout=10)
        assert answer.status_code == 404, slug
        assert "There is no such newsletter issue." in answer.text
    for slug in ("first-issue", "members-only"):
        assert requests.get(f"{server.url}/c/{slug}", timeout=10).status_code == 200, slug


def test_the_served_feed(published, server: Running) -> None:
    answer = requests.get(server.url + "/archive/feed.xml", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    feed = feedparser.parse(answer.content)
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert feed.feed.title == "Riverbend Clinicians Collective"
    assert [e.title for e in feed.entries] == [
        HOSTILE_SUBJECT,
        "Our first issue: rest between sessions",
    ]
    assert feed.entries[1].summary == "Why the minutes between matter."
    assert feed.entries[0].summary == HOSTILE_PREHEADER
    assert [e.link for e in feed.entries] == [
        f"{PUBLIC}/c/second-issue",
        f"{PUBLIC}/c/first-issue",
    ]
    for entry in feed.entries:
        assert entry.published_parsed and entry.updated_parsed
        assert requests.get(local(server, entry.link), timeout=10).status_code == 200
    root = check_atom(answer.content, 2)
    rels = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert rels == {"self": f"{PUBLIC}/archive/feed.xml", "alternate": f"{PUBLIC}/archive"}
    ids = [e.find(f"{ATOM}id").text for e in root.findall(f"{ATOM}entry")]
    assert len(set(ids)) == 2
    again = requests.get(server.url + "/archive/feed.xml", timeout=10)
    assert again.content == answer.content, "stable ids and dates"


# -- newsletter archive --out DIR --------------------------------------------------------------
def test_static_archive(published, tmp_path: Path) -> None:
    root, _ = published
    out = tmp_path / "site"
    out.mkdir()
    (out / "about.html").write_text("<p>ours, not the newsletter's</p>", encoding="utf-8")
    done = run_process("archive", "--out", str(out), cwd=root)
    assert done.returncode == 0, done.stderr
    assert "Archive of 2 campaign(s)" in done.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        ".newsletter-archive.json",
        "about.html",
        "c/first-issue.html",
        "c/second-issue.html",
        "feed.xml",
        "index.html",
    ]
    index = (out / "index.html").read_text(encoding="utf-8")
    links = hrefs(index)
    local_links = [h for h in links if "://" not in h]
    assert [h for h in local_links if h.startswith("c/")] == [
        "c/second-issue.html",
        "c/first-issue.html",
    ]
    assert set(local_links) == {"feed.xml", "c/second-issue.html", "c/first-issue.html"}
    for link in local_links:
        assert (out / link).is_file(), link
    assert f"{PUBLIC}/subscribe" in links
    stored = dict(
        (r[0], r[1])
        for r in connect(root).execute(
            "SELECT c.slug, p.html FROM campaign_pages p JOIN campaigns c ON c.id = p.campaign_id"
        )
    )
    assert (out / "c" / "first-issue.html").read_text(encoding="utf-8") == stored["first-issue"]
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert feed.bozo == 0 and len(feed.entries) == 2
    assert feed.entries[0].link == f"{PUBLIC}/c/second-issue"
    check_atom((out / "feed.xml").read_bytes(), 2)

    # twice: the same files, nothing rewritten; the unrelated file untouched
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    mtimes = {p: p.stat().st_mtime_ns for p in before}
    again = run_process("archive", "--out", str(out), cwd=root)
    assert again.returncode == 0, again.stderr
    assert "0 file(s) written, 4 unchanged, 0 removed" in again.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert {p: p.stat().st_mtime_ns for p in before} == mtimes

    # published elsewhere: the feed's links there
    moved = run_process(
        "archive", "--out", str(out), "--base-url", "https://blog.example.org/news/", cwd=root
    )
    assert moved.returncode == 0, moved.stderr
    feed = feedparser.parse((out / "feed.xml").read_bytes())
    assert feed.bozo == 0
    assert feed.entries[1].link == "https://blog.example.org/news/c/first-issue.html"
    assert feed.feed.links[0].href == "https://blog.example.org/news/feed.xml"

    # a campaign taken out of the archive: its file goes, one edited by hand stays
    (out / "c" / "second-issue.html").write_text("edited by hand", encoding="utf-8")
    db = connect(root)
    with db.transaction():
        db.execute("UPDATE campaign_pages SET in_archive = 0")
    try:
        gone = run_process("archive", "--out", str(out), cwd=root)
        assert gone.returncode == 0, gone.stderr
        assert not (out / "c" / "first-issue.html").exists()
        assert (out / "c" / "second-issue.html").read_text(encoding="utf-8") == "edited by hand"
        assert "kept" in gone.stderr and "removed" in gone.stderr
        assert (out / "about.html").read_text(encoding="utf-8").startswith("<p>ours")
        assert feedparser.parse((out / "feed.xml").read_bytes()).entries == []
    finally:
        with db.transaction():
            db.execute(
                "UPDATE campaign_pages SET in_archive = 1 WHERE campaign_id IN "
                "(SELECT id FROM campaigns WHERE slug != 'members-only')"
            )


def test_static_archive_refuses_what_it_cannot_write(published, tmp_path: Path) -> None:
    root, _ = published
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x", encoding="utf-8")
    done = run_process("archive", "--out", str(a_file), cwd=root)
    assert done.returncode == 1
    assert "is a file, not a folder" in done.stderr and "Traceback" not in done.stderr
    bad = run_process("archive", "--out", str(tmp_path / "s"), "--base-url", "ftp://x", cwd=root)
    assert bad.returncode == 1 and "--base-url" in bad.stderr
    # a write that fails half-way leaves the folder as it was, and no temporary files
    out = tmp_path / "old"
    out.mkdir()
    (out / "index.html").write_text("the old index", encoding="utf-8")
    (out / "c").write_text("a file where the pages' folder would go", encoding="utf-8")
    failed = run_process("archive", "--out", str(out), cwd=root)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert (out / "index.html").read_text(encoding="utf-8") == "the old index"
    assert sorted(p.name for p in out.iterdir()) == ["c", "index.html"]


# -- nobody's data -----------------------------------------------------------------------------
def test_no_reader_data_anywhere_in_the_archive(published, server: Running, tmp_path) -> None:
    root, accepted = published
    # the readers' data really was in what they got
    bodies = " ".join(m["HtmlBody"] for m in accepted)
    assert "Zoë" in bodies and "李小龍" in bodies and "أحمد" in bodies
    assert re.search(r"/u/[0-9a-z]+\.[0-9a-z]+\.[A-Za-z0-9_-]{20,}", bodies)

    out = tmp_path / "site"
    assert run_process("archive", "--out", str(out), cwd=root).returncode == 0
    texts = {str(p): p.read_text(encoding="utf-8") for p in out.rglob("*") if p.is_file()}
    for path in ("/archive", "/archive/feed.xml", "/c/first-issue", "/c/second-issue"):
        texts[path] = requests.get(server.url + path, timeout=10).text
    assert len(texts) == 9
    forbidden = set()
    for address, first, last in READERS:
        local_part, _, domain = address.partition("@")
        forbidden |= {address, local_part, first, last, urllib.parse.quote(address)}
        ascii_address = f"{local_part}@{domain.encode('idna').decode()}"
        forbidden |= {html.escape(first), urllib.parse.quote(first), ascii_address}
    for where, text in texts.items():
        for value in forbidden:
            assert value not in text, (value, where)
        assert "/u/" not in text, where
        assert not re.search(r"[0-9a-z]{1,12}\.[0-9a-z]{1,12}\.[A-Za-z0-9_-]{40,43}", text), where
        assert "Hello Zo" not in text


def test_public_page_neutralises_unsubscribe_tokens() -> None:
    page = (
        f"<a href='{PUBLIC}/u/1a.2b.{'A' * 43}'>Unsubscribe</a>"
        f"<a href=\"/u/zz.1.{'b_-' * 10}\">x</a><a href='https://www.example.com/a'>y</a>"
    )
    clean = public_page(page, PUBLIC)
    assert "/u/" not in clean
    assert clean.count(f"{PUBLIC}/unsubscribe") == 2
    assert "https://www.example.com/a" in clean


# -- hostile text, an empty archive ---------------------------------------------------------------
def test_hostile_text_is_escaped_and_the_xml_well_formed() -> None:
    nasty = "<script>alert(1)</script> ]]> & \"q\" 'q' {{ 7*7 }} \x00\x01\x0b\x1b\x7f\x85\ufffe end"
    entry = ArchiveEntry("x-1", nasty, nasty, "2026-10-12T08:00:00Z", "2026-10-12T09:00:00Z")
    archive = Archive(nasty, "", "news@example.org", (entry,))
    page = index_html(archive, static_links("https://x.example/subscribe?a=1&b='2'"))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "\x00" not in page and "\x1b" not in page and "\x85" not in page
    assert "{{ 7*7 }}" in page and "49" not in page
    assert "href='https://x.example/subscribe?a=1&amp;b=&#x27;2&#x27;'" in page
    data = feed_xml(archive, served_links(""))
    root = check_atom(data, 1)
    title = root.find(f"{ATOM}entry/{ATOM}title").text
    assert title == "<script>alert(1)</script> ]]> & \"q\" 'q' {{ 7*7 }}  end"
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0
    # no public_url: links relative to the feed, ids still absolute
    assert root.find(f"{ATOM}entry/{ATOM}link").get("href") == "/c/x-1"
    assert parsed.entries[0].id.startswith("urn:uuid:")


def test_an_empty_archive(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "project")
    running = Running(["serve", "--port", "0"], root)
    try:
        page = requests.get(running.url + "/archive", timeout=10)
        assert page.status_code == 200
        assert "No issues have been published yet" in page.text
        feed = requests.get(running.url + "/archive/feed.xml", timeout=10)
        parsed = feedparser.parse(feed.content)
        assert parsed.bozo == 0 and parsed.entries == []
        check_atom(feed.content, 0)
    finally:
        running.stop()
    out = tmp_path / "site"
    done = run_process("archive", "--out", str(out), cwd=root)
    assert done.returncode == 0, done.stderr
    assert "Archive of 0 campaign(s)" in done.stderr
    assert feedparser.parse((out / "feed.xml").read_bytes()).bozo == 0


def test_archive_front_matter_must_be_true_or_false(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "project")
    path = root / "campaigns" / "winter-workshop.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("---\n", "---\narchive: sometimes\n", 1),
        encoding="utf-8",
    )
    done = run_process("check", "winter-workshop", cwd=root)
    assert done.returncode == 1
    assert "`archive` must be true or false" in done.stderr


# -- in a browser -------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 375])
def test_archive_page_in_chromium(published, server: Running, width: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/archive")
            page.get_by_role("heading", name="Past issues").wait_for()
            assert page.get_by_role("link", name="Our first issue: rest between sessions").count()
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, overflow
            assert page.evaluate("typeof alert === 'function' && !window.__x") is True
            assert errors == []
        finally:
            browser.close()
