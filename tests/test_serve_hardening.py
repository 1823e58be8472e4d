"""`newsletter serve` on the open internet: what a hostile or merely unusual client gets.

Each test is one finding of the review, over real HTTP to the real CLI's server (or, for
thread counts and timeouts, the same server in this process): hostile text from the
outside world escaped under a Content-Security-Policy, no paths or exception text in a
page, one-click unsubscribes as mailbox providers send them (multipart, chunked,
repeated), bytes no client should send, the web version as stored at send time, slow
clients and many of them, and requests over the size limits.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from blog_server import Blog
from conftest import connect, run_process, send_for_real
from newsletter.web.serve import CONTENT_SECURITY_POLICY
from newsletter.web.server import Limits, Server
from test_fetch_and_links import PAGE as ARTICLE_PAGE
from test_serve import unsubscribe_path
from web_servers import SERVE_SECRET, Running, Trickle, chunked, raw_request

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=alert(document.domain)>"
UNIQUE = ("quillon.zephyrine@example.org", "Quillon", "Zephyrine")  # a reader only here


@pytest.fixture
def sent(project: Path) -> Path:
    """The example list (and one reader whose name occurs nowhere else), sent the example
    campaign to the outbox."""
    csv = project / "subscribers.example.csv"
    csv.write_text(
        csv.read_text(encoding="utf-8").rstrip("\n")
        + f"\n{UNIQUE[0]},{UNIQUE[1]},{UNIQUE[2]},,active,2026-01-01,website-form\n",
        encoding="utf-8",
    )
    assert run_process("subscribers", "import", str(csv), cwd=project).returncode == 0
    result = run_process("send", "2026-10-digest", "--yes", cwd=project)
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture
def serve(sent: Path) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(**env: str) -> Running:
        running = Running(["serve", "--port", "0"], sent, env)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
        assert "Traceback" not in running.stderr, running.stderr


def rows(project: Path, sql: str, params: tuple = ()) -> list[tuple]:
    db = connect(project)
    try:
        return [tuple(r[i] for i in range(len(r))) for r in db.execute(sql, params).fetchall()]
    finally:
        db.close()


def status_of(project: Path, address: str) -> str:
    return rows(project, "SELECT status FROM subscribers WHERE email = ?", (address,))[0][0]


def unsubscribe_events(project: Path) -> int:
    return rows(project, "SELECT count(*) FROM events WHERE kind = 'unsubscribed'")[0][0]


def assert_safe_page(response: requests.Response, project: Path) -> None:
    """What every answer of `serve` must be: our words under the CSP, nothing of the
    server's own (paths, exception names) and nothing hostile unescaped."""
    assert response.status_code < 500, (response.url, response.status_code, response.text)
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = response.text
    assert "<img src=x" not in body and "onerror" not in body
    assert str(project) not in body and "/tmp/" not in body and ".py" not in body
    assert "Traceback" not in body and "Error:" not in body


