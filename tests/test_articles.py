"""Articles from anywhere: real pages in the styles of common blog platforms and real
feeds, served over HTTP by a local blog, read by `newsletter articles`."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from blog_server import Blog
from conftest import run_process
from test_fetch_and_links import PAGE

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
MANIFEST = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))
PAGES = MANIFEST["pages"]
SENTENCE_END = re.compile(r"[.!?…][\"'”’)]*$")


@pytest.fixture(scope="module")
def blog():
    with Blog() as server:
        for page in PAGES.values():
            charset = "" if page["encoding"] == "utf-8" else f"; charset={page['encoding']}"
            server.routes[page["serve_path"]] = (
                f"text/html{charset}",
                (DATA / page["file"]).read_bytes(),
            )
        server.routes["/feed.rss"] = ("application/rss+xml", (DATA / "feeds/blog.rss").read_bytes())
        server.routes["/journal/atom.xml"] = (
            "application/atom+xml",
            (DATA / "feeds/blog.atom").read_bytes(),
        )
        server.routes["/blog/"] = ("text/html", (DATA / "feeds/not-a-feed.html").read_bytes())
        yield server


def articles(project: Path, *sources: str) -> list[dict]:
    result = run_process("articles", *sources, "--format", "json", cwd=project)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_yields_a_clean_excerpt_card(project: Path, blog: Blog, name: str) -> None:
    expected = PAGES[name]
    [article] = articles(project, blog.url + expected["serve_path"])
    assert article["title"] == expected["title"]
    assert article["author"] == expected["author"]
    assert article["date"] == expected["date"]
    image = expected.get("image") or blog.url + expected["image_path"]
    assert article["image"] == image
    # the page's own address; a site-relative one is resolved against where it was fetched
    assert article["url"] == (expected.get("url") or blog.url + expected["url_path"])
    excerpt = article["excerpt"]
    assert excerpt.startswith(expected["first_sentence"]), excerpt[:200]
    assert SENTENCE_END.search(excerpt), f"ends mid-sentence: {excerpt[-80:]!r}"
    assert len(excerpt.split()) <= max(60, len(expected["first_sentence"].split()))
    for phrase in expected["chrome_phrases"]:
        assert phrase not in excerpt
        assert phrase not in article["excerpt_html"]
    assert "<script" not in article["excerpt_html"] and "<form" not in article["excerpt_html"]


def test_inline_markup_is_kept_safe_and_links_absolute(project: Path, blog: Blog) -> None:
    found = [articles(project, blog.url + p["serve_path"])[0] for p in PAGES.values()]
    with_links = [a for a in found if "<a " in a["excerpt_html"]]
    assert with_links, "some first paragraphs carry links"
    for article in found:
        tags = set(re.findall(r"</?([a-z0-9]+)", article["excerpt_html"]))
        assert tags <= {"p", "strong", "em", "a", "code"}, tags
        for href in re.findall(r'href="([^"]+)"', article["excerpt_html"]):
            assert href.startswith(("http://", "https://", "mailto:")), href


def test_rss_feed_over_several_months(project: Path, blog: Blog) -> None:
    expected = MANIFEST["feeds"]["blog.rss"]["entries"]
    found = articles(project, blog.url + "/feed.rss")
    assert [a["title"] for a in found] == [e["title"] for e in expected]
    assert len({a["date"][:7] for a in found}) >= 3, "entries span several months"
    for article, entry in zip(found, expected, strict=True):
        assert article["url"] == entry["link"]
        assert article["date"] == entry["date"]
        assert article["author"] == entry["author"]
        if entry.get("image"):
            assert article["image"] == entry["image"]
        assert article["excerpt"].startswith(entry["first_sentence"]), article["excerpt"][:120]
        assert SENTENCE_END.search(article["excerpt"])
    more = next(e for e in expected if e.get("paragraphs_before_more"))
    [with_marker] = [a for a in found if a["url"] == more["link"]]
    assert with_marker["excerpt"].split("\n\n") == more["paragraphs_before_more"]


def test_atom_feed(project: Path, blog: Blog) -> None:
    expected = MANIFEST["feeds"]["blog.atom"]["entries"]
    found = articles(project, blog.url + "/journal/atom.xml")
    assert [(a["title"], a["url"], a["date"], a["author"]) for a in found] == [
        (e["title"], e["link"], e["date"], e["author"]) for e in expected
    ]


def test_feed_files_and_broken_ones(project: Path) -> None:
    shutil.copytree(DATA / "feeds", project / "feeds")  # files are read inside the project
    assert len(articles(project, str(project / "feeds/blog.atom"))) == 4
    broken = run_process("articles", "feeds/broken.rss", cwd=project)
    assert broken.returncode == 1
    assert "broken.rss is not a feed that can be read" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_campaign_features_a_url_and_a_feed_entry(project: Path, blog: Blog) -> None:
    ghost = PAGES["ghost.html"]
    rss = MANIFEST["feeds"]["blog.rss"]["entries"]
    campaign = project / "campaigns" / "mixed.md"
    campaign.write_text(
        "---\nsubject: Mixed sources\narticles:\n"
        f"  - {blog.url}{ghost['serve_path']}\n"
        f"  - feed: {blog.url}/feed.rss\n    url: {rss[2]['link']}\n    title: Overridden title\n"
        f"  - feed: {blog.url}/feed.rss\n"
        "---\nHello {{ recipient.first_name_or('friend') }},\n",
        encoding="utf-8",
    )
    run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    result = run_process("build", "mixed", cwd=project)
    assert result.returncode == 0, result.stderr
    text = (project / "build" / "mixed" / "email.txt").read_text(encoding="utf-8")
    html = (project / "build" / "mixed" / "email.html").read_text(encoding="utf-8")
    assert ghost["title"] in text and "Overridden title" in text and rss[0]["title"] in text
    tracked = "utm_source=newsletter&utm_medium=email&utm_campaign=mixed"
    assert f"{ghost['url']}?{tracked}" in text
    assert f"{ghost['url']}?{tracked.replace('&', '&amp;')}" in html
    assert "utm_source" not in re.search(r"Unsubscribe: (\S+)", text).group(1)
    hits = dict(blog.hits)
    # a rebuild reads the cache: no request reaches the blog
    assert run_process("build", "mixed", cwd=project).returncode == 0
    assert dict(blog.hits) == hits


def test_url_that_is_not_an_article_page(project: Path, blog: Blog) -> None:
    result = run_process("articles", blog.url + "/missing/", cwd=project)
    assert result.returncode == 1
    assert "/missing/ answered HTTP 404" in result.stderr


def test_example_campaign_sources_served_locally(project: Path, blog: Blog) -> None:
    """The repository's example campaign features a page URL and a feed entry; here they
    come from the local blog with an empty cache, as from the real one."""
    blog.routes["/clay-on-the-table/"] = ("text/html", (DATA / "pages/ghost.html").read_bytes())
    blog.routes["/feed.xml"] = ("application/rss+xml", (DATA / "feeds/blog.rss").read_bytes())
    shutil.rmtree(project / ".newsletter")
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8")
        .replace(
            "https://blog.riverbend-clinicians.example/clay-on-the-table/",
            blog.url + "/clay-on-the-table/",
        )
        .replace("https://blog.riverbend-clinicians.example/feed.xml", blog.url + "/feed.xml"),
        encoding="utf-8",
    )
    result = run_process("build", "2026-10-digest", cwd=project)
    assert result.returncode == 0, result.stderr
    text = (project / "build" / "2026-10-digest" / "email.txt").read_text(encoding="utf-8")
    assert "Clay on the Table: Inviting Creativity Into the Therapy Hour" in text
    assert "Gifts, Gratitude & Gray Areas: An Ethics Corner" in text
    assert blog.hits["/clay-on-the-table/"] == 1 and blog.hits["/feed.xml"] == 1


def test_example_campaign_builds_offline_from_the_cache(project: Path) -> None:
    # (no request leaves the machine: the example blog's page and feed are in the cache)
    result = run_process("build", "2026-10-digest", cwd=project)
    assert result.returncode == 0, result.stderr
    text = (project / "build" / "2026-10-digest" / "email.txt").read_text(encoding="utf-8")
    assert "Clay on the Table" in text and "Gifts, Gratitude & Gray Areas" in text


FEED = "https://blog.riverbend-clinicians.example/feed.xml"  # in the example project's cache
ETHICS = "https://blog.riverbend-clinicians.example/blog/gifts-gratitude-gray-areas"
ETHICS_TITLE = "Gifts, Gratitude & Gray Areas: An Ethics Corner"


def _feature(project: Path, slug: str, *overrides: str) -> None:
    """A campaign featuring the ethics-corner feed entry once per override."""
    items = "".join(f"  - feed: {FEED}\n    url: {ETHICS}\n    {o}\n" for o in overrides)
    (project / "campaigns" / f"{slug}.md").write_text(
        f"---\nsubject: {slug}\narticles:\n{items}---\nHello.\n", encoding="utf-8"
    )


def test_overrides_never_change_the_shared_feed_entry(project: Path) -> None:
    """serve and preview keep one Project: a campaign's overrides must not leak into the
    next campaign that features the same feed entry, nor into the entry itself."""
    from newsletter.project import Project

    _feature(project, "one", "title: Only in one")
    _feature(project, "two", "excerpt: Only in two.")
    proj = Project.load(str(project / "newsletter.toml"))
    entry = proj.composer.reader().feed_entry(FEED, ETHICS)
    original = (entry.title, entry.excerpt, entry.excerpt_html, entry.image)
    for _ in range(2):  # one after the other, and again
        [one] = proj.composer.campaign("one").articles
        [two] = proj.composer.campaign("two").articles
        assert (one.title, one.excerpt) == ("Only in one", entry.excerpt)
        assert (two.title, two.excerpt) == (ETHICS_TITLE, "Only in two.")
    again = proj.composer.reader().feed_entry(FEED, ETHICS)
    assert (again.title, again.excerpt, again.excerpt_html, again.image) == original
    assert again.title == ETHICS_TITLE
    with pytest.raises(AttributeError):  # records handed out cannot be changed
        again.title = "changed"  # type: ignore[misc]
    assert isinstance(proj.composer.reader().feed(FEED), tuple)


def test_one_entry_featured_twice_with_different_overrides(project: Path) -> None:
    _feature(project, "twice", "title: A shorter title", "excerpt: A note from the editor.")
    _feature(project, "plain", "image: https://cdn.example.org/ethics.jpg")
    result = run_process("build", "twice", cwd=project)
    assert result.returncode == 0, result.stderr
    text = (project / "build" / "twice" / "email.txt").read_text(encoding="utf-8")
    # each card has its own override and the entry's own other fields
    assert text.count("A shorter title") == 1 and text.count(ETHICS_TITLE) == 1
    assert text.count("A note from the editor.") == 1
    assert text.count("Near the end of treatment, a client once handed me") == 1
    result = run_process("build", "plain", cwd=project)
    assert result.returncode == 0, result.stderr
    text = (project / "build" / "plain" / "email.txt").read_text(encoding="utf-8")
    assert ETHICS_TITLE in text and "A shorter title" not in text
    assert "A note from the editor." not in text


JEKYLL = PAGES["jekyll.html"]
HOSTILE = "javascript:alert(document.cookie)"


def test_relative_canonical_resolves_against_the_address_after_redirects(
    project: Path, blog: Blog
) -> None:
    """A site-relative canonical belongs to the site that served the page: after a redirect
    to another origin, that one."""
    with Blog() as short:  # a link shortener or an old domain: another origin
        short.redirects["/healers"] = blog.url + JEKYLL["serve_path"]
        [article] = articles(project, short.url + "/healers")
    assert article["url"] == blog.url + JEKYLL["url_path"]
    assert article["image"] == blog.url + JEKYLL["image_path"]
    assert short.url not in article["excerpt_html"]


def test_relative_canonical_in_a_campaign_builds_and_checks(project: Path, blog: Blog) -> None:
    campaign = project / "campaigns" / "jekyll.md"
    campaign.write_text(
        f"---\nsubject: From Jekyll\npreheader: One read.\narticles:\n"
        f"  - {blog.url}{JEKYLL['serve_path']}\n---\nHello.\n",
        encoding="utf-8",
    )
    result = run_process("check", "jekyll", cwd=project)
    assert result.returncode == 0, result.stderr
    assert run_process("build", "jekyll", cwd=project).returncode == 0
    text = (project / "build" / "jekyll" / "email.txt").read_text(encoding="utf-8")
    assert f"Read more: {blog.url}{JEKYLL['url_path']}?utm_source=newsletter" in text


def test_saved_page_resolves_against_its_absolute_canonical_or_is_refused(
    project: Path,
) -> None:
    saved = project / "saved"
    saved.mkdir()
    shutil.copy(DATA / "pages/seed-like.html", saved / "healing.html")
    [article] = articles(project, "saved/healing.html")
    seed = PAGES["seed-like.html"]
    assert article["url"] == seed["url"]
    assert article["image"] == seed["image_if_resolved_against_canonical"]
    shutil.copy(DATA / "pages/jekyll.html", saved / "healers.html")
    result = run_process("articles", "saved/healers.html", cwd=project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "healers.html: the page's address '/blog/healers-need-healers-too' is a relative" in (
        " ".join(result.stderr.split())
    )
    assert "Give the article's URL instead of a saved file" in result.stderr


def _hostile_page() -> bytes:
    page = (DATA / "pages/jekyll.html").read_text(encoding="utf-8")
    page = page.replace('href="/blog/healers-need-healers-too"', f'href="{HOSTILE}"')
    page = page.replace('content="/blog/healers-need-healers-too"', 'content="file:///etc/passwd"')
    page = page.replace('"url":"/blog/healers-need-healers-too"', '"url":"JavaScript:alert(1)"')
    page = page.replace('"@id":"/blog/healers-need-healers-too"', f'"@id":"{HOSTILE}"')
    page = page.replace(
        'content="/assets/images/2026/healers-need-healers-too.jpg"',
        'content="data:image/svg+xml;base64,PHN2Zy8+"',
    )
    page = page.replace(
        '"image":"/assets/images/2026/healers-need-healers-too.jpg"', f'"image":"{HOSTILE}"'
    )
    assert "/blog/healers-need-healers-too" not in page.split("<body>")[0]
    return page.encode("utf-8")


def test_page_with_script_and_data_addresses_uses_none_of_them(project: Path, blog: Blog) -> None:
    blog.routes["/hostile/post/"] = ("text/html; charset=utf-8", _hostile_page())
    [article] = articles(project, blog.url + "/hostile/post/")
    assert article["url"] == blog.url + "/hostile/post/"  # the address it was fetched from
    assert article["image"] == blog.url + JEKYLL["content_image_src"]  # the next image
    for value in (article["url"], article["image"], article["excerpt_html"]):
        assert not re.search(r"(?i)javascript:|data:|file:", value), value
    saved = project / "saved"
    saved.mkdir()
    (saved / "hostile.html").write_bytes(
        _hostile_page().replace(b'src="/assets/images/2026/circle-of-chairs.jpg"', b"")
    )
    [article] = articles(project, "saved/hostile.html")
    assert article["url"] is None and article["image"] is None


HOSTILE_FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>
<title>Riverbend</title><link>https://blog.riverbend-clinicians.example/</link>
<item><title>Script link</title><link>javascript:alert(document.cookie)</link>
<guid isPermaLink="false">post-1</guid><pubDate>Thu, 12 Nov 2026 09:00:00 +0000</pubDate>
<media:content url="javascript:alert(2)" medium="image"/>
<enclosure url="data:image/png;base64,iVBORw0KGgo=" type="image/png" length="8"/>
<description>&lt;p&gt;&lt;img src="/images/fallback.jpg"&gt;A first sentence about rest. &lt;a href="javascript:alert(3)"&gt;A link&lt;/a&gt; that is not one.&lt;/p&gt;</description>
</item>
<item><title>Data link</title><link>data:text/html,&lt;script&gt;alert(4)&lt;/script&gt;</link>
<guid isPermaLink="false">post-2</guid><pubDate>Wed, 11 Nov 2026 09:00:00 +0000</pubDate>
<media:thumbnail url="file:///etc/passwd"/>
<description>&lt;p&gt;Another first sentence.&lt;/p&gt;</description>
</item>
<item><title>Relative link</title><link>/blog/relative-post</link>
<guid isPermaLink="false">post-3</guid><pubDate>Tue, 10 Nov 2026 09:00:00 +0000</pubDate>
<description>&lt;p&gt;A third first sentence.&lt;/p&gt;</description>
</item>
</channel></rss>
"""


