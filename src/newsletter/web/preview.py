"""`newsletter preview`: the email as a subscriber gets it, rebuilt when a file changes.

A small WSGI app for 127.0.0.1. The page shows the HTML at desktop and phone
widths, the plain-text part, the headers, the `check` results, and a chooser of
the subscriber to render it for. It asks ``/version`` every second; a change to
the campaign, a template, an article or the settings bumps the version, and the
page fetches the new build. A build error is shown on the page, not raised.

It also shows the reports (``/reports/``, the overview, and ``/reports/<slug>``, a
campaign's), the pages `report --html` writes, read from the database at each request.

The page shows readers' names and addresses, so it answers only requests addressed
to where it listens (``Host`` 127.0.0.1:PORT, localhost:PORT or the --host given,
and the same ``Origin`` when there is one): a web page elsewhere cannot read it
through a DNS name rebound to 127.0.0.1. It runs on the same bounded server as
`serve`; builds and the database stay on one thread of their own.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ..config import Settings
from ..errors import NewsletterError
from ..images import PREFIX as IMAGES
from ..images import ProjectImages
from ..models import Recipient
from ..project import Project
from .server import Limits

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
PREVIEW_LIMITS = Limits(threads=4, connection_limit=100, max_request_bytes=64 * 1024)
_LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")
REPORTS = "/reports/"  # the reports, read live from the database (never on `serve`)
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


@dataclass(frozen=True, slots=True)
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
    """The WSGI application, for any number of server threads: what touches the project
    (builds, the database) runs on one thread of the app's own, so call ``close`` at the
    end. Until ``listening_on`` says the port, any port of 127.0.0.1/localhost passes."""

    def __init__(self, project: Project, campaign: str, watcher: Watcher | None = None) -> None:
        self.project = project
        self.campaign_name = campaign
        self.watcher = watcher
        self._build: Build | None = None
        self._hosts: set[str] | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preview-build")

    def listening_on(self, host: str, port: int) -> None:
        """Answer only requests for ``host``:``port`` (and 127.0.0.1/localhost there)."""
        host = f"[{host}]" if ":" in host else host
        names = {*_LOCAL_NAMES, host.lower()}
        self._hosts = {f"{name}:{port}" for name in names}
        if port == 80:
            self._hosts |= names

    def close(self) -> None:
        """Close the project's database on the thread that used it, and that thread."""
        self._worker.submit(self.project.close).result()
        self._worker.shutdown()

    def refusal(self, environ: dict[str, Any]) -> str | None:
        """Why a request is not for this preview (another Host or Origin), or None."""
        host = environ.get("HTTP_HOST", "").strip().lower()
        if self._hosts is not None:
            allowed = host in self._hosts
        else:
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            allowed = name in _LOCAL_NAMES
        origin = environ.get("HTTP_ORIGIN")
        if allowed and origin is not None:
            allowed = origin.strip().lower() == f"http://{host}"
        if allowed:
            return None
        where = sorted(self._hosts or _LOCAL_NAMES)[0]
        return (
            f"This preview answers only requests for the address it was started on "
            f"(http://{where}/ and the like); open that address instead."
        )

    @property
    def version(self) -> int:
        return self.watcher.version if self.watcher else 1

    def build(self) -> Build:
        if self._build is None or self._build.version != self.version:
            version = self.version
            try:
                composer = self.project.composer
                composer.reread()  # articles may have changed on disk
                campaign = composer.campaign(self.campaign_name)
                self._build = Build(version, None, campaign, composer.compile(campaign))
            except NewsletterError as exc:
                self._build = Build(version, str(exc))
        return self._build

    # -- WSGI -----------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        refusal = self.refusal(environ)
        if refusal is not None:
            return _plain(start_response, "403 Forbidden", refusal)
        path = environ.get("PATH_INFO", "/")
        try:
            query = parse_qs(environ.get("QUERY_STRING", ""), max_num_fields=20)
        except ValueError:  # more fields than any page of ours asks with
            query = {}
        subscriber = (query.get("subscriber") or [""])[0]
        on_worker = self._worker.submit
        routes: dict[str, Callable[[], tuple[str, str]]] = {
            "/": lambda: (
                "text/html",
                PAGE.replace("__CAMPAIGN__", html.escape(self.campaign_name)),
            ),
            "/version": lambda: ("application/json", json.dumps({"version": self.version})),
            "/state.json": lambda: (
                "application/json",
                json.dumps(on_worker(self.state, subscriber).result()),
            ),
            "/email": lambda: ("text/html", on_worker(self.email_html, subscriber).result()),
        }
        if path.startswith(IMAGES) and environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD"):
            return self.image(path, start_response)
        if path == REPORTS.rstrip("/") or path.startswith(REPORTS):
            return self.report(path, environ, start_response)
        if path not in routes:
            return _plain(start_response, "404 Not Found", "not found")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", "only GET", [("Allow", "GET")])
        content_type, body = routes[path]()
        start_response(
            "200 OK",
            [
                ("Content-Type", f"{content_type}; charset=utf-8"),
                *_PAGE_HEADERS[1:],
            ],
        )
        return [body.encode("utf-8")]

    def report(
        self, path: str, environ: dict[str, Any], start_response: StartResponse
    ) -> list[bytes]:
        """/reports/: the overview; /reports/<slug>: that campaign's report; both read
        from the database as it is now, the same pages `report --html` writes."""
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", "only GET", [("Allow", "GET")])
        slug = path.removeprefix(REPORTS.rstrip("/")).strip("/")
        if slug and not _SLUG.fullmatch(slug):
            return _plain(start_response, "404 Not Found", "not found")
        try:
            body = self._worker.submit(self.report_html, slug).result()
        except NewsletterError as exc:  # a campaign not sent yet
            return _plain(start_response, "404 Not Found", str(exc))
        start_response("200 OK", _PAGE_HEADERS)
        return [body.encode("utf-8")]

    def report_html(self, slug: str) -> str:
        from ..report import campaign_report, overview
        from ..report_page import campaign_page, overview_page

        store = self.project.store
        settings = self.project.settings
        if not slug:
            return overview_page(overview(store), settings, campaign_link=REPORTS + "{slug}")
        return campaign_page(campaign_report(store.ledger, store.events, slug), settings)

    def image(self, path: str, start_response: StartResponse) -> list[bytes]:
        """One of the project's images, which the email shows from its public address."""
        found = ProjectImages.of(self.project.settings).answer(path)
        if found is None:
            return _plain(start_response, "404 Not Found", "not found")
        content_type, data = found
        start_response(
            "200 OK",
            [
                ("Content-Type", content_type),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [data]

    # -- content --------------------------------------------------------------
    def recipients(self) -> list[Recipient]:
        store = self.project.store
        found = [
            Recipient.of(s)
            for _, s in zip(range(50), store.subscribers.stream(status="active"), strict=False)
        ]
        return found or [Recipient(0, "reader@example.com", "Sam")]

    def _message(self, build: Build, subscriber: str) -> Any:
        recipients = self.recipients()
        chosen = next((r for r in recipients if str(r.subscriber_id) == subscriber), recipients[0])
        composer = self.project.composer
        fields = composer.personalizer(build.campaign.slug)(chosen)
        return composer.factory(build.compiled).message(chosen, fields)

    def email_html(self, subscriber: str) -> str:
        build = self.build()
        if build.error:
            return (
                "<!doctype html><meta charset='utf-8'><body style='font-family:sans-serif'>"
                f"<h2 style='color:#a00'>The email does not build</h2><pre>"
                f"{html.escape(build.error)}</pre></body>"
            )
        page = self._message(build, subscriber).html
        public = self.project.settings.newsletter.public_url
        if public:  # the project's images, shown from here before they are published
            page = page.replace(public.rstrip("/") + IMAGES, IMAGES)
        return page

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
        problems = self.project.composer.check_compiled(build.campaign, build.compiled)
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


def _plain(
    start_response: StartResponse,
    status: str,
    text: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("X-Content-Type-Options", "nosniff"),
            *(headers or []),
        ],
    )
    return [text.encode("utf-8")]


def watched_paths(s: Settings) -> list[Path]:
    return [s.campaigns_dir, s.sequences_dir, s.templates_dir, s.articles_dir, s.path]


PAGE = (Path(__file__).parent / "preview.html").read_text(encoding="utf-8")
