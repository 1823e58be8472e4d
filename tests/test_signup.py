"""Sign-up with double opt-in over real HTTP (`newsletter serve` as a process, its
background sender working the confirmation queue), real outbox files, the real database:
the flow, the queue and its limits, link scanners, bots, hostile input, expiry, and the
staff commands `subscribers add` / `resubscribe` with their history and erasure."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from conftest import connect, run_process
from web_servers import Running

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

PUBLIC = "https://news.riverbend-clinicians.example"
BLOG = "https://blog.riverbend-clinicians.example"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


def configure(root: Path, section: str = "signup", **keys: object) -> None:
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    config = root / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    if f"\n[{section}]\n" in text:
        text = text.replace(f"\n[{section}]\n", f"\n[{section}]\n{lines}", 1)
    else:
        text += f"\n[{section}]\n{lines}"
    config.write_text(text, "utf-8")


def serve(root: Path) -> Running:
    return Running(["serve", "--port", "0"], cwd=root)


@pytest.fixture
def server(project: Path) -> Iterator[Running]:
    configure(project, min_seconds=1, per_client_per_hour=1000, per_network_per_hour=1000)
    running = serve(project)
    yield running
    running.stop()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``check`` until it holds (the server's sender works in the background)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {timeout:.0f} s")
        time.sleep(0.1)


def count(root: Path, where: str = "1 = 1", table: str = "signup_requests") -> int:
    db = connect(root)
    try:
        return db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]
    finally:
        db.close()


def rows(root: Path, sql: str, params: tuple[object, ...] = ()) -> list[dict[str, object]]:
    db = connect(root)
    try:
        return [dict(r) for r in db.execute(sql, params).fetchall()]
    finally:
        db.close()


def settled(root: Path) -> None:
    """Wait until the server's sender has sent whatever the queue may send now: nothing
    is being sent, and what waits is held back by the hour's limits."""
    from newsletter import signup

    def idle() -> bool:
        if count(root, "mail_state = 'sending'"):
            return False
        if not count(root, "mail_state = 'queued'"):
            return True
        project = library(root)  # would a claim now take any? (then: not idle yet)
        try:
            s = project.settings.signup
            share = max(1, s.max_confirmations_per_hour // signup.NETWORK_SHARE)
            used = dict(
                (r["network_key"], r["n"])
                for r in rows(
                    root,
                    "SELECT network_key, count(*) AS n FROM signup_requests "
                    "WHERE claimed_at IS NOT NULL GROUP BY network_key",
                )
            )
            if sum(used.values()) >= s.max_confirmations_per_hour:
                return True
            waiting = {
                r["network_key"]
                for r in rows(
                    root, "SELECT network_key FROM signup_requests WHERE mail_state = 'queued'"
                )
            }
            return all(used.get(n, 0) >= share for n in waiting)
        finally:
            project.close()

    wait_until(idle, "done with the confirmation queue")


def confirmations(root: Path, expect: int | None = None) -> list[email.message.EmailMessage]:
    """The confirmation emails in the outbox (``expect``: wait for that many first)."""
    folder = root / "outbox" / "_confirmations"
    if expect is not None:
        wait_until(lambda: len(list(folder.glob("*.eml"))) >= expect, f"{expect} emails")
        settled(root)
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in sorted(folder.glob("*.eml"))
    ]


def sent_count(root: Path) -> int:
    """Confirmation emails that went out, as the database recorded them."""
    settled(root)
    return count(root, "mail_state = 'sent'")


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


def sign_up(server: Running, root: Path, address: str, **fields: str) -> requests.Response:
    return post(server, {"email": address, "form_token": old_token(root), **fields})


def people(root: Path) -> dict[str, dict[str, object]]:
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=root).stdout)
    return {r["email"]: r for r in listed}


def status_of(root: Path, address: str) -> str | None:
    found = people(root).get(address)
    return None if found is None else found["status"]


def link_of(message: email.message.EmailMessage) -> str:
    text = message.get_body(("plain",)).get_content()
    return re.search(r"https://\S+/confirm/\S+", text).group(0)


def local(server: Running, url: str) -> str:
    return server.url + url.removeprefix(PUBLIC)


def press(server: Running, url: str, how: str = "button", **kw: object) -> requests.Response:
    """The confirmation page posted: by its button (a person), or by its script."""
    return requests.post(local(server, url), data={"how": how}, timeout=30, **kw)


def history(root: Path, address: str) -> list[dict[str, object]]:
    done = run_process("subscribers", "history", address, "--format", "json", cwd=root)
    return [r for r in json.loads(done.stdout) if r["status"] == "membership"]


