"""`newsletter serve`'s WSGI app on 127.0.0.1 in the test's own process: real HTTP and the
real routing, with what the process holds (``newsletter.sns.fetch``) open to the test."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, make_server

from newsletter.web.serve import create_app


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_in_process(config: str, sender: bool = True) -> Iterator[str]:
    """The app of the project at ``config``, served until the block ends; its base URL.
    ``sender=False``: without the thread that sends confirmations and expires sign-ups
    (a test that made its data in simulated time)."""
    app = create_app(config, sender=sender)
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        app.close()
