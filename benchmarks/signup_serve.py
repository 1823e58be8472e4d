"""What the sign-up benchmarks share: a copy of the example project with a `[signup]`
section of their own, `newsletter serve` as a child process, the built-in form's hidden
fields read from GET /subscribe, and a wait for the confirmation queue to drain.

The benchmarks run the code on PYTHONPATH, so the same script measures any version:
one that sends the confirmation inside the request, or one that queues it for serve's
background sender.
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from example_project import CAMPAIGN_FILES, copy_example  # noqa: E402  (tests/ on the path first)
from web_servers import Running  # noqa: E402

PUBLIC = "https://news.riverbend-clinicians.example"
_INPUT = re.compile(r"<input\b[^>]*>", re.I)
_ATTR = re.compile(r"""([\w-]+)\s*=\s*(?:'([^']*)'|"([^"]*)")""")


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def code_under_test() -> str:
    """Where the measured `newsletter` package comes from, and its commit if in git."""
    import newsletter

    src = Path(newsletter.__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "-C", str(src), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{src} ({commit[:70]})" if commit else str(src)


def print_result(as_json: bool, fields: dict[str, object], table: str) -> None:
    """A benchmark's result on stdout: ``fields`` as JSON with the machine and the code
    measured, or those two lines and the table."""
    if as_json:
        print(json.dumps({"machine": machine(), "code": code_under_test(), **fields}, indent=2))
    else:
        print(f"machine: {machine()}\ncode: {code_under_test()}")
        print(table)


def make_project(folder: Path, signup: dict[str, object], extra: str = "") -> Path:
    """The example project at ``folder`` with these `[signup]` keys and ``extra`` TOML
    appended (which may replace `[delivery]`, see :func:`set_delivery`)."""
    copy_example(folder, CAMPAIGN_FILES)
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in signup.items())
    config = folder / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + "\n[signup]\n" + lines + extra, encoding="utf-8"
    )
    return folder


def set_delivery(folder: Path, lines: str) -> None:
    """Replace the project's `[delivery]` section (the example's is the last but
    `[signup]` and what :func:`make_project` appended)."""
    path = folder / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    start = text.index("[delivery]")
    end = text.find("\n[", start + 1)
    rest = text[end + 1 :] if end >= 0 else ""
    path.write_text(text[:start] + "[delivery]\n" + lines + "\n" + rest, encoding="utf-8")


def cli(folder: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    full.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=folder,
        env=full,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"newsletter {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def add_active(folder: Path, addresses: list[str]) -> None:
    """These addresses as active subscribers (a CSV import: the staff's way)."""
    path = folder / "already.csv"
    path.write_text("email\n" + "".join(f"{a}\n" for a in addresses), encoding="utf-8")
    cli(folder, "subscribers", "import", str(path))


def serve(folder: Path, env: dict[str, str] | None = None) -> Running:
    return Running(["serve", "--port", "0"], cwd=folder, env=env)


def hidden_fields(page: str) -> dict[str, str]:
    """The hidden inputs of the sign-up page (form_token, and whatever else the version
    under test puts there), as the browser would post them."""
    found: dict[str, str] = {}
    for tag in _INPUT.findall(page):
        attrs = {m[0].lower(): html.unescape(m[1] or m[2]) for m in _ATTR.findall(tag)}
        if attrs.get("type", "").lower() == "hidden" and attrs.get("name"):
            found[attrs["name"]] = attrs.get("value", "")
    if "form_token" not in found:
        raise SystemExit("GET /subscribe showed no form_token: is this the sign-up page?")
    return found


def form_fields(session: requests.Session, base: str, headers: dict[str, str]) -> dict[str, str]:
    answer = session.get(f"{base}/subscribe", headers=headers, timeout=30)
    answer.raise_for_status()
    return hidden_fields(answer.text)


def queued(folder: Path) -> int | None:
    """Confirmations still waiting in the queue (None: a version without one)."""
    db = sqlite3.connect(folder / "newsletter.db", timeout=30)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "signup_requests" not in tables:
            return None
        return db.execute(
            "SELECT count(*) FROM signup_requests WHERE mail_state IN ('queued', 'sending')"
        ).fetchone()[0]
    finally:
        db.close()


def wait_drained(
    folder: Path, count: Callable[[], int], quiet: float = 2.0, held: float = 15.0
) -> tuple[int, int]:
    """Wait until ``count`` and the queue have not moved for ``quiet`` seconds with the
    queue empty, or for ``held`` seconds with rows left in it (held back by a limit);
    (``count``, rows left queued) then."""
    state = (count(), queued(folder) or 0)
    since = time.monotonic()
    deadline = since + 600
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = (count(), queued(folder) or 0)
        if now != state:
            state, since = now, time.monotonic()
            continue
        if time.monotonic() - since >= (quiet if state[1] == 0 else held):
            return state
    raise SystemExit("the confirmation queue was still moving after 600 s")