# -- escaping, the CSP, no paths ---------------------------------------------------------
def test_a_hostile_reason_phrase_never_reaches_a_page(sent: Path, serve) -> None:
    """A campaign whose article page the blog now answers `404 <img src=x onerror=...>`:
    the web version is the stored one (nothing fetched), and a campaign sent before pages
    were stored is a 404, not an error page echoing the blog's words."""
    with Blog() as blog:
        blog.routes["/holding-space/"] = ("text/html; charset=utf-8", ARTICLE_PAGE.encode())
        campaign = sent / "campaigns" / "hostile.md"
        campaign.write_text(
            "---\nsubject: Holding space\npreheader: One article.\ntemplate: digest\n"
            f"articles:\n  - {blog.url}/holding-space/\n---\n\nOne article this time.\n",
            encoding="utf-8",
        )
        send_for_real(sent, "hostile")
        # the blog turns hostile, the cache is gone; and an older campaign was sent
        # before web versions were stored (a campaign row, no page)
        blog.errors["/holding-space/"] = (404, HOSTILE)
        blog.errors["/gone/"] = (500, HOSTILE + " at /srv/blog/app.py")
        shutil.rmtree(sent / ".newsletter" / "cache")
        (sent / "campaigns" / "legacy.md").write_text(
            f"---\nsubject: Legacy\ntemplate: digest\narticles:\n  - {blog.url}/gone/\n---\n\nx\n",
            encoding="utf-8",
        )
        db = connect(sent)
        db.execute(
            "INSERT INTO campaigns (slug, subject, status, created_at, finished_at) "
            "VALUES ('legacy', 'Legacy', 'done', '2026-01-01', '2026-01-01')"
        )
        db.close()
        hits = sum(blog.hits.values())
        running = serve(NEWSLETTER_WEBHOOK_SECRET_POSTMARK=SERVE_SECRET)
        token = unsubscribe_path(sent, "marcus.bell@example.com")
        paths = [
            "/c/hostile",
            "/c/legacy",
            "/c/2026-10-digest",
            "/c/" + urllib.parse.quote(HOSTILE),
            "/c/no-such-issue",
            token,
            "/u/" + urllib.parse.quote(HOSTILE),
            "/unsubscribe",
            "/" + urllib.parse.quote(HOSTILE),
            "/webhooks/postmark",
            "/health",
        ]
        for path in paths:
            for method in ("GET", "POST", "PUT"):
                response = requests.request(method, running.url + path, timeout=10)
                assert_safe_page(response, sent)
        page = requests.get(running.url + "/c/hostile", timeout=10)
        assert page.status_code == 200 and "Holding Space Without Holding Everything" in page.text
        assert requests.get(running.url + "/c/legacy", timeout=10).status_code == 404
        assert sum(blog.hits.values()) == hits, "serving a web version fetches nothing"
    assert status_of(sent, "marcus.bell@example.com") == "active", "a GET never unsubscribes"


def test_a_failure_inside_is_a_plain_500_and_one_line_on_stderr(sent: Path, capsys) -> None:
    from newsletter.web.serve import ServeApp

    app = ServeApp(str(sent / "newsletter.toml"))

    def broken(slug: str) -> tuple[str, str]:
        raise RuntimeError(f"could not open {sent}/secret.db: {HOSTILE}")

    app.web_version = broken  # type: ignore[method-assign]
    answers: list[tuple[str, dict]] = []
    body = b"".join(
        app(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/c/2026-10-digest", "wsgi.input": None},
            lambda status, headers, exc_info=None: answers.append((status, dict(headers))),
        )
    )
    [(status, headers)] = answers
    assert status == "500 Internal Server Error"
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert b"problem on our side" in body
    assert str(sent).encode() not in body and b"RuntimeError" not in body and b"<img" not in body
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "GET '/c/2026-10-digest': RuntimeError: could not open" in err


# -- one-click unsubscribe ---------------------------------------------------------------
def test_one_click_as_multipart_form_data(sent: Path, serve) -> None:
    """RFC 8058 §3.1: the POST SHOULD be multipart/form-data, as Gmail and Yahoo send it."""
    running = serve()
    path = unsubscribe_path(sent, "marcus.bell@example.com")
    response = requests.post(
        running.url + path,
        files={"List-Unsubscribe": (None, "One-Click")},
        allow_redirects=False,
        timeout=10,
    )
    assert response.request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert status_of(sent, "marcus.bell@example.com") == "unsubscribed"
    assert unsubscribe_events(sent) == 1

    other = unsubscribe_path(sent, "dana.whitfield@example.org")
    for files in (
        {"List-Unsubscribe": (None, "one-click")},  # the value is exact
        {"List-Unsubscribe-Other": (None, "One-Click")},
        {"List-Unsubscribe": ("a.txt", b"One-Click")},  # a file is not a field
    ):
        assert requests.post(running.url + other, files=files, timeout=10).status_code == 400
    assert (
        requests.post(
            running.url + other,
            data=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "text/plain"},
            timeout=10,
        ).status_code
        == 415
    )
    assert status_of(sent, "dana.whitfield@example.org") == "active"


