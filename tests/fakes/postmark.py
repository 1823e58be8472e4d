"""Local fake of Postmark's batch email API (``POST /email/batch``) for tests.

The fake enforces the documented request contract, records every request and
every accepted message, and supports fault injection::

    with FakePostmark(token="t") as pm:
        pm.faults.append(("status", 429, {"ErrorCode": 429, "Message": "Slow down"},
                          {"Retry-After": "1"}))
        client.send(base_url=pm.url, token="t", ...)
        assert pm.accepted_to() == ["a@example.com"]

Faults (popped FIFO, one per ``POST /email/batch`` request):

* ``("status", code, body, headers)`` -- reply with that response; nothing is accepted.
  ``body`` (dict/list -> JSON, str/bytes -> raw, None -> empty) and ``headers`` are optional.
* ``("hang", seconds)`` -- sleep, then handle normally (messages are accepted *after* the
  sleep, unless the fake is stopped meanwhile).
* ``("drop_after_read",)`` -- handle normally (accepting valid messages), then close the
  connection without sending any response.
* ``("garbage",)`` -- reply 200 with a non-JSON body; nothing is accepted.
"""

import contextlib
import json
import re
import socket
import sys
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = [
    "BATCH_PATH",
    "DEFAULT_STREAMS",
    "MAX_BATCH_MESSAGES",
    "MAX_BODY_BYTES",
    "MAX_RECIPIENTS",
    "FakePostmark",
    "Fault",
    "RecordedRequest",
]

BATCH_PATH = "/email/batch"
MAX_BATCH_MESSAGES = 500
MAX_RECIPIENTS = 50
MAX_BODY_BYTES = 50 * 1024 * 1024
DEFAULT_STREAMS = frozenset({"outbound", "broadcast"})

Fault = tuple[Any, ...]
"""A fault spec such as ``("hang", 2.0)``; see the module docstring."""

