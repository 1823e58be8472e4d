"""Fetching article URLs and feeds (cache, errors) and tagging links with UTM parameters."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from blog_server import Blog, Faulty
from conftest import run_process
from newsletter.content import Fetcher
from newsletter.content.links import UTM
from newsletter.errors import InputError

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Holding Space Without Holding Everything | Riverbend</title>
<meta property="og:title" content="Holding Space Without Holding Everything">
<meta property="og:image" content="/img/space.jpg">
<meta name="author" content="Amara Nwosu, PhD">
</head><body><nav><a href="/">Home</a> <a href="/about">About us and our mission</a></nav>
<div class="announcement-bar">Register now for the spring retreat in Asheville!</div>
<article><h1>Holding Space Without Holding Everything</h1>
<time datetime="2026-10-09T10:00:00-05:00">October 9</time>
<p>Clinicians are trained to hold space. We are rarely trained to put it down again. This post is about the second skill.</p>
<p>It matters more than it sounds, and here is why.</p>
<p>Third paragraph, with more to say about rest and limits.</p>
<p>Fourth paragraph, closing the argument gently.</p>
</article>
<form class="newsletter-signup"><p>Sign up for our monthly letter of practice notes</p><input name="email"></form>
<footer><p>© 2026 Riverbend Clinicians Collective. All rights reserved.</p></footer>
</body></html>"""


def test_utm_tags_keep_query_and_fragment_and_skip_mailto() -> None:
    utm = UTM("2026-10-Digest".lower())
    assert utm.tag("https://blog.example.org/post?ref=feed#intro") == (
        "https://blog.example.org/post?ref=feed&utm_source=newsletter&utm_medium=email"
        "&utm_campaign=2026-10-digest#intro"
    )
    assert utm.tag("https://x.example/?utm_source=old&a=1").count("utm_source") == 1
    assert utm.tag("mailto:editor@example.org") == "mailto:editor@example.org"
    html = '<a href="https://a.example/p?x=1&amp;y=2">a</a> <a href="mailto:z@example.org">z</a>'
    tagged = utm.tag_html(html)
    assert 'href="https://a.example/p?x=1&amp;y=2&amp;utm_source=newsletter' in tagged
    assert 'href="mailto:z@example.org"' in tagged


def test_cache_serves_offline_and_refresh_revalidates(tmp_path: Path) -> None:
    with Blog() as blog:
        blog.routes["/p/"] = ("text/html; charset=utf-8", PAGE.encode())
        url = blog.url + "/p/"
        first = Fetcher(tmp_path).get(url)
        assert b"Holding Space" in first.body
        assert "newsletter/" in blog.user_agents[0]
        assert Fetcher(tmp_path).get(url).body == first.body
        assert blog.hits["/p/"] == 1, "a rebuild does not touch the network"
        refreshed = Fetcher(tmp_path, refresh=True).get(url)
        assert blog.hits["/p/"] == 2 and blog.conditional["/p/"] == 1, "If-None-Match answered 304"
        assert refreshed.body == first.body
    # the server is gone: what was fetched before still builds
    assert b"Holding Space" in Fetcher(tmp_path).get(url).body
    with pytest.raises(InputError, match="cannot be reached"):
        Fetcher(tmp_path, refresh=True).get(url)


def test_fetch_errors_name_the_url(tmp_path: Path) -> None:
    with Blog() as blog:
        blog.slow["/slow/"] = 2.0
        blog.routes["/slow/"] = ("text/html", PAGE.encode())
        with pytest.raises(InputError, match=r"/missing/ answered HTTP 404"):
            Fetcher(tmp_path).get(blog.url + "/missing/")
        with pytest.raises(InputError, match=r"/slow/ did not answer within 0.5 s"):
            Fetcher(tmp_path, timeout=0.5).get(blog.url + "/slow/")
        blog.redirects["/old/"] = blog.url + "/new/"
        blog.routes["/new/"] = ("text/html", PAGE.encode())
        fetched = Fetcher(tmp_path).get(blog.url + "/old/")
        assert fetched.url == blog.url + "/new/"


@pytest.mark.slow
def test_articles_command_for_a_page_url(project: Path) -> None:
    with Blog() as blog:
        latin = PAGE.replace('<meta charset="utf-8">', "").replace(
            "Clinicians are", "Clinicians—and Renée—are"
        )
        blog.routes["/holding-space/"] = ("text/html; charset=windows-1252", latin.encode("cp1252"))
        result = run_process(
            "articles", blog.url + "/holding-space/", "--format", "json", cwd=project
        )
        assert result.returncode == 0, result.stderr
        [article] = json.loads(result.stdout)
        assert article["title"] == "Holding Space Without Holding Everything"
        assert article["author"] == "Amara Nwosu, PhD"
        assert article["date"] == "2026-10-09"
        assert article["image"] == blog.url + "/img/space.jpg"
        assert article["excerpt"].startswith("Clinicians—and Renée—are trained to hold space.")
        for chrome in ("About us", "Register now", "Sign up for", "All rights reserved"):
            assert chrome not in article["excerpt"]


