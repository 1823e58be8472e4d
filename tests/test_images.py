"""The project's own images: real files in images/, shown by the email from public_url,
answered by `serve`, shown by `preview` in real Chromium, and nothing else of the folder
(or outside it) ever answered."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import CHROMIUM, run_process
from newsletter.catalog import load_settings
from newsletter.images import ProjectImages
from test_preview import page, preview  # noqa: F401  (fixtures)
from web_servers import Running

PUBLIC = "https://news.riverbend-clinicians.example"
CLAY = "images/clay-collage-and-courage.jpg"


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def test_every_example_image_is_a_real_jpeg() -> None:
    root = Path(__file__).resolve().parent.parent
    named = [
        line.split(":", 1)[1].strip()
        for folder in (root / "articles", root / "src/newsletter/scaffold/articles")
        for article in folder.glob("*.md")
        for line in article.read_text(encoding="utf-8").splitlines()
        if line.startswith("image:")
    ]
    assert len(named) == 8
    for name in named:
        path = (root / name) if (root / name).exists() else root / "src/newsletter/scaffold" / name
        data = path.read_bytes()
        assert data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9", name  # JPEG SOI..EOI
        assert 5_000 < len(data) < 200_000, name


@pytest.mark.slow
def test_the_email_shows_project_images_from_public_url(project: Path) -> None:
    result = run_process("build", "2026-10-digest", cwd=project)
    assert result.returncode == 0, result.stderr
    page_html = next((project / "build" / "2026-10-digest").glob("*.html")).read_text()
    for name in (
        "the-case-for-rest-between-sessions.jpg",
        "supervision-is-not-a-report-card.jpg",
        "clay-collage-and-courage.jpg",  # a campaign's override of a fetched page's image
    ):
        assert f'src="{PUBLIC}/images/{name}"' in page_html
    check = run_process("check", "2026-10-digest", cwd=project)
    assert check.returncode == 0 and "relative-image" not in check.stdout + check.stderr


@pytest.mark.slow
def test_a_missing_image_file_stays_a_relative_address_that_check_names(project: Path) -> None:
    article = project / "articles" / "2026-10-06-the-case-for-rest-between-sessions.md"
    text = article.read_text(encoding="utf-8")
    article.write_text(text.replace("images/the-case-for", "images/no-such"), encoding="utf-8")
    check = run_process("check", "2026-10-digest", cwd=project)
    assert "images/no-such-rest-between-sessions.jpg" in check.stdout + check.stderr
    said = check.stdout + check.stderr
    assert check.returncode == 1
    assert f"is not in images/ ({project / 'images'}), the folder searched" in said
    assert "has no absolute https:// address" not in said


def test_a_missing_image_in_a_folder_of_its_own_names_that_folder(project: Path, run) -> None:
    config = project / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[content]", '[content]\nimages = "pictures"', 1))
    (project / "images").rename(project / "pictures")
    article = project / "articles" / "2026-10-06-the-case-for-rest-between-sessions.md"
    text = article.read_text(encoding="utf-8").replace("images/the-case-for", "pictures/no-such")
    article.write_text(text, encoding="utf-8")
    check = run("check", "2026-10-digest")
    assert check.exit_code == 1
    assert "'pictures/no-such-rest-between-sessions.jpg' is not in pictures/" in check.stderr
    assert str(project / "pictures") in check.stderr


def test_what_the_folder_publishes(project: Path, tmp_path: Path) -> None:
    images = ProjectImages.of(load_settings(project / "newsletter.toml"))
    (project / "images" / "notes.txt").write_text("private")
    (project / "images" / "drawing.svg").write_text("<svg onload='alert(1)'/>")
    (project / "images" / ".hidden.jpg").write_bytes(b"\xff\xd8\xff")
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"\xff\xd8\xff secret")
    os.symlink(outside, project / "images" / "link.jpg")
    assert images.published(CLAY) == f"{PUBLIC}/{CLAY}"
    assert images.published("/" + CLAY) == f"{PUBLIC}/{CLAY}"
    assert images.published("https://cdn.example.org/a.jpg") == "https://cdn.example.org/a.jpg"
    for written in (
        "images/notes.txt",
        "images/drawing.svg",
        "images/.hidden.jpg",
        "images/link.jpg",
        "images/../newsletter.toml",
        "articles/../images/../../outside.jpg",
        "newsletter.toml",
    ):
        assert images.published(written) == written, written  # not published: as written
    assert images.answer("/images/clay-collage-and-courage.jpg") is not None
    for path in (
        "/images/notes.txt",
        "/images/drawing.svg",
        "/images/link.jpg",
        "/images/../newsletter.toml",
        "/images/%2e%2e/newsletter.toml",
        "/images/..%2fnewsletter.toml",
        "/images/",
        "/images/a\\b.jpg",
        "/images/x\x00.jpg",
    ):
        assert images.answer(path) is None, path


@pytest.mark.slow
def test_serve_answers_the_images_and_nothing_beside_them(project: Path) -> None:
    (project / "images" / "notes.txt").write_text("private")
    running = Running(["serve", "--port", "0"], project)
    try:
        status, kind, body = _get(f"{running.url}/{CLAY}")
        assert status == 200 and kind == "image/jpeg"
        assert body == (project / CLAY).read_bytes()
        for path in (
            "/images/notes.txt",
            "/images/%2e%2e/newsletter.toml",
            "/images/..%2f..%2fnewsletter.toml",
            "/images/nothing.jpg",
            "/images/",
        ):
            status, _, body = _get(running.url + path)
            assert status == 404, path
            assert b"private" not in body and b"[newsletter]" not in body
        request = urllib.request.Request(f"{running.url}/{CLAY}", method="POST", data=b"x")
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("a POST was answered")
        except urllib.error.HTTPError as error:
            assert error.code == 405
    finally:
        running.stop()


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_preview_shows_the_images_in_chromium(page) -> None:  # noqa: F811
    email = page.frame_locator("#email")
    email.get_by_text("Hello Dana,").wait_for()
    images = email.locator("img")
    sources = images.evaluate_all("all => all.map(i => i.getAttribute('src'))")
    assert "/images/clay-collage-and-courage.jpg" in sources
    page.wait_for_function(
        "() => [...document.querySelector('#email').contentDocument.images].every(i => i.complete)"
    )
    loaded = images.evaluate_all("all => all.map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert len(loaded) >= 3
    assert all(width == 1104 for _, width in loaded), loaded  # every image drawn, none broken


@pytest.mark.slow
def test_serve_answers_the_browsers_favicon_request_with_no_content(project: Path) -> None:
    # with img-src 'self' a page's automatic /favicon.ico was a 404 in the console
    running = Running(["serve", "--port", "0"], project)
    try:
        with urllib.request.urlopen(f"{running.url}/favicon.ico", timeout=10) as answer:
            assert answer.status == 204 and answer.read() == b""
            assert answer.headers.get("Content-Length") is None
    finally:
        running.stop()
