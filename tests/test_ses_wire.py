"""SES's own HTTP/1.1 path: the request written in one piece is byte for byte what
http.client writes for the same headers, signed as botocore signs it; its answers are
read as http.client reads them (status, headers, body, whether the connection closes),
with http.client's exceptions for what it refuses. Real sockets, no mocks."""

from __future__ import annotations

import datetime as dt
import http.client
import select
import socket
import threading

import pytest

from newsletter.delivery.base import USER_AGENT
from newsletter.providers.ses import Answers, SigV4, Wire
from raw_http import botocore_signature, read_request, trusted_server_context


class Capture:
    """A server that keeps the bytes of each request and answers 200."""

    def __init__(self, requests: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, args=(requests,), daemon=True)
        self.thread.start()

    def _serve(self, requests: int) -> None:
        for _ in range(requests):
            conn, _ = self.listener.accept()
            with conn:
                self.seen.append(read_request(conn))
                answer = b'{"MessageId":"m"}'
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)
                )

    def close(self) -> None:
        self.thread.join(5)
        self.listener.close()


@pytest.mark.parametrize("token", [None, "session-token"])
def test_the_request_is_what_http_client_writes_signed_as_botocore_signs(
    token: str | None,
) -> None:
    from botocore.credentials import Credentials

    body = (
        '{"FromEmailAddress":"news@example.org","Destination":{"ToAddresses":["ana@b.example"]},'
        '"Content":{"Raw":{"Data":"RnJvbTogbmV3cw=="}},"EmailTags":[{"Name":"campaign",'
        '"Value":"c"},{"Name":"subscriber","Value":"7"}]} \u00e9'
    ).encode()
    server = Capture(3)
    url = f"http://127.0.0.1:{server.port}/v2/email/outbound-emails"
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token)
    signer = SigV4(credentials, "eu-west-1", url)
    headers = signer.headers(body)
    now = dt.datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    pieces = [body[:1], body[1:40], b"", body[40:-3], body[-3:]]  # the same body, in pieces
    assert signer.headers(pieces, now) == headers
    wire = Wire(url, 5.0)
    try:
        wire.connect()
        assert wire.post(body, headers) == (200, {"content-length": "17"}, b'{"MessageId":"m"}')
        wire.close()  # the server closes each connection after its answer
        wire.connect()
        assert wire.post(pieces, headers)[0] == 200
        plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        plain.request(
            "POST", "/v2/email/outbound-emails", body, {**headers, "User-Agent": USER_AGENT}
        )
        plain.getresponse().read()
        plain.close()
    finally:
        wire.close()
        server.close()
    fast, gathered, reference = server.seen
    assert fast == gathered == reference
    # the signature, computed again by botocore from the bytes that went out
    head, _, sent = fast.partition(b"\r\n\r\n")
    assert sent == body
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "POST /v2/email/outbound-emails HTTP/1.1"
    got = dict(line.split(": ", 1) for line in lines[1:])
    signed = got["Authorization"].partition("SignedHeaders=")[2].split(",")[0].split(";")
    expected = botocore_signature(credentials, url, sent, got)
    assert got["Authorization"].endswith(f"Signature={expected}")
    assert ("x-amz-security-token" in signed) == (token is not None)


def test_the_date_is_the_given_time_or_now() -> None:
    from botocore.credentials import Credentials

    signer = SigV4(Credentials("AKID", "secret"), "eu-west-1", "http://127.0.0.1:9/v2/x")
    now = dt.datetime(2026, 12, 6, 9, 0, 5, tzinfo=dt.UTC)
    assert signer.headers(b"{}", now)["X-Amz-Date"] == "20261206T090005Z"
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = signer.headers(b"{}")["X-Amz-Date"]
    after = dt.datetime.now(dt.UTC)
    made = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert before <= made <= after


def test_a_header_value_with_a_line_break_is_refused_as_http_client_refuses_it() -> None:
    wire = Wire("http://127.0.0.1:9/v2/email/outbound-emails", 5.0)
    with pytest.raises(ValueError):
        wire.head(2, {"Host": "x", "X-Amz-Security-Token": "a\r\nInjected: yes"})
    with pytest.raises(http.client.InvalidURL):
        Wire("http://127.0.0.1:9/v2/email/outbound emails", 5.0)


ANSWERS = {
    "ok": b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"MessageId":"m"}',
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5;ext=1\r\n{"Mes\r\nC\r\nsageId":"m"}\r\n0\r\nX-Trailer: t\r\n\r\n',
    "continue": b"HTTP/1.1 100 Continue\r\nX-Skip: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    "close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    "to the end": b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\n\r\n<h1>down</h1>",
    "1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    "1.0 kept": b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n{}",
    "throttled": b"HTTP/1.1 429 Too Many Requests\r\nX-Amzn-ErrorType: TooManyRequestsException:"
    b"http://internal.amazon.com/coral/com.amazon.coral.service/\r\nContent-Length: 44\r\n\r\n"
    b'{"message":"Maximum sending rate exceeded."}',
    "refused": b"HTTP/1.1 400 Bad Request\r\ncontent-length: 64\r\nx-amzn-errortype: MessageRejected\r\n\r\n"
    + b'{"message":"Email address is not verified. The following ones."}',
    "folded": b"HTTP/1.1 200 OK\r\nX-Long: one\r\n  two\r\nContent-Length: 2\r\n\r\n{}",
    "twice": b"HTTP/1.1 200 OK\r\nX-Twice: first\r\nx-twice: second\r\nContent-Length: 2\r\n\r\n{}",
    "no content": b"HTTP/1.1 204 No Content\r\n\r\n",
    "bad length": b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n{}",
    "bare newlines": b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}",
    "garbage": b"<html>nothing like HTTP</html>\r\n\r\n",
    "empty": b"",
    "status": b"HTTP/1.1 20x OK\r\n\r\n",
    "short status": b"HTTP/1.1 99 Low\r\n\r\n",
    "signs": b"HTTP/1.1 +-5 Odd\r\n\r\n",
    "no reason": b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}",
    "version only": b"HTTP/1.1\r\n\r\n",
    "http/2": b"HTTP/2 200 OK\r\n\r\n",
    "cut body": b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n{}",
    "cut chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{}",
    "bad chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "long line": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
    "many headers": b"HTTP/1.1 200 OK\r\n" + b"X-H: 1\r\n" * 101 + b"Content-Length: 0\r\n\r\n",
}


