"""Language and direction: ``[newsletter] language`` and a campaign's ``lang:`` set the
email's ``lang`` and ``dir``; an Arabic and a Hebrew letter, with English article titles,
laid out right to left in real Chromium; serve's pages in the newsletter's language.

``UPDATE_SCREENSHOTS=1`` also writes the screenshots to docs/rtl-*.png for the README.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import CHROMIUM, CHROMIUM_ARGS, REPO, copy_example, run_process
from web_servers import Running

DATA = Path(__file__).parent / "data" / "rtl"
ARABIC = re.compile("[\u0600-\u06ff]")
HEBREW = re.compile("[\u0590-\u05ff]")
LETTERS = {"arabic": ("ar", ARABIC), "hebrew": ("he", HEBREW)}
browser = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


def rtl_project(root: Path, language: str | None = None) -> Path:
    """The example project with the Arabic and Hebrew campaigns (and their articles);
    ``language`` written into [newsletter] when given."""
    copy_example(root)
    shutil.copy(DATA / "arabic.md", root / "campaigns" / "arabic.md")
    shutil.copy(DATA / "hebrew.md", root / "campaigns" / "hebrew.md")
    for name in ("rest-ar.md", "clay-ar.md", "rest-he.md"):
        shutil.copy(DATA / name, root / "articles" / name)
    if language is not None:
        set_language(root, language)
    return root


def set_language(root: Path, language: str) -> None:
    path = root / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("[newsletter]\n", f'[newsletter]\nlanguage = "{language}"\n', 1),
        encoding="utf-8",
    )


def build(root: Path, slug: str) -> tuple[str, str]:
    """``newsletter build SLUG``: its HTML and text part."""
    done = run_process("build", slug, "--out", f"out/{slug}", cwd=root)
    assert done.returncode == 0, done.stderr
    folder = root / "out" / slug
    html = next(folder.glob("*.html")).read_text(encoding="utf-8")
    text = next(folder.glob("*.txt")).read_text(encoding="utf-8")
    return html, text


@pytest.fixture
def arabic(tmp_path: Path) -> Path:
    """An Arabic newsletter: ``language = "ar"``; its hebrew.md says ``lang: he``."""
    return rtl_project(tmp_path / "project", "ar")


# -- the built HTML ---------------------------------------------------------------------


def test_language_sets_lang_and_dir_of_the_email(arabic: Path) -> None:
    html, text = build(arabic, "arabic")
    assert '<html lang="ar" dir="rtl"' in html
    assert 'role="article" lang="ar" dir="rtl"' in html
    # columns, and the text in them, run right to left: MJML's own direction:ltr is gone
    assert "direction:ltr" not in html
    assert "direction:rtl" in html
    body = html.split("<body", 1)[1]
    assert 'align="left"' not in body and 'align="right"' in body
    # the text part keeps the paragraphs in the order written, with no direction marks
    first, second = "كان شهر أكتوبر حافلًا", "نستعد أيضًا لورشة الشتاء"
    assert 0 <= text.index(first) < text.index(second)
    assert not re.search("[\u200e\u200f\u202a-\u202e\u2066-\u2069]", text)


def test_front_matter_lang_overrides_the_newsletter_language(arabic: Path) -> None:
    html, _ = build(arabic, "hebrew")
    assert '<html lang="he" dir="rtl"' in html


def test_an_english_newsletter_stays_left_to_right(tmp_path: Path) -> None:
    root = rtl_project(tmp_path / "project")
    html, _ = build(root, "2026-10-digest")
    assert '<html lang="en" dir="ltr"' in html
    assert "direction:rtl" not in html
    html, _ = build(root, "hebrew")  # its own lang: he
    assert '<html lang="he" dir="rtl"' in html


@pytest.mark.parametrize(
    ("tag", "direction"),
    [("ar", "rtl"), ("ar-EG", "rtl"), ("fa-IR", "rtl"), ("ckb", "rtl"), ("az-Arab", "rtl"),
     ("ku-Latn", "ltr"), ("yi", "rtl"), ("pt-BR", "ltr"), ("zh-Hant", "ltr")],
)  # fmt: skip
def test_direction_follows_the_language_and_its_script(
    tmp_path: Path, tag: str, direction: str
) -> None:
    root = rtl_project(tmp_path / "project", tag)
    html, _ = build(root, "arabic")
    assert f'<html lang="{tag}" dir="{direction}"' in html


@pytest.mark.parametrize("bad", ["english", "en_US", "", "ar-", "12", "x-private"])
@pytest.mark.parametrize("command", ["check", "build"])
def test_an_invalid_language_is_refused_with_a_clear_message(
    tmp_path: Path, command: str, bad: str
) -> None:
    root = rtl_project(tmp_path / "project", bad)
    done = run_process(command, "arabic", cwd=root)
    assert done.returncode != 0
    assert "[newsletter] language" in done.stderr
    assert "is not a BCP 47 language tag" in done.stderr
    assert 'Write a language code, with a region if you like: "en", "ar"' in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("bad", ["arabic", "12", "[ar]", "ar<script>"])
def test_an_invalid_lang_in_front_matter_is_refused(arabic: Path, bad: str) -> None:
    path = arabic / "campaigns" / "hebrew.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("lang: he", f"lang: {bad}"), encoding="utf-8"
    )
    done = run_process("check", "hebrew", cwd=arabic)
    assert done.returncode != 0
    assert "hebrew.md: lang" in done.stderr and "is not a BCP 47 language tag" in done.stderr


# -- in Chromium ------------------------------------------------------------------------

# What a reader sees of each paragraph and of the parts that may be in either direction.
LAYOUT = """
() => {
  const box = (el) => el.getBoundingClientRect();
  const root = document.querySelector('[role="article"]');
  const style = (el) => getComputedStyle(el);
  return {
    paragraphs: [...document.querySelectorAll("p")].map((p) => ({
      text: p.innerText.trim(), direction: style(p).direction, align: style(p).textAlign,
    })),
    auto: [...document.querySelectorAll('[dir="auto"]')].map((el) => ({
      text: el.innerText.trim(), direction: style(el).direction,
    })),
    buttons: [...document.querySelectorAll(".button a")].map((a) => ({
      left: box(a).left, right: box(a).right,
    })),
    width: box(root).width, left: box(root).left,
    // Latin text with punctuation that a right-to-left paragraph would move: in what
    // direction each such run is laid out
    latin: (() => {
      const runs = [];
      const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
      for (let n = walk.nextNode(); n; n = walk.nextNode()) {
        const t = n.textContent.trim();
        if (/[A-Za-z]/.test(t) && /[.,:;!?]/.test(t) && !/[\u0590-\u06ff]/.test(t)) {
          runs.push({ text: t, direction: style(n.parentElement).direction });
        }
      }
      return runs;
    })(),
  };
}
"""


def render(html: str, width: int, shot: Path | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": width, "height": 900})
            page.route("**/*", lambda route: route.abort())  # nothing from the network
            page.set_content(html)
            if shot is not None:
                page.screenshot(path=str(shot), full_page=True)
            return page.evaluate(LAYOUT)
        finally:
            chromium.close()


@browser
@pytest.mark.browser
@pytest.mark.parametrize("letter", ["arabic", "hebrew"])
@pytest.mark.parametrize(("width", "suffix"), [(800, ""), (390, "-phone")])
def test_rtl_letter_reads_right_to_left_in_chromium(
    arabic: Path, tmp_path: Path, letter: str, width: int, suffix: str
) -> None:
    lang, script = LETTERS[letter]
    html, _ = build(arabic, letter)
    assert f'<html lang="{lang}" dir="rtl"' in html
    shot = tmp_path / f"rtl-{letter}{suffix}.png"
    layout = render(html, width, shot)
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS"):
        shutil.copy(shot, REPO / "docs" / shot.name)

    paragraphs = layout["paragraphs"]
    assert len([p for p in paragraphs if script.search(p["text"])]) >= 4
    for p in paragraphs:  # every paragraph, the English footer's too, runs right to left
        assert p["direction"] == "rtl", p
    for p in paragraphs:  # the letter's own text starts on the right
        if script.search(p["text"]):
            assert p["align"] in ("right", "start"), p
    # English titles, bylines and footer sentences read left to right inside them
    english = [a for a in layout["auto"] if a["text"] and not script.search(a["text"])]
    assert "The Case for Rest Between Sessions" in [a["text"] for a in english]
    for a in english:
        assert a["direction"] == "ltr", a
    assert {"Hello Sam,", "Marcus Bell, PsyD · October 6, 2026"} <= {
        r["text"] for r in layout["latin"]
    }
    for r in layout["latin"]:  # "Hello Sam," keeps its comma after the name
        assert r["direction"] == "ltr", r
    for a in layout["auto"]:
        if script.search(a["text"][:3]):
            assert a["direction"] == "rtl", a
    if letter == "arabic":  # the digest's "Read more" buttons stand at the start: the right
        assert layout["buttons"]
        middle = layout["left"] + layout["width"] / 2
        for b in layout["buttons"]:
            assert b["left"] > middle, b


# -- serve's pages ----------------------------------------------------------------------


@pytest.fixture
def arabic_server(arabic: Path) -> Iterator[Running]:
    running = Running(["serve", "--port", "0"], arabic)
    yield running
    running.stop()


def html_element(page: str) -> str:
    found = re.search(r"<html[^>]*>", page)
    assert found, page[:200]
    return found.group(0)


@pytest.mark.parametrize("path", ["/subscribe", "/archive", "/u/not-a-token", "/c/nothing"])
def test_serve_pages_follow_the_newsletter_language(arabic_server: Running, path: str) -> None:
    answer = requests.get(arabic_server.url + path, timeout=30)
    assert answer.headers["Content-Type"].startswith("text/html")
    assert html_element(answer.text) == "<html lang='ar' dir='rtl'>"
    # the page's English words keep their own direction inside it
    assert "<h1 dir='auto'>" in answer.text


def test_serve_pages_of_an_english_newsletter_stay_left_to_right(tmp_path: Path) -> None:
    root = rtl_project(tmp_path / "project")
    running = Running(["serve", "--port", "0"], root)
    try:
        for path in ("/subscribe", "/archive"):
            page = requests.get(running.url + path, timeout=30).text
            assert html_element(page) == "<html lang='en' dir='ltr'>"
    finally:
        running.stop()


def test_static_archive_follows_the_newsletter_language(arabic: Path) -> None:
    done = run_process("archive", "--out", "site", cwd=arabic)
    assert done.returncode == 0, done.stderr
    page = (arabic / "site" / "index.html").read_text(encoding="utf-8")
    assert html_element(page) == "<html lang='ar' dir='rtl'>"


@browser
@pytest.mark.browser
def test_sign_up_page_reads_right_to_left_in_chromium(arabic_server: Running) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page(viewport={"width": 390, "height": 900})
            page.goto(arabic_server.url + "/subscribe")
            found = page.evaluate(
                """() => ({
                  page: getComputedStyle(document.body).direction,
                  form: getComputedStyle(document.querySelector("form")).direction,
                  title: getComputedStyle(document.querySelector("h1")).direction,
                })"""
            )
        finally:
            chromium.close()
    # the page and its form run right to left; its English title keeps its own direction
    assert found == {"page": "rtl", "form": "rtl", "title": "ltr"}
