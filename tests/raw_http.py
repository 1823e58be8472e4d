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


def botocore_signature(credentials: object, url: str, body: bytes, headers: dict) -> str:
    """The SigV4 signature botocore computes for a POST of ``body`` to SES with the
    headers its Authorization names as signed (and its X-Amz-Date)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    signed = headers["Authorization"].partition("SignedHeaders=")[2].split(",")[0].split(";")
    names = {n.lower(): n for n in headers}
    request = AWSRequest(
        method="POST", url=url, data=body, headers={names[n]: headers[names[n]] for n in signed}
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(credentials, "ses", "eu-west-1")
    return signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
