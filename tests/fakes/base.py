"""Shared machinery for the local email-provider fakes used in tests.

:class:`FakeProvider` runs a threaded HTTP/1.1 (keep-alive) server on an ephemeral
127.0.0.1 port, reads bodies by ``Content-Length`` up to ``max_body_bytes``, decodes each
body once, records every request, applies latency and injected faults, and turns
:class:`Reply` objects into HTTP responses. A provider fake only says which requests hit
its send endpoint(s), how to validate and answer them, and what its errors look like.

Faults (popped FIFO, one per request to a send endpoint; other paths never take one):

* ``("status", code, body, headers)`` -- reply with that response; nothing is accepted.
  ``body`` (dict/list -> JSON, str/bytes -> raw, None -> empty) and ``headers`` are optional.
* ``("hang", seconds)`` -- sleep, then handle normally (messages are accepted *after* the
  sleep, unless the fake is stopped meanwhile).
* ``("drop_after_read",)`` -- handle normally (accepting valid messages), then close the
  connection without sending any response.
* ``("garbage",)`` -- reply 200 with a non-JSON body; nothing is accepted.

Lean mode (``keep_bodies=False``, for benchmarks): recorded requests keep no body
(``body=None``) and ``accepted``/``dropped`` hold only ``{"to": ..., "id": ...}``.
"""

import contextlib
import json
import math
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs

__all__ = [
    "FakeProvider",
    "Fault",
    "Incoming",
    "RecordedRequest",
    "Reply",
    "bare_address",
    "is_email",
    "looks_like_email",
    "media_type",
    "split_addresses",
]

Fault = tuple[Any, ...]
"""A fault spec such as ``("hang", 2.0)``; see the module docstring."""

_DRAIN_CHUNK = 64 * 1024
_ANGLE_ADDR = re.compile(r"<([^<>]*)>\s*$")
_EMAIL = re.compile(
    r"[^@\s<>()\[\],;:\"\\]{1,64}@"
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_](?:[\w-]{0,61}[^\W_])?",
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received by a fake."""

    method: str
    path: str
    """The request target as sent, query string included."""
    headers: dict[str, str]
    body: Any
    """The decoded body (JSON value, form fields, ...), raw bytes when it could not be
    decoded (``b""`` for 413s), or None in lean mode."""
    fault: Fault | None = None
    """The fault applied to this request, if any."""
    send: bool = False
    """Whether the request hit the provider's send endpoint."""


@dataclass(frozen=True)
class Reply:
    """An HTTP response for the server to write.

    ``body``: dict/list -> JSON, str -> text (``text/html`` unless ``headers`` set a
    Content-Type), bytes -> raw, None -> empty.
    """

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Incoming:
    """A request after its body was read, handed to the provider hooks."""

    method: str
    target: str
    headers: Message
    raw: bytes
    """The body bytes (empty when ``too_large``)."""
    too_large: bool
    body: Any = None
    """The body as decoded once by :meth:`FakeProvider.decode_body`."""

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> dict[str, list[str]]:
        """The parsed query string."""
        return parse_qs(self.target.partition("?")[2], keep_blank_values=True)


# -- address helpers ---------------------------------------------------------------


