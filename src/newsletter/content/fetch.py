"""Fetching pages and feeds over HTTP, with an on-disk cache.

A URL fetched once is read from the cache afterwards, so rebuilding a
campaign is fast, gives the same email, and works offline. ``refresh=True``
asks the server again with the cached ETag / Last-Modified; a 304 keeps the
cached copy.

Two limits bound a fetch: ``timeout`` (``[content] fetch_timeout``) is how long the
server may stay silent at any one moment, ``deadline`` (``[content] fetch_deadline``)
how long the whole fetch may take, redirects, headers and body together, so a
server that sends one byte a second cannot hold a build for ever. The body is read
in chunks, and before each the socket waits no longer than what is left of the
deadline. Every way a fetch fails is an InputError of one line naming the URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3

from .. import __version__
from ..errors import InputError
from ..files import write_private

USER_AGENT = (
    f"newsletter/{__version__} (article excerpts for an email digest; "
    "+https://pypi.org/project/newsletter/)"
)
MAX_BYTES = 10 * 1024 * 1024
CHUNK = 64 * 1024
# Content types that are never an article page or a feed, refused before the body is read.
NOT_PAGES = ("image/", "audio/", "video/", "font/", "model/", "application/pdf", "application/zip")
FROM_CACHE = "a page fetched before is used from the cache unless --refresh is given"


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # after redirects
    body: bytes
    content_type: str
    charset: str | None


class Fetcher:
    """GET with a timeout and a deadline, a clear User-Agent, redirects, and a cache folder."""

    def __init__(
        self,
        cache_dir: Path | None,
        refresh: bool = False,
        timeout: float = 15.0,
        deadline: float = 30.0,
    ) -> None:
        self.cache_dir = cache_dir
        self.refresh = refresh
        self.timeout = timeout  # the longest silence, at any one moment
        self.deadline = deadline  # the whole fetch: redirects, headers and body
        self.session = requests.Session()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, _WatchedAdapter())
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"})

    def _paths(self, url: str) -> tuple[Path, Path] | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
        return self.cache_dir / f"{key}.body", self.cache_dir / f"{key}.json"

    def _cached(self, url: str) -> tuple[Fetched, dict] | None:
        paths = self._paths(url)
        if paths is None or not paths[0].is_file() or not paths[1].is_file():
            return None
        try:
            meta = json.loads(paths[1].read_text(encoding="utf-8"))
            body = paths[0].read_bytes()
        except (OSError, ValueError):
            return None
        fetched = Fetched(
            meta["final_url"], body, meta.get("content_type", ""), meta.get("charset")
        )
        return fetched, meta

    def _store(self, url: str, fetched: Fetched, response: requests.Response) -> None:
        paths = self._paths(url)
        if paths is None:
            return
        meta = {
            "url": url,
            "final_url": fetched.url,
            "content_type": fetched.content_type,
            "charset": fetched.charset,
            "etag": response.headers.get("ETag"),
            "last_modified": response.headers.get("Last-Modified"),
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        for path, data in (
            (paths[0], fetched.body),
            (paths[1], json.dumps(meta, indent=1).encode("utf-8")),
        ):
            write_private(path, data, shared=True)

    def status(self, url: str) -> int | str:
        """A link's HTTP status (HEAD, then GET when HEAD fails), or the reason it gave
        none; never cached."""
        wait = min(self.timeout, self.deadline)
        with _Deadline(self.deadline) as deadline:
            try:
                response = self.session.head(url, timeout=wait, allow_redirects=True)
                if response.status_code >= 400:  # many servers answer HEAD wrong: ask again
                    response = self.session.get(url, timeout=wait, stream=True)
                    response.close()
                if deadline.passed():  # its connection was shut: the answer may be cut
                    return f"no whole answer within {self.deadline:g} s"
                return response.status_code
            except requests.RequestException as exc:
                if deadline.passed():
                    return f"no whole answer within {self.deadline:g} s"
                if isinstance(exc, requests.Timeout):
                    return f"no answer within {wait:g} s"
                return _reason(exc)

    def get(self, url: str) -> Fetched:
        """The page or feed at ``url``; InputError naming the URL when it cannot be had."""
        cached = self._cached(url)
        if cached is not None and not self.refresh:
            return cached[0]
        headers = {}
        if cached is not None:
            meta = cached[1]
            if meta.get("etag"):
                headers["If-None-Match"] = meta["etag"]
            if meta.get("last_modified"):
                headers["If-Modified-Since"] = meta["last_modified"]
        with _Deadline(self.deadline) as deadline:
            response = self._request(url, headers, deadline)
            with response:
                if response.status_code == 304 and cached is not None:
                    return cached[0]
                if response.status_code >= 400:
                    raise InputError(
                        f"{url} answered HTTP {response.status_code} "
                        f"{response.reason or ''}".rstrip()
                        + ".",
                        "Check the address: the article may have moved or been unpublished.",
                    )
                content_type = response.headers.get("Content-Type", "")
                kind = content_type.split(";")[0].strip().lower()
                if kind.startswith(NOT_PAGES):
                    raise _not_a_page(url, kind)
                body = self._body(url, response, deadline)
        if kind and not _page_or_feed(kind, body):
            raise _not_a_page(url, kind)
        charset = requests.utils.get_encoding_from_headers(response.headers)
        if charset == "ISO-8859-1" and "charset" not in content_type.lower():
            charset = None  # requests' default for text/*, not the server's word
        fetched = Fetched(response.url, body, kind, charset)
        self._store(url, fetched, response)
        return fetched

    def _request(self, url: str, headers: dict[str, str], deadline: _Deadline) -> requests.Response:
        """The response to GET ``url``, its headers read and its body not yet."""
        wait = min(self.timeout, self.deadline)
        try:
            return self.session.get(
                url, headers=headers, timeout=(wait, wait), allow_redirects=True, stream=True
            )
        except requests.RequestException as exc:
            if deadline.passed():
                raise self._overdue(url) from None
            if isinstance(exc, requests.Timeout):
                raise InputError(
                    f"{url} did not answer within {wait:g} s.",
                    f"Check the address, or try again later; {FROM_CACHE}.",
                ) from None
            if any(isinstance(e, http.client.HTTPException) for e in _causes(exc)):
                raise InputError(
                    f"{url} did not answer with HTTP ({_reason(exc)}).",
                    "Check the address: it should be the article's page or the blog's feed.",
                ) from None
            raise InputError(
                f"{url} cannot be reached ({_reason(exc)}).",
                "Check the address and the network connection.",
            ) from None

    def _body(self, url: str, response: requests.Response, deadline: _Deadline) -> bytes:
        """The body, decoded, read chunk by chunk within the deadline and the size limit."""
        raw = response.raw
        read = getattr(raw, "read1", None) or raw.read  # read1: whatever has arrived
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline.left()
            if left <= 0:
                raise self._overdue(url)
            _wait_at_most(raw, min(self.timeout, left))
            try:
                chunk = read(CHUNK, decode_content=True)
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
                raise self._broken(url, exc, deadline, waited=min(self.timeout, left)) from None
            if deadline.passed():  # its connection was shut: what came is not the page
                raise self._overdue(url)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_BYTES:
                raise InputError(
                    f"{url} is larger than {MAX_BYTES // 1024 // 1024} MB; is it a page?",
                    "Give the address of the article's own page or of the blog's RSS or Atom feed.",
                )
            chunks.append(chunk)

    def _broken(
        self, url: str, exc: BaseException, deadline: _Deadline, waited: float
    ) -> InputError:
        """Why reading the body failed, as one line naming the URL."""
        timed_out = isinstance(exc, urllib3.exceptions.ReadTimeoutError | TimeoutError)
        if deadline.passed() or (timed_out and waited < self.timeout):
            return self._overdue(url)
        if timed_out:
            return InputError(
                f"{url} stopped sending for {self.timeout:g} s in the middle of the page.",
                f"Try again later; {FROM_CACHE}.",
            )
        if isinstance(exc, urllib3.exceptions.DecodeError):
            return InputError(
                f"{url} sent a compressed page that cannot be decoded ({_reason(exc)}).",
                "The server is misconfigured: try again later, or save the page as an "
                "HTML file in the project and give that instead.",
            )
        return InputError(
            f"{url} broke off the connection in the middle of the page ({_reason(exc)}).",
            f"Try again later; {FROM_CACHE}.",
        )

    def _overdue(self, url: str) -> InputError:
        return InputError(
            f"{url} did not send the whole page within {self.deadline:g} s.",
            "The server is slow or stalled: try again later, or give it longer with "
            f"[content] fetch_deadline in newsletter.toml (now {self.deadline:g}); "
            f"{FROM_CACHE}.",
        )


class _Deadline:
    """The deadline of one fetch. When it passes, the connections the fetch uses are shut
    down, so that a read waiting on a server that drips (its headers or its body, each
    byte within the per-read timeout) returns at once instead of at the end of the
    page; the fetch then fails with the deadline's message."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._started = time.monotonic()
        self._expired = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _fetching.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _fetching.deadline = None

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self._started)

    def passed(self) -> bool:
        return self._expired or self.left() <= 0

    def watch(self, connection: Any) -> None:
        with self._lock:
            self._connections.append(connection)
            expired = self._expired
        if expired:
            _shut(connection)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)