def test_sign_up_confirm_by_post_only(server: Running, project: Path) -> None:
    page = requests.get(f"{server.url}/subscribe", timeout=30)
    assert page.status_code == 200
    html = page.text
    assert "<html lang='en' dir='ltr'>" in html and "<label for='email'>" in html
    assert "tabindex='-1' autocomplete='off'" in html and "aria-hidden='true'" in html
    assert "consent wording v1" in html and ":focus-visible" in html
    assert "width=device-width" in html
    # a text field (a browser's type=email refuses international addresses)
    assert "name='email' type='text'" in html and "inputmode='email'" in html
    assert "autocomplete='email'" in html
    assert f"name='source' value='{PUBLIC}/subscribe'" in html
    token = form_token(html)
    time.sleep(1.2)  # past [signup] min_seconds
    answer = post(
        server,
        {"email": "new.reader@example.org", "first_name": "Noor", "form_token": token},
        headers={"Referer": "https://blog.example.org/join?email=x@y.org#top"},
    )
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    # pending, without the name: names are stored when the person confirms
    me = people(project)["new.reader@example.org"]
    assert (me["status"], me["first_name"]) == ("pending", "")
    [message] = confirmations(project, 1)
    assert message["To"].addresses[0].addr_spec == "new.reader@example.org"
    assert message["To"].addresses[0].display_name == ""
    for header in ("From", "Subject", "Date", "Message-ID"):
        assert message[header]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"] is None and message["List-Id"] is None
    url = link_of(message)
    assert url.startswith(f"{PUBLIC}/confirm/")
    # a link scanner: GET and HEAD change nothing
    for method in ("GET", "HEAD"):
        assert requests.request(method, local(server, url), timeout=30).status_code == 200
    shown = requests.get(local(server, url), timeout=30)
    assert "<form id='confirm' method='post'>" in shown.text and "<noscript>" in shown.text
    assert "name='how' value='button'" in shown.text and "setTimeout" in shown.text
    nonce = re.search(r"<script nonce='([^']+)'>", shown.text).group(1)
    policy = shown.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and f"script-src 'nonce-{nonce}'" in policy
    assert status_of(project, "new.reader@example.org") == "pending"
    # a post that is neither the script's nor the button's: nothing
    odd = requests.post(local(server, url), data={"confirm": "yes"}, timeout=30)
    assert odd.status_code == 400 and status_of(project, "new.reader@example.org") == "pending"
    # the person presses the button
    done = press(server, url)
    assert done.status_code == 200 and "You are subscribed" in done.text
    me = people(project)["new.reader@example.org"]
    assert (me["status"], me["first_name"]) == ("active", "Noor")
    again = press(server, url)  # harmless, and changes nothing
    assert again.status_code == 200 and "You are subscribed" in again.text
    log = history(project, "new.reader@example.org")
    assert [r["action"] for r in log] == ["signup", "confirmation_sent", "confirmed"]
    assert log[0]["source"] == "https://blog.example.org/join"  # no query, no fragment
    assert log[0]["form_version"] == "v1"
    assert log[0]["at"] <= log[1]["at"] <= log[2]["at"]
    assert count(project, "used_at IS NOT NULL") == 1


def test_serve_s_own_page_records_its_source_and_takes_international_addresses(
    server: Running, project: Path
) -> None:
    shown = requests.get(f"{server.url}/subscribe", timeout=30)
    assert shown.headers["Referrer-Policy"] == "same-origin"
    page = shown.text
    time.sleep(1.2)
    fields = dict(re.findall(r"<input type='hidden' name='(\w+)' value='([^']*)'>", page))
    fields.update({"email": "Élodie.Brun@example.org", "first_name": "Élodie"})
    # the page's own public address, from its hidden field (not a Referer, which names
    # the host it was fetched from, and is sent to this origin alone)
    assert post(server, fields).status_code == 200
    [message] = confirmations(project, 1)
    [path] = (project / "outbox" / "_confirmations").glob("*.eml")  # an SMTPUTF8 header
    assert b"To: \xc3\x89lodie.Brun@example.org\r\n" in path.read_bytes()
    assert press(server, link_of(message)).status_code == 200
    # (read from the database: the CLI's output is in the locale's encoding here)
    [me] = rows(project, "SELECT id, first_name, status FROM subscribers")
    assert (me["first_name"], me["status"]) == ("Élodie", "active")
    [signed] = rows(
        project,
        "SELECT source FROM subscriber_log WHERE action = 'signup' AND subscriber_id = ?",
        (me["id"],),
    )
    assert signed["source"] == f"{PUBLIC}/subscribe"


def test_bots_send_nothing_record_nothing_and_look_the_same(project: Path) -> None:
    configure(project, min_seconds=20)  # bot3 stays too fast however slow the machine
    server = serve(project)
    try:
        good = sign_up(server, project, "real@example.org")
        reference = (good.status_code, good.text)
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
            {"email": "bot6@example.org"},  # no token, no Origin, no Referer
            # no token, a Referer of a site that is not allowed
            {"email": "bot7@example.org"},
        ]
        for n, fields in enumerate(bots):
            headers = {"Referer": "https://elsewhere.example/form"} if n == 6 else {}
            answer = post(server, fields, headers=headers)
            assert (answer.status_code, answer.text) == reference, fields
        assert len(confirmations(project, 1)) == 1 and sent_count(project) == 1
        assert count(project) == 1  # the bots left no request
        for n in range(1, 8):
            assert status_of(project, f"bot{n}@example.org") is None
    finally:
        server.stop()