_BAD_TOKEN = {"ErrorCode": 10, "Message": "Request does not contain a valid Server API token."}
_INVALID_JSON = {"ErrorCode": 402, "Message": "Received invalid JSON input."}
_INACTIVE_MSG = (
    "You tried to send to a recipient that has been marked as inactive. "
    "Found inactive addresses: {addrs}. Inactive recipients are ones that have generated "
    "a hard bounce, a spam complaint, or a manual suppression."
)
_ANGLE_ADDR = re.compile(r"<([^<>]*)>\s*$")
_DRAIN_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received by the fake."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """Parsed JSON, or the raw bytes if the body is empty or not JSON (``b""`` for 413s)."""
    fault: Fault | None = None
    """The fault applied to this request, if any."""


def _error(code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"ErrorCode": code, "Message": message, **extra}


def _split_addresses(value: str) -> list[str]:
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


def _bare_address(entry: str) -> str:
    """Return the address part of ``Name <addr>`` (or ``entry`` itself)."""
    match = _ANGLE_ADDR.search(entry)
    return match.group(1).strip() if match else entry


def _looks_like_email(addr: str) -> bool:
    local, at, domain = addr.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in addr)


def _media_types(values: Iterable[str]) -> set[str]:
    return {item.split(";", 1)[0].strip().lower() for value in values for item in value.split(",")}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: "FakePostmark") -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        client_gone = isinstance(exc, ConnectionError | TimeoutError)
        if client_gone or (isinstance(exc, OSError) and self.fake._stopping.is_set()):
            return  # the client went away, or we are shutting down
        if exc is not None:
            with self.fake._lock:
                self.fake.errors.append(exc)
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakePostmark/1.0"
    server: _Server

    def setup(self) -> None:
        super().setup()
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

    # -- plumbing ---------------------------------------------------------------

    def _send(
        self,
        status: int,
        payload: Any,
        headers: dict[str, Any] | None = None,
    ) -> None:
        if payload is None:
            body, ctype = b"", "text/plain"
        elif isinstance(payload, bytes):
            body, ctype = payload, "application/octet-stream"
        elif isinstance(payload, str):
            body, ctype = payload.encode(), "text/html; charset=utf-8"
        else:
            body, ctype = json.dumps(payload).encode(), "application/json; charset=utf-8"
        all_headers: dict[str, Any] = {"Content-Type": ctype}
        for name, value in (headers or {}).items():
            if name.lower() == "content-type":
                all_headers["Content-Type"] = value
            elif name.lower() != "content-length":
                all_headers[name] = value
        try:
            self.send_response(status)
            for name, value in all_headers.items():
                self.send_header(name, str(value))
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
        if "Transfer-Encoding" in self.headers and "Content-Length" not in self.headers:
            self.close_connection = True
            self._send(411, _error(0, "Length Required"))
            return None
        raw = self.headers.get("Content-Length", "0").strip()
        if not raw.isdigit():
            self.close_connection = True
            self._send(400, _error(0, "Invalid Content-Length"))
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

    # -- request handling -------------------------------------------------------

    def _dispatch(self) -> None:
        fake = self.server.fake
        if fake._pause(fake.latency):
            self.close_connection = True
            return
        is_batch = self.command == "POST" and self.path.split("?", 1)[0] == BATCH_PATH
        read = self._read_body(fake.max_body_bytes)
        if read is None:
            return
        body, too_large = read
        fault = fake._pop_fault() if is_batch else None
        fake._record(self, body, fault)
        if not is_batch:
            self._send(404, _error(0, "Not found"))
            return

        kind = fault[0] if fault else None
        if kind == "status":
            assert fault is not None
            status = int(fault[1])
            payload = fault[2] if len(fault) > 2 else None
            headers = fault[3] if len(fault) > 3 else None
            self._send(status, payload, headers)
            return
        if kind == "garbage":
            self._send(200, "<html>oops</html>")
            return
        if kind == "hang":
            assert fault is not None
            if fake._pause(float(fault[1])):
                self.close_connection = True
                return
        elif kind not in (None, "drop_after_read"):
            self._send(500, _error(0, f"FakePostmark: unknown fault {fault!r}"))
            return

        status, payload = fake._handle_batch(self, body, too_large)
        if kind == "drop_after_read":
            self.close_connection = True  # close without writing a response
            return
        self._send(status, payload)


class FakePostmark:
    """A local HTTP server that mimics Postmark's ``POST /email/batch`` endpoint.

    Mutable configuration: ``token``, ``streams``, ``inactive`` (lowercase emails),
    ``latency`` (seconds slept per request), ``max_body_bytes`` and ``faults`` (FIFO).
    Recordings: ``requests``, ``accepted`` (message dicts plus ``"_MessageID"``) and
    ``errors`` (unexpected exceptions raised inside the handler).
    """

    def __init__(
        self,
        token: str = "test-token",
        *,
        streams: Iterable[str] | None = None,
        inactive: Iterable[str] | None = None,
        latency: float = 0.0,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.token = token
        self.streams: set[str] = set(DEFAULT_STREAMS if streams is None else streams)
        self.inactive: set[str] = {addr.lower() for addr in inactive or ()}
        self.latency = latency
        self.max_body_bytes = max_body_bytes
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.accepted: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on an ephemeral 127.0.0.1 port (no-op if already running)."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"FakePostmark:{self.port}",
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
            raise RuntimeError("FakePostmark is not running; call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # -- helpers for tests ------------------------------------------------------

    def accepted_to(self) -> list[str]:
        """Return the ``To`` value of every accepted message, in acceptance order."""
        with self._lock:
            return [msg["To"] for msg in self.accepted]

    def batch_requests(self) -> list[RecordedRequest]:
        """Return the recorded ``POST /email/batch`` requests."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == "POST" and r.path.split("?", 1)[0] == BATCH_PATH
            ]

    def reset(self) -> None:
        """Clear recordings, pending faults and recorded errors."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.accepted.clear()
            self.errors.clear()

    # -- internals used by the handler -----------------------------------------

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

    def _record(self, handler: _Handler, body: bytes, fault: Fault | None) -> None:
        parsed: Any = body
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body
        entry = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers=dict(handler.headers.items()),
            body=parsed,
            fault=fault,
        )
        with self._lock:
            self.requests.append(entry)

    def _handle_batch(self, handler: _Handler, body: bytes, too_large: bool) -> tuple[int, Any]:
        """Validate a batch request and accept its valid messages."""
        if too_large:
            return 413, _error(0, f"Request body exceeds {self.max_body_bytes} bytes.")
        if handler.headers.get("X-Postmark-Server-Token") != self.token:
            return 401, dict(_BAD_TOKEN)
        if "application/json" not in _media_types(handler.headers.get_all("Accept") or []):
            return 422, _error(300, "The 'Accept' header must include 'application/json'.")
        content_type = handler.headers.get("Content-Type", "")
        if content_type.split(";", 1)[0].strip().lower() != "application/json":
            return 422, _error(300, "The 'Content-Type' header must be 'application/json'.")
        try:
            messages = json.loads(body)
        except ValueError:
            return 422, dict(_INVALID_JSON)
        if not isinstance(messages, list):
            return 422, dict(_INVALID_JSON)
        if len(messages) > MAX_BATCH_MESSAGES:
            return 422, _error(410, "Too many batch messages")
        inactive = {addr.lower() for addr in set(self.inactive)}
        streams = set(self.streams)
        return 200, [self._submit(msg, inactive, streams) for msg in messages]

    def _submit(self, msg: Any, inactive: set[str], streams: set[str]) -> dict[str, Any]:
        """Validate one message; record and return its per-item result."""
        problem = _check_message(msg, inactive, streams)
        if problem is not None:
            return problem
        message_id = str(uuid.uuid4())
        with self._lock:
            self.accepted.append({**msg, "_MessageID": message_id})
        return {
            "To": msg["To"],
            "SubmittedAt": datetime.now(UTC).isoformat(),
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }


def _check_message(msg: Any, inactive: set[str], streams: set[str]) -> dict[str, Any] | None:
    """Return a per-item error result, or None if the message is acceptable.

    Optional fields that are JSON ``null`` are treated as absent.
    """
    if not isinstance(msg, dict):
        return _error(300, "Invalid message: each batch item must be a JSON object.")

    sender = msg.get("From")
    if not isinstance(sender, str) or not sender.strip():
        return _error(300, "Invalid 'From' address: ''.")
    senders = _split_addresses(sender)
    if len(senders) != 1 or not _looks_like_email(_bare_address(senders[0])):
        return _error(300, f"Invalid 'From' address: '{sender}'.")

    to = msg.get("To")
    if not isinstance(to, str) or not _split_addresses(to):
        return _error(300, "Zero recipients specified")
    recipients: list[str] = []
    for field in ("To", "Cc", "Bcc"):
        value = msg.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            return _error(300, f"Invalid '{field}' address: '{value}'.")
        for entry in _split_addresses(value):
            addr = _bare_address(entry)
            if not _looks_like_email(addr):
                return _error(300, f"Invalid '{field}' address: '{entry}'.")
            recipients.append(addr)
    if len(recipients) > MAX_RECIPIENTS:
        return _error(
            300,
            f"Too many recipients: {len(recipients)} "
            f"(To, Cc and Bcc may list at most {MAX_RECIPIENTS} in total).",
        )

    subject = msg.get("Subject")
    if not isinstance(subject, str) or not subject.strip():
        return _error(300, "Missing or empty 'Subject'.")

    html, text = msg.get("HtmlBody"), msg.get("TextBody")
    if any(b is not None and not isinstance(b, str) for b in (html, text)):
        return _error(300, "'HtmlBody' and 'TextBody' must be strings.")
    if not html and not text:
        return _error(300, "Provide either email TextBody or HtmlBody or both.")

    headers = msg.get("Headers")
    if headers is not None and not (
        isinstance(headers, list)
        and all(
            isinstance(h, dict)
            and isinstance(h.get("Name"), str)
            and h["Name"].strip()
            and isinstance(h.get("Value"), str)
            for h in headers
        )
    ):
        return _error(300, 'Invalid \'Headers\': expected a list of {"Name", "Value"} objects.')

    stream = msg.get("MessageStream")
    if stream is not None:
        if not isinstance(stream, str):
            return _error(300, "Invalid 'MessageStream': expected a string.")
        if stream not in streams:
            return _error(1235, "The message stream for the provided 'ID' was not found.")

    blocked = list(dict.fromkeys(a for a in recipients if a.lower() in inactive))
    if blocked:
        addrs = ", ".join(blocked)
        return _error(406, _INACTIVE_MSG.format(addrs=addrs), To=addrs)
    return None
