"""Who opens a confirmation email's links, in real headless Chromium (Debian's, driven
by Playwright): a mail scanner and a person.

The scanner is what a mail gateway runs (Microsoft Defender Safe Links and the like): a
full browser with JavaScript on, announcing itself as an ordinary desktop Chrome, that
opens EVERY link of the email's HTML part, hidden ones included, in document order (or
reversed), waiting on each for the network to go idle and ~3 s more. It clicks nothing.

The person opens only the link they can see, waits for the page to settle, and clicks a
button only when the page asks them to, as a person would; ``clicks`` counts the link
and each button.

A sign-up is made over plain HTTP with the built-in page's hidden fields; its email is
read from the project's outbox once serve's background sender has written it.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from conftest import CHROMIUM, CHROMIUM_ARGS, run_process

PUBLIC = "https://news.riverbend-clinicians.example"
# an ordinary desktop Chrome: neither actor says it is headless
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
SUBSCRIBED = "You are subscribed"
_LINK = re.compile(r"<a\b[^>]*?\bhref\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.I | re.S)
_INPUT = re.compile(r"<input\b[^>]*>", re.I)
_ATTR = re.compile(r"""([\w-]+)\s*=\s*(?:'([^']*)'|"([^"]*)")""")


@dataclass(frozen=True)
class Letter:
    """The confirmation email as the outbox holds it."""

    path: Path
    html: str
    text: str

    def links(self) -> list[str]:
        """Every link of the HTML part, hidden ones included, in document order."""
        found = [html.unescape(a or b).strip() for a, b in _LINK.findall(self.html)]
        return [u for u in found if u.startswith(("http://", "https://"))]

    def visible_link(self) -> str:
        """The confirmation link a person sees: the one the text part shows."""
        match = re.search(r"https?://\S+/confirm/\S+", self.text)
        assert match, self.text
        return match.group(0)


def sign_up(base: str, address: str, min_seconds: float) -> None:
    """Sign ``address`` up as the built-in page would (its hidden fields, after
    ``min_seconds``)."""
    session = requests.Session()
    page = session.get(f"{base}/subscribe", timeout=30)
    assert page.status_code == 200, page.status_code
    fields: dict[str, str] = {}
    for tag in _INPUT.findall(page.text):
        attrs = {m[0].lower(): html.unescape(m[1] or m[2]) for m in _ATTR.findall(tag)}
        if attrs.get("type", "").lower() == "hidden" and attrs.get("name"):
            fields[attrs["name"]] = attrs.get("value", "")
    time.sleep(min_seconds + 0.2)
    answer = session.post(
        f"{base}/subscribe",
        data={"email": address, "first_name": "", "last_name": "", "website": "", **fields},
        timeout=30,
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text, answer.text[:500]


def letter_to(root: Path, address: str, timeout: float = 60) -> Letter:
    """The confirmation email to ``address``, once serve has written it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted((root / "outbox").rglob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            to = [a.addr_spec.lower() for a in message["To"].addresses]  # type: ignore[union-attr]
            if address.lower() in to:
                body_html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
                body_text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                return Letter(path, body_html, body_text)
        time.sleep(0.1)
    raise AssertionError(f"no confirmation email to {address} in {timeout:.0f} s")


def local(base: str, url: str) -> str:
    """A link of the email, on the test's server (the email names the public URL)."""
    return base + url.removeprefix(PUBLIC) if url.startswith(PUBLIC) else url


def status_of(root: Path, address: str) -> str | None:
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=root).stdout)
    return next((r["status"] for r in listed if r["email"] == address), None)


class Browsers:
    """One headless Chromium; a fresh context (no cookies, no history) for each actor."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )

    def context(self) -> Any:
        return self.browser.new_context(user_agent=DESKTOP_CHROME, java_script_enabled=True)

    def close(self) -> None:
        self.browser.close()
        self._playwright.stop()


def scan(browsers: Browsers, base: str, letter: Letter, reverse: bool = False) -> list[str]:
    """The scanner: every link of the email, each until the network is idle and 3 s
    more; the visible text of each page it ended on."""
    links = [u for u in letter.links() if u.startswith(PUBLIC)]
    assert links, letter.html[:500]
    context = browsers.context()
    seen = []
    try:
        page = context.new_page()
        for url in reversed(links) if reverse else links:
            try:
                page.goto(local(base, url), wait_until="networkidle", timeout=30_000)
            except Exception as exc:  # a scanner goes on: a page that fails is a page
                seen.append(f"{url}: {exc}")
                continue
            page.wait_for_timeout(3000)
            page.wait_for_load_state("networkidle")
            seen.append(page.inner_text("body"))
    finally:
        context.close()
    return seen


def person(browsers: Browsers, base: str, letter: Letter) -> int:
    """The person: opens the visible link, lets the page do what it does, and presses
    the page's button if it still asks for one. The clicks it took (link included);
    AssertionError if the person did not end up told they are subscribed."""
    context = browsers.context()
    try:
        page = context.new_page()
        page.goto(local(base, letter.visible_link()), wait_until="networkidle")
        clicks = 1
        page.wait_for_timeout(3000)  # the page's script, if any, has done its work
        page.wait_for_load_state("networkidle")
        if SUBSCRIBED not in page.inner_text("body"):
            page.get_by_role("button").first.click()
            clicks += 1
            page.wait_for_selector(f"text={SUBSCRIBED}", timeout=15_000)
        return clicks
    finally:
        context.close()


def wait_past(letter: Letter, seconds: float) -> None:
    """Sleep until ``seconds`` have gone by since the email was written."""
    left = letter.path.stat().st_mtime + seconds + 0.5 - time.time()
    if left > 0:
        time.sleep(left)
