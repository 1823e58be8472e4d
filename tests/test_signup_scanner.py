"""Only a person confirms: a mail scanner and a person open the confirmation email's
links in real headless Chromium (tests/signup_actors.py), against `newsletter serve` as
a process, and the subscriber's status is read back with `subscribers list`.

The scanner opens every link of the email's HTML part (the hidden canary too) with
JavaScript on and an ordinary desktop Chrome's user agent; the person opens only the
visible link and presses the button only when asked. ``[signup] scanner_window`` is
small here; a test that needs the window over waits past it, one that needs the scanner
inside it gives it a window it cannot miss.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CHROMIUM
from signup_actors import Browsers, letter_to, person, scan, sign_up, status_of, wait_past
from test_signup import configure
from web_servers import Running

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

MIN_SECONDS = 1


@pytest.fixture
def browsers() -> Iterator[Browsers]:
    opened = Browsers()
    yield opened
    opened.close()


def start(project: Path, window: float) -> Running:
    configure(
        project,
        min_seconds=MIN_SECONDS,
        per_client_per_hour=1000,
        per_network_per_hour=1000,
        scanner_window=window,
    )
    return Running(["serve", "--port", "0"], cwd=project)


def test_a_scanner_alone_leaves_the_person_pending(project: Path, browsers: Browsers) -> None:
    server = start(project, window=2)
    try:
        sign_up(server.url, "scanned@example.org", MIN_SECONDS)
        letter = letter_to(project, "scanned@example.org")
        assert len(letter.links()) >= 2, letter.links()  # the canary and the visible link
        # the hardest case for the canary: the scanner comes after the window, so only
        # the hidden link it opened first tells it from a person
        wait_past(letter, 2)
        pages = scan(browsers, server.url, letter)
    finally:
        server.stop()
    assert not any("You are subscribed" in p for p in pages), pages
    assert status_of(project, "scanned@example.org") == "pending"
    assert "Traceback" not in server.stderr, server.stderr


def test_scanner_in_reverse_order_leaves_the_person_pending(
    project: Path, browsers: Browsers
) -> None:
    server = start(project, window=60)  # the scanner comes at once, as gateways do
    try:
        sign_up(server.url, "reversed@example.org", MIN_SECONDS)
        letter = letter_to(project, "reversed@example.org")
        pages = scan(browsers, server.url, letter, reverse=True)  # the visible link first
    finally:
        server.stop()
    assert not any("You are subscribed" in p for p in pages), pages
    assert status_of(project, "reversed@example.org") == "pending"
    assert "Traceback" not in server.stderr, server.stderr


def test_after_a_scanner_the_person_confirms_with_the_button(
    project: Path, browsers: Browsers
) -> None:
    server = start(project, window=60)
    try:
        sign_up(server.url, "both@example.org", MIN_SECONDS)
        letter = letter_to(project, "both@example.org")
        scan(browsers, server.url, letter)
        assert status_of(project, "both@example.org") == "pending"
        clicks = person(browsers, server.url, letter)
    finally:
        server.stop()
    assert clicks <= 2  # the link, then the button
    assert status_of(project, "both@example.org") == "active"
    assert "Traceback" not in server.stderr, server.stderr


def test_the_person_alone_after_the_window_confirms_with_one_click(
    project: Path, browsers: Browsers
) -> None:
    server = start(project, window=2)
    try:
        sign_up(server.url, "alone@example.org", MIN_SECONDS)
        letter = letter_to(project, "alone@example.org")
        assert status_of(project, "alone@example.org") == "pending"
        wait_past(letter, 2)
        clicks = person(browsers, server.url, letter)
    finally:
        server.stop()
    assert clicks == 1  # the link only
    assert status_of(project, "alone@example.org") == "active"
    assert "Traceback" not in server.stderr, server.stderr
