"""`newsletter serve`: the public endpoints, as a WSGI app a production server can host.

    POST /u/<token>          one-click unsubscribe (RFC 8058): List-Unsubscribe=One-Click
    GET  /u/<token>          a page with a button; never unsubscribes by itself
    GET  /c/<slug>           the web version of a sent campaign, with no one's data
    POST /webhooks/<provider> provider events, verified, normalised, applied

For gunicorn: ``gunicorn 'newsletter.web.serve:create_app()'`` with
NEWSLETTER_CONFIG pointing at the project's newsletter.toml.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from ..errors import NewsletterError
from ..models import Event, EventKind, SubscriberStatus
from ..project import Project
from ..tokens import LinkSigner
from ..webhooks import receive_webhook, webhook_secrets

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
MAX_BODY = 5 * 1024 * 1024


class ServeApp:
    """One project's public endpoints. A database connection per thread."""

    def __init__(self, config: str | None = None) -> None:
        self.config = config
        self._local = threading.local()
        project = self.project
        self.soft_bounce_limit = project.soft_bounce_limit
        self.name = project.settings.name
        self.signer = LinkSigner(project.store.link_secret())
        self._web_versions: dict[str, str] = {}

    @property
    def project(self) -> Project:
        project = getattr(self._local, "project", None)
        if project is None:
            project = Project.load(self.config)
            self._local.project = project
        return project

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        try:
            if path.startswith("/u/"):
                status, body = self.unsubscribe(method, path[3:], environ)
            elif path.startswith("/c/") and method == "GET":
                status, body = self.web_version(path[3:])
            elif path.startswith("/webhooks/") and method == "POST":
                status, body = self.webhook(path[len("/webhooks/") :], environ)
            elif path == "/health":
                status, body = "200 OK", "ok"
            elif path == "/unsubscribe":
                status, body = (
                    "200 OK",
                    _page(
                        "Unsubscribe",
                        "Use the unsubscribe link in the email you received: it identifies you "
                        "without asking for your address.",
                    ),
                )
            else:
                status, body = "404 Not Found", _page("Not found", "There is nothing here.")
        except NewsletterError as exc:
            status, body = "500 Internal Server Error", _page("Error", exc.message)
        plain = path.startswith("/webhooks/") or path == "/health"
        content_type = "text/plain" if plain else "text/html"
        start_response(
            status,
            [
                ("Content-Type", f"{content_type}; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
            ],
        )
        return [body.encode("utf-8")]

    # -- unsubscribe ------------------------------------------------------------
    def unsubscribe(self, method: str, token: str, environ: dict[str, Any]) -> tuple[str, str]:
        found = self.signer.verify_unsubscribe(token.strip("/"))
        store = self.project.store
        if found is None:
            return "400 Bad Request", _page(
                "This link is not valid",
                "The unsubscribe link is incomplete or was changed. Use the link from the "
                "email itself, or reply to the email and we will remove you by hand.",
            )
        subscriber_id, campaign_id = found
        exists = store.db.execute(
            "SELECT status FROM subscribers WHERE id = ?", (subscriber_id,)
        ).fetchone()
        if exists is None:
            return "404 Not Found", _page("Already removed", "This address is not on the list.")
        if method == "POST":
            form = _form(environ)
            one_click = form.get("List-Unsubscribe") == "One-Click"
            confirmed = form.get("confirm") == "yes"
            if not (one_click or confirmed):
                return "400 Bad Request", _page("Not understood", "Nothing was changed.")
            campaign = store.db.execute(
                "SELECT slug FROM campaigns WHERE id = ?", (campaign_id,)
            ).fetchone()
            reason = "one-click unsubscribe" if one_click else "unsubscribe page"
            if campaign:
                reason += f" from {campaign[0]}"
            store.set_status(subscriber_id, SubscriberStatus.UNSUBSCRIBED, reason)
            store.record_event(
                Event(
                    provider="newsletter",
                    kind=EventKind.UNSUBSCRIBED,
                    subscriber_id=subscriber_id,
                    campaign=campaign[0] if campaign else None,
                    detail=reason,
                    raw={"via": reason},
                )
            )
            return "200 OK", _page(
                "You are unsubscribed",
                f"You will not get {html.escape(self.name)} again. If this was a mistake, "
                "reply to any of our emails.",
            )
        if exists[0] != "active":
            return "200 OK", _page(
                "You are unsubscribed", f"You no longer get {html.escape(self.name)}."
            )
        return "200 OK", _page(
            f"Unsubscribe from {html.escape(self.name)}?",
            "<form method='post'><input type='hidden' name='confirm' value='yes'>"
            "<button type='submit'>Unsubscribe</button></form>",
            raw=True,
        )

    # -- web version ----------------------------------------------------------------
    def web_version(self, slug: str) -> tuple[str, str]:
        slug = slug.strip("/")
        store = self.project.store
        row = store.campaign(slug)
        if row is None or row.status == "draft":
            return "404 Not Found", _page("Not found", "There is no such newsletter issue.")
        if slug not in self._web_versions:
            project = self.project
            campaign = project.campaign(slug)
            compiled = project.compile(campaign)
            public = project.settings.public_url
            anonymous = {
                "web_url": f"{public}/c/{slug}",
                "unsubscribe_url": f"{public}/unsubscribe",
            }
            self._web_versions[slug] = compiled.preview(anonymous)[1]
        return "200 OK", self._web_versions[slug]

    # -- webhooks ---------------------------------------------------------------------
    def webhook(self, provider: str, environ: dict[str, Any]) -> tuple[str, str]:
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        project = self.project
        answer = receive_webhook(
            provider.strip("/"),
            headers,
            _body(environ),
            webhook_secrets(project.settings.transport),
            project.store,
            self.soft_bounce_limit,
            cache_dir=project.settings.cache_dir,
        )
        return answer.status_line, answer.text


def create_app(config: str | None = None) -> ServeApp:
    """The WSGI application (for gunicorn or any WSGI server)."""
    return ServeApp(config)


def _body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(min(length, MAX_BODY)) if length > 0 else b""


def _form(environ: dict[str, Any]) -> dict[str, str]:
    body = _body(environ).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _page(title: str, message: str, raw: bool = False) -> str:
    content = message if raw else f"<p>{message}</p>"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><style>body{{font:17px/1.5 Georgia,serif;max-width:34em;"
        "margin:4em auto;padding:0 1em;color:#222}button{font:inherit;padding:.5em 1.4em;"
        "background:#2f6f5e;color:#fff;border:0;border-radius:4px;cursor:pointer}</style>"
        f"</head><body><h1>{title}</h1>{content}</body></html>"
    )