def test_feed_with_script_and_data_links_uses_none_of_them(project: Path, blog: Blog) -> None:
    blog.routes["/hostile.rss"] = ("application/rss+xml", HOSTILE_FEED.encode("utf-8"))
    site = "https://blog.riverbend-clinicians.example"
    found = articles(project, blog.url + "/hostile.rss")
    assert [(a["title"], a["url"], a["image"]) for a in found] == [
        ("Script link", None, site + "/images/fallback.jpg"),
        ("Data link", None, None),
        ("Relative link", site + "/blog/relative-post", None),
    ]
    assert "javascript:" not in json.dumps(found) and "data:" not in json.dumps(found)
    campaign = project / "campaigns" / "hostile.md"
    campaign.write_text(
        f"---\nsubject: Hostile\narticles:\n  - feed: {blog.url}/hostile.rss\n---\nHello.\n",
        encoding="utf-8",
    )
    result = run_process("build", "hostile", cwd=project)
    assert result.returncode == 0, result.stderr
    html = (project / "build" / "hostile" / "email.html").read_text(encoding="utf-8")
    assert "Script link" in html and "javascript:" not in html.lower()
    # an entry without a usable link is chosen by its id (as a digest writes it)
    campaign.write_text(
        f"---\nsubject: Hostile\narticles:\n  - feed: {blog.url}/hostile.rss\n"
        "    url: post-2\n---\nHello.\n",
        encoding="utf-8",
    )
    result = run_process("build", "hostile", cwd=project)
    assert result.returncode == 0, result.stderr
    text = (project / "build" / "hostile" / "email.txt").read_text(encoding="utf-8")
    assert "Data link" in text and "data:" not in text