def test_the_limits_count_people_and_look_the_same(project: Path) -> None:
    """Per client, per network, per mailbox (its +tag and dot variants together), and the
    hourly cap shared out between networks; every answer the same page."""
    configure(
        project,
        min_seconds=1,
        per_client_per_hour=3,
        per_network_per_hour=5,
        per_address_per_hour=2,
        max_confirmations_per_hour=20,  # no network more than 2 an hour
    )
    configure(project, "serve", trusted_proxies=["127.0.0.1"])
    server = serve(project)

    def from_(client: str, address: str) -> requests.Response:
        fields = {"email": address, "form_token": old_token(project)}
        return post(server, fields, headers={"X-Forwarded-For": client})

    try:
        reference = from_("203.0.113.1", "first@example.org")
        answers = set()
        for n in range(2, 5):  # the client's limit: 3 an hour
            answers.add(from_("203.0.113.1", f"c{n}@example.org").text)
        assert status_of(project, "c3@example.org") == "pending"
        assert status_of(project, "c4@example.org") is None
        for n in range(5, 8):  # its network (203.0.113.0/24): 5 an hour
            answers.add(from_(f"203.0.113.{n}", f"n{n}@example.org").text)
        assert status_of(project, "n6@example.org") == "pending"
        assert status_of(project, "n7@example.org") is None
        # one mailbox: the variants share its limits (one confirmation a day, 2 sign-ups
        # an hour) and are stored as typed
        for n, variant in enumerate(
            ("Ma.Ria+news@gmail.com", "maria@googlemail.com", "m.a.r.i.a+x@gmail.com"), 20
        ):
            answers.add(from_(f"198.51.{n}.1", variant).text)
        listed = people(project)
        assert "Ma.Ria+news@gmail.com" in listed and "maria@googlemail.com" in listed
        assert "m.a.r.i.a+x@gmail.com" not in listed
        assert answers == {reference.text}
        settled(project)
        sent = [m["To"].addresses[0].addr_spec for m in confirmations(project)]
        assert sent.count("Ma.Ria+news@gmail.com") == 1 and "maria@googlemail.com" not in sent
        # 203.0.113.0/24 recorded 5 sign-ups, and may have 2 of the 20 an hour
        assert len([a for a in sent if a.endswith("@example.org")]) == 2
        assert count(project, "mail_state = 'queued'") == 3  # they wait for the next hour
        assert "max_confirmations_per_hour" in server.stderr
    finally:
        server.stop()


def test_an_ipv6_flood_from_one_network_leaves_a_person_their_email(project: Path) -> None:
    """50 sign-ups from one /64 send at most the per-client limit; 100 more from 100 /64s
    of one /48 stop at the network's limit and its share of the cap; a person on another
    network still gets their confirmation after all that junk."""
    configure(project, min_seconds=1, max_confirmations_per_hour=20)  # 2 a network
    configure(project, "serve", trusted_proxies=["127.0.0.1"])
    server = serve(project)

    def from_(client: str, address: str) -> None:
        fields = {"email": address, "form_token": old_token(project)}
        post(server, fields, headers={"X-Forwarded-For": client})

    try:
        for n in range(50):
            from_(f"2001:db8:1:2::{n + 1:x}", f"junk{n}@example.org")
        assert count(project) == 5  # [signup] per_client_per_hour
        for n in range(100):
            from_(f"2001:db8:1:{n + 100:x}::1", f"more{n}@example.org")
        assert count(project) == 20  # [signup] per_network_per_hour, the /48
        from_("2001:db8:ffff:1::1", "person@example.org")
        messages = confirmations(project, 3)
        sent = [m["To"].addresses[0].addr_spec for m in messages]
        assert "person@example.org" in sent
        assert len(sent) == 3  # the /48's share of the cap (2), and the person
    finally:
        server.stop()


def test_repeats_and_members_get_the_same_page(server: Running, project: Path) -> None:
    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode == 0
    )
    listed = json.loads(run_process("subscribers", "list", "--format", "json", cwd=project).stdout)
    active = next(r["email"] for r in listed if r["status"] == "active")
    bounced = [r["email"] for r in listed if r["status"] in ("bounced", "complained")]
    first = sign_up(server, project, "twice@example.org")
    second = sign_up(server, project, "twice@example.org")
    member = sign_up(server, project, active)
    answers = {(a.status_code, a.text) for a in (first, second, member)}
    for address in bounced:
        answer = sign_up(server, project, address)
        answers.add((answer.status_code, answer.text))
    assert len(answers) == 1
    messages = confirmations(project, 1)
    assert [m["To"].addresses[0].addr_spec for m in messages] == ["twice@example.org"]
    assert sent_count(project) == 1
    assert status_of(project, active) == "active"


def test_an_unsubscribed_person_is_unchanged_until_they_confirm(
    server: Running, project: Path
) -> None:
    added = run_process("subscribers", "add", "back@example.org", "--first-name", "Bo", cwd=project)
    assert added.returncode == 0
    assert (
        run_process("subscribers", "unsubscribe", "back@example.org", cwd=project).returncode == 0
    )
    before = people(project)["back@example.org"]
    log_before = history(project, "back@example.org")
    sign_up(server, project, "back@example.org", first_name="Mallory", last_name="Intruder")
    [message] = confirmations(project, 1)
    assert people(project)["back@example.org"] == before  # status, names: untouched
    assert history(project, "back@example.org") == log_before
    # the person confirms: active again, with the names of the sign-up they confirmed
    assert "You are subscribed" in press(server, link_of(message)).text
    after = people(project)["back@example.org"]
    assert (after["status"], after["first_name"], after["last_name"]) == (
        "active",
        "Mallory",
        "Intruder",
    )