@pytest.mark.slow
def test_unreachable_url_and_broken_sources_exit_1(project: Path) -> None:
    with Blog() as blog:
        gone = blog.url + "/gone/"
    result = run_process("articles", gone, cwd=project)
    assert result.returncode == 1 and "cannot be reached" in result.stderr and gone in result.stderr
    saved = project / "saved"  # files are read inside the project
    saved.mkdir()
    broken = saved / "broken.rss"
    broken.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item><title>cut'
    )
    result = run_process("articles", str(broken), cwd=project)
    assert result.returncode == 1
    assert "is not a feed that can be read" in result.stderr and "broken.rss" in result.stderr
    empty = saved / "empty.html"
    empty.write_text("<html><head><title>Shop</title></head><body><nav>Home</nav></body></html>")
    result = run_process("articles", str(empty), cwd=project)
    assert result.returncode == 1 and "no article text" in result.stderr
    relative = saved / "relative.html"
    relative.write_text(PAGE)
    result = run_process("articles", str(relative), cwd=project)
    assert result.returncode == 1
    assert "'/img/space.jpg' is a relative address" in result.stderr
    for output in (result.stderr,):
        assert "Traceback" not in output


def test_only_web_addresses_are_article_links() -> None:
    from newsletter.content.urls import is_relative, web_address

    page = "https://blog.example.org/2026/11/post/"
    assert web_address("/blog/slug", page) == "https://blog.example.org/blog/slug"
    assert web_address("../other/", page) == "https://blog.example.org/2026/11/other/"
    assert web_address("//cdn.example.org/a.jpg", page) == "https://cdn.example.org/a.jpg"
    assert web_address("//cdn.example.org/a.jpg", None) == "https://cdn.example.org/a.jpg"
    assert web_address("  https://blog.example.org/a b\n", None) == (
        "https://blog.example.org/a%20b"
    )
    for hostile in (
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "java\tscript:alert(1)",
        "\x01javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "mailto:editor@example.org",
        "file:///etc/passwd",
        "vbscript:msgbox(1)",
        "https://",
        "http://[::1",
        "",
        None,
    ):
        assert web_address(hostile, page) is None, hostile
    assert web_address("/blog/slug", None) is None and is_relative("/blog/slug")
    assert not is_relative("javascript:alert(1)") and not is_relative("https://x.example/")


@pytest.mark.slow
def test_a_server_that_drips_fails_within_the_deadline(tmp_path: Path) -> None:
    """A server that sends its headers and then one byte a second never trips a
    per-read timeout: the whole fetch has a deadline ([content] fetch_deadline)."""
    with Faulty() as faulty:
        started = time.monotonic()
        with pytest.raises(InputError) as caught:
            Fetcher(tmp_path, timeout=5, deadline=2).get(faulty.url + "/drip")
        elapsed = time.monotonic() - started
        assert 1.5 < elapsed < 4, elapsed
        assert str(caught.value.message) == (
            f"{faulty.url}/drip did not send the whole page within 2 s."
        )
        assert "[content] fetch_deadline" in caught.value.hint
        started = time.monotonic()  # ... and so does one that drips its headers
        with pytest.raises(InputError, match=r"/drip-headers did not send the whole page"):
            Fetcher(tmp_path, timeout=5, deadline=2).get(faulty.url + "/drip-headers")
        assert 1.5 < time.monotonic() - started < 4
        fetcher = Fetcher(tmp_path, timeout=5, deadline=2)  # `check --links` too
        assert fetcher.status(faulty.url + "/drip-headers") == "no whole answer within 2 s"
        # a server that stops sending half-way is given the deadline, not the timeout
        started = time.monotonic()
        with pytest.raises(InputError, match=r"did not send the whole page within 1\.5 s"):
            Fetcher(tmp_path, timeout=30, deadline=1.5).get(faulty.url + "/stall")
        assert time.monotonic() - started < 3
        with pytest.raises(InputError, match=r"/stall stopped sending for 0.5 s"):
            Fetcher(tmp_path, timeout=0.5, deadline=10).get(faulty.url + "/stall")
    assert not list(tmp_path.iterdir()), "nothing half-fetched is cached"


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/reset", "broke off the connection in the middle of the page"),
        ("/short", "broke off the connection in the middle of the page"),
        ("/garbage", "did not answer with HTTP"),
        ("/bad-gzip", "sent a compressed page that cannot be decoded"),
        ("/huge", "is larger than 10 MB"),
        ("/image", "is image/jpeg, not a web page or a feed"),
    ],
)
def test_every_fetch_failure_is_one_line_naming_the_url(
    tmp_path: Path, path: str, says: str
) -> None:
    with Faulty() as faulty, pytest.raises(InputError) as caught:
        Fetcher(tmp_path, timeout=5, deadline=10).get(faulty.url + path)
    error = caught.value
    assert error.message.startswith(faulty.url + path + " "), error.message
    assert says in error.message
    assert "\n" not in error.message and error.hint and "\n" not in error.hint
    assert "object at 0x" not in str(error) and "HTTPConnection" not in str(error)


@pytest.mark.slow
def test_articles_command_on_a_dripping_server_exits_1(project: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("[content]", "[content]\nfetch_deadline = 2"),
        encoding="utf-8",
    )
    with Faulty() as faulty:
        started = time.monotonic()
        result = run_process("articles", faulty.url + "/drip", cwd=project)
        assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {faulty.url}/drip did not send the whole page within 2 s."
    )
    assert "Traceback" not in result.stderr and "urllib3" not in result.stderr