def test_a_repeated_one_click_is_recorded_once(sent: Path, serve) -> None:
    running = serve()
    url = running.url + unsubscribe_path(sent, "zoe.hartmann@example.com")

    def post(i: int) -> int:
        if i % 2:
            return requests.post(url, files={"List-Unsubscribe": (None, "One-Click")}, timeout=10)
        return requests.post(url, data={"List-Unsubscribe": "One-Click"}, timeout=10)

    results: list[requests.Response] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(post(i)))  # type: ignore[misc]
        for i in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200] * 12
    for _ in range(20):
        assert post(0).status_code == 200
    assert status_of(sent, "zoe.hartmann@example.com") == "unsubscribed"
    assert unsubscribe_events(sent) == 1, "one unsubscription, one event row"
    confirm = requests.post(url, data={"confirm": "yes"}, timeout=10)
    assert confirm.status_code == 200 and unsubscribe_events(sent) == 1


def test_chunked_bodies_arrive_whole(sent: Path, serve) -> None:
    running = serve(NEWSLETTER_WEBHOOK_SECRET_POSTMARK=SERVE_SECRET)
    path = unsubscribe_path(sent, "mina.park@example.org")
    body = b"List-Unsubscribe=One-Click"
    status, _ = raw_request(
        running.port,
        b"POST %s HTTP/1.1\r\nHost: news.example\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%s" % (path.encode(), chunked(body, 5)),
    )
    assert status == 200
    assert status_of(sent, "mina.park@example.org") == "unsubscribed"

    # requests sends a generator chunked: a multipart one-click, then a webhook
    other = unsubscribe_path(sent, "jose.alvarez@example.org")
    boundary = "b0undary"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    ).encode()
    response = requests.post(
        running.url + other,
        data=iter([multipart[:30], multipart[30:]]),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=10,
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 200
    assert status_of(sent, "jose.alvarez@example.org") == "unsubscribed"

    report = json.loads(
        run_process("report", "2026-10-digest", "--format", "json", cwd=sent).stdout
    )
    message_id = next(
        r["provider_message_id"]
        for r in report["recipients"]
        if r["email"] == "t.lindqvist@example.com"
    )
    bounce = json.dumps(
        {
            "RecordType": "Bounce",
            "ID": 91,
            "Type": "HardBounce",
            "Email": "t.lindqvist@example.com",
            "BouncedAt": "2026-11-02T16:33:54Z",
            "MessageID": message_id,
            "Description": "x" * 5000,  # more than one chunk of any size
        }
    ).encode()
    hook = requests.post(
        running.url + "/webhooks/postmark",
        data=(bounce[i : i + 1000] for i in range(0, len(bounce), 1000)),
        headers={"Content-Type": "application/json"},
        auth=tuple(SERVE_SECRET.split(":")),
        timeout=10,
    )
    assert hook.request.headers.get("Transfer-Encoding") == "chunked"
    assert hook.status_code == 200, hook.text
    assert status_of(sent, "t.lindqvist@example.com") == "bounced"


# -- bytes no client should send ---------------------------------------------------------
def answers_until_closed(port: int, data: bytes) -> tuple[list[bytes], bool]:
    """Send ``data`` on one connection; (every status line the server answered, whether it
    then closed the connection). A server that keeps it open is waited on for 5 seconds."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        closed = False
        while not closed:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                chunk = b""
            received += chunk
            closed = chunk == b""
    statuses = []
    while received:  # each answer is a head and Content-Length bytes of body
        head, _, rest = received.partition(b"\r\n\r\n")
        statuses.append(head.split(b"\r\n", 1)[0])
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        received = rest[int(length.group(1)) if length else len(rest) :]
    return statuses, closed


SMUGGLED = b"GET /health HTTP/1.1\r\nHost: news.example\r\n\r\n"


@pytest.mark.parametrize(
    "head",
    [
        b"POST /archive HTTP/1.1\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n",
        b"POST /archive HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n",
        b"POST /archive HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: %d\r\n"
        b"Transfer-Encoding: chunked\r\n",
    ],
    ids=["cl-then-te", "te-then-cl", "http-1.0-te"],
)
def test_ambiguous_framing_is_refused_and_the_connection_closed(
    sent: Path, serve, head: bytes
) -> None:
    """RFC 9112 §6.3: a request with both Content-Length and Transfer-Encoding (or
    Transfer-Encoding in HTTP/1.0) is answered 400 and its connection closed, so what a
    proxy framing by Content-Length took for this request's body is never read as a
    second request; a well-framed pipelined request after it gets no answer either."""
    running = serve()
    body = b"0\r\n\r\n" + SMUGGLED
    request = head % len(body) + b"Host: news.example\r\n\r\n" + body
    statuses, closed = answers_until_closed(running.port, request + SMUGGLED)
    assert [s.split(b" ", 2)[1:] for s in statuses] == [[b"400", b"Bad Request"]], statuses
    assert closed, "the connection stays open after an ambiguously framed request"
    # the same requests framed one way each are answered, on one connection
    plain = b"POST /archive HTTP/1.1\r\nHost: news.example\r\nContent-Length: 0\r\n\r\n"
    pipelined = plain + SMUGGLED + SMUGGLED.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    statuses, closed = answers_until_closed(running.port, pipelined)
    assert [s.split(b" ")[1] for s in statuses] == [b"405", b"200", b"200"] and closed


def test_non_ascii_in_tokens_and_paths_is_refused_not_a_500(sent: Path, serve) -> None:
    running = serve(NEWSLETTER_WEBHOOK_SECRET_POSTMARK=SERVE_SECRET)
    token = unsubscribe_path(sent, "amara.nwosu@example.org").removeprefix("/u/")
    quoted = [
        "/u/" + urllib.parse.quote(token + "é"),
        "/u/" + urllib.parse.quote("é" + token[1:]),
        "/u/" + urllib.parse.quote("ü.ö.ä"),
        "/u/%FF%FE",  # not UTF-8
        "/u/%00",
        "/c/%C3%BC",
        "/c/%00",
        "/c/%FF",
        "/webhooks/%C3%BC",
        "/%E2%80%AE",
    ]
    for path in quoted:
        for method in ("GET", "POST"):
            response = requests.request(
                method, running.url + path, data={"List-Unsubscribe": "One-Click"}, timeout=10
            )
            assert response.status_code in (400, 404, 405), (path, method, response.status_code)
            assert_safe_page(response, sent)
    for raw in (b"/u/" + token.encode() + "é".encode(), b"/c/\xff\xfe", b"/u/\xc3\xa9"):
        status, answer = raw_request(
            running.port,
            b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 26\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
            b"List-Unsubscribe=One-Click" % raw,
        )
        assert status is not None and 400 <= status < 500, (raw, answer[:200])
    status, _ = raw_request(
        running.port,
        b"GET /archive HTTP/1.1\r\nHost: \xc3\xa9\xff\r\nX-Name: \xe2\x80\xae\xff\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert status == 200
    assert status_of(sent, "amara.nwosu@example.org") == "active"
    assert unsubscribe_events(sent) == 0


# -- the web version -----------------------------------------------------------------------
def test_the_web_version_is_the_page_stored_when_the_send_began(sent: Path, serve) -> None:
    send_for_real(sent, "2026-10-digest")  # the outbox's was a rehearsal: not served
    [(subject, html, created)] = rows(
        sent,
        "SELECT p.subject, p.html, p.created_at FROM campaign_pages p "
        "JOIN campaigns c ON c.id = p.campaign_id WHERE c.slug = '2026-10-digest'",
    )
    assert subject == "October at Riverbend: rest, supervision and a winter workshop"
    # the campaign file and every fetched article are gone: nothing could be rebuilt
    (sent / "campaigns" / "2026-10-digest.md").rename(sent / "2026-10-digest.md.old")
    shutil.rmtree(sent / ".newsletter" / "cache")
    running = serve()
    page = requests.get(running.url + "/c/2026-10-digest", timeout=10)
    assert page.status_code == 200
    assert page.text == html
    assert "Clay on the Table" in page.text and "Hello there," in page.text
    assert_safe_page(page, sent)
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    # nobody's data: not a name, an address or an unsubscribe token
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=sent).stdout)
    assert len(listed) == 13
    for reader in listed:
        assert reader["email"] not in page.text
        assert reader["email"].split("@")[0] not in page.text
    assert "Quillon" not in page.text and "Zephyrine" not in page.text
    assert "Hello Dana" not in page.text and "Hello Marcus" not in page.text
    assert "/u/" not in page.text
    assert "https://news.riverbend-clinicians.example/unsubscribe" in page.text
    # a campaign never sent has no web version
    assert requests.get(running.url + "/c/winter-workshop", timeout=10).status_code == 404

    # a resumed send keeps the page of the first
    (sent / "2026-10-digest.md.old").rename(sent / "campaigns" / "2026-10-digest.md")
    shutil.copytree(
        Path(__file__).resolve().parent.parent / ".newsletter" / "cache",
        sent / ".newsletter" / "cache",
    )
    campaign = sent / "campaigns" / "2026-10-digest.md"
    campaign.write_text(
        campaign.read_text(encoding="utf-8").replace("October has been", "November is"),
        encoding="utf-8",
    )
    again = run_process("send", "2026-10-digest", "--yes", cwd=sent)
    assert again.returncode == 0, again.stderr
    assert rows(sent, "SELECT html, created_at FROM campaign_pages") == [(html, created)]


# -- slow clients, many clients, idle connections ------------------------------------------
def hello(environ, start_response):  # a WSGI app that answers at once
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


@pytest.fixture
def server() -> Iterator[Callable[..., Server]]:
    started: list[tuple[Server, threading.Thread]] = []

    def start(**limits: int) -> Server:
        server = Server(hello, "127.0.0.1", 0, Limits(**limits))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.close()
        thread.join(10)
        assert not thread.is_alive()


def quick_get(port: int) -> float:
    started = time.monotonic()
    status, answer = raw_request(
        port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5
    )
    assert status == 200 and answer.endswith(b"hello"), answer
    return time.monotonic() - started


SLOW_HEADERS = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000 + b"\r\n\r\n"


def test_many_slow_clients_cost_no_threads(server) -> None:
    """The finding: wsgiref's thread per connection (1,100 slow clients, ~900 threads).
    Here the threads are the configured few, however many clients trickle."""
    before = threading.active_count()
    srv = server(threads=4, connection_limit=1000)
    assert len(srv.dispatcher.threads) == 4
    with_server = threading.active_count()
    assert with_server <= before + 4 + 1  # its 4 workers and the loop
    slow = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            sock.sendall(SLOW_HEADERS[:20])
            slow.append(sock)
        time.sleep(1.0)
        assert threading.active_count() <= with_server
        assert quick_get(srv.port) < 1.0, "a normal request is answered at once"
    finally:
        for sock in slow:
            sock.close()


def test_a_trickling_client_blocks_no_one_and_is_cut_off(server) -> None:
    srv = server(threads=1, request_timeout=2, idle_timeout=2)
    trickle = Trickle(srv.port, SLOW_HEADERS, interval=0.1)
    try:
        time.sleep(0.5)
        assert quick_get(srv.port) < 1.0, "even with one thread"
        closed = trickle.wait_closed(timeout=8)
        assert closed is not None and closed < 5, "a request still arriving after 2 s is dropped"
    finally:
        trickle.stop()


def test_idle_connections_are_closed_after_the_timeout(server) -> None:
    srv = server(idle_timeout=2, request_timeout=30)
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    kept = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    started = time.monotonic()
    kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: then idle too
    answer = b""
    while not answer.endswith(b"hello"):
        answer += kept.recv(1000)
    assert answer.startswith(b"HTTP/1.1 200")
    assert idle.recv(10) == b"", "closed by the server"
    assert kept.recv(10) == b""
    assert 1.5 < time.monotonic() - started < 6
    idle.close()
    kept.close()


def test_serve_takes_its_limits_from_newsletter_toml(sent: Path) -> None:
    config = sent / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(
            "[delivery]",
            "[serve]\nthreads = 2\nrequest_timeout = 2\nidle_timeout = 2\n\n[delivery]",
        ),
        encoding="utf-8",
    )
    running = Running(["serve", "--port", "0"], sent)
    try:
        assert "(2 threads;" in running.lines[0]
        trickle = Trickle(running.port, SLOW_HEADERS, interval=0.1)
        try:
            assert requests.get(running.url + "/health", timeout=5).text == "ok"
            closed = trickle.wait_closed(timeout=8)
            assert closed is not None and closed < 5
        finally:
            trickle.stop()
    finally:
        running.stop()
    assert "Traceback" not in running.stderr
    config.write_text(text.replace("[delivery]", "[serve]\nthreads = 0\n\n[delivery]"))
    refused = run_process("serve", "--port", "0", cwd=sent)
    assert refused.returncode == 1 and "[serve] threads" in refused.stderr


# -- size limits -----------------------------------------------------------------------------
def test_requests_over_the_size_limits(sent: Path, serve) -> None:
    running = serve(NEWSLETTER_WEBHOOK_SECRET_POSTMARK=SERVE_SECRET)
    path = unsubscribe_path(sent, "renee.castillo@example.net")
    big = b"List-Unsubscribe=One-Click&" + b"x" * (1024 * 1024)
    response = requests.post(
        running.url + path,
        data=big,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 413
    chunked_big = requests.post(
        running.url + path,
        data=(big[i : i + 65536] for i in range(0, len(big), 65536)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert chunked_big.status_code == 413
    hook = requests.post(
        running.url + "/webhooks/postmark",
        data=b"[" + b" " * (2 * 1024 * 1024) + b"]",
        auth=tuple(SERVE_SECRET.split(":")),
        timeout=10,
    )
    assert hook.status_code == 413
    headers = requests.get(
        running.url + "/health", headers={"X-Big": "a" * (100 * 1024)}, timeout=10
    )
    assert headers.status_code == 431
    assert status_of(sent, "renee.castillo@example.net") == "active"
    just_under = b"List-Unsubscribe=One-Click&pad=" + b"x" * (1024 * 1024 - 100)
    fits = requests.post(
        running.url + path,
        data=just_under,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert fits.status_code == 200
    assert status_of(sent, "renee.castillo@example.net") == "unsubscribed"
    assert running.lines[1:] == [], "a refusal is not an error to log"


# -- preview: only for its own address, and not one client at a time ----------------------
@pytest.fixture
def preview(project: Path) -> Iterator[Running]:
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    running = Running(["preview", "2026-10-digest", "--port", "0", "--no-open"], project)
    yield running
    running.stop()
    assert "Traceback" not in running.stderr, running.stderr


def get(url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, timeout=60)


def test_preview_answers_only_requests_for_its_own_address(preview: Running) -> None:
    """DNS rebinding: a page on attacker.example whose name now resolves to 127.0.0.1 asks
    for /state.json (every reader's name and address); its Host gives it away."""
    port = preview.port
    mine = f"127.0.0.1:{port}"
    state = get(preview.url + "/state.json", Host=mine)
    assert state.status_code == 200 and "dana.whitfield@example.org" in state.text
    assert get(preview.url + "/state.json", Host=f"localhost:{port}").status_code == 200
    assert get(preview.url + "/version", Host=mine, Origin=f"http://{mine}").status_code == 200
    refused = [
        {"Host": "attacker.example"},
        {"Host": f"attacker.example:{port}"},
        {"Host": "127.0.0.1:1"},
        {"Host": f"127.0.0.1.attacker.example:{port}"},
        {"Host": mine, "Origin": "http://attacker.example"},
        {"Host": mine, "Origin": f"http://attacker.example:{port}"},
        {"Host": mine, "Origin": "null"},
        {"Host": mine, "Origin": f"https://{mine}"},
    ]
    for headers in refused:
        for path in ("/state.json", "/email", "/", "/version"):
            response = get(preview.url + path, **headers)
            assert response.status_code == 403, (headers, path)
            assert "@example" not in response.text and "This preview answers only" in response.text
    status, answer = raw_request(port, b"GET /state.json HTTP/1.0\r\n\r\n")  # no Host at all
    assert status == 403 and b"@example" not in answer


def test_a_slow_client_does_not_hold_up_the_preview(preview: Running) -> None:
    assert get(preview.url + "/state.json").status_code == 200  # built once
    trickles = [
        Trickle(
            preview.port,
            f"GET /state.json HTTP/1.1\r\nHost: 127.0.0.1:{preview.port}\r\n\r\n".encode(),
            interval=0.5,
        )
        for _ in range(10)
    ]
    try:
        time.sleep(1)
        for path in ("/version", "/state.json", "/email"):
            started = time.monotonic()
            assert get(preview.url + path).status_code == 200
            assert time.monotonic() - started < 2, path
    finally:
        for trickle in trickles:
            trickle.stop()


def test_at_the_connection_limit_the_slowest_make_room(server, monkeypatch) -> None:
    """More slow clients than connections allowed: those that have kept a connection
    longest without a request are closed, and a normal request still gets in."""
    from newsletter.web import server as server_module

    monkeypatch.setattr(server_module, "SHED_AFTER", 0.5)
    srv = server(threads=2, connection_limit=20)
    threads = threading.active_count()
    slow = []
    try:
        for _ in range(80):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            sock.sendall(SLOW_HEADERS[:20])
            slow.append(sock)
        assert quick_get(srv.port) < 8
        assert threading.active_count() <= threads
    finally:
        for sock in slow:
            sock.close()


def test_a_campaign_whose_web_version_cannot_be_built_is_still_sent(project: Path) -> None:
    """An expression that fails for a reader with no data fails for the web version too:
    `check` warns, every reader still gets the email, and /c/ answers 404."""
    (project / "people.csv").write_text("email,first_name,tags\na@example.org,Ana,members\n")
    assert run_process("subscribers", "import", "people.csv", cwd=project).returncode == 0
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "Warmly,", "Your first group: {{ recipient.tags[0] }}.\n\nWarmly,"
        )
    )
    check = run_process("check", "2026-10-digest", cwd=project)
    assert check.returncode == 0, check.stderr + check.stdout
    assert "The web version (the email for a reader with no data) cannot be built" in (
        check.stdout + check.stderr
    )
    sent = run_process("send", "2026-10-digest", "--yes", cwd=project)
    assert sent.returncode == 0, sent.stderr
    assert len(list((project / "outbox" / "2026-10-digest").glob("*.eml"))) == 1
    assert rows(project, "SELECT count(*) FROM campaign_pages") == [(0,)]
    running = Running(["serve", "--port", "0"], project)
    try:
        assert requests.get(running.url + "/c/2026-10-digest", timeout=10).status_code == 404
    finally:
        running.stop()