def test_links_are_single_use_and_tied_to_their_sign_up(server: Running, project: Path) -> None:
    sign_up(server, project, "once@example.org")
    [first] = confirmations(project, 1)
    old = link_of(first)
    assert "You are subscribed" in press(server, old).text
    assert (
        run_process("subscribers", "unsubscribe", "once@example.org", cwd=project).returncode == 0
    )
    # the old link does not bring them back, before or after a new sign-up
    assert press(server, old).status_code == 410
    sign_up(server, project, "once@example.org")
    assert press(server, old).status_code == 410
    assert requests.get(local(server, old), timeout=30).status_code == 410
    assert status_of(project, "once@example.org") == "unsubscribed"
    # a day later the new sign-up gets its own email (one a day per mailbox): shown by
    # moving the first one's time back a day
    db = connect(project)
    try:
        with db.transaction():
            db.execute("UPDATE signup_requests SET created_at = '2000-01-01T00:00:00Z'")
    finally:
        db.close()
    sign_up(server, project, "once@example.org")
    wait_until(lambda: count(project, "mail_state = 'sent'") == 2, "sent")
    [message] = confirmations(project)  # the outbox names its file by the subscriber
    new = link_of(message)
    assert new != old
    assert press(server, old).status_code == 410  # the new sign-up's link is its own
    assert "You are subscribed" in press(server, new).text
    assert status_of(project, "once@example.org") == "active"