_fetching = threading.local()  # .deadline: the _Deadline of this thread's fetch, if any


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """A connection that puts itself under the deadline of the fetch that uses it, as it
    sends a request and as it reads the answer's headers."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._under_deadline()
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        self._under_deadline()
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]

    def _under_deadline(self) -> None:
        deadline = getattr(_fetching, "deadline", None)
        if deadline is not None:
            deadline.watch(self)


class _HTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose direct connections are watched by the fetch's deadline
    (through a proxy, the deadline is checked between chunks of the body only)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def _wait_at_most(raw: urllib3.response.BaseHTTPResponse, seconds: float) -> None:
    """Make the next read of the body wait for the server at most ``seconds``."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _page_or_feed(kind: str, body: bytes) -> bool:
    """Whether a body of content type ``kind`` can be an article page or a feed."""
    if kind.startswith("text/") or any(t in kind for t in ("html", "xml", "rss", "atom")):
        return True
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()  # a server that says octet-stream
    return head.startswith((b"<!doctype html", b"<html", b"<?xml", b"<rss", b"<feed"))


def _not_a_page(url: str, kind: str) -> InputError:
    return InputError(
        f"{url} is {kind}, not a web page or a feed.",
        "Give the address of the article's page or of the blog's RSS or Atom feed.",
    )


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (requests wraps urllib3, which wraps the socket's)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [a for a in current.args if isinstance(a, BaseException)]
        todo += [
            e
            for e in (getattr(current, "reason", None), current.__cause__, current.__context__)
            if isinstance(e, BaseException)
        ]


_REASONS = (
    ("Name or service not known", "name or service not known"),
    ("Temporary failure in name resolution", "temporary failure in name resolution"),
    ("Connection refused", "connection refused"),
    ("No route to host", "no route to host"),
    ("certificate verify failed", "certificate verify failed"),
    ("Connection reset", "the connection was reset"),
    ("IncompleteRead", "the page ended early"),
    ("BadStatusLine", "the answer did not start with an HTTP status line"),
    ("LocationParseError", "the address is not valid"),
    ("InvalidURL", "the address is not valid"),
)


def _reason(exc: BaseException) -> str:
    """Why a fetch failed, in a few words on one line (never an object's repr)."""
    causes = list(_causes(exc))
    text = " ".join(f"{type(e).__name__}: {e}" for e in causes)
    for marker, reason in _REASONS:
        if marker in text:
            return reason
    if isinstance(exc, requests.TooManyRedirects):
        return "too many redirects"
    if isinstance(causes[-1], zlib.error):  # "Error -3 while decompressing data: <why>"
        return "bad compressed data: " + " ".join(str(causes[-1]).split(":")[-1].split())
    return type(causes[-1]).__name__