def split_addresses(value: str) -> list[str]:
    """Split a comma-separated address list, honouring quotes and ``<...>``."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = angle = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        if ch == "," and not quoted and not angle:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def bare_address(entry: str) -> str:
    """Return the address part of ``Name <addr>`` (or ``entry`` itself, stripped)."""
    match = _ANGLE_ADDR.search(entry)
    return match.group(1).strip() if match else entry.strip()


def looks_like_email(addr: str) -> bool:
    """Lenient check: ``local@domain`` without whitespace."""
    local, at, domain = addr.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in addr)


def is_email(addr: str) -> bool:
    """Stricter check: one ``@``, a dotted domain of valid labels, no spaces or brackets,
    and ASCII only: the providers' HTTP APIs offer no SMTPUTF8, so a non-ASCII local part
    is refused, and an internationalised domain must come as A-labels (punycode), as SES
    documents."""
    return len(addr) <= 254 and addr.isascii() and _EMAIL.fullmatch(addr) is not None


def media_type(value: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    return (value or "").split(";", 1)[0].strip().lower()


# -- the server --------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: "FakeProvider") -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        client_gone = isinstance(exc, ConnectionError | TimeoutError)
        if client_gone or (isinstance(exc, OSError) and self.fake._stopping.is_set()):
            return  # the client went away, or we are shutting down
        if exc is not None:
            self.fake._record_error(exc)
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server_version = f"{self.server.fake.name}/1.0"
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr request log."""

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def _send(self, reply: Reply) -> None:
        payload = reply.body
        if payload is None:
            body, ctype = b"", "text/plain"
        elif isinstance(payload, bytes):
            body, ctype = payload, "application/octet-stream"
        elif isinstance(payload, str):
            body, ctype = payload.encode(), "text/html; charset=utf-8"
        else:
            body, ctype = json.dumps(payload).encode(), "application/json; charset=utf-8"
        all_headers: dict[str, Any] = {"Content-Type": ctype}
        for name, value in (reply.headers or {}).items():
            if name.lower() == "content-type":
                all_headers["Content-Type"] = value
            elif name.lower() != "content-length":
                all_headers[name] = value
        try:
            self.send_response(reply.status)
            for name, value in all_headers.items():
                for one in value if isinstance(value, list) else [value]:
                    self.send_header(name, str(one))  # a list: the header sent once per value
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_body(self, limit: int) -> tuple[bytes, bool] | None:
        """Read the body; return ``(body, too_large)`` or None if a reply was already sent."""
        fake = self.server.fake
        if "Transfer-Encoding" in self.headers and "Content-Length" not in self.headers:
            self.close_connection = True
            self._send(fake.error_reply(411, "Length Required"))
            return None
        raw = self.headers.get("Content-Length", "0").strip()
        if not raw.isdigit():
            self.close_connection = True
            self._send(fake.error_reply(400, "Invalid Content-Length"))
            return None
        length = int(raw)
        if length > limit:
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, _DRAIN_CHUNK))
                if not chunk:
                    self.close_connection = True
                    return None
                remaining -= len(chunk)
            self.close_connection = True
            return b"", True
        body = self.rfile.read(length)
        if len(body) < length:  # client disconnected mid-body
            self.close_connection = True
            return None
        return body, False

    def _dispatch(self) -> None:
        fake = self.server.fake
        if fake._pause(fake.latency):
            self.close_connection = True
            return
        read = self._read_body(fake.max_body_bytes)
        if read is None:
            return
        req = Incoming(self.command, self.path, self.headers, read[0], read[1])
        try:
            req.body = fake.decode_body(req)
            is_send = fake.is_send_endpoint(req)
        except Exception as exc:
            self._fail(exc)
            return
        fault = fake._pop_fault() if is_send else None
        fake._record(req, fault, is_send)
        kind = fault[0] if fault else None
        if kind == "status":
            assert fault is not None
            body = fault[2] if len(fault) > 2 else None
            headers = fault[3] if len(fault) > 3 else None
            self._send(Reply(int(fault[1]), body, headers or {}))
            return
        if kind == "garbage":
            self._send(Reply(200, "<html>oops</html>"))
            return
        if kind == "hang":
            assert fault is not None
            if fake._pause(float(fault[1])):
                self.close_connection = True
                return
        elif kind not in (None, "drop_after_read"):
            self._send(fake.error_reply(500, f"{fake.name}: unknown fault {fault!r}"))
            return
        try:
            reply = fake._answer(req, is_send)
        except Exception as exc:
            self._fail(exc)
            return
        if kind == "drop_after_read":
            self.close_connection = True  # close without writing a response
            return
        self._send(reply)

    def _fail(self, exc: Exception) -> None:
        """A bug in a fake: record it and answer 500 rather than hang the client."""
        fake = self.server.fake
        fake._record_error(exc)
        self.close_connection = True
        self._send(Reply(500, f"{fake.name} internal error: {exc!r}"))


