"""`newsletter preview`: the email as a subscriber gets it, rebuilt when a file changes.

A small WSGI app for 127.0.0.1. The page shows the HTML at desktop and phone
widths, the plain-text part, the headers, the `check` results, and a chooser of
the subscriber to render it for. It asks ``/version`` every second; a change to
the campaign, a template, an article or the settings bumps the version, and the
page fetches the new build. A build error is shown on the page, not raised.
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ..errors import NewsletterError
from ..models import Recipient
from ..project import Project

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass
class Build:
    version: int
    error: str | None = None
    campaign: Any = None
    compiled: Any = None


class Watcher:
    """Bumps ``version`` whenever a file under the watched folders changes."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = [p for p in paths if p.exists()]
        self.version = 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="preview-watch")

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from watchfiles import watch

        for _changes in watch(
            *self.paths, stop_event=self._stop, debounce=200, step=50, raise_interrupt=False
        ):
            self.version += 1


class PreviewApp:
    """The WSGI application. Not thread-safe: serve it with a single-threaded server."""

    def __init__(self, project: Project, campaign: str, watcher: Watcher | None = None) -> None:
        self.project = project
        self.campaign_name = campaign
        self.watcher = watcher
        self._build: Build | None = None

    @property
    def version(self) -> int:
        return self.watcher.version if self.watcher else 1

    def build(self) -> Build:
        if self._build is None or self._build.version != self.version:
            version = self.version
            try:
                self.project._reader = None  # articles may have changed on disk
                campaign = self.project.campaign(self.campaign_name)
                self._build = Build(version, None, campaign, self.project.compile(campaign))
            except NewsletterError as exc:
                self._build = Build(version, str(exc))
        return self._build

    # -- WSGI -----------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        subscriber = (query.get("subscriber") or [""])[0]
        routes = {
            "/": lambda: (
                "text/html",
                PAGE.replace("__CAMPAIGN__", html.escape(self.campaign_name)),
            ),
            "/version": lambda: ("application/json", json.dumps({"version": self.version})),
            "/state.json": lambda: ("application/json", json.dumps(self.state(subscriber))),
            "/email": lambda: ("text/html", self.email_html(subscriber)),
        }
        if environ.get("REQUEST_METHOD", "GET") != "GET" or path not in routes:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        content_type, body = routes[path]()
        start_response(
            "200 OK",
            [("Content-Type", f"{content_type}; charset=utf-8"), ("Cache-Control", "no-store")],
        )
        return [body.encode("utf-8")]

    # -- content --------------------------------------------------------------
    def recipients(self) -> list[Recipient]:
        store = self.project.store
        found = [
            Recipient(s.id or 0, s.email, s.first_name, s.last_name, s.attributes)
            for _, s in zip(range(50), store.subscribers(status="active"), strict=False)
        ]
        return found or [Recipient(0, "reader@example.com", "Sam")]

    def _message(self, build: Build, subscriber: str) -> Any:
        recipients = self.recipients()
        chosen = next((r for r in recipients if str(r.subscriber_id) == subscriber), recipients[0])
        fields = self.project.personalizer(build.campaign.slug)(chosen)
        return self.project.factory(build.compiled).message(chosen, fields)

    def email_html(self, subscriber: str) -> str:
        build = self.build()
        if build.error:
            return (
                "<!doctype html><meta charset='utf-8'><body style='font-family:sans-serif'>"
                f"<h2 style='color:#a00'>The email does not build</h2><pre>"
                f"{html.escape(build.error)}</pre></body>"
            )
        return self._message(build, subscriber).html

    def state(self, subscriber: str) -> dict[str, Any]:
        build = self.build()
        recipients = [
            {"id": r.subscriber_id, "label": f"{r.first_name or '(no first name)'} <{r.email}>"}
            for r in self.recipients()
        ]
        if build.error:
            return {"version": build.version, "error": build.error, "recipients": recipients}
        message = self._message(build, subscriber)
        raw = message.as_bytes().decode("utf-8")  # RFC 6532 headers for a non-ASCII local part
        head = raw.split("\r\n\r\n", 1)[0]
        headers = [line.split(": ", 1) for line in head.replace("\r\n ", " ").split("\r\n")]
        problems = self.project.check_compiled(build.campaign, build.compiled)
        return {
            "version": build.version,
            "error": None,
            "subject": message.subject,
            "text": message.text,
            "headers": headers,
            "size": len(message.html.encode("utf-8")),
            "problems": [p.as_dict() for p in problems],
            "recipients": recipients,
        }


def watched_paths(project: Project) -> list[Path]:
    s = project.settings
    return [s.campaigns_dir, s.templates_dir, s.articles_dir, s.path]


PAGE = (Path(__file__).parent / "preview.html").read_text(encoding="utf-8")
