"""Screenshots of `newsletter preview` at desktop and phone widths, and of the email in
dark mode (the reader's system set to dark, as Apple Mail and Outlook apply it), for the README.

python docs/screenshots.py     (needs Debian's chromium and playwright)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
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
    print("wrote docs/preview-desktop.png, docs/preview-phone.png and docs/preview-dark.png")


if __name__ == "__main__":
    main()