def test_written_addresses_that_are_not_web_addresses_are_refused(project: Path) -> None:
    """Front matter and a campaign's overrides are a person's words: an address that is
    no web address is an error naming the file and the key, never a link in an email."""
    article = project / "articles" / "2026-10-06-the-case-for-rest-between-sessions.md"
    original = article.read_text(encoding="utf-8")
    article.write_text(
        re.sub(r"(?m)^url: .*$", "url: javascript:alert(document.cookie)", original),
        encoding="utf-8",
    )
    result = run_process("articles", str(article.relative_to(project)), cwd=project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "`url: javascript:alert(document.cookie)` is not a web address" in result.stderr
    assert article.name in result.stderr and "https://" in result.stderr
    article.write_text(original, encoding="utf-8")
    campaign = project / "campaigns" / "override.md"
    campaign.write_text(
        "---\nsubject: Override\narticles:\n"
        f"  - path: {article.relative_to(project)}\n    image: 'data:image/png;base64,AAAA'\n"
        "---\nHello.\n",
        encoding="utf-8",
    )
    result = run_process("build", "override", cwd=project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "override.md: `image: data:image/png;base64,AAAA` is not a web address" in (
        result.stderr
    )


SECRET = "---\ntitle: Not for the newsletter\n---\nThe contents of a file outside the project.\n"


@pytest.fixture
def outside(project: Path) -> Path:
    """A Markdown file beside the project folder, not in it."""
    folder = project.parent / "outside"
    folder.mkdir()
    (folder / "secret.md").write_text(SECRET, encoding="utf-8")
    return folder


def _refused(result, shown: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert re.search(
        rf"{re.escape(shown)} (\(which leads to \S+\) )?is outside the project folder", message
    ), message
    assert "[content] articles" in message  # how to allow a folder kept elsewhere
    assert "Not for the newsletter" not in result.stdout + result.stderr


def test_article_files_outside_the_project_are_not_read(project: Path, outside: Path) -> None:
    secret = str(outside / "secret.md")
    _refused(run_process("articles", "../outside/secret.md", cwd=project), "../outside/secret.md")
    _refused(run_process("articles", secret, cwd=project), secret)
    _refused(run_process("articles", "../outside", cwd=project), "../outside")
    (project / "articles" / "2026-10-30-link.md").symlink_to(outside / "secret.md")
    shown = "articles/2026-10-30-link.md"
    result = run_process("articles", shown, cwd=project)
    _refused(result, shown)
    assert f"(which leads to {outside / 'secret.md'})" in result.stderr
    _refused(run_process("articles", cwd=project), "2026-10-30-link.md")  # the folder
    for item in (f"  - {shown}\n", "  - path: ../outside/secret.md\n    title: Hi\n"):
        (project / "campaigns" / "leak.md").write_text(
            f"---\nsubject: Leak\narticles:\n{item}---\nHello.\n", encoding="utf-8"
        )
        _refused(run_process("build", "leak", cwd=project), shown if shown in item else "secret.md")


def test_digest_sources_outside_the_project_are_not_read(project: Path, outside: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "[delivery]", '[digest]\nsources = ["articles", "../outside"]\n\n[delivery]'
        ),
        encoding="utf-8",
    )
    result = run_process("digest", "--period", "2026-10", "--today", "2026-11-01", cwd=project)
    _refused(result, "../outside")


def test_a_folder_named_in_content_may_be_read(project: Path, outside: Path) -> None:
    """[content] articles may name a folder kept elsewhere (the blog's own posts): its
    files are read, through any path that leads there; feed files it names are read."""
    shutil.copy(DATA / "feeds/blog.atom", outside.parent / "journal.atom")
    config = project / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('articles = "articles"', f'articles = "{outside}"')
    text = text.replace("feeds = [", f'feeds = ["{outside.parent / "journal.atom"}", ')
    config.write_text(text, encoding="utf-8")
    found = articles(project)
    assert "Not for the newsletter" in [a["title"] for a in found]
    assert len(found) == 1 + 4 + 7  # the folder, the journal feed, the blog's feed (cached)
    [secret] = articles(project, "../outside/secret.md")
    assert secret["title"] == "Not for the newsletter"
    assert len(articles(project, "articles")) == 5  # the project's own folder still is


def test_listing_articles_opens_no_database(project: Path, run) -> None:
    """`articles` only reads the sources: a project without a database keeps none."""
    assert not (project / "newsletter.db").exists()
    result = run("articles")
    assert result.exit_code == 0, result.output
    assert not (project / "newsletter.db").exists()


# -- control characters ------------------------------------------------------------------
PASTED = (  # a vertical tab (a word processor's line break) and a terminal escape
    '---\ntitle: "Notes\x0bfrom the \x1b[1mwinter\x1b[0m retreat"\nauthor: "Dana\x1b Whitfield"\n'
    "date: 2026-10-20\nurl: https://blog.riverbend-clinicians.example/notes\n---\n\n"
    "We met in the\x0bmountains for three days of \x1b[31mrest\x1b[0m and supervision. "
    + " ".join(f"Sentence {n} says a little more\x0b about the days." for n in range(40))
    + "\n\nA second paragraph\x0c with a form feed.\n"
)
PASTED_PAGE = (
    PAGE.replace("Holding Space Without", "Holding\x0bSpace\x1b[2J Without")
    .replace("We are rarely", "We are\x0brarely \x1b[31m")
    .replace("It matters more", "It\x0b matters\x1b more")
)
CONTROLS = ("\x0b", "\x0c", "\x1b")


def test_control_characters_in_articles_are_dropped(project: Path) -> None:
    """A vertical tab and an ESC in a Markdown article (raw in its front matter and its
    body) and in a fetched page: `articles`, `build` and `digest` go on, the words stay
    and the control characters are gone from everything built."""
    (project / "articles" / "2026-10-20-notes.md").write_text(PASTED, encoding="utf-8")
    with Blog() as blog:
        blog.routes["/pasted/"] = ("text/html; charset=utf-8", PASTED_PAGE.encode())
        (project / "campaigns" / "pasted.md").write_text(
            "---\nsubject: Pasted\ntemplate: digest\narticles:\n"
            f"  - articles/2026-10-20-notes.md\n  - {blog.url}/pasted/\n---\n\nTwo articles.\n",
            encoding="utf-8",
        )
        listed = run_process(
            "articles", "articles/2026-10-20-notes.md", "--format", "json", cwd=project
        )
        assert listed.returncode == 0, listed.stderr
        [article] = json.loads(listed.stdout)
        assert article["title"] == "Notes from the [1mwinter[0m retreat"
        assert article["author"] == "Dana Whitfield"
        assert article["excerpt"].startswith("We met in the mountains for three days of [31mrest")
        page = run_process("articles", f"{blog.url}/pasted/", "--format", "json", cwd=project)
        assert page.returncode == 0, page.stderr
        [fetched] = json.loads(page.stdout)
        assert fetched["title"] == "Holding Space[2J Without Holding Everything"
        assert "We are rarely [31m" in fetched["excerpt"]
        built = run_process("build", "pasted", cwd=project)
        assert built.returncode == 0, built.stderr
    for path in (project / "build" / "pasted").iterdir():
        text = path.read_text(encoding="utf-8")
        assert not any(c in text for c in CONTROLS), path
    html = (project / "build" / "pasted" / "email.html").read_text(encoding="utf-8")
    assert "We met in the mountains" in html and "We are rarely" in html
    digest = run_process("digest", "--dry-run", "--today", "2026-11-01", cwd=project)
    assert digest.returncode == 0, digest.stderr
    assert "articles/2026-10-20-notes.md" in digest.stdout
    assert not any(c in digest.stdout + digest.stderr for c in CONTROLS)
