"""`newsletter preview` in real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CHROMIUM, CHROMIUM_ARGS, run_process

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


@pytest.fixture
def preview(project: Path) -> Iterator[str]:
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "newsletter",
            "preview",
            "2026-10-digest",
            "--port",
            "0",
            "--no-open",
        ],
        cwd=project,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
    assert match, line
    try:
        yield match.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def page(preview: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        page.goto(preview)
        yield page
        browser.close()


def test_preview_shows_the_email_its_text_and_headers(page) -> None:
    email = page.frame_locator("#email")
    email.get_by_text("Hello Dana,").wait_for()
    email.get_by_text("Clay on the Table: Inviting Creativity Into the Therapy Hour").wait_for()
    assert "Hello Dana," in page.locator("#text").inner_text()
    assert (
        "Unsubscribe: https://news.riverbend-clinicians.example/u/"
        in page.locator("#text").inner_text()
    )
    headers = page.locator("#headers").inner_text()
    assert "List-Unsubscribe-Post" in headers and "dana.whitfield@example.org" in headers
    shown = page.locator("#problems").inner_text()
    # the example project is on example domains on purpose: those are its only warnings
    assert "error" not in shown.lower()
    assert all("is still" in line for line in shown.splitlines() if line.strip()), shown


def test_phone_width_and_reader_chooser(page) -> None:
    page.frame_locator("#email").get_by_text("Hello Dana,").wait_for()
    desktop = page.locator("#email").bounding_box()
    page.click("#phone")
    phone = page.locator("#email").bounding_box()
    assert desktop and phone and phone["width"] < 400 < desktop["width"]
    # at phone width the layout is the one-column mobile one: the cards fill the frame
    inner = page.frame_locator("#email").locator("body").evaluate("b => b.scrollWidth")
    assert inner <= phone["width"]
    page.select_option("#recipient", label="Marcus <marcus.bell@example.com>")
    page.frame_locator("#email").get_by_text("Hello Marcus,").wait_for()
    assert "Hello Marcus," in page.locator("#text").inner_text()


def test_page_updates_when_the_campaign_or_a_template_changes(page, project: Path) -> None:
    email = page.frame_locator("#email")
    email.get_by_text("Hello Dana,").wait_for()
    campaign = project / "campaigns" / "2026-10-digest.md"
    campaign.write_text(
        campaign.read_text(encoding="utf-8").replace(
            "October has been a full month at Riverbend.", "November came early to Riverbend."
        ),
        encoding="utf-8",
    )
    email.get_by_text("November came early to Riverbend.").wait_for()
    assert "November came early" in page.locator("#text").inner_text()

    broken = project / "templates" / "_header.mjml"
    broken.write_text(
        "<mj-section><mj-column><mj-text>Hi</mj-column></mj-section>", encoding="utf-8"
    )
    page.locator("#build-error").get_by_text("does not compile").wait_for()
    email.get_by_text("The email does not build").wait_for()
    broken.unlink()
    email.get_by_text("November came early to Riverbend.").wait_for()
    deadline = time.monotonic() + 10
    while page.locator("#build-error").is_visible() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not page.locator("#build-error").is_visible()


def test_a_page_on_a_rebound_dns_name_reads_nothing(preview: str) -> None:
    """DNS rebinding in a real browser: attacker.example resolves to 127.0.0.1, so a page
    there could fetch the preview's /state.json as same-origin; the Host gives it away."""
    from playwright.sync_api import sync_playwright

    port = int(preview.rstrip("/").rsplit(":", 1)[1])
    rules = "--host-resolver-rules=MAP attacker.example 127.0.0.1"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--no-proxy-server", rules]
        )
        try:
            page = browser.new_page()
            refused = page.goto(f"http://attacker.example:{port}/state.json")
            assert refused is not None and refused.status == 403
            assert "@example" not in page.content()
            answered = page.goto(preview + "state.json")
            assert answered is not None and answered.status == 200
            assert "dana.whitfield@example.org" in page.content()
        finally:
            browser.close()
