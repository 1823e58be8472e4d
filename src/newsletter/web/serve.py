"""`newsletter serve`: the public endpoints, as a WSGI app a production server can host.

    POST /u/<token>          one-click unsubscribe (RFC 8058): List-Unsubscribe=One-Click,
                             multipart/form-data or urlencoded; recorded once
    GET  /u/<token>          a page with a button; never unsubscribes by itself
    GET  /images/<file>      the project's own images (``[content] images``), which
                             emails show from <public_url>/images/
    GET  /c/<slug>           the web version of a sent campaign, as stored when its send
                             began: never rebuilt, never fetched, with no one's data
    GET  /archive            the public archive: the campaigns a real send delivered, newest
                             first, each linking to its web version (archive.py)
    GET  /archive/feed.xml   the same as an Atom feed
    POST /webhooks/<provider> provider events, verified, normalised, applied
    GET  /subscribe          the sign-up form (signed time shown, honeypot)
    POST /subscribe          a sign-up, from that page (its token) or a form embedded
                             on an allowed origin: always the same "check your inbox"
                             page (signup.py); a cross-site Origin is refused (403).
                             The confirmation email goes from the queue, sent by a
                             background thread (queue.py), never in the request
    GET  /confirm/<token>    a page whose form confirms (posted by a small script after
                             1.5 s, or by its button); never confirms by itself. The
                             email's hidden canary link, also here, marks a scanner
    POST /confirm/<token>    pending -> active: a button press, or the script's post
                             when no scanner was seen (else: press the button)

The routes are one table, ``ROUTES``: a path, the methods it takes, the handler. Every
answer is a page of our own words from a template in ``web/templates/`` (``pages.py``:
anything from a request or the outside world is escaped), under a
Content-Security-Policy, with no path of the server's and no exception text in it: a
request the app fails on gets a plain 500 page, and the reason goes to stderr as one
line. `newsletter serve` runs it on waitress (``web/server.py``); for gunicorn:
``gunicorn 'newsletter.web.serve:create_app()'`` with NEWSLETTER_CONFIG pointing at the
project's newsletter.toml.
"""

from __future__ import annotations

import email
import email.message
import email.utils
import functools
import hashlib
import io
import ipaddress
import secrets
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .. import members, signup
from ..archive import ATOM_TYPE, feed_xml, index_html, load_archive, served_links
from ..catalog import receive_webhook, rehearsal_transports, webhook_secrets
from ..errors import InputError, redact
from ..images import PREFIX as IMAGES
from ..images import ProjectImages
from ..language import direction_context
from ..project import Project
from ..tokens import LINK_TOKEN, LinkSigner
from ..webhooks import unreported_errors, unreported_notes
from .pages import page
from .queue import ConfirmationSender

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
MAX_FIELDS = 20  # form fields read from an unsubscribe POST
SIGNUP_MAX_BODY = 16 * 1024  # a sign-up form is a few short fields

# The web version of a campaign needs inline styles and remote images; nothing runs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_READ, _READ_POST = ("GET", "HEAD"), ("GET", "HEAD", "POST")
_NEVER, _FIVE_MINUTES, _DAY = "no-store", "public, max-age=300", "public, max-age=86400"


