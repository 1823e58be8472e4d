"""Sign-up with double opt-in over real HTTP (`newsletter serve` as a process), real
outbox files, the real database: the flow, link scanners, bots, hostile input, and the
staff commands `subscribers add` / `resubscribe` with their history and erasure."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import connect, run_process
from web_servers import Running

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

PUBLIC = "https://news.riverbend-clinicians.example"


def configure(root: Path, **keys: object) -> None:
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    config = root / "newsletter.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[signup]\n" + lines, "utf-8")


@pytest.fixture
def server(project: Path) -> Iterator[Running]:
    configure(project, min_seconds=1, per_client_per_hour=1000)
    running = Running(["serve", "--port", "0"], cwd=project)
    yield running
    running.stop()


def confirmations(root: Path) -> list[email.message.EmailMessage]:
    folder = root / "outbox" / "_confirmations"
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in sorted(folder.glob("*.eml"))
    ]


def sent_count(root: Path) -> int:
    """Confirmation emails that went out, as the database recorded them."""
    db = connect(root)
    try:
        return db.execute(
            "SELECT count(*) FROM subscriber_log WHERE action = 'confirmation_sent'"
        ).fetchone()[0]
    finally:
        db.close()


def library(root: Path):
    from newsletter.project import Project

    return Project.load(str(root / "newsletter.toml"))


def old_token(root: Path, seconds: int = 30) -> str:
    from newsletter import signup

    project = library(root)
    try:
        when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
        return signup.form_token(project.store.secret, when)
    finally:
        project.close()


def form_token(page: str) -> str:
    return re.search(r"name='form_token' value='([^']+)'", page).group(1)


def post(server: Running, fields: dict[str, str], **kw: object) -> requests.Response:
    return requests.post(f"{server.url}/subscribe", data=fields, timeout=30, **kw)


def status_of(root: Path, address: str) -> str | None:
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=root).stdout)
    return next((r["status"] for r in listed if r["email"] == address), None)


def link_of(message: email.message.EmailMessage) -> str:
    text = message.get_body(("plain",)).get_content()
    return re.search(r"https://\S+/confirm/\S+", text).group(0)


def test_sign_up_confirm_by_post_only(server: Running, project: Path) -> None:
    page = requests.get(f"{server.url}/subscribe", timeout=30)
    assert page.status_code == 200
    html = page.text
    assert "<html lang='en'>" in html and "<label for='email'>" in html
    assert "tabindex='-1' autocomplete='off'" in html and "aria-hidden='true'" in html
    assert "consent wording v1" in html and ":focus-visible" in html
    assert "width=device-width" in html
    token = form_token(html)
    requests.get(f"{server.url}/subscribe", timeout=30)
    import time

    time.sleep(1.2)  # past [signup] min_seconds
    answer = post(
        server,
        {"email": "new.reader@example.org", "first_name": "Noor", "form_token": token},
        headers={"Referer": "https://blog.example.org/join?email=x@y.org#top"},
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert status_of(project, "new.reader@example.org") == "pending"
    pending = run_process("subscribers", "list", "--status", "pending", cwd=project).stdout
    assert "new.reader@example.org" in pending
    [message] = confirmations(project)
    assert message["To"].addresses[0].addr_spec == "new.reader@example.org"
    for header in ("From", "Subject", "Date", "Message-ID"):
        assert message[header]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"] is None and message["List-Id"] is None
    url = link_of(message)
    assert url.startswith(f"{PUBLIC}/confirm/")
    local = server.url + url.removeprefix(PUBLIC)
    # a link scanner: GET and HEAD change nothing
    for method in ("GET", "HEAD"):
        assert requests.request(method, local, timeout=30).status_code == 200
    shown = requests.get(local, timeout=30)
    assert "<form id='confirm' method='post'>" in shown.text and "<noscript>" in shown.text
    nonce = re.search(r"<script nonce='([^']+)'>", shown.text).group(1)
    policy = shown.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and f"script-src 'nonce-{nonce}'" in policy
    assert status_of(project, "new.reader@example.org") == "pending"
    # the person: the form posts
    done = requests.post(local, data={"confirm": "yes"}, timeout=30)
    assert done.status_code == 200 and "You are subscribed" in done.text
    assert status_of(project, "new.reader@example.org") == "active"
    again = requests.post(local, data={"confirm": "yes"}, timeout=30)  # harmless
    assert again.status_code == 200 and "You are subscribed" in again.text
    history = json.loads(
        run_process(
            "subscribers", "history", "new.reader@example.org", "--format", "json", cwd=project
        ).stdout
    )
    actions = [r["action"] for r in history if r["status"] == "membership"]
    assert actions == ["signup", "confirmation_sent", "confirmed"]
    signup_row = history[0]
    assert signup_row["source"] == "https://blog.example.org/join"  # no query, no fragment
    assert signup_row["form_version"] == "v1"
    assert all({"campaign", "status", "sent_at"} <= set(r) for r in history)


def test_bots_and_limits_send_nothing_and_look_the_same(project: Path) -> None:
    configure(
        project,
        min_seconds=2,
        per_client_per_hour=5,
        per_address_per_hour=2,
        max_confirmations_per_hour=3,
    )
    server = Running(["serve", "--port", "0"], cwd=project)
    try:
        good = post(server, {"email": "real@example.org", "form_token": old_token(project)})
        reference = (good.status_code, good.text)
        assert sent_count(project) == 1
        tried = 1
        bots = [
            {
                "email": "bot1@example.org",
                "website": "http://spam",
                "form_token": old_token(project),
            },
            {"email": "bot2@example.org", "website": "x"},  # embedded form, honeypot filled
            {"email": "bot3@example.org", "form_token": old_token(project, 0)},  # too fast
            {"email": "bot4@example.org", "form_token": "lz0abc.AAAAAAAAAAAAAAAAAAAAAA"},
            {"email": "bot5@example.org", "form_token": old_token(project, 3 * 86400)},
        ]
        for fields in bots:
            answer = post(server, fields)
            tried += 1
            assert (answer.status_code, answer.text) == reference
        assert sent_count(project) == 1 and len(confirmations(project)) == 1
        # the same address again: at most one confirmation a day, then the address limit
        for _ in range(3):
            answer = post(server, {"email": "real@example.org", "form_token": old_token(project)})
            tried += 1
            assert (answer.status_code, answer.text) == reference
        assert sent_count(project) == 1
        # the global cap: 3 confirmations an hour (one went already), one line on stderr
        for n in range(2):
            post(server, {"email": f"person{n}@example.org", "form_token": old_token(project)})
            tried += 1
        assert sent_count(project) == 3
        capped = post(server, {"email": "capped@example.org", "form_token": old_token(project)})
        tried += 1
        assert (capped.status_code, capped.text) == reference
        assert sent_count(project) == 3 and len(confirmations(project)) == 3
        assert status_of(project, "capped@example.org") == "pending"
        # the per-client limit: 5 sign-ups an hour from this client were recorded by now
        over = post(server, {"email": "client@example.org", "form_token": old_token(project)})
        tried += 1
        assert (over.status_code, over.text) == reference
        assert status_of(project, "client@example.org") is None
        sent = len(confirmations(project))
        print(f"\nsign-up submissions tried: {tried}, confirmation emails sent: {sent}")
        assert (tried, sent) == (13, 3)
        assert server.stderr.count("max_confirmations_per_hour") == 1
        for n in range(1, 6):
            assert status_of(project, f"bot{n}@example.org") is None
    finally:
        server.stop()


def test_repeats_and_members_get_the_same_page(server: Running, project: Path) -> None:
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=project).stdout)
    active = next(r["email"] for r in listed if r["status"] == "active")
    bounced = [r["email"] for r in listed if r["status"] in ("bounced", "complained")]
    first = post(server, {"email": "twice@example.org", "form_token": old_token(project)})
    second = post(server, {"email": "twice@example.org", "form_token": old_token(project)})
    member = post(server, {"email": active, "form_token": old_token(project)})
    answers = {(a.status_code, a.text) for a in (first, second, member)}
    for address in bounced:
        answer = post(server, {"email": address, "form_token": old_token(project)})
        answers.add((answer.status_code, answer.text))
    assert len(answers) == 1
    assert [m["To"].addresses[0].addr_spec for m in confirmations(project)] == ["twice@example.org"]
    assert sent_count(project) == 1
    assert status_of(project, active) == "active"


def test_unsubscribed_person_must_confirm_again(server: Running, project: Path) -> None:
    assert run_process("subscribers", "add", "back@example.org", cwd=project).returncode == 0
    assert (
        run_process("subscribers", "unsubscribe", "back@example.org", cwd=project).returncode == 0
    )
    post(server, {"email": "back@example.org", "form_token": old_token(project)})
    assert status_of(project, "back@example.org") == "pending"
    assert len(confirmations(project)) == 1


def test_expired_and_tampered_links(server: Running, project: Path) -> None:
    from newsletter import signup

    post(server, {"email": "late@example.org", "form_token": old_token(project)})
    [message] = confirmations(project)
    url = link_of(message)
    sid = int(url.rsplit("/", 1)[1].split(".")[0], 36)
    project_ = library(project)
    try:
        eight_days = dt.datetime.now(dt.UTC) - dt.timedelta(days=8)
        expired = signup.confirm_url(project_.settings, project_.store.secret, sid, eight_days)
    finally:
        project_.close()
    local = server.url + expired.removeprefix(PUBLIC)
    for method in ("GET", "POST"):
        answer = requests.request(method, local, data={"confirm": "yes"}, timeout=30)
        assert answer.status_code == 410 and "expired" in answer.text
        assert f"{PUBLIC}/subscribe" in answer.text
    token = url.rsplit("/", 1)[1]
    sid36, issued, signature = token.split(".")
    for forged in (
        f"{sid36}.{issued}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"{int(sid36, 36) + 1:x}.{issued}.{signature}",
        f"{sid36}.{issued}",
        "../../etc/passwd",
    ):
        for method in ("GET", "POST"):
            answer = requests.request(
                method, f"{server.url}/confirm/{forged}", data={"confirm": "yes"}, timeout=30
            )
            assert answer.status_code in (400, 404)
            assert answer.status_code == 404 or "not valid" in answer.text
    assert status_of(project, "late@example.org") == "pending"


def test_hostile_input(server: Running, project: Path) -> None:
    token = old_token(project)
    huge = post(server, {"email": "a" * 10_000 + "@example.org", "form_token": token})
    assert huge.status_code == 400 and "254" in huge.text
    bad = post(server, {"email": "not an address", "form_token": token})
    assert bad.status_code == 400 and "email address" in bad.text
    # CRLF and markup in names: data, never headers or code
    answer = post(
        server,
        {
            "email": "odd@example.org",
            "first_name": "{{ 7*7 }} <script>alert(1)</script>",
            "last_name": "Eve\r\nBcc: victim@example.org",
            "form_token": token,
        },
    )
    assert answer.status_code == 200
    [message] = confirmations(project)
    assert message["Bcc"] is None
    assert [a.addr_spec for a in message["To"].addresses] == ["odd@example.org"]
    html = message.get_body(("html",)).get_content()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    # the name stays as typed, never run as a template (the link's random token may hold
    # any digits, so the evidence is the text itself, in both parts)
    assert "{{ 7*7 }}" in message.get_body(("plain",)).get_content() and "{{ 7*7 }}" in html
    # non-UTF-8, wrong types, a huge body: a clear 4xx, nothing stored
    raw = requests.post(
        f"{server.url}/subscribe",
        data=b"email=caf\xe9@example.org",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert raw.status_code == 400
    typed = requests.post(
        f"{server.url}/subscribe",
        data=json.dumps({"email": "json@example.org"}),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert typed.status_code == 415
    big = post(server, {"email": "big@example.org", "first_name": "x" * 50_000})
    assert big.status_code == 413
    long_name = post(server, {"email": "long@example.org", "first_name": "x" * 500})
    assert long_name.status_code == 400
    for address in ("json@example.org", "big@example.org", "long@example.org"):
        assert status_of(project, address) is None
    assert len(confirmations(project)) == 1


def test_embedded_form_without_timestamp(server: Running, project: Path) -> None:
    snippet = (
        Path(__file__).resolve().parent.parent / "src/newsletter/scaffold/signup-form.html"
    ).read_text()
    names = set(re.findall(r'name="([a-z_]+)"', snippet))
    assert names == {"email", "first_name", "website", "source"}
    answer = post(
        server,
        {"email": "blog@example.org", "website": "", "source": ""},
        headers={"Referer": "https://blog.riverbend-clinicians.example/"},
    )
    assert answer.status_code == 200 and len(confirmations(project)) == 1
    assert status_of(project, "blog@example.org") == "pending"


def test_pending_people_get_no_campaign(server: Running, project: Path) -> None:
    post(server, {"email": "waiting@example.org", "form_token": old_token(project)})
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    assert run_process("send", "2026-10-digest", "--yes", cwd=project).returncode == 0
    sent = list((project / "outbox" / "2026-10-digest").glob("*.eml"))
    assert sent and not any("waiting@example.org" in p.name for p in sent)


def test_staff_add_and_resubscribe(project: Path) -> None:
    def cli(*args: str):
        return run_process("subscribers", *args, cwd=project)

    added = cli(
        "add",
        "Staff@Example.org",
        "--first-name",
        "Sam",
        "--tag",
        "ce",
        "--consent-source",
        "conference sign-up sheet 2026",
    )
    assert added.returncode == 0, added.stderr
    assert status_of(project, "Staff@example.org") == "active"
    again = cli("add", "staff@example.org")
    assert again.returncode == 1 and "already an active subscriber" in again.stderr
    bad = cli("add", "not-an-address")
    assert bad.returncode == 1 and "not a usable email address" in bad.stderr
    active = cli("resubscribe", "staff@example.org", "--consent-source", "asked")
    assert active.returncode == 0 and "already active" in active.stderr
    assert cli("unsubscribe", "staff@example.org").returncode == 0
    refused = cli("add", "staff@example.org")
    assert refused.returncode == 1 and "resubscribe" in refused.stderr
    missing = cli("resubscribe", "staff@example.org")
    assert missing.returncode == 2  # --consent-source is required
    back = cli("resubscribe", "staff@example.org", "--consent-source", "email of 2026-12-01")
    assert back.returncode == 0 and status_of(project, "Staff@example.org") == "active"
    unknown = cli("resubscribe", "nobody@example.org", "--consent-source", "x")
    assert unknown.returncode == 1 and "subscribers add" in unknown.stderr
    # bounced and complained are refused, saying why
    (project / "more.csv").write_text(
        "email,status\nb@example.org,bounced\nc@example.org,complained\n", encoding="utf-8"
    )
    assert cli("import", "more.csv").returncode == 0
    for address, why in (("b@example.org", "bounced"), ("c@example.org", "complained")):
        for args in (("add", address), ("resubscribe", address, "--consent-source", "x")):
            result = cli(*args)
            assert result.returncode == 1 and why in result.stderr, result.stderr
    history = json.loads(cli("history", "staff@example.org", "--format", "json").stdout)
    log = [(r["action"], r["detail"]) for r in history if r["status"] == "membership"]
    assert log == [
        ("added", "conference sign-up sheet 2026"),
        ("unsubscribed", "unsubscribed by hand"),
        ("resubscribed", "email of 2026-12-01"),
    ]
    table = cli("history", "staff@example.org").stderr + cli("history", "staff@example.org").stdout
    assert "resubscribed" in table
    # erased: refused for good
    assert cli("forget", "staff@example.org", "--yes").returncode == 0
    for args in (
        ("add", "staff@example.org"),
        ("resubscribe", "staff@example.org", "--consent-source", "x"),
    ):
        result = cli(*args)
        assert result.returncode == 1 and "erased" in result.stderr


def test_forget_removes_consent_data(server: Running, project: Path) -> None:
    post(
        server,
        {"email": "gone@example.org", "first_name": "Gwen", "form_token": old_token(project)},
        headers={"Referer": "https://blog.example.org/gone@example.org"},
    )
    db = connect(project)
    try:
        before = db.execute("SELECT source, client_hash FROM subscriber_log").fetchall()
    finally:
        db.close()
    assert any(r["client_hash"] for r in before) and any(r["source"] for r in before)
    assert (
        run_process("subscribers", "forget", "gone@example.org", "--yes", cwd=project).returncode
        == 0
    )
    db = connect(project)
    try:
        rows = db.execute("SELECT * FROM subscriber_log").fetchall()
    finally:
        db.close()
    assert rows and all(
        r["source"] is None and r["client_hash"] is None and r["detail"] is None for r in rows
    )
    assert not confirmations(project)  # the outbox file went too
    # and a new sign-up of the erased address records and sends nothing
    answer = post(server, {"email": "gone@example.org", "form_token": old_token(project)})
    assert answer.status_code == 200 and not confirmations(project)


def test_welcome_email_after_confirming(project: Path) -> None:
    configure(project, welcome=True, per_client_per_hour=1000)
    server = Running(["serve", "--port", "0"], cwd=project)
    try:
        post(server, {"email": "hello@example.org", "form_token": old_token(project)})
        [message] = confirmations(project)
        local = server.url + link_of(message).removeprefix(PUBLIC)
        for _ in range(2):  # confirming twice welcomes once
            assert requests.post(local, data={"confirm": "yes"}, timeout=30).status_code == 200
    finally:
        server.stop()
    [path] = (project / "outbox" / "_welcome").glob("*.eml")
    welcome = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert welcome["List-Unsubscribe"] and "/u/" in welcome["List-Unsubscribe"]
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Unsubscribe" in welcome.get_body(("html",)).get_content()
    assert status_of(project, "hello@example.org") == "active"


def test_the_client_behind_a_trusted_proxy_is_the_one_it_forwards() -> None:
    from ipaddress import ip_network

    from newsletter.web.serve import client_address

    local = (ip_network("127.0.0.1"), ip_network("::1"), ip_network("10.0.0.0/8"))

    def client(remote: str, forwarded: str | None = None, proxies=local) -> str:
        environ = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            environ["HTTP_X_FORWARDED_FOR"] = forwarded
        return client_address(environ, proxies)

    assert client("127.0.0.1") == "127.0.0.1"
    assert client("127.0.0.1", "203.0.113.5") == "203.0.113.5"
    # what a client wrote first is passed over: the last hop a proxy of ours added counts
    assert client("127.0.0.1", "198.51.100.1, 203.0.113.5") == "203.0.113.5"
    assert client("127.0.0.1", "203.0.113.5, 10.1.2.3") == "203.0.113.5"  # two proxies
    assert client("::1", "2001:db8::7") == "2001:db8::7"
    # not from a trusted proxy: the header is anybody's words
    assert client("198.51.100.9", "203.0.113.5") == "198.51.100.9"
    assert client("127.0.0.1", "203.0.113.5", proxies=()) == "127.0.0.1"
    for junk in ("", "unknown", "203.0.113.5:443", "<script>", "1.2.3.4, not-an-ip"):
        assert client("127.0.0.1", junk) == "127.0.0.1", junk


def test_the_per_client_limit_counts_each_forwarded_client(project: Path) -> None:
    configure(project, min_seconds=1, per_client_per_hour=2)

    def sign_up(running: Running, n: int, forwarded: str) -> None:
        fields = {"email": f"p{n}@example.org", "form_token": old_token(project)}
        post(running, fields, headers={"X-Forwarded-For": forwarded})

    server = Running(["serve", "--port", "0"], cwd=project)
    try:
        for n in range(3):  # one client behind the proxy on this host: two an hour
            sign_up(server, n, "203.0.113.5")
        assert [status_of(project, f"p{n}@example.org") for n in range(3)] == [
            "pending",
            "pending",
            None,
        ]
        sign_up(server, 3, "203.0.113.6")  # another client: its own two
        assert status_of(project, "p3@example.org") == "pending"
        sign_up(server, 4, "198.51.100.1, 203.0.113.5")  # a made-up first hop changes nothing
        assert status_of(project, "p4@example.org") is None
    finally:
        server.stop()
    config = project / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("[serve]\n", "") + "\n[serve]\n"
        "trusted_proxies = []\n",
        encoding="utf-8",
    )
    server = Running(["serve", "--port", "0"], cwd=project)
    try:  # no proxy trusted: the header is ignored, every sign-up is this host's own
        for n, forwarded in zip(
            range(5, 8), ("192.0.2.77", "192.0.2.78", "192.0.2.79"), strict=True
        ):
            sign_up(server, n, forwarded)
        assert [status_of(project, f"p{n}@example.org") for n in range(5, 8)] == [
            "pending",
            "pending",
            None,
        ]
    finally:
        server.stop()


def test_trusted_proxies_must_be_addresses(project: Path) -> None:
    config = project / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + '\n[serve]\ntrusted_proxies = ["nginx"]\n',
        encoding="utf-8",
    )
    result = run_process("check", "2026-10-digest", cwd=project)
    assert result.returncode == 1
    assert "trusted_proxies" in result.stderr and "'nginx'" in result.stderr
