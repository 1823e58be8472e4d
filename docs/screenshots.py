"""Screenshots of `newsletter preview` at desktop and phone widths, and of the email in
dark mode (the reader's system set to dark, as Apple Mail and Outlook apply it), of
the public archive (`newsletter serve`'s /archive) at both widths, and of `report
--html`'s pages, for the README.

python docs/screenshots.py     (needs Debian's chromium and playwright)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the local Postmark fake: the archive needs real sends
FILES = (
    "newsletter.toml",
    "articles",
    "images",
    "campaigns",
    "templates",
    "subscribers.example.csv",
    ".newsletter",
)
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# every image of the email loaded and drawn (the project's own, from images/)
_IMAGES_DRAWN = (
    "() => { const d = document.querySelector('#email').contentDocument;"
    " return d && d.images.length > 0 && [...d.images].every(i => i.complete && i.naturalWidth); }"
)


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in FILES:
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
        cli = [sys.executable, "-m", "newsletter"]
        subprocess.run(
            [*cli, "subscribers", "import", "subscribers.example.csv"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        server = subprocess.Popen(
            [*cli, "preview", "2026-10-digest", "--port", "0", "--no-open"],
            cwd=root,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = re.search(r"http://\S+/", server.stderr.readline()).group(0)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1200})
                page.goto(url)
                page.frame_locator("#email").get_by_text("Hello Dana,").wait_for()
                page.wait_for_function(_IMAGES_DRAWN)
                page.screenshot(path=str(REPO / "docs" / "preview-desktop.png"))
                page.click("#phone")
                page.wait_for_timeout(300)
                page.screenshot(path=str(REPO / "docs" / "preview-phone.png"))
                page.click("#desktop")
                page.emulate_media(color_scheme="dark")
                page.wait_for_timeout(300)
                page.screenshot(path=str(REPO / "docs" / "preview-dark.png"))
                browser.close()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=10)
        messages = archive(root, cli, env)
        report(root, cli, env, messages)
        signup(root, cli, env)
    print(
        "wrote docs/preview-{desktop,phone,dark}.png, docs/archive-{desktop,phone}.png, "
        "docs/signup-{desktop,phone}.png, docs/signup-sent-phone.png, "
        "docs/confirm-{desktop,phone}.png, docs/confirm-noscript.png and "
        "docs/report-{desktop,phone,overview}.png"
    )


def archive(root: Path, cli: list[str], env: dict[str, str]) -> list[dict]:
    """Both example campaigns sent through the local Postmark fake, then /archive; the
    messages Postmark accepted."""
    from fakes.postmark import FakePostmark

    config = root / "newsletter.toml"
    original = config.read_text(encoding="utf-8")
    with FakePostmark(token="screenshots") as pm:
        head = original[: original.index("[delivery]")]
        config.write_text(
            head + f'[delivery]\ntransport = "postmark"\nbase_url = "{pm.url}"\n',
            encoding="utf-8",
        )
        for slug in ("2026-10-digest", "winter-workshop"):
            subprocess.run(
                [*cli, "send", slug, "--yes"],
                cwd=root,
                env=env | {"NEWSLETTER_API_KEY": "screenshots"},
                check=True,
                capture_output=True,
            )
        accepted = list(pm.accepted)
    config.write_text(original, encoding="utf-8")
    with serving(root, cli, env) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for name, width in (("archive-desktop", 1280), ("archive-phone", 375)):
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(url + "archive")
            page.get_by_role("heading", name="Past issues").wait_for()
            page.screenshot(path=str(REPO / "docs" / f"{name}.png"), full_page=True)
            page.close()
        browser.close()
    return accepted


def report(root: Path, cli: list[str], env: dict[str, str], accepted: list[dict]) -> None:
    """The October digest's provider events (the browser test's: deliveries, bounces, a
    complaint, unsubscribes, clicks) posted to `serve`'s Postmark webhook, then its
    `report --html` page at desktop width and at a phone's in dark mode, and the
    overview."""
    import requests

    from test_report_browser import postmark_events
    from web_servers import SERVE_SECRET

    messages = tuple(m for m in accepted if m["Metadata"]["campaign"] == "2026-10-digest")
    hooks = env | {"NEWSLETTER_WEBHOOK_SECRET_POSTMARK": SERVE_SECRET}
    with serving(root, cli, hooks) as url:
        for event in postmark_events(messages, datetime.now(UTC)):
            requests.post(
                url + "webhooks/postmark",
                json=event,
                auth=tuple(SERVE_SECRET.split(":", 1)),
                timeout=30,
            ).raise_for_status()
    pages = {}
    for name, args in (("campaign", ["2026-10-digest"]), ("overview", [])):
        done = subprocess.run(
            [*cli, "report", *args, "--html", "--no-open"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        pages[name] = Path(done.stdout.splitlines()[-1]).resolve().as_uri()
    shots = (
        ("report-desktop", pages["campaign"], 1280, "light"),
        ("report-phone", pages["campaign"], 375, "dark"),
        ("report-overview", pages["overview"], 1280, "light"),
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for name, address, width, scheme in shots:
            context = browser.new_context(
                viewport={"width": width, "height": 900}, color_scheme=scheme, offline=True
            )
            page = context.new_page()
            page.goto(address)
            page.screenshot(path=str(REPO / "docs" / f"{name}.png"), full_page=True)
            context.close()
        browser.close()


@contextlib.contextmanager
def serving(root: Path, cli: list[str], env: dict[str, str]) -> Iterator[str]:
    """`newsletter serve` on a free port for the block: its base URL."""
    server = subprocess.Popen(
        [*cli, "serve", "--port", "0"], cwd=root, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        yield re.search(r"http://\S+/", server.stderr.readline()).group(0)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)


def signup(root: Path, cli: list[str], env: dict[str, str]) -> None:
    """The sign-up page, its answer, and the confirmation link opened in the browser
    (once with scripts off, to show the page a person without them gets; then as it
    is, confirming by itself)."""
    import email
    import email.policy

    with serving(root, cli, env) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for name, width in (("desktop", 1280), ("phone", 375)):
            page = browser.new_page(viewport={"width": width, "height": 800})
            page.goto(url + "subscribe")
            page.screenshot(path=str(REPO / "docs" / f"signup-{name}.png"), full_page=True)
            page.close()
        page = browser.new_page(viewport={"width": 375, "height": 800})
        page.goto(url + "subscribe")
        page.get_by_label("Email address").fill("noor.haddad@example.org")
        page.get_by_label("First name").fill("Noor")
        page.wait_for_timeout(3500)  # past [signup] min_seconds
        page.get_by_role("button", name="Sign up").click()
        page.wait_for_selector("text=Check your inbox")
        page.screenshot(path=str(REPO / "docs" / "signup-sent-phone.png"), full_page=True)
        [eml] = (root / "outbox" / "_confirmations").glob("*.eml")
        message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        text = message.get_body(("plain",)).get_content()
        link = re.search(r"https://\S+?(/confirm/\S+)", text).group(1)
        quiet = browser.new_context(
            java_script_enabled=False, viewport={"width": 375, "height": 800}
        )
        still = quiet.new_page()
        still.goto(url + link.lstrip("/"))
        still.screenshot(path=str(REPO / "docs" / "confirm-noscript.png"), full_page=True)
        quiet.close()
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url + link.lstrip("/"))
        page.wait_for_selector("text=You are subscribed")
        page.screenshot(path=str(REPO / "docs" / "confirm-desktop.png"), full_page=True)
        page = browser.new_page(viewport={"width": 375, "height": 800})
        page.goto(url + link.lstrip("/"))  # a second time: harmless, the same answer
        page.wait_for_selector("text=You are subscribed")
        page.screenshot(path=str(REPO / "docs" / "confirm-phone.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
