"""A local blog for tests: pages and feeds over real HTTP, with ETag/Last-Modified,
redirects, a missing page, a slow page, and a count of every request."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Blog:
    """``routes``: path -> (content type, body bytes). Also ``redirects`` (path -> target),
    ``slow`` (path -> seconds), ``errors`` (path -> (status, reason phrase), sent as
    given, markup and all). Everything else is 404."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.redirects: dict[str, str] = {}
        self.slow: dict[str, float] = {}
        self.errors: dict[str, tuple[int, str]] = {}
        self.hits: Counter[str] = Counter()
        self.conditional: Counter[str] = Counter()  # requests answered 304
        self.user_agents: list[str] = []
        self._lock = threading.Lock()
        blog = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]  # routes ignore the query (UTM tags)
                with blog._lock:
                    blog.hits[path] += 1
                    blog.user_agents.append(self.headers.get("User-Agent", ""))
                if path in blog.slow:
                    time.sleep(blog.slow[path])
                if path in blog.redirects:
                    self.send_response(301)
                    self.send_header("Location", blog.redirects[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path not in blog.routes:
                    body = b"<html><body><h1>Not found</h1></body></html>"
                    self.send_response(*blog.errors.get(path, (404,)))
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                content_type, body = blog.routes[path]
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                modified = "Wed, 21 Oct 2026 07:28:00 GMT"
                if self.headers.get("If-None-Match") == etag or (
                    self.headers.get("If-Modified-Since") == modified
                ):
                    with blog._lock:
                        blog.conditional[path] += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", modified)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (a timeout test) is not an error here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Blog:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Faulty:
    """A raw socket server for what a real blog server sometimes does wrong, one fault
    per path: ``/drip`` sends its headers, then one byte a second for ever;
    ``/drip-headers`` sends even its headers one byte a second; ``/stall``
    sends half the page, then nothing; ``/reset`` sends half the page and resets the
    connection; ``/short`` promises more than it sends and closes; ``/garbage`` answers
    with no HTTP at all; ``/bad-gzip`` says gzip and is not; ``/huge`` is endless;
    ``/image`` is a JPEG. ``url`` is its address."""

    HEAD = "HTTP/1.1 200 OK\r\nContent-Type: {type}\r\n{extra}Connection: close\r\n\r\n"

    def __init__(self, interval: float = 1.0) -> None:
        import socket

        self.interval = interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Faulty:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: Any) -> None:
        import socket
        import struct

        page = b"<html><body><article>" + b"<p>A sentence of the page.</p>" * 200
        with connection:
            try:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(4096) or b"\r\n\r\n"
                path = request.split(b" ", 2)[1].decode() if b" " in request else "/"

                def head(type: str = "text/html; charset=utf-8", extra: str = "") -> None:
                    connection.sendall(self.HEAD.format(type=type, extra=extra).encode())

                if path == "/drip-headers":  # the status line, then a header byte a second
                    connection.sendall(b"HTTP/1.1 200 OK\r\n")
                    for byte in b"X-Slow: " + b"a" * 1000:
                        if self.closed.wait(self.interval):
                            return
                        connection.sendall(bytes([byte]))
                elif path == "/drip":
                    head(extra=f"Content-Length: {len(page)}\r\n")
                    for byte in page:
                        if self.closed.wait(self.interval):
                            return
                        connection.sendall(bytes([byte]))
                elif path in ("/stall", "/reset", "/short"):
                    head(extra=f"Content-Length: {len(page)}\r\n")
                    connection.sendall(page[: len(page) // 2])
                    if path == "/stall":
                        self.closed.wait(60)
                    elif path == "/reset":  # RST instead of FIN
                        time.sleep(0.2)
                        connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                elif path == "/garbage":
                    connection.sendall(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
                elif path == "/bad-gzip":
                    body = b"\x1f\x8b\x08\x00 not really gzip at all" * 10
                    head(extra=f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n")
                    connection.sendall(body)
                elif path == "/huge":
                    head()
                    chunk = b"<p>" + b"x" * 65536 + b"</p>"
                    while not self.closed.is_set():
                        connection.sendall(chunk)
                elif path == "/image":
                    body = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 2000
                    head("image/jpeg", f"Content-Length: {len(body)}\r\n")
                    connection.sendall(body)
            except OSError:
                pass  # the client gave up: that is what the tests want