class FakeProvider:
    """Base class for local HTTP fakes of email providers' send APIs.

    Subclasses implement :meth:`is_send_endpoint`, :meth:`handle_send` and
    :meth:`error_reply`, and may override :meth:`decode_body` and :meth:`handle_other`.

    Mutable configuration: ``latency`` (seconds slept per request), ``max_body_bytes``,
    ``faults`` (FIFO, see the module docstring). Recordings: ``requests``, ``accepted``
    (delivered messages), ``dropped`` (accepted at the API but not delivered, e.g.
    suppressed addresses) and ``errors`` (unexpected exceptions inside the fake).
    """

    name: ClassVar[str] = "FakeProvider"
    """Used for the ``Server`` header, the thread name and error messages."""
    default_max_body_bytes: ClassVar[int] = 50 * 1024 * 1024

    def __init__(
        self,
        *,
        latency: float = 0.0,
        max_body_bytes: int | None = None,
        keep_bodies: bool = True,
    ) -> None:
        self.latency = latency
        self.max_body_bytes = (
            self.default_max_body_bytes if max_body_bytes is None else max_body_bytes
        )
        self.keep_bodies = keep_bodies
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.accepted: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on an ephemeral 127.0.0.1 port (no-op if already running)."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{self.name}:{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close open connections."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (the server must be started)."""
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # -- helpers for tests ----------------------------------------------------------

    def accepted_to(self) -> list[str]:
        """Return the ``to`` address(es) of every accepted message, in acceptance order."""
        with self._lock:
            records = list(self.accepted)
        return [addr for record in records for addr in self._recipients_of(record)]

    def send_requests(self) -> list[RecordedRequest]:
        """Return the recorded requests that hit a send endpoint."""
        with self._lock:
            return [r for r in self.requests if r.send]

    def reset(self) -> None:
        """Clear recordings, pending faults and recorded errors."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.accepted.clear()
            self.dropped.clear()
            self.errors.clear()

    # -- hooks for providers --------------------------------------------------------

    def is_send_endpoint(self, req: Incoming) -> bool:
        """Whether ``req`` targets a send endpoint (faults apply only there)."""
        raise NotImplementedError

    def handle_send(self, req: Incoming) -> Reply:
        """Validate a send request (body within limits), record what it sends, answer."""
        raise NotImplementedError

    def error_reply(self, status: int, message: str) -> Reply:
        """The provider's error response for plumbing errors (404, 411, 413, 500...)."""
        raise NotImplementedError

    def handle_other(self, req: Incoming) -> Reply:
        """Answer a request to any other endpoint (default: 404)."""
        return self.error_reply(404, "Not found")

    def too_large_reply(self, req: Incoming) -> Reply:
        """Answer a send request whose body exceeded ``max_body_bytes``."""
        return self.error_reply(413, f"Request body exceeds {self.max_body_bytes} bytes.")

    def decode_body(self, req: Incoming) -> Any:
        """Decode the body once: JSON if it parses, else the raw bytes."""
        if not req.raw:
            return req.raw
        try:
            return json.loads(req.raw)
        except ValueError:
            return req.raw

    def _recipients_of(self, record: dict[str, Any]) -> list[str]:
        """The bare ``to`` address(es) of an accepted record (str or list of str)."""
        value = record["to"]
        values = [value] if isinstance(value, str) else value
        return [bare_address(v) for v in values]

    # -- helpers for providers ------------------------------------------------------

    def _entry(
        self, to: Any, message_id: str, full: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """A record for ``accepted``/``dropped``: ``full()``, or the lean minimum."""
        return full() if self.keep_bodies else {"to": to, "id": message_id}

    def _accept(self, entries: Iterable[dict[str, Any]]) -> None:
        entries = list(entries)
        if entries:
            with self._lock:
                self.accepted.extend(entries)

    def _drop(self, entries: Iterable[dict[str, Any]]) -> None:
        entries = list(entries)
        if entries:
            with self._lock:
                self.dropped.extend(entries)

    # -- internals used by the handler ----------------------------------------------

    def _answer(self, req: Incoming, is_send: bool) -> Reply:
        if not is_send:
            return self.handle_other(req)
        if req.too_large:
            return self.too_large_reply(req)
        return self.handle_send(req)

    def _pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True if the fake is stopping."""
        if seconds > 0:
            return self._stopping.wait(seconds)
        return self._stopping.is_set()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _pop_fault(self) -> Fault | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)

    def _record(self, req: Incoming, fault: Fault | None, is_send: bool) -> None:
        entry = RecordedRequest(
            method=req.method,
            path=req.target,
            headers=dict(req.headers.items()),
            body=req.body if self.keep_bodies else None,
            fault=fault,
            send=is_send,
        )
        with self._lock:
            self.requests.append(entry)


class RateWindow:
    """A provider's rate limit: the requests of the last ``seconds``, counted as they come
    (``limit`` None: no limit). Shared by the fakes whose providers answer 429."""

    def __init__(self, seconds: float, limit: int | None = None) -> None:
        self.seconds, self.limit = seconds, limit
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """Count this request; None when it is within the limit, else the whole seconds
        until one more would be (the request is then not counted)."""
        if self.limit is None:
            return None
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] >= self.seconds:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return max(1, math.ceil(self.seconds - (now - self._times[0])))
            self._times.append(now)
        return None

    def remaining(self) -> int:
        with self._lock:
            return max(0, (self.limit or 0) - len(self._times))

    def clear(self) -> None:
        with self._lock:
            self._times.clear()

    def annotated(self, reply: Reply, prefix: str, reset: int) -> Reply:
        """``reply`` with the ``<prefix>limit/-remaining/-reset`` headers a provider sends
        on every answer while a limit applies."""
        if self.limit is None:
            return reply
        headers = {
            **reply.headers,
            f"{prefix}limit": str(self.limit),
            f"{prefix}remaining": str(self.remaining()),
            f"{prefix}reset": str(reset),
        }
        return Reply(reply.status, reply.body, headers)
