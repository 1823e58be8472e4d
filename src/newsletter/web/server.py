"""The HTTP server `serve` and `preview` run their WSGI apps on: waitress, bounded.

Waitress reads and writes every connection on one event loop and runs the app on
a fixed pool of threads, so a slow or idle client costs a socket, never a thread.
On top of waitress's own limits (header and body sizes: 431 and 413; an idle
connection closed after ``idle_timeout``), a request that has not fully arrived
``request_timeout`` seconds after its first byte is dropped: a client that trickles
its headers a byte at a time cannot keep a connection forever. A request framed
ambiguously (Transfer-Encoding with Content-Length) is answered 400 and its connection
closed, so nothing smuggled behind it is read as a request.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

if TYPE_CHECKING:
    from ..config import ServeSettings

WSGIApp = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a server takes on. The defaults are `serve`'s ([serve] in newsletter.toml)."""

    threads: int = 8  # requests answered at once; the rest wait in a queue
    connection_limit: int = 500  # open connections; further ones wait in the listen backlog
    max_request_bytes: int = 1024 * 1024  # a larger body is answered 413
    max_header_bytes: int = 64 * 1024  # larger headers are answered 431
    request_timeout: int = 30  # seconds for a whole request to arrive once it has begun
    idle_timeout: int = 30  # seconds a connection with nothing to do is kept open

    @classmethod
    def from_settings(cls, serve: ServeSettings) -> Limits:
        """``[serve]`` of newsletter.toml."""
        return cls(
            threads=serve.threads,
            connection_limit=serve.connection_limit,
            max_request_bytes=serve.max_request_bytes,
            request_timeout=serve.request_timeout,
            idle_timeout=serve.idle_timeout,
        )


class _TimedParser(HTTPRequestParser):
    """A request being read, and when its first byte came (``time.time``, as waitress
    keeps a connection's last activity)."""

    def __init__(self, adj: Adjustments) -> None:
        super().__init__(adj)
        self.started = time.time()

    def parse_header(self, header_plus: bytes) -> None:
        """Waitress's parsing, then a refusal of ambiguous framing (RFC 9112 §6.1, §6.3):
        Transfer-Encoding with Content-Length, or Transfer-Encoding in HTTP/1.0. A proxy
        in front that framed the body by Content-Length would otherwise see the rest of
        the chunked body as a second request (request smuggling). The answer is 400 and
        the connection is closed after it: waitress closes after every error answer and
        drops anything pipelined behind it."""
        super().parse_header(header_plus)
        if _ambiguous_framing(self.version, self.chunked, self.headers):
            raise ParsingError(
                "Transfer-Encoding and Content-Length together (or Transfer-Encoding in "
                "HTTP/1.0) frame the body ambiguously; send one of them."
            )


def _ambiguous_framing(version: str, chunked: bool, headers: dict[str, str]) -> bool:
    """True for a request whose body has two framings: waitress has taken
    Transfer-Encoding out of the HTTP/1.1 ``headers`` and set ``chunked``, and kept it in
    HTTP/1.0's, whose framing it never uses."""
    if version == "1.1":
        return chunked and "CONTENT_LENGTH" in headers
    return "TRANSFER_ENCODING" in headers


class _Channel(HTTPChannel):
    parser_class = _TimedParser

    def waiting_since(self) -> float | None:
        """Since when the connection holds a socket with no request to answer (a request
        still arriving, or nothing at all); None while one is being answered."""
        if self.requests or self.will_close or self.close_when_flushed:
            return None
        request = self.request
        return request.started if request is not None else self.last_activity


SHED_AFTER = 2.0  # seconds a connection may wait on its client before it can be shed


class _Listener(TcpWSGIServer):
    channel_class = _Channel
    request_timeout: float = 30.0
    _next_shed = 0.0

    def maintenance(self, now: float) -> None:
        """Waitress closes idle connections; also close those whose request is overdue."""
        super().maintenance(now)
        overdue = now - self.request_timeout
        for channel in list(self.active_channels.values()):
            request = channel.request
            if request is not None and getattr(request, "started", now) < overdue:
                channel.will_close = True

    def readable(self) -> bool:
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            self.shed(time.time())
        return bool(super().readable())

    def shed(self, now: float) -> None:
        """At the connection limit, make room: close every connection that has waited
        on its client for more than SHED_AFTER seconds (a request trickling in, or
        nothing sent), so that many slow clients cannot shut everyone else out."""
        if now < self._next_shed:
            return
        self._next_shed = now + 0.5
        for channel in list(self.active_channels.values()):
            since = channel.waiting_since() if isinstance(channel, _Channel) else None
            if since is not None and since < now - SHED_AFTER:
                channel.will_close = True


