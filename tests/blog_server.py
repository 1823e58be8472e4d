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
