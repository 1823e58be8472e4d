"""Sign-up end to end in real headless Chromium (Debian's, driven by Playwright): the
form, the confirmation email from the outbox, the link opened in the browser confirming
by itself, and the next campaign reaching the new subscriber."""

from __future__ import annotations

import email
import email.policy
import json
import re
from pathlib import Path

import pytest

from conftest import CHROMIUM, CHROMIUM_ARGS, run_process
from test_signup import PUBLIC, configure
from web_servers import Running

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


def test_sign_up_in_a_browser(project: Path) -> None:
    from playwright.sync_api import sync_playwright

    configure(project, min_seconds=1)
    server = Running(["serve", "--port", "0"], cwd=project)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 375, "height": 740})
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
            [path] = (project / "outbox" / "_confirmations").glob("*.eml")
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            text = message.get_body(("plain",)).get_content()
            link = re.search(r"https://\S+/confirm/\S+", text).group(0)
            html = message.get_body(("html",)).get_content()
            assert link in html
            page.goto(server.url + link.removeprefix(PUBLIC))
            page.wait_for_selector("text=You are subscribed")  # confirmed by itself
            browser.close()
    finally:
        server.stop()
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=project).stdout)
    [me] = [r for r in listed if r["email"] == "browser.reader@example.org"]
    assert me["status"] == "active" and me["first_name"] == "Bea"
    assert run_process("send", "2026-10-digest", "--yes", cwd=project).returncode == 0
    sent = list((project / "outbox" / "2026-10-digest").glob("*.eml"))
    assert any("browser.reader@example.org" in p.name for p in sent)
