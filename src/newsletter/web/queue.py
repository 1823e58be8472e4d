"""The confirmation queue's sender inside `newsletter serve`: one background thread per app.

A sign-up only records its request (the answer takes the same time whoever signed up);
this thread sends the queued confirmation emails (``signup.deliver_confirmations``),
woken at once by a sign-up in the same process, else every ``POLL`` seconds (a sign-up
another process took), and deletes expired sign-ups every ``EXPIRE_EVERY`` seconds.
Several processes on one database share the work: the queue's claim lets each email go
once. It never stops the server: a failure is one line on stderr, and it tries again.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from .. import signup
from ..errors import redact
from ..project import Project

POLL = 2.0  # seconds between looks at the queue when nothing woke the thread
EXPIRE_EVERY = 600.0  # seconds between deletions of expired sign-ups
AFTER_FAILURE = 30.0  # seconds to wait after a failure (the database gone...)


class ConfirmationSender:
    """Sends queued confirmations of the project at ``config`` until ``stop``."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="newsletter-confirmations", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """A sign-up was recorded: look at the queue now."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the email being sent, then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        project: Project | None = None
        desk: signup.SignupDesk | None = None
        expire_at = 0.0
        while not self._stop.is_set():
            wait = POLL
            try:
                if project is None or desk is None:
                    project = Project.load(self.config)
                    desk = signup.SignupDesk.of(project.settings, project.store, project.composer)
                signup.deliver_confirmations(desk)
                if time.monotonic() >= expire_at:
                    signup.expire_signups(desk)
                    expire_at = time.monotonic() + EXPIRE_EVERY
            except Exception as exc:  # never the server's end: say it, try again later
                _say(exc)
                _close(project)
                project = desk = None
                wait = AFTER_FAILURE
            self._wake.wait(wait)
            self._wake.clear()
        _close(project)


def _close(project: Project | None) -> None:
    if project is not None:
        with contextlib.suppress(Exception):  # already broken: nothing more to say
            project.close()


def _say(exc: BaseException) -> None:
    text = redact(" ".join(str(exc).split()))[:400]
    print(
        f"newsletter serve: the confirmation queue could not be worked on: "
        f"{type(exc).__name__}" + (f": {text}" if text else "") + f" (trying again in "
        f"{AFTER_FAILURE:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
