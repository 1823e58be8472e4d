"""`newsletter serve` and `preview` as child processes, and raw HTTP for the requests a
library will not make (chunked bodies, bytes a client should not send, slow clients)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

SERVE_SECRET = "hooks:s3cret-pw"  # Postmark's basic auth, as NEWSLETTER_WEBHOOK_SECRET_POSTMARK


class Running:
    """A server the real CLI started: its base URL, and everything it printed (read on a
    thread of its own, so a chatty server never blocks on a full pipe)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", *args],
            cwd=cwd,
            env=full_env,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stderr is not None
        self.lines: list[str] = []
        match = None
        while match is None:  # warnings may come first; the line that says where, then
            line = self.proc.stderr.readline()
            if not line:  # it exited
                raise AssertionError("".join(self.lines) or "the server printed nothing")
            self.lines.append(line)
            match = re.search(r"(http://127\.0\.0\.1:(\d+))/", line)
        self.url, self.port = match.group(1), int(match.group(2))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)


def raw_request(port: int, data: bytes, timeout: float = 10) -> tuple[int | None, bytes]:
    """Send ``data`` as it is; (status, whole answer). None: the server closed the
    connection without answering. 1xx interim answers are skipped."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
            head = _final_head(answer)
            if head is not None and _complete(answer, head):
                break
    head = _final_head(answer)
    if head is None:
        return None, answer
    return int(answer[head[0] :].split(b" ", 2)[1]), answer[head[0] :]


def _final_head(answer: bytes) -> tuple[int, int] | None:
    """(start, end) of the first non-1xx status line and headers in ``answer``."""
    start = 0
    while True:
        end = answer.find(b"\r\n\r\n", start)
        if end < 0:
            return None
        if not answer[start:].startswith(b"HTTP/1.1 1"):
            return start, end + 4
        start = end + 4


def _complete(answer: bytes, head: tuple[int, int]) -> bool:
    match = re.search(rb"(?im)^content-length:\s*(\d+)", answer[head[0] : head[1]])
    return match is None or len(answer) - head[1] >= int(match.group(1))


def chunked(body: bytes, size: int = 7) -> bytes:
    """``body`` in Transfer-Encoding: chunked framing, ``size`` bytes a chunk."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


class Trickle:
    """A client that sends a request a byte at a time, ``interval`` seconds apart, on a
    thread of its own: the slow client a server must not wait on with a thread."""

    def __init__(self, port: int, data: bytes, interval: float = 0.2) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.data, self.interval = data, interval
        self.closed_after: float | None = None  # seconds until the server hung up
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            for byte in self.data:
                if self._stop.wait(self.interval):
                    return
                self.sock.sendall(bytes([byte]))
        except OSError:
            self.closed_after = time.monotonic() - started

    def wait_closed(self, timeout: float) -> float | None:
        self._thread.join(timeout)
        return self.closed_after

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
