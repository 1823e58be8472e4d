"""Small pieces for tests that talk to a client over a raw socket: one HTTP/1.1 request
read whole, and a TLS server context from a throwaway authority that the client trusts."""

from __future__ import annotations

import re
import socket
import ssl
from pathlib import Path

import pytest


def read_request(conn: socket.socket) -> bytes:
    """One request's bytes, head and body (as long as its Content-Length says)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
    length = int(found.group(1)) if found else 0
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


def trusted_server_context(
    folder: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> ssl.SSLContext:
    """A server context for ``localhost``, its authority trusted through ``variable``
    (REQUESTS_CA_BUNDLE, SSL_CERT_FILE) for the rest of the test."""
    import trustme

    authority = trustme.CA()
    pem = folder / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv(variable, str(pem))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    return context