class Server:
    """``app`` on ``host``:``port`` (0: any free port), within ``limits``.

    Binding happens here, so a port in use is an OSError now; ``serve_forever`` runs
    the loop until ``close`` (from any thread) or Ctrl-C.
    """

    def __init__(
        self, app: WSGIApp, host: str, port: int, limits: Limits = Limits(), name: str = "server"
    ) -> None:
        _quiet_waitress(name)
        self.limits = limits
        adj = Adjustments(
            host=host,
            port=port,
            threads=limits.threads,
            connection_limit=limits.connection_limit,
            max_request_body_size=limits.max_request_bytes,
            max_request_header_size=limits.max_header_bytes,
            channel_timeout=limits.idle_timeout,
            cleanup_interval=max(1, min(limits.idle_timeout, limits.request_timeout) // 4),
            asyncore_use_poll=True,  # no select() ceiling of 1024 sockets
            ident="newsletter",
            expose_tracebacks=False,
            # X-Forwarded-For reaches the app, which decides whom to believe ([serve]
            # trusted_proxies); waitress applies no proxy header itself
            clear_untrusted_proxy_headers=False,
        )
        self._map: dict[int, Any] = {}
        self.dispatcher = ThreadedTaskDispatcher()
        self._listeners: list[_Listener] = []
        self._stop = threading.Event()
        self._running = self._closed = False
        self._closing = threading.Lock()
        try:
            for sockinfo in adj.listen:
                listener = _Listener(
                    app, self._map, dispatcher=self.dispatcher, adj=adj, sockinfo=sockinfo
                )
                listener.request_timeout = limits.request_timeout
                self._listeners.append(listener)
        except BaseException:
            wasyncore.close_all(self._map)
            raise
        self.dispatcher.set_thread_count(limits.threads)

    @property
    def port(self) -> int:
        return int(self._listeners[0].effective_port)

    def serve_forever(self) -> None:
        self._running = True
        try:
            while not self._stop.is_set() and self._map:
                wasyncore.loop(timeout=1, map=self._map, use_poll=True, count=1)
        finally:
            self._running = False
            self._shutdown()

    def run(self) -> None:
        """The one loop `serve` and `preview` run: until Ctrl-C, SIGTERM (a service
        manager's stop) or ``close``; the server is closed when it returns."""
        on_main = threading.current_thread() is threading.main_thread()
        previous = {}
        if on_main:  # a stop asked for, not an exception raised wherever the loop is
            previous = {s: signal.signal(s, self._on_signal) for s in _STOP_SIGNALS}
        try:
            self.serve_forever()
        except KeyboardInterrupt:  # a second Ctrl-C while stopping
            pass
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            self.close()

    def _on_signal(self, number: int, _frame: object) -> None:
        self.stop_soon()
        if number == signal.SIGINT:  # a second Ctrl-C interrupts a stop that hangs
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def stop_soon(self) -> None:
        """Have the loop stop within a second; safe in a signal handler."""
        self._stop.set()

    def close(self) -> None:
        """Stop serving: the loop ends (from any thread), sockets close, threads finish."""
        self._stop.set()
        if not self._running:
            self._shutdown()
            return
        with contextlib.suppress(OSError):  # wake the loop now rather than in a second
            self._listeners[0].pull_trigger()

    def _shutdown(self) -> None:
        with self._closing:
            if self._closed:
                return
            self._closed = True
        wasyncore.close_all(self._map)
        self.dispatcher.shutdown(timeout=5)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Once(logging.Filter):
    """The same warning at most once a minute (a connection limit reached again and
    again under a flood of clients)."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now, text = time.monotonic(), record.getMessage()
        if now - self.last.get(text, -60.0) < 60:
            return False
        self.last[text] = now
        return True


class _OneLine(logging.Formatter):
    """waitress's warnings as one line each, without a traceback."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f": {type(exc).__name__}: {' '.join(str(exc).split())}"[:400]
        return f"{self.name}: {text}"


def _quiet_waitress(name: str) -> None:
    logger = logging.getLogger("waitress")
    handler = next((h for h in logger.handlers if getattr(h, "_newsletter", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._newsletter = True  # type: ignore[attr-defined]
        handler.addFilter(_Once())
        logger.addHandler(handler)
    handler.setFormatter(_OneLine(name))
    logger.setLevel(logging.WARNING)
    logger.propagate = False