def _pair(data: bytes) -> socket.socket:
    """The reading end of a connection that carries ``data``, then ends."""
    ours, theirs = socket.socketpair()
    theirs.sendall(data)
    theirs.close()
    ours.settimeout(5)
    return ours


def _http_client(data: bytes) -> tuple[int, http.client.HTTPMessage, bytes, bool]:
    sock = _pair(data)
    try:
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        return response.status, response.headers, response.read(), bool(response.will_close)
    finally:
        sock.close()


@pytest.mark.parametrize("name", list(ANSWERS))
def test_answers_are_read_as_http_client_reads_them(name: str) -> None:
    data = ANSWERS[name]
    try:
        expected = _http_client(data)
    except (http.client.HTTPException, OSError) as exc:
        sock = _pair(data)
        with pytest.raises(type(exc)):
            Answers(sock).answer()
        sock.close()
        return
    sock = _pair(data)
    try:
        status, headers, body, will_close = Answers(sock).answer()
    finally:
        sock.close()
    status_then, headers_then, body_then, close_then = expected
    assert (status, body, will_close) == (status_then, body_then, close_then)
    assert set(headers) == {k.lower() for k in headers_then}
    for key in headers_then:
        assert " ".join(headers[key.lower()].split()) == " ".join(headers_then[key].split())


def test_answers_in_a_row_on_one_connection_each_get_their_own_bytes() -> None:
    data = ANSWERS["ok"] + ANSWERS["chunked"] + ANSWERS["refused"]
    sock = _pair(data)
    reader = Answers(sock)
    try:
        assert reader.answer()[2] == b'{"MessageId":"m"}'
        assert reader.answer()[2] == b'{"MessageId":"m"}'
        status, headers, _, _ = reader.answer()
        assert (status, headers["x-amzn-errortype"]) == (400, "MessageRejected")
        assert not reader.buffer
    finally:
        sock.close()


@pytest.mark.parametrize("server", ["writes", "closes"])
def test_a_connection_the_server_closed_or_wrote_on_is_dropped_before_the_next_request(
    server: str,
) -> None:
    """Between requests, a connection the server closed, or bytes nobody asked for,
    make the next request go on a new connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            accepted.append(conn)
            read_request(conn)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    wire = Wire(f"http://127.0.0.1:{port}/v2/email/outbound-emails", 5.0)
    try:
        wire.connect()
        assert wire.post(b"{}", {"Host": "h"})[0] == 200
        first = wire.connection
        assert not wire._dropped()
        wire.connect()
        assert wire.connection is first  # kept
        if server == "writes":
            accepted[0].sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        else:
            accepted[0].close()
        sock = first.sock
        for _ in range(500):  # until the kernel has them
            if select.select([sock], [], [], 0.01)[0]:
                break
        assert wire._dropped()
        wire.connect()
        assert wire.connection is not first
        assert wire.post(b"{}", {"Host": "h"}) == (200, {"content-length": "2"}, b"{}")
    finally:
        wire.close()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_over_tls_requests_go_on_one_connection_until_the_server_closes_it(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With TLS (as SES is reached), requests in a row share the kept connection, and a
    connection the server closed is made again before the next request."""
    context = trusted_server_context(tmp_path, monkeypatch, "REQUESTS_CA_BUNDLE")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    bodies: list[tuple[int, int]] = []
    closed = threading.Event()

    def serve() -> None:
        for number, requests in enumerate((2, 1)):
            conn = context.wrap_socket(listener.accept()[0], server_side=True)
            with conn:
                for _ in range(requests):
                    bodies.append((number, len(read_request(conn).partition(b"\r\n\r\n")[2])))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            closed.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    wire = Wire(f"https://localhost:{port}/v2/email/outbound-emails", 5.0)
    body = b"x" * 50_000
    try:
        for sent in (body, [body[:7], body[7:]]):  # over TLS, a body in pieces is joined
            wire.connect()
            assert wire.post(sent, {"Host": "localhost"})[2] == b"{}"
        assert closed.wait(5)
        for _ in range(500):  # until the kernel has the server's close
            if wire._dropped():
                break
            select.select([], [], [], 0.01)
        wire.connect()
        assert wire.post(body, {"Host": "localhost"})[2] == b"{}"
    finally:
        wire.close()
        thread.join(5)
        listener.close()
    assert [number for number, _ in bodies] == [0, 0, 1]
    assert len({size for _, size in bodies}) == 1  # each request whole, pieces or not
