"""Every endpoint of `serve` and `preview`, fuzzed over real HTTP (hypothesis).

Requests are written byte by byte on a socket, so nothing a library would tidy up is
spared: any method, paths with non-ASCII characters, invalid UTF-8 and percent
escapes, real unsubscribe tokens with something changed or appended, headers with
non-ASCII bytes and values of hundreds of kilobytes, bodies of random bytes or near
misses of a one-click form, in Content-Length or chunked framing. Whatever comes,
the server answers below 500 (waitress's 501 for a transfer coding other than
chunked is what RFC 9112 §6.1 asks), and without valid authentication nothing in
the database changes: no subscriber's status, no event.

Sign-up and confirmation get a fuzz of their own: the form with hostile fields (names
holding URLs or header breaks, disposable and look-alike addresses, real and tampered
form tokens), real confirmation tokens (the hidden canary's too) changed or appended
to, any Origin, Referer, X-Forwarded-For and User-Agent, any content type. Nothing
answers 5xx, nothing prints a traceback, and no existing reader's record changes.

Random in a developer's run; the same examples every time on CI (``CI`` set).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import connect, run_process
from newsletter import providers
from signup_actors import letter_to, sign_up
from test_serve import unsubscribe_path
from test_signup import configure
from web_servers import SERVE_SECRET, Running, raw_request

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
READERS = ("marcus.bell@example.com", "dana.whitfield@example.org", "kai.moreno@example.com")


@dataclass
class Request:
    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    framing: str  # "length", "chunked", "none"
    notes: list[str] = field(default_factory=list)

    def encode(self) -> bytes:
        headers = list(self.headers)
        body = self.body
        if self.framing == "length":
            headers.append((b"Content-Length", str(len(body)).encode()))
        elif self.framing == "chunked":
            headers.append((b"Transfer-Encoding", b"chunked"))
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in _pieces(body)) + b"0\r\n\r\n"
        else:
            body = b""
        head = b"%s %s %s\r\n" % (self.method, self.target, self.version)
        head += b"".join(b"%s: %s\r\n" % (name, value) for name, value in headers)
        return head + b"Connection: close\r\n\r\n" + body

    def unsupported_coding(self) -> bool:
        """A Transfer-Encoding other than chunked, which RFC 9112 answers 501."""
        return any(n.lower() == b"transfer-encoding" for n, _ in self.headers)


def _pieces(body: bytes) -> list[bytes]:
    size = max(1, len(body) // 3 or 1)
    return [body[i : i + size] for i in range(0, len(body), size)]


# -- the parts of a request ------------------------------------------------------------
ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


def _strip(value: bytes) -> bytes:
    return value.replace(b"\r", b"").replace(b"\n", b"")


@st.composite
def text_bytes(draw: st.DrawFn, max_size: int = 40, wild: bool = True) -> bytes:
    """Text as a client might put it in a request line or a header: printable UTF-8 (any
    script); if ``wild``, also latin-1 or any bytes at all."""
    kinds = ["printable", "utf-8", "latin-1", "bytes"] if wild else ["printable"]
    kind = draw(st.sampled_from(kinds))
    if kind == "bytes":
        return draw(st.binary(max_size=max_size))
    text = draw(ODD_TEXT)
    if kind == "printable":
        return "".join(c for c in text if c.isprintable()).encode("utf-8")
    return text.encode(kind, errors="replace")


@st.composite
def targets(draw: st.DrawFn, prefixes: list[str], tokens: list[str], wild: bool) -> bytes:
    prefix = draw(st.sampled_from(prefixes))
    if tokens and prefix == "/u/" and draw(st.booleans()):
        token = draw(st.sampled_from(tokens))
        tail = draw(
            st.sampled_from(
                [
                    token,
                    token + "/",
                    token.upper(),
                    token[:-1],
                    token + "é",
                    token[:-2] + "é",
                    token + "/../../etc/passwd",
                ]
            )
        )
        rest = tail.encode("utf-8")
    else:
        rest = draw(text_bytes(max_size=60))
    how = draw(st.sampled_from(["quoted", "raw", "double"] if wild else ["quoted", "double"]))
    if how == "quoted":
        rest = urllib.parse.quote_from_bytes(rest, safe="/").encode()
    elif how == "double":
        rest = urllib.parse.quote(urllib.parse.quote_from_bytes(rest)).encode()
    target = prefix.encode() + rest.replace(b" ", b"%20")
    target = _strip(target).replace(b"#", b"%23") or b"/"
    if draw(st.booleans()):
        query = draw(text_bytes(wild=wild))
        target += b"?" + (query if wild else urllib.parse.quote_from_bytes(query).encode())
    return target


HEADER_NAMES = [
    b"Content-Type",
    b"Host",
    b"Origin",
    b"Authorization",
    b"Cookie",
    b"Accept",
    b"User-Agent",
    b"Expect",
    b"Transfer-Encoding",
    b"X-Twilio-Email-Event-Webhook-Signature",
    b"X-Twilio-Email-Event-Webhook-Timestamp",
    b"svix-id",
    b"svix-timestamp",
    b"svix-signature",
    b"X-Forwarded-For",
]
CONTENT_TYPES = [
    b"application/x-www-form-urlencoded",
    b"application/x-www-form-urlencoded; charset=latin-1",
    b"multipart/form-data; boundary=b",
    b"multipart/form-data; boundary=",
    b"multipart/form-data",
    b'multipart/form-data; boundary="\xc3\xa9\xff"',
    b"multipart/mixed; boundary=b",
    b"application/json",
    b"text/plain",
    b"",
]


@st.composite
def header_values(draw: st.DrawFn, name: bytes, wild: bool) -> bytes:
    if name == b"Content-Type" and draw(st.booleans()):
        return draw(st.sampled_from(CONTENT_TYPES))
    if name == b"Transfer-Encoding":  # a coding waitress does not take, never "chunked"
        return draw(st.sampled_from([b"gzip", b"identity", b"gzip, chunked", b"x\xff"]))
    if draw(st.integers(0, 9)) == 0:  # a huge value
        return b"a" * draw(st.sampled_from([8_000, 70_000, 300_000]))
    return _strip(draw(text_bytes(max_size=80, wild=wild))).strip(b" \t")


@st.composite
def headers(draw: st.DrawFn, host: bytes, wild: bool) -> list[tuple[bytes, bytes]]:
    found: list[tuple[bytes, bytes]] = []
    if draw(st.integers(0, 4)):  # most requests name the right host
        found.append((b"Host", host))
    for _ in range(draw(st.integers(0, 4))):
        name = draw(
            st.one_of(
                st.sampled_from(HEADER_NAMES),
                st.from_regex(rb"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z"),
            )
        )
        found.append((name, draw(header_values(name, wild))))
    return found


NEAR_MISSES = ["one-click", "One-Click ", " One-Click", "One-Clic", "ONE-CLICK", "no", "Yes", ""]
FIELD_NAMES = ["List-Unsubscribe", "list-unsubscribe", "List-Unsubscribe ", "confirm", "x"]


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "urlencoded", "multipart"]))
    if kind == "bytes":
        return draw(st.binary(max_size=draw(st.sampled_from([64, 2048]))))
    fields = draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(FIELD_NAMES), ODD_TEXT),
                st.one_of(st.sampled_from(NEAR_MISSES), ODD_TEXT),
            ),
            max_size=4,
        )
    )
    if kind == "urlencoded":
        return urllib.parse.urlencode(fields).encode()
    parts = [
        b'--b\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (name.encode("utf-8", "replace"), value.encode("utf-8", "replace"))
        for name, value in fields
    ]
    return b"".join(parts) + draw(st.sampled_from([b"--b--\r\n", b"", b"--b"]))


METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"]


@st.composite
def requests_for(
    draw: st.DrawFn, prefixes: list[str], tokens: list[str], host: bytes, wild: bool
) -> Request:
    """A request: well-formed HTTP with odd contents, or (``wild``) anything at all."""
    if wild:
        method = draw(
            st.sampled_from([*METHODS, b"P\xc3\x98ST", b"G\x00ET", b"post"])
            | st.from_regex(rb"\A[A-Za-z]{1,10}\Z")
        )
        version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"HTTP/1.1 x"]))
    else:
        method, version = draw(st.sampled_from(METHODS)), b"HTTP/1.1"
    return Request(
        method=method,
        target=draw(targets(prefixes, tokens, wild)),
        version=version,
        headers=draw(headers(host, wild)),
        body=draw(bodies()),
        framing=draw(st.sampled_from(["length", "chunked", "none"])),
    )


def any_request(prefixes: list[str], tokens: list[str], host: bytes) -> st.SearchStrategy:
    return st.one_of(
        requests_for(prefixes, tokens, host, wild=False),
        requests_for(prefixes, tokens, host, wild=True),
    )


# -- the database that must not change --------------------------------------------------
class Snapshot:
    def __init__(self, project: Path) -> None:
        self.db = connect(project)

    def take(self) -> tuple:
        statuses = self.db.execute("SELECT id, status FROM subscribers ORDER BY id").fetchall()
        events = self.db.execute("SELECT count(*) FROM events").fetchone()[0]
        return tuple((r[0], r[1]) for r in statuses), events

    def close(self) -> None:
        self.db.close()


def check(running: Running, request: Request, snapshot: Snapshot, before: tuple) -> int | None:
    status, answer = raw_request(running.port, request.encode(), timeout=15)
    if status is not None and status >= 500:
        assert status == 501 and request.unsupported_coding(), (request, answer[:300])
    assert snapshot.take() == before, request
    return status


@pytest.fixture
def sent(project: Path) -> Iterator[Path]:
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    assert run_process("send", "2026-10-digest", "--yes", cwd=project).returncode == 0
    yield project


def test_fuzz_serve(sent: Path) -> None:
    tokens = [unsubscribe_path(sent, a).removeprefix("/u/") for a in READERS[:2]]
    running = Running(
        ["serve", "--port", "0"], sent, {"NEWSLETTER_WEBHOOK_SECRET_POSTMARK": SERVE_SECRET}
    )
    snapshot = Snapshot(sent)
    before = snapshot.take()
    seen: dict[int | None, int] = {}
    prefixes = [
        "/",
        "/u/",
        "/c/",
        "/c/2026-10-digest",
        "/webhooks/",
        *(f"/webhooks/{p.name}" for p in providers.with_webhooks()),
        "/health",
        "/unsubscribe",
        "/archive",
        "/archive/feed.xml",
    ]
    started = time.monotonic()
    try:

        @settings(FUZZ, max_examples=1200)
        @given(request=any_request(prefixes, tokens, b"news.riverbend-clinicians.example"))
        def one(request: Request) -> None:
            status = check(running, request, snapshot, before)
            seen[status] = seen.get(status, 0) + 1

        one()
    finally:
        snapshot.close()
        running.stop()
    print(f"serve: {sum(seen.values())} requests in {time.monotonic() - started:.1f} s: {seen}")
    assert "Traceback" not in running.stderr, running.stderr
    assert sum(seen.values()) >= 1200
    assert {200, 400, 404} <= set(seen), seen  # the fuzz reached the handlers


def test_fuzz_preview(sent: Path) -> None:
    running = Running(["preview", "2026-10-digest", "--port", "0", "--no-open"], sent)
    snapshot = Snapshot(sent)
    before = snapshot.take()
    seen: dict[int | None, int] = {}
    host = f"127.0.0.1:{running.port}".encode()
    prefixes = ["/", "/version", "/state.json", "/email", "/email?subscriber=", "/x/"]
    started = time.monotonic()
    try:

        @settings(FUZZ, max_examples=500)
        @given(request=any_request(prefixes, [], host))
        def one(request: Request) -> None:
            status = check(running, request, snapshot, before)
            seen[status] = seen.get(status, 0) + 1

        one()
    finally:
        snapshot.close()
        running.stop()
    print(f"preview: {sum(seen.values())} requests in {time.monotonic() - started:.1f} s: {seen}")
    assert "Traceback" not in running.stderr, running.stderr
    assert {200, 403, 404} <= set(seen), seen


# -- sign-up and confirmation -------------------------------------------------------------
PUBLIC = "https://news.riverbend-clinicians.example"
SIGNUP_FIELDS = [
    "email",
    "first_name",
    "last_name",
    "website",
    "form_token",
    "source",
    "form_version",
    "confirm",
    "how",
    "altcha",
    "Email",
    "email ",
]
HOSTILE_VALUES = [
    "",
    " ",
    "new.reader@example.org",
    "marcus.bell@example.com",  # already subscribed
    "Marcus.Bell+news@Example.COM",
    "m.a.r.c.u.s.bell@example.com",
    "someone@googlemail.com",
    "Élodie.Brun@example.org",
    "用户@例子.广告",
    "throwaway@mailinator.com",
    "x@guerrillamail.biz",
    "a@b",
    "@example.org",
    "a" * 250 + "@example.org",
    "your account is locked - verify at https://evil.example/login",
    "Bob <bob@evil.example>",
    "Mallory\r\nBcc: victim@example.org",
    "<script>alert(1)</script>",
    "javascript:alert(1)",
    "https://evil.example/",
    "www.evil.example",
    "$$$ 100% FREE $$$",
    "\x0b\x1b[31m\x00",
    "\u202egnp.exe",
    "auto",
    "button",
    "yes",
    "null",
    "x" * 5000,
]
ORIGINS = [
    PUBLIC.encode(),
    b"https://blog.example.org",
    b"https://evil.example",
    b"null",
    b"",
    b"http://127.0.0.1",
    b"https://news.riverbend-clinicians.example.evil.example",
    b"https://news.riverbend-clinicians.example:444",
    b"\xff\xfe",
]
FORWARDED = [
    b"2001:db8:ab:cd::1",
    b"2001:db8:ab:cd::1, 127.0.0.1",
    b"::ffff:203.0.113.9",
    b"203.0.113.9, 198.51.100.1",
    b"fe80::1%eth0",
    b"999.1.1.1",
    b"unknown",
    b"",
    b"1.2.3.4" * 500,
]
AGENTS = [
    b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"HeadlessChrome/120.0.0.0 Safari/537.36",
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0 Safari/537.36",
    b"Microsoft Office/16.0",
    b"python-requests/2.31",
    b"\xff" * 20,
]


def token_variants(token: str) -> list[str]:
    head, _, tail = token.partition(".")
    return [
        token,
        token + "/",
        token[:-1],
        token + "A",
        token.upper(),
        tail + "." + head,
        head,
        token.replace(".", ".."),
        token + "/../../subscribe",
        token[:-2] + "é",
        token + "%00",
        token * 3,
    ]


@st.composite
def signup_values(draw: st.DrawFn, tokens: list[str]) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0 and tokens:
        return draw(st.sampled_from([v for t in tokens for v in token_variants(t)]))
    if kind == 1:
        return draw(ODD_TEXT)
    return draw(st.sampled_from(HOSTILE_VALUES))


@st.composite
def signup_bodies(draw: st.DrawFn, tokens: list[str]) -> tuple[bytes, bytes]:
    """(body, the Content-Type it goes with): mostly a form of sign-up fields with
    hostile values, sometimes under another type, sometimes bytes."""
    fields = draw(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(SIGNUP_FIELDS), ODD_TEXT),
                signup_values(tokens),
            ),
            max_size=8,
        )
    )
    kind = draw(st.sampled_from(["urlencoded", "urlencoded", "multipart", "json", "bytes"]))
    if kind == "urlencoded":
        body = urllib.parse.urlencode(fields).encode()
        content_type = b"application/x-www-form-urlencoded"
    elif kind == "multipart":
        parts = [
            b'--b\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
            % (name.encode("utf-8", "replace"), value.encode("utf-8", "replace"))
            for name, value in fields
        ]
        body = b"".join(parts) + b"--b--\r\n"
        content_type = b"multipart/form-data; boundary=b"
    elif kind == "json":
        body = json.dumps(dict(fields)).encode()
        content_type = b"application/json"
    else:
        body = draw(st.binary(max_size=512))
        content_type = draw(st.sampled_from(CONTENT_TYPES))
    if draw(st.integers(0, 4)) == 0:  # the type of another body, or none
        content_type = draw(st.sampled_from(CONTENT_TYPES))
    return body, content_type


@st.composite
def signup_requests(
    draw: st.DrawFn, form_tokens: list[str], links: list[str], host: bytes
) -> Request:
    """A sign-up or confirmation request: the form with hostile fields, real and tampered
    form and confirmation tokens (the canary's too), any origin, any content type."""
    if links and draw(st.booleans()):
        path = "/confirm/" + draw(st.sampled_from([v for t in links for v in token_variants(t)]))
        target = urllib.parse.quote(path, safe="/%").encode()
    else:
        target = draw(
            st.sampled_from(
                [b"/subscribe", b"/subscribe/", b"/subscribe?email=a@b", b"/confirm/", b"/confirm"]
            )
        )
    method = draw(st.sampled_from([b"POST", b"POST", b"POST", b"GET", b"HEAD", b"PUT"]))
    body, content_type = draw(signup_bodies(form_tokens + links))
    found: list[tuple[bytes, bytes]] = [(b"Host", host)]
    if content_type:
        found.append((b"Content-Type", content_type))
    for name, choices in (
        (b"Origin", ORIGINS),
        (b"Referer", [o + b"/subscribe" for o in ORIGINS]),
        (b"X-Forwarded-For", FORWARDED),
        (b"User-Agent", AGENTS),
    ):
        if draw(st.booleans()):
            found.append((name, draw(st.sampled_from(choices))))
    return Request(
        method=method,
        target=target,
        version=b"HTTP/1.1",
        headers=found,
        body=body,
        framing=draw(st.sampled_from(["length", "length", "chunked"])),
    )


class People:
    """The imported readers' records: a sign-up never changes them."""

    def __init__(self, project: Path) -> None:
        self.db = connect(project)

    def take(self) -> tuple:
        return tuple(
            self.db.execute(
                "SELECT id, email, status, first_name, last_name FROM subscribers "
                "WHERE email IN (?, ?, ?) ORDER BY id",
                READERS,
            ).fetchall()
        )

    def close(self) -> None:
        self.db.close()


def first_confirmation(project: Path, base: str) -> list[str]:
    """Sign one address up for real; the tokens of every /confirm/ link of its email
    (the hidden one included, where there is one)."""
    sign_up(base, "first.fuzz@example.org", 0)
    letter = letter_to(project, "first.fuzz@example.org")
    found = re.findall(r"/confirm/([^\s\"'<>]+)", letter.html)
    assert found, letter.html[:500]
    requests.get(f"{base}/subscribe", timeout=30)  # the page renders before the fuzz
    return list(dict.fromkeys(found))


def test_fuzz_signup_and_confirm(sent: Path) -> None:
    configure(
        sent,
        min_seconds=0,
        per_client_per_hour=100_000,
        per_network_per_hour=100_000,
        per_address_per_hour=100_000,
        max_confirmations_per_hour=100_000,
        scanner_window=1,
    )
    config = sent / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + '\n[serve]\ntrusted_proxies = ["127.0.0.1"]\n',
        encoding="utf-8",
    )
    running = Running(["serve", "--port", "0"], sent)
    people = People(sent)
    before = people.take()
    seen: dict[int | None, int] = {}
    started = time.monotonic()
    try:
        links = first_confirmation(sent, running.url)
        form_tokens = [
            re.search(
                r"name=['\"]form_token['\"] value=['\"]([^'\"]+)",
                requests.get(f"{running.url}/subscribe", timeout=30).text,
            ).group(1)
            for _ in range(3)
        ]

        @settings(FUZZ, max_examples=800)
        @given(request=signup_requests(form_tokens, links, b"news.riverbend-clinicians.example"))
        def one(request: Request) -> None:
            status, answer = raw_request(running.port, request.encode(), timeout=15)
            if status is not None and status >= 500:
                assert status == 501 and request.unsupported_coding(), (request, answer[:300])
            assert people.take() == before, request
            seen[status] = seen.get(status, 0) + 1

        one()
    finally:
        people.close()
        running.stop()
    print(f"sign-up: {sum(seen.values())} requests in {time.monotonic() - started:.1f} s: {seen}")
    assert "Traceback" not in running.stderr, running.stderr
    assert sum(seen.values()) >= 800
    assert {200, 400} <= set(seen), seen  # the fuzz reached the handlers
