"""Sign-up end to end in real headless Chromium (Debian's, driven by Playwright): the
form, the confirmation email from the queue to the outbox, the link opened in the
browser (confirming by itself, or with one press when it is opened within
scanner_window of the email), and the next campaign reaching the new subscriber."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from conftest import CHROMIUM, CHROMIUM_ARGS, run_process
from test_signup import BROWSER, PUBLIC, configure, confirmations, link_of, old_token
from web_servers import Running

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


def test_sign_up_in_a_browser(project: Path) -> None:
    from playwright.sync_api import sync_playwright

    configure(project, min_seconds=1, scanner_window=0)
    server = Running(["serve", "--port", "0"], cwd=project)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # a person's browser (headless Chromium names itself HeadlessChrome, as a
            # scanner's does: the page's script alone would not confirm for it)
            page = browser.new_page(viewport={"width": 375, "height": 740}, user_agent=BROWSER)
            page.goto(f"{server.url}/subscribe")
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            page.get_by_label("Email address").fill("browser.reader@example.org")
            page.get_by_label("First name").fill("Bea")
            page.keyboard.press("Tab")  # the honeypot is never focused
            focused = page.evaluate("document.activeElement.id")
            assert focused == "last_name"
            assert page.locator("#website").is_hidden() or page.evaluate(
                "document.getElementById('website').getBoundingClientRect().right < 0"
            )
            page.wait_for_timeout(1300)  # past [signup] min_seconds
            page.get_by_role("button", name="Sign up").click()
            page.wait_for_selector("text=Check your inbox")
            [message] = confirmations(project, 1)
            link = link_of(message)
            html = message.get_body(("html",)).get_content()
            assert link in html
            page.goto(server.url + link.removeprefix(PUBLIC))
            page.wait_for_selector("text=You are subscribed")  # confirmed by itself (1.5 s)
            browser.close()
    finally:
        server.stop()
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=project).stdout)
    [me] = [r for r in listed if r["email"] == "browser.reader@example.org"]
    assert me["status"] == "active" and me["first_name"] == "Bea"
    assert run_process("send", "2026-10-digest", "--yes", cwd=project).returncode == 0
    sent = list((project / "outbox" / "2026-10-digest").glob("*.eml"))
    assert any("browser.reader@example.org" in p.name for p in sent)


def test_a_link_opened_as_soon_as_the_email_came_takes_one_press(project: Path) -> None:
    """Within scanner_window of the email a scanner may be what opens the link: the page's
    script is not enough, the person presses the button (no JavaScript: the same)."""
    from playwright.sync_api import sync_playwright

    configure(project, min_seconds=1)
    server = Running(["serve", "--port", "0"], cwd=project)
    try:
        for n in range(2):
            fields = {"email": f"quick{n}@example.org", "form_token": old_token(project)}
            requests.post(f"{server.url}/subscribe", data=fields, timeout=30)
        messages = {m["To"].addresses[0].addr_spec: m for m in confirmations(project, 2)}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(server.url + link_of(messages["quick0@example.org"]).removeprefix(PUBLIC))
            page.wait_for_selector("text=Press the button to confirm")
            assert page.locator("script").count() == 0
            page.get_by_role("button", name="Confirm my subscription").click()
            page.wait_for_selector("text=You are subscribed")
            quiet = browser.new_context(java_script_enabled=False).new_page()
            quiet.goto(server.url + link_of(messages["quick1@example.org"]).removeprefix(PUBLIC))
            quiet.get_by_role("button", name="Confirm my subscription").click()
            quiet.wait_for_selector("text=You are subscribed")
            browser.close()
    finally:
        server.stop()
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=project).stdout)
    assert {r["email"]: r["status"] for r in listed} == {
        "quick0@example.org": "active",
        "quick1@example.org": "active",
    }