def test_expired_tampered_and_old_style_links(server: Running, project: Path) -> None:
    from newsletter import signup
    from newsletter.tokens import TimedSigner

    sign_up(server, project, "late@example.org")
    [message] = confirmations(project, 1)
    url = link_of(message)
    request_id = int(url.rsplit("/", 1)[1].split(".")[0], 36)
    project_ = library(project)
    try:
        eight_days = dt.datetime.now(dt.UTC) - dt.timedelta(days=8)
        expired = signup.confirm_url(
            project_.settings, project_.store.secret, request_id, eight_days
        )
        [sid] = [
            r["id"]
            for r in rows(project, "SELECT id FROM subscribers WHERE email = 'late@example.org'")
        ]
        # a link of the earlier kind: the subscriber's id, signed under the old purpose
        legacy = TimedSigner(project_.store.secret.current(), b"newsletter-confirm-v1").sign(
            sid, int(time.time())
        )
    finally:
        project_.close()
    for method in ("GET", "POST"):
        answer = requests.request(
            method, local(server, expired), data={"how": "button"}, timeout=30
        )
        assert answer.status_code == 410 and "expired" in answer.text
        assert f"{PUBLIC}/subscribe" in answer.text
        answer = requests.request(
            method, f"{server.url}/confirm/{legacy}", data={"how": "button"}, timeout=30
        )
        assert answer.status_code == 400 and "not valid" in answer.text
    token = url.rsplit("/", 1)[1]
    rid36, issued, signature = token.split(".")
    for forged in (
        f"{rid36}.{issued}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"{int(rid36, 36) + 1:x}.{issued}.{signature}",
        f"{rid36}.{issued}",
        "../../etc/passwd",
    ):
        for method in ("GET", "POST"):
            answer = requests.request(
                method, f"{server.url}/confirm/{forged}", data={"how": "button"}, timeout=30
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
    # names that carry a link, an address or a domain: refused, said on the form
    for name in (
        "your account is locked - verify at https://evil.example/login",
        "www.evil.example",
        "Eve\r\nBcc: victim@example.org",
        "visit evil.com now",
        "Ann. Evil.Example",
    ):
        answer = post(server, {"email": "odd@example.org", "first_name": name, "form_token": token})
        assert answer.status_code == 400, name
        assert "cannot hold a web address" in answer.text and "<form" in answer.text
    # markup, template code, digits and symbols: not a name
    for name in ("{{ 7*7 }}", "<script>alert(1)</script>", "R2D2", "Zoë $$$"):
        answer = post(server, {"email": "odd@example.org", "last_name": name, "form_token": token})
        assert answer.status_code == 400 and "letters, spaces" in answer.text, name
        assert "<script>alert" not in answer.text
    # what a name may be: letters and marks of any script, apostrophes, hyphens, periods
    for n, name in enumerate(("Zoë O'Brien-Smith", "J. R. R.", "Nguyễn Văn", "محمد", "Dr. Ng")):
        answer = post(
            server, {"email": f"ok{n}@example.org", "first_name": name, "form_token": token}
        )
        assert answer.status_code == 200, name
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
    assert long_name.status_code == 400 and "at most 100" in long_name.text
    for address in ("odd@example.org", "json@example.org", "big@example.org", "long@example.org"):
        assert status_of(project, address) is None
    assert len(confirmations(project, 5)) == 5


def test_the_confirmation_email_carries_nothing_the_visitor_typed(
    server: Running, project: Path
) -> None:
    sign_up(server, project, "named@example.org", first_name="Noor", last_name="Haddad")
    [message] = confirmations(project, 1)
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("", "named@example.org")
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    for part in (html, text, str(message["Subject"])):
        assert "Noor" not in part and "Haddad" not in part
    assert "Hello," in text
    # the hidden canary link comes first in the HTML, hidden, and not in the text part
    links = re.findall(r'href="([^"]+/confirm/[^"]+)"', html)
    visible = link_of(message)
    assert len(links) >= 2 and links[0] != visible and visible in links
    assert links[0] not in text
    anchor = re.search(r"<a [^>]*href=\"" + re.escape(links[0]) + r"\"[^>]*>", html).group(0)
    assert "display:none" in anchor and 'aria-hidden="true"' in anchor


def test_the_blog_s_form_comes_from_an_allowed_origin(server: Running, project: Path) -> None:
    snippet = (
        Path(__file__).resolve().parent.parent / "src/newsletter/scaffold/signup-form.html"
    ).read_text()
    names = set(re.findall(r'name="([a-z_]+)"', snippet))
    assert names == {"email", "first_name", "website", "source"}
    # no token: from the blog (a [content] feeds host) by Referer, or by Origin
    by_referer = post(
        server,
        {"email": "blog@example.org", "website": "", "source": ""},
        headers={"Referer": f"{BLOG}/about/"},
    )
    by_origin = post(
        server, {"email": "blog2@example.org", "website": ""}, headers={"Origin": PUBLIC}
    )
    assert by_referer.status_code == by_origin.status_code == 200
    assert len(confirmations(project, 2)) == 2
    assert status_of(project, "blog@example.org") == status_of(project, "blog2@example.org")
    assert status_of(project, "blog@example.org") == "pending"
    # another site's page: refused, with a page that says why; with a token too
    for fields in (
        {"email": "cross@example.org"},
        {"email": "cross@example.org", "form_token": old_token(project)},
    ):
        for origin in ("https://evil.example", f"{BLOG}.evil.example", "http://[::1"):
            answer = post(server, fields, headers={"Origin": origin})
            assert answer.status_code == 403 and "allowed_origins" in answer.text
    # serve's own page posts with its own origin (the Host it was asked under)
    own = post(
        server,
        {"email": "own@example.org", "form_token": old_token(project)},
        headers={"Origin": server.url},
    )
    assert own.status_code == 200
    # an opaque origin ("null": a sandboxed frame, a private context) is no origin:
    # without the page's token it is a bot's post, with it a sign-up
    opaque = post(server, {"email": "opaque@example.org"}, headers={"Origin": "null"})
    assert opaque.status_code == 200 and status_of(project, "opaque@example.org") is None
    fields = {"email": "opaque2@example.org", "form_token": old_token(project)}
    assert post(server, fields, headers={"Origin": "null"}).status_code == 200
    assert status_of(project, "cross@example.org") is None
    assert status_of(project, "own@example.org") == "pending"
    assert status_of(project, "opaque2@example.org") == "pending"


def test_allowed_origins_are_configured_as_origins(project: Path) -> None:
    configure(project, allowed_origins=["https://blog.example.org/path"])
    result = run_process("check", "2026-10-digest", cwd=project)
    assert result.returncode == 1
    assert "allowed_origins" in result.stderr and "scheme://host" in result.stderr
    configure(project, allowed_origins=["https://blog.example.org", "http://[::1]:8080"])
    text = (project / "newsletter.toml").read_text(encoding="utf-8")
    (project / "newsletter.toml").write_text(
        text.replace('allowed_origins = ["https://blog.example.org/path"]\n', ""), "utf-8"
    )
    server = serve(project)
    try:
        fields = {"email": "listed@example.org"}
        ok = post(server, fields, headers={"Origin": "https://blog.example.org"})
        assert ok.status_code == 200
        # the default origins are replaced by the list
        refused = post(server, {"email": "x@example.org"}, headers={"Origin": PUBLIC})
        assert refused.status_code == 403
    finally:
        server.stop()


def test_only_a_person_confirms(project: Path) -> None:
    """The page's script confirms only when no scanner was seen, the email is older than
    scanner_window and the user agent is a browser's; the button always does."""
    configure(
        project,
        min_seconds=1,
        per_client_per_hour=1000,
        per_network_per_hour=1000,
        scanner_window=3600,
    )
    server = serve(project)
    try:
        for n in range(4):
            sign_up(server, project, f"p{n}@example.org")
        messages = {m["To"].addresses[0].addr_spec: m for m in confirmations(project, 4)}

        def canary(n: int) -> str:
            html = messages[f"p{n}@example.org"].get_body(("html",)).get_content()
            return re.findall(r'href="([^"]+/confirm/[^"]+)"', html)[0]

        def link(n: int) -> str:
            return link_of(messages[f"p{n}@example.org"])

        browser = {"User-Agent": BROWSER}
        # too soon after the email went out: the script is not enough
        early = press(server, link(0), "auto", headers=browser)
        assert early.status_code == 200 and "Press the button to confirm" in early.text
        assert "<script" not in early.text and "name='how' value='button'" in early.text
        assert status_of(project, "p0@example.org") == "pending"
        assert "You are subscribed" in press(server, link(0), headers=browser).text
        # the email went out long enough ago (as if an hour passed)
        db = connect(project)
        try:
            with db.transaction():
                db.execute("UPDATE signup_requests SET mailed_at = '2000-01-01T00:00:00Z'")
        finally:
            db.close()
        assert "You are subscribed" in press(server, link(1), "auto", headers=browser).text
        # a scanner followed the hidden link first: the same page, and then a press
        shown = requests.get(local(server, canary(2)), headers=browser, timeout=30)
        real = requests.get(local(server, link(2)), headers=browser, timeout=30)
        assert shown.status_code == real.status_code == 200
        strip = re.compile(r"nonce='[^']+'")
        assert strip.sub("", shown.text) == strip.sub("", real.text)
        posted = press(server, canary(2), "auto", headers=browser)
        assert "Press the button to confirm" in posted.text
        assert "Press the button" in press(server, canary(2), "button", headers=browser).text
        assert status_of(project, "p2@example.org") == "pending"  # the canary never confirms
        assert "Press the button" in press(server, link(2), "auto", headers=browser).text
        assert status_of(project, "p2@example.org") == "pending"
        assert "You are subscribed" in press(server, link(2), headers=browser).text
        # a script's or a scanner's user agent
        for agent in ("python-requests/2.32", "Mozilla/5.0 HeadlessChrome/131.0"):
            answer = press(server, link(3), "auto", headers={"User-Agent": agent})
            assert "Press the button" in answer.text
        assert status_of(project, "p3@example.org") == "pending"
        assert [
            r["scanner_at"] is not None
            for r in rows(project, "SELECT scanner_at FROM signup_requests ORDER BY id")
        ] == [False, False, True, False]
    finally:
        server.stop()


def test_two_servers_on_one_database_send_each_confirmation_once(project: Path) -> None:
    configure(
        project,
        min_seconds=1,
        per_client_per_hour=1000,
        per_network_per_hour=1000,
        max_confirmations_per_hour=1000,
    )
    first, second = serve(project), serve(project)
    try:
        for n in range(30):
            sign_up(first if n % 2 else second, project, f"many{n}@example.org")
        messages = confirmations(project, 30)
    finally:
        first.stop()
        second.stop()
    to = [m["To"].addresses[0].addr_spec for m in messages]
    assert sorted(to) == sorted(f"many{n}@example.org" for n in range(30))
    assert count(project, "mail_state = 'sent'") == 30


def test_expired_sign_ups_are_deleted(server: Running, project: Path) -> None:
    """After confirm_days, `newsletter run` (and serve's sender) delete the requests and
    the pending people who have nothing else, with nothing of them kept."""
    sign_up(server, project, "never@example.org", first_name="Nell")
    sign_up(server, project, "yes@example.org")
    messages = {m["To"].addresses[0].addr_spec: m for m in confirmations(project, 2)}
    press(server, link_of(messages["yes@example.org"]))
    assert run_process("subscribers", "add", "staff@example.org", cwd=project).returncode == 0
    (project / "pending.csv").write_text("email,status\nimported@example.org,pending\n", "utf-8")
    assert run_process("subscribers", "import", "pending.csv", cwd=project).returncode == 0
    db = connect(project)
    try:  # a pending person of an earlier version: a sign-up without a request row
        with db.transaction():
            db.execute(
                "INSERT INTO subscribers (email, email_key, status, attributes, status_reason, "
                "status_changed_at, created_at, updated_at) VALUES ('old@example.org', "
                "'old@example.org', 'pending', '{}', 'signed up', '2026-01-01T00:00:00Z', "
                "'2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
            )
            sid = db.execute(
                "SELECT id FROM subscribers WHERE email = 'old@example.org'"
            ).fetchone()[0]
            db.execute(
                "INSERT INTO subscriber_log (subscriber_id, action, at, source, client_hash) "
                "VALUES (?, 'signup', '2026-01-01T00:00:00Z', 'https://x.example/', 'abc')",
                (sid,),
            )
    finally:
        db.close()
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=6)).isoformat()
    soon = run_process("run", "--now", later, cwd=project)
    assert soon.returncode == 0
    assert status_of(project, "never@example.org") == "pending"  # not yet
    assert count(project) == 2
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=8)).isoformat()
    done = run_process("run", "--now", later, "-v", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "expired sign-ups" in done.stdout + done.stderr
    assert count(project) == 0
    listed = people(project)
    assert "never@example.org" not in listed and "old@example.org" not in listed
    assert listed["yes@example.org"]["status"] == "active"
    assert listed["staff@example.org"]["status"] == "active"
    assert listed["imported@example.org"]["status"] == "pending"  # not a sign-up's
    assert count(project, f"subscriber_id = {sid}", "subscriber_log") == 0
    assert count(project, "email IN ('never@example.org', 'old@example.org')", "subscribers") == 0
    quiet = run_process("run", "--now", later, cwd=project)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_newsletter_run_sends_what_waits_in_the_queue(project: Path) -> None:
    """Without a server's sender (stopped, or another WSGI server): `newsletter run`."""
    from newsletter import signup

    configure(project, min_seconds=1)
    project_ = library(project)
    try:
        desk = signup.SignupDesk.of(project_.settings, project_.store, project_.composer)
        shown = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
        form = signup.SignupForm(
            "queued@example.org", form_token=signup.form_token(desk.secret, shown)
        )
        result = signup.sign_up(desk, form, "192.0.2.7")
        assert result.queued and result.outcome == "confirmation"
    finally:
        project_.close()
    assert confirmations(project) == []  # nothing was sent in the sign-up itself
    done = run_process("run", "-v", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "sign-up confirmations (1 sent)" in done.stdout + done.stderr
    assert [m["To"].addresses[0].addr_spec for m in confirmations(project)] == [
        "queued@example.org"
    ]
    again = run_process("run", cwd=project)
    assert again.returncode == 0 and again.stdout == "" and again.stderr == ""
    assert len(confirmations(project)) == 1


def test_pending_people_get_no_campaign(server: Running, project: Path) -> None:
    sign_up(server, project, "waiting@example.org")
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


def test_forget_removes_consent_data_and_sign_ups(server: Running, project: Path) -> None:
    sign_up(
        server,
        project,
        "gone@example.org",
        first_name="Gwen",
        source="https://blog.example.org/gone@example.org",
    )
    [message] = confirmations(project, 1)
    press(server, link_of(message))
    run_process("subscribers", "unsubscribe", "gone@example.org", cwd=project)
    sign_up(server, project, "Gone+again@example.org", first_name="Gwen")  # a variant
    before = rows(project, "SELECT source, client_hash FROM subscriber_log")
    assert any(r["client_hash"] for r in before) and any(r["source"] for r in before)
    assert count(project) == 2
    assert (
        run_process("subscribers", "forget", "gone@example.org", "--yes", cwd=project).returncode
        == 0
    )
    log = rows(project, "SELECT * FROM subscriber_log")
    assert log and all(
        r["source"] is None and r["client_hash"] is None and r["detail"] is None for r in log
    )
    assert count(project) == 0  # the requests went whole, the variant's too
    assert not confirmations(project)  # the outbox file went too
    # and a new sign-up of the erased address records and sends nothing
    answer = sign_up(server, project, "gone@example.org")
    assert answer.status_code == 200
    settled(project)
    assert not confirmations(project) and count(project, "mail_state = 'queued'") == 0


def test_welcome_email_after_confirming(project: Path) -> None:
    configure(project, welcome=True, per_client_per_hour=1000)
    server = serve(project)
    try:
        sign_up(server, project, "hello@example.org")
        [message] = confirmations(project, 1)
        for _ in range(2):  # confirming twice welcomes once
            assert press(server, link_of(message)).status_code == 200
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
    configure(project, "serve", trusted_proxies=["127.0.0.1"])

    def sign_up_as(running: Running, n: int, forwarded: str) -> None:
        fields = {"email": f"p{n}@example.org", "form_token": old_token(project)}
        answer = post(running, fields, headers={"X-Forwarded-For": forwarded})
        assert answer.status_code == 200, (answer.status_code, running.stderr)

    server = serve(project)
    try:
        for n in range(3):  # one client behind the proxy on this host: two an hour
            sign_up_as(server, n, "203.0.113.5")
        assert [status_of(project, f"p{n}@example.org") for n in range(3)] == [
            "pending",
            "pending",
            None,
        ]
        sign_up_as(server, 3, "203.0.113.6")  # another client: its own two
        assert status_of(project, "p3@example.org") == "pending", server.stderr
        sign_up_as(server, 4, "198.51.100.1, 203.0.113.5")  # a made-up first hop changes nothing
        assert status_of(project, "p4@example.org") is None
    finally:
        server.stop()


def test_a_passed_on_forwarded_header_cannot_spoof_the_client(project: Path) -> None:
    """No proxy trusted (the default): X-Forwarded-For is anybody's words, even when a
    local proxy passes it on unchanged; every sign-up is the connecting host's own."""
    configure(project, min_seconds=1, per_client_per_hour=2)
    server = serve(project)
    try:
        for n, forwarded in enumerate(("192.0.2.77", "192.0.2.78", "192.0.2.79", "::1")):
            fields = {"email": f"p{n}@example.org", "form_token": old_token(project)}
            post(server, fields, headers={"X-Forwarded-For": forwarded})
        assert [status_of(project, f"p{n}@example.org") for n in range(4)] == [
            "pending",
            "pending",
            None,
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


def test_throwaway_domains_are_refused_on_the_form(project: Path) -> None:
    configure(project, min_seconds=1)
    server = serve(project)
    try:
        for address in ("someone@mailinator.com", "x@sub.mailinator.com"):
            answer = sign_up(server, project, address)
            assert answer.status_code == 400 and "throwaway addresses" in answer.text
            assert "<form" in answer.text and "mailinator.com" in answer.text
        assert count(project) == 0 and status_of(project, "someone@mailinator.com") is None
    finally:
        server.stop()
    configure(project, block_disposable=False)
    server = serve(project)
    try:
        assert sign_up(server, project, "someone@mailinator.com").status_code == 200
        assert status_of(project, "someone@mailinator.com") == "pending"
    finally:
        server.stop()


def solve(challenge: dict[str, object]) -> str:
    """What the page's script writes into the altcha field: the number found."""
    import base64
    import hashlib

    salt, target = str(challenge["salt"]), str(challenge["challenge"])
    number = next(
        n
        for n in range(int(challenge["maxnumber"]) + 1)
        if hashlib.sha256(f"{salt}{n}".encode()).hexdigest() == target
    )
    payload = {k: challenge[k] for k in ("algorithm", "challenge", "salt", "signature")}
    return base64.b64encode(json.dumps({**payload, "number": number}).encode()).decode()


def test_proof_of_work_when_asked_for(project: Path) -> None:
    import html as html_

    configure(project, min_seconds=1, proof_of_work=True, proof_of_work_max_number=2000)
    server = serve(project)
    try:
        shown = requests.get(f"{server.url}/subscribe", timeout=30)
        found = re.search(r"data-altcha-challenge='([^']+)'", shown.text)
        challenge = json.loads(html_.unescape(found.group(1)))
        nonce = re.search(r"<script nonce='([^']+)'>", shown.text).group(1)
        assert f"script-src 'nonce-{nonce}'" in shown.headers["Content-Security-Policy"]
        token = form_token(shown.text)
        time.sleep(1.2)
        reference = post(server, {"email": "bot@example.org", "form_token": token})
        for proof in ("", "e30=", "not base64 at all"):  # none, {}, junk: a bot's
            answer = post(
                server, {"email": "bot@example.org", "form_token": token, "altcha": proof}
            )
            assert (answer.status_code, answer.text) == (reference.status_code, reference.text)
        blog = post(server, {"email": "bot@example.org"}, headers={"Origin": PUBLIC})
        assert blog.text == reference.text  # a form without the proof, even from the blog
        assert count(project) == 0
        proof = solve(challenge)
        fields = {"email": "worked@example.org", "form_token": token, "altcha": proof}
        assert post(server, fields).text == reference.text
        assert status_of(project, "worked@example.org") == "pending"
        replay = {"email": "again@example.org", "form_token": token, "altcha": proof}
        assert post(server, replay).text == reference.text
        assert status_of(project, "again@example.org") is None  # a proof works once
    finally:
        server.stop()


def test_a_failing_transport_fails_the_email_not_the_server(project: Path) -> None:
    """The sender thread meets a transport that refuses: the request is marked failed
    (never sent again), one line on stderr without the address, and serve goes on."""
    import socket

    from conftest import set_delivery

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    set_delivery(project, transport="smtp", host="127.0.0.1", port=port, security="none")
    configure(project, min_seconds=1, send_timeout=2)
    server = serve(project)
    try:
        answer = sign_up(server, project, "unlucky@example.org")
        assert answer.status_code == 200 and "Check your inbox" in answer.text
        wait_until(lambda: count(project, "mail_state = 'failed'") == 1, "failed")
        assert requests.get(f"{server.url}/health", timeout=30).text == "ok"
        again = sign_up(server, project, "second@example.org")
        assert again.status_code == 200
        wait_until(lambda: count(project, "mail_state = 'failed'") == 2, "failed")
    finally:
        server.stop()
    assert server.proc.returncode == 0 and "Stopped." in server.stderr  # the thread stopped
    assert server.stderr.count("email to u***@example.org was not sent") == 1
    assert "unlucky@example.org" not in server.stderr
    assert "Traceback" not in server.stderr
    assert count(project, "mail_state IN ('queued', 'sending', 'sent')") == 0


def test_a_send_that_died_midway_is_failed_never_sent_again(project: Path) -> None:
    """A claim left in 'sending' (its process killed) is marked failed after 10 minutes
    by the next claimer, and its email is not sent: a duplicate is worse than a miss."""
    from newsletter import signup

    configure(project, min_seconds=1)
    project_ = library(project)
    try:
        desk = signup.SignupDesk.of(project_.settings, project_.store, project_.composer)
        shown = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
        for address in ("died@example.org", "fresh@example.org"):
            form = signup.SignupForm(address, form_token=signup.form_token(desk.secret, shown))
            assert signup.sign_up(desk, form, "192.0.2.7").queued
    finally:
        project_.close()
    db = connect(project)
    try:
        with db.transaction():
            db.execute(
                "UPDATE signup_requests SET mail_state = 'sending', claimed_at = ? WHERE id = 1",
                (
                    (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=11)).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                ),
            )
    finally:
        db.close()
    assert run_process("run", cwd=project).returncode == 0
    states = rows(project, "SELECT id, mail_state, detail FROM signup_requests ORDER BY id")
    assert [r["mail_state"] for r in states] == ["failed", "sent"]
    assert "not sent again" in states[0]["detail"]
    assert [m["To"].addresses[0].addr_spec for m in confirmations(project)] == ["fresh@example.org"]