@dataclass(frozen=True, slots=True)
class Answer:
    """What a route answers: text (sent as UTF-8) or bytes (an image), with its headers."""

    status: str
    body: str | bytes
    content_type: str = "text/html"
    cache: str = _NEVER
    headers: tuple[tuple[str, str], ...] = ()
    policy: str = CONTENT_SECURITY_POLICY
    referrer: str = "no-referrer"

    @property
    def data(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body

    def header_list(self) -> list[tuple[str, str]]:
        text = isinstance(self.body, str)
        bodiless = self.status[:3] in ("204", "304")
        return [
            ("Content-Type", f"{self.content_type}; charset=utf-8" if text else self.content_type),
            *(() if bodiless else (("Content-Length", str(len(self.data))),)),
            ("Content-Security-Policy", self.policy),
            ("Cache-Control", self.cache),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", self.referrer),
            *self.headers,
        ]


class Refused(Exception):
    """A request answered with an error page: ``status`` and what to tell the person."""

    def __init__(
        self, status: str, title: str, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(title)
        self.status, self.title, self.message, self.headers = status, title, message, headers

    def answer(self, page_of: Callable[..., str] = page) -> Answer:
        """The error page that tells the person (``page_of``: in the newsletter's language)."""
        return Answer(self.status, page_of(self.title, self.message), headers=self.headers)


class ServeApp:
    """One project's public endpoints. A database connection per thread."""

    def __init__(self, config: str | None = None, warn: bool = True) -> None:
        self.config = config
        self._local = threading.local()
        self.sender: ConfirmationSender | None = None
        project = self.project
        self.settings = project.settings
        self.soft_bounce_limit = project.settings.delivery.soft_bounce_limit
        self.name = project.settings.name
        language = direction_context(project.settings.get("newsletter", "language"))
        self.page: Callable[..., str] = functools.partial(page, **language)
        self.max_body = int(project.settings.serve.max_request_bytes)
        self.signer = LinkSigner(project.store.secret.current())
        self.images = ProjectImages.of(project.settings)
        self.proxies = tuple(
            ipaddress.ip_network(p, strict=False) for p in project.settings.serve.trusted_proxies
        )
        self.origins = signup.allowed_origins(project.settings)
        if warn:  # at start-up under any WSGI server (`newsletter serve` says them itself)
            for error in self.startup_errors():
                print(f"Error: {redact(error)}", file=sys.stderr, flush=True)
            for note in self.startup_notes():
                print(f"Warning: {redact(note)}", file=sys.stderr, flush=True)

    def start_sender(self) -> None:
        """Start the thread that sends queued confirmation emails (once)."""
        if self.sender is None:
            self.sender = ConfirmationSender(self.config)
            self.sender.start()

    def close(self) -> None:
        """Stop the confirmation sender (its current email finishes) and close this
        thread's database connection."""
        if self.sender is not None:
            self.sender.stop()
        project = getattr(self._local, "project", None)
        if project is not None:
            project.close()
            self._local.project = None

    def startup_notes(self) -> list[str]:
        """What an operator should hear at start-up (webhook secrets), once per process."""
        return list(unreported_notes(webhook_secrets(self.settings.transport)))

    def startup_errors(self) -> list[str]:
        """Webhook secrets refused (their endpoints answer 503), each saying which variable
        to set; once per process. The rest of the app serves on: unsubscribes must work."""
        return list(unreported_errors(webhook_secrets(self.settings.transport)))

    @property
    def project(self) -> Project:
        project = getattr(self._local, "project", None)
        if project is None:
            project = Project.load(self.config)
            self._local.project = project
        return project

    @property
    def desk(self) -> signup.SignupDesk:
        """This thread's sign-up desk (it keeps the sign-up emails once compiled)."""
        desk = getattr(self._local, "desk", None)
        if desk is None:
            project = self.project
            desk = signup.SignupDesk.of(project.settings, project.store, project.composer)
            self._local.desk = desk
        return desk

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answer = self.answer(environ)
        start_response(answer.status, answer.header_list())
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [answer.data]

    def answer(self, environ: dict[str, Any]) -> Answer:
        """The answer of the route in ROUTES the request is for: a refusal is its error
        page, anything else that goes wrong a plain 500 (the reason goes to the log only)."""
        try:
            route, rest = _route(environ)
            if environ.get("REQUEST_METHOD") == "POST":
                _read_body(environ, route.body_limit(self.max_body))
            return route.handler(self, environ, rest)
        except Refused as refusal:
            return refusal.answer(self.page)
        except Exception as exc:  # a bug, the database gone
            _log_failure(environ, exc)
            return Answer(
                "500 Internal Server Error",
                self.page(
                    "Something went wrong",
                    "This page cannot be shown right now because of a problem on our side. "
                    "Please try again later.",
                ),
            )

    # -- the routes: each (environ, the rest of the path) -> Answer ----------------------
    def _health(self, environ: dict[str, Any], rest: str) -> Answer:
        return Answer("200 OK", "ok", "text/plain")

    def _favicon(self, environ: dict[str, Any], rest: str) -> Answer:
        return Answer("204 No Content", "", cache=_DAY)  # browsers ask on every page

    def _unsubscribe_help(self, environ: dict[str, Any], rest: str) -> Answer:
        return Answer(
            "200 OK",
            self.page(
                "Unsubscribe",
                "Use the unsubscribe link in the email you received: it identifies you "
                "without asking for your address.",
            ),
        )

    def _unsubscribe(self, environ: dict[str, Any], rest: str) -> Answer:
        return Answer(*self.unsubscribe(environ["REQUEST_METHOD"], rest, environ))

    def _web_version(self, environ: dict[str, Any], rest: str) -> Answer:
        status, body = self.web_version(rest)
        return Answer(status, body, cache=_FIVE_MINUTES if status.startswith("200") else _NEVER)

    def _image(self, environ: dict[str, Any], rest: str) -> Answer:
        found = self.images.answer(IMAGES + rest)
        if found is None:
            raise Refused("404 Not Found", "Not found", "There is no such image.")
        content_type, data = found
        return Answer("200 OK", data, content_type, cache=_DAY)

    def _subscribe(self, environ: dict[str, Any], rest: str) -> Answer:
        nonce = secrets.token_urlsafe(16)  # the proof of work's script, when asked for
        status, body = self.subscribe(environ, nonce)
        # same-origin: the page's own POST then carries its Origin (under no-referrer a
        # browser sends "null"); no other site learns the page's address
        policy = f"{CONTENT_SECURITY_POLICY}; script-src 'nonce-{nonce}'"
        return Answer(status, body, policy=policy, referrer="same-origin")

    def _confirm(self, environ: dict[str, Any], rest: str) -> Answer:
        nonce = secrets.token_urlsafe(16)  # the page's one script runs under it
        status, body = self.confirm(environ["REQUEST_METHOD"], rest, environ, nonce)
        return Answer(status, body, policy=f"{CONTENT_SECURITY_POLICY}; script-src 'nonce-{nonce}'")

    def _archive(self, environ: dict[str, Any], rest: str) -> Answer:
        status, body, content_type = self.archive(rest)
        if not status.startswith("200"):
            return Answer(status, body, content_type)
        tag = '"' + hashlib.sha256(body.encode("utf-8")).hexdigest()[:32] + '"'
        wanted = _etags(environ.get("HTTP_IF_NONE_MATCH", ""))
        if tag in wanted or "*" in wanted:
            status, body = "304 Not Modified", ""
        return Answer(status, body, content_type, _FIVE_MINUTES, (("ETag", tag),))

    def _webhook(self, environ: dict[str, Any], rest: str) -> Answer:
        return Answer(*self.webhook(rest, environ), "text/plain")

    # -- unsubscribe ------------------------------------------------------------
    def unsubscribe(self, method: str, token: str, environ: dict[str, Any]) -> tuple[str, str]:
        token = token.rstrip("/")
        found = self.signer.verify_unsubscribe(token) if LINK_TOKEN.fullmatch(token) else None
        if found is None:
            return "400 Bad Request", self.page(
                "This link is not valid",
                "The unsubscribe link is incomplete or was changed. Use the link from the "
                "email itself, or reply to the email and we will remove you by hand.",
            )
        subscriber_id, campaign_id = found
        status = self.project.store.subscribers.status_of(subscriber_id)
        if status is None:
            return "404 Not Found", self.page("Already removed", "This address is not on the list.")
        if method == "POST":
            form = _form(environ)
            one_click = form.get("List-Unsubscribe") == "One-Click"
            confirmed = form.get("confirm") == "yes"
            if not (one_click or confirmed):
                return "400 Bad Request", self.page("Not understood", "Nothing was changed.")
            members.unsubscribe_by_link(self.project.store, subscriber_id, campaign_id, one_click)
            return "200 OK", self.page(
                "You are unsubscribed",
                f"You will not get {self.name} again. If this was a mistake, "
                "reply to any of our emails.",
            )
        if status != "active":
            return "200 OK", self.page("You are unsubscribed", f"You no longer get {self.name}.")
        return "200 OK", self.page(f"Unsubscribe from {self.name}?", template="unsubscribe.html")

    # -- sign-up ----------------------------------------------------------------------
    def subscribe(self, environ: dict[str, Any], nonce: str = "") -> tuple[str, str]:
        project = self.project
        if environ["REQUEST_METHOD"] != "POST":
            return "200 OK", self.signup_page(project, nonce=nonce)
        allowed = self._origin_allowed(environ)
        form = _form(environ, strict=True)
        try:
            signup.sign_up(
                self.desk,
                signup.SignupForm(
                    email=form.get("email", ""),
                    first_name=form.get("first_name", ""),
                    last_name=form.get("last_name", ""),
                    honeypot=form.get(signup.HONEYPOT, ""),
                    form_token=form.get("form_token"),
                    source=form.get("source") or environ.get("HTTP_REFERER", ""),
                    allowed_origin=allowed,
                    proof=form.get("altcha"),
                ),
                client_address(environ, self.proxies),
            )
        except InputError as exc:
            return "400 Bad Request", self.signup_page(project, exc.message, nonce)
        if self.sender is not None:
            self.sender.wake()  # whatever happened: the same work for every sign-up
        return "200 OK", self.page(
            "Check your inbox",
            f"If this address can receive {self.name}, we have sent it an email with a link. "
            "Follow the link to confirm your subscription; until then you get nothing else. "
            "The email may take a few minutes, and may land in your spam folder.",
        )

    def _origin_allowed(self, environ: dict[str, Any]) -> bool:
        """Whether a sign-up POST comes from a page of an allowed origin (or this server's
        own host). An Origin header that is neither is refused outright (403); without
        one (or "null", an opaque origin), the Referer's origin counts; with neither,
        False."""
        origin = environ.get("HTTP_ORIGIN")
        host = environ.get("HTTP_HOST", "").lower()
        if origin is not None and origin.strip() != "null":  # "null": a private context
            found = signup.origin_of(origin)
            if found is None or not (found in self.origins or _host_of(found) == host):
                raise Refused(
                    "403 Forbidden",
                    "Not from this site",
                    f"This sign-up form was sent from a page that may not post to {self.name} "
                    f"({origin.strip()[:100]}). Sign up on {self.settings.public_url}/subscribe; "
                    "a site owner adds their page's origin to [signup] allowed_origins.",
                )
            return True
        found = signup.origin_of(environ.get("HTTP_REFERER", ""))
        return found is not None and (found in self.origins or _host_of(found) == host)

    def signup_page(self, project: Project, problem: str = "", nonce: str = "") -> str:
        s = project.settings.signup
        consent = s.consent_text.replace("{name}", self.name)
        return self.page(
            f"Subscribe to {self.name}",
            s.description,
            "signup.html",
            problem=problem,
            honeypot=signup.HONEYPOT,
            form_token=signup.form_token(project.store.secret),
            form_version=s.form_version,
            source=f"{project.settings.public_url}/subscribe",
            consent=consent,
            challenge=signup.proof_challenge(project.store.secret, s),
            nonce=nonce,
        )

    def confirm(
        self, method: str, token: str, environ: dict[str, Any], nonce: str
    ) -> tuple[str, str]:
        token = token.rstrip("/")
        if not LINK_TOKEN.fullmatch(token):
            return self._confirmed(signup.Confirmation(signup.ConfirmState.INVALID), nonce)
        how = None
        if method == "POST":
            how = _form(environ).get("how")
            if how not in tuple(signup.How):
                return "400 Bad Request", self.page("Not understood", "Nothing was changed.")
        desk = self.desk
        if signup.saw_scanner(desk, token):  # the hidden link: it looks the same
            state = signup.ConfirmState.PENDING if how is None else signup.ConfirmState.PRESS
            return self._confirmed(signup.Confirmation(state), nonce)
        if how is None:
            return self._confirmed(signup.check_confirmation(desk, token), nonce)
        agent = environ.get("HTTP_USER_AGENT", "")
        return self._confirmed(signup.confirm(desk, token, signup.How(how), agent), nonce)

    def _confirmed(self, checked: signup.Confirmation, nonce: str) -> tuple[str, str]:
        """The page of a confirmation link's state."""
        settings = self.settings
        again = f"You can sign up again at {settings.public_url}/subscribe."
        state = checked.state
        if state is signup.ConfirmState.INVALID:
            return "400 Bad Request", self.page(
                "This link is not valid",
                "The confirmation link is incomplete or was changed. Use the link from the "
                f"email itself. {again}",
            )
        if state is signup.ConfirmState.EXPIRED:
            return "410 Gone", self.page(
                "This link has expired",
                f"Confirmation links work for {settings.signup.confirm_days} days. {again}",
            )
        if state is signup.ConfirmState.UNKNOWN:
            return "410 Gone", self.page("This link no longer works", again)
        if state is signup.ConfirmState.ACTIVE:
            return "200 OK", self.page(
                "You are subscribed",
                f"Thank you: your subscription to {self.name} is confirmed.",
                "subscribed.html",
            )
        title = f"Confirm your subscription to {self.name}"
        if state is signup.ConfirmState.PRESS:
            return "200 OK", self.page(
                title, "Press the button to confirm.", "confirm.html", nonce=nonce, auto=False
            )
        return "200 OK", self.page(
            title,
            "One moment: your subscription is being confirmed.",
            "confirm.html",
            nonce=nonce,
            auto=True,
        )

    # -- web version ----------------------------------------------------------------
    def web_version(self, slug: str) -> tuple[str, str]:
        """The page stored when the campaign's real send began (a rehearsal's is never
        served); nothing is built or fetched."""
        slug = slug.strip("/")
        found = None
        if 0 < len(slug) <= 200 and slug.isprintable() and "/" not in slug:
            found = self.project.store.ledger.served_page(slug, rehearsal_transports())
        if found is None:
            return "404 Not Found", self.page("Not found", "There is no such newsletter issue.")
        return "200 OK", found.html

    # -- the public archive ---------------------------------------------------------------
    def archive(self, rest: str) -> tuple[str, str, str]:
        """(status, body, content type) of ``/archive`` and ``/archive/feed.xml``; each
        campaign links to its web version at ``/c/<slug>``."""
        project = self.project
        if rest in ("", "index.html"):
            found = load_archive(project.settings, project.store.ledger)
            return "200 OK", index_html(found, served_links()), "text/html"
        if rest == "feed.xml":
            found = load_archive(project.settings, project.store.ledger)
            feed = feed_xml(found, served_links(found.public_url))
            return "200 OK", feed.decode("utf-8"), ATOM_TYPE
        return "404 Not Found", self.page("Not found", "There is nothing here."), "text/html"

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
            project.store.events,
            self.soft_bounce_limit,
            cache_dir=project.settings.cache_dir,
        )
        return answer.status_line, answer.text


@dataclass(frozen=True, slots=True)
class Route:
    """A path the app answers: exactly ``path``, or, when it ends in ``/``, anything under
    it (the rest goes to the handler); the methods it takes; the ``ServeApp`` method that
    answers it; at most how many bytes a POST to it may carry, below ``[serve]``'s limit."""

    path: str
    methods: tuple[str, ...]
    handler: Callable[[ServeApp, dict[str, Any], str], Answer]
    max_body: int | None = None

    def rest(self, path: str) -> str | None:
        """What follows the route's path in ``path``; None when ``path`` is not this route's."""
        if path == self.path:
            return ""
        if self.path.endswith("/") and path.startswith(self.path):
            return path[len(self.path) :]
        return None

    def body_limit(self, max_body: int) -> int:
        """The most a POST here may carry, given the server's ``[serve] max_request_bytes``."""
        return max_body if self.max_body is None else min(max_body, self.max_body)


ROUTES: tuple[Route, ...] = (  # the first route whose path matches answers
    Route("/u/", _READ_POST, ServeApp._unsubscribe),
    Route("/c/", _READ, ServeApp._web_version),
    Route("/webhooks/", ("POST",), ServeApp._webhook),
    Route("/health", _READ, ServeApp._health),
    Route("/unsubscribe", _READ, ServeApp._unsubscribe_help),
    Route("/images/", _READ, ServeApp._image),
    Route("/favicon.ico", _READ, ServeApp._favicon),
    Route("/subscribe", _READ_POST, ServeApp._subscribe, max_body=SIGNUP_MAX_BODY),
    Route("/confirm/", _READ_POST, ServeApp._confirm),
    Route("/archive", _READ, ServeApp._archive),
    Route("/archive/", _READ, ServeApp._archive),
)


def create_app(config: str | None = None, warn: bool = True, sender: bool = True) -> ServeApp:
    """The WSGI application (for gunicorn or any WSGI server), with its thread that sends
    queued confirmation emails (``sender=False``: without; ``ServeApp.close`` stops it)."""
    app = ServeApp(config, warn)
    if sender:
        app.start_sender()
    return app


def _host_of(origin: str) -> str:
    """``host[:port]`` of an origin, as a Host header names it."""
    return origin.split("://", 1)[1]


def client_address(environ: dict[str, Any], proxies: tuple[Any, ...]) -> str:
    """The client's address: REMOTE_ADDR, or, when that is a trusted proxy, the last
    address in X-Forwarded-For that is not one (a client can prepend anything to that
    header; the proxies each append the address they saw)."""
    remote = environ.get("REMOTE_ADDR", "")
    if not _among(remote, proxies):
        return remote
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h.strip() for h in forwarded.split(",")[-20:]]):
        if not _among(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # not an address: the header is not to be believed
    return remote


def _among(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _route(environ: dict[str, Any]) -> tuple[Route, str]:
    """The route of a request and the rest of its path; Refused when no route takes it."""
    try:  # PEP 3333: the path's bytes, as latin-1; they must be UTF-8
        path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise Refused("400 Bad Request", "Not understood", "This address is not valid.") from None
    method = environ.get("REQUEST_METHOD", "GET")
    for route in ROUTES:
        rest = route.rest(path)
        if rest is None:
            continue
        if method not in route.methods:
            raise Refused(
                "405 Method Not Allowed",
                "Not allowed",
                f"This address answers {', '.join(route.methods)}.",
                (("Allow", ", ".join(route.methods)),),
            )
        return route, rest
    raise Refused("404 Not Found", "Not found", "There is nothing here.")


def _etags(header: str) -> set[str]:
    """The entity tags of an If-None-Match header (weak ones compare as strong: RFC 9110
    asks for the weak comparison here)."""
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


def _read_body(environ: dict[str, Any], limit: int) -> None:
    """Read the request body once and hand it on as ``wsgi.input`` with its length, so
    whoever reads it gets all of it: a Content-Length body, or a chunked one (waitress
    de-chunks it; gunicorn gives it as ``wsgi.input_terminated``). Over the limit: 413."""
    stream = environ.get("wsgi.input") or io.BytesIO()
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    if length:
        if not length.isdigit():
            raise Refused("400 Bad Request", "Not understood", "The request's length is wrong.")
        wanted = int(length)
    elif environ.get("wsgi.input_terminated") or "chunked" in environ.get(
        "HTTP_TRANSFER_ENCODING", ""
    ):
        wanted = limit + 1  # read to the end, and see whether it is too long
    else:
        wanted = 0
    if length and wanted > limit:
        raise _too_large(limit)
    chunks, got = [], 0
    while got < wanted:
        chunk = stream.read(min(65536, wanted - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if got > limit:
        raise _too_large(limit)
    body = b"".join(chunks)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


def _too_large(limit: int) -> Refused:
    return Refused(
        "413 Content Too Large", "Too large", f"A request may carry at most {limit} bytes."
    )


def _body(environ: dict[str, Any]) -> bytes:
    """The request body (read whole by ``_read_body`` before any handler runs)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _form(environ: dict[str, Any], strict: bool = False) -> dict[str, str]:
    """The fields of a form POST: application/x-www-form-urlencoded or, as RFC 8058 asks
    of one-click unsubscribes, multipart/form-data. The first value of a name counts.
    ``strict``: a body or field that is not UTF-8 is refused (400), not patched."""
    header = " ".join(environ.get("CONTENT_TYPE", "").split())
    kind = email.message.Message()
    kind["Content-Type"] = header
    content_type = kind.get_content_type() if header else ""
    body = _body(environ)
    errors = "strict" if strict else "replace"
    if content_type in ("", "application/x-www-form-urlencoded"):
        try:
            pairs = parse_qsl(
                body.decode("utf-8", errors=errors),
                errors=errors,
                keep_blank_values=True,
                max_num_fields=MAX_FIELDS,
            )
        except ValueError:  # UnicodeDecodeError included
            raise Refused("400 Bad Request", "Not understood", "Nothing was changed.") from None
    elif content_type == "multipart/form-data":
        pairs = _multipart(header, body)
        if strict and any("\ufffd" in v for _, v in pairs):
            raise Refused("400 Bad Request", "Not understood", "The form's text must be UTF-8.")
    else:
        raise Refused(
            "415 Unsupported Media Type",
            "Not understood",
            "Send the form as multipart/form-data or application/x-www-form-urlencoded.",
        )
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def _multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """multipart/form-data parts, read by the standard library's MIME parser (the body is
    already within the size limit); at most MAX_FIELDS of them, files ignored."""
    head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n"
    try:
        message = email.message_from_bytes(head.encode("latin-1", errors="replace") + body)
        parts = message.get_payload() if message.is_multipart() else []
        pairs = []
        for part in parts[:MAX_FIELDS]:
            if part.is_multipart() or part.get_filename() is not None:
                continue
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, tuple):  # RFC 2231
                name = email.utils.collapse_rfc2231_value(name)
            if isinstance(name, str):
                value = part.get_payload(decode=True) or b""
                pairs.append((name, value.decode("utf-8", errors="replace")))
        return pairs
    except Exception:  # a body the parser cannot make sense of: no fields
        return []


def _log_failure(environ: dict[str, Any], exc: BaseException) -> None:
    """One line on stderr for the operator; unsubscribe tokens left out."""
    path = environ.get("PATH_INFO", "/")
    if path.startswith("/u/"):
        path = "/u/..."
    elif path.startswith("/confirm/"):
        path = "/confirm/..."
    text = " ".join(str(exc).split())[:400]
    print(
        f"newsletter serve: could not answer {environ.get('REQUEST_METHOD', 'GET')} "
        f"{path!r}: {type(exc).__name__}" + (f": {text}" if text else ""),
        file=sys.stderr,
        flush=True,
    )
