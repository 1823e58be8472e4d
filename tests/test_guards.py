"""The sign-up's guards without a database (guards.py): the disposable-domain blocklist
and the ALTCHA proof of work, solved by altcha's own solver and by the page's script in
real headless Chromium under the served pages' nonce CSP."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import jinja2
import pytest
from altcha import create_challenge_v1, solve_challenge_v1
from disposable_email_domains import blocklist

from conftest import CHROMIUM, CHROMIUM_ARGS
from newsletter.guards import (
    _Spent,
    blocklist_version,
    disposable_domain,
    pow_challenge,
    pow_key,
    pow_verify,
)

SECRET = "the store's link secret"


# -- disposable domains -------------------------------------------------------------
@pytest.mark.parametrize(
    "domain",
    [
        "mailinator.com",
        "MAILINATOR.COM",
        "Mailinator.Com.",  # the root's dot
        " mailinator.com ",
        "x.mailinator.com",  # a subdomain of a listed one
        "a.b.c.mailinator.com",
        "someone@mailinator.com",  # an address given whole
        "someone@X.Mailinator.com",
        "ｍａｉｌｉｎａｔｏｒ．ｃｏｍ",  # full-width letters and dot: IDNA maps them to ASCII
        "mailinator\u3002com",  # the ideographic full stop is a dot to IDNA
        "xn--yaho-sqa.com",  # listed in its ASCII form
        "yahóo.com",  # ... and typed in Unicode
        "YAHÓO.COM",
        "sub.yahóo.com",
        "dé.net",  # xn--d-bga.net
        "雨云.com",  # xn--9kq967o.com
    ],
)
def test_listed_domains_are_disposable(domain: str) -> None:
    assert disposable_domain(domain)


@pytest.mark.parametrize(
    "domain",
    [
        "example.org",
        "gmail.com",
        "mailinator.com.example.org",  # a listed domain as a subdomain of another
        "xmailinator.com.example.org",
        "com",
        "müller.de",
    ],
)
def test_other_domains_are_not(domain: str) -> None:
    assert not disposable_domain(domain)


@pytest.mark.parametrize(
    "junk",
    [
        "",
        " ",
        ".",
        "..",
        "@",
        "@@@",
        "a..mailinator",
        "\x00",
        "\ud800.com",  # a lone surrogate: no encoding takes it
        "\u200b.com",
        "é" * 70 + ".com",  # a label too long for IDNA
        "a" * 300 + ".com",
        "x." * 50_000,
        "💌.example",
        None,
        42,
        b"mailinator.com",
        ["mailinator.com"],
    ],
)
def test_junk_is_not_disposable_and_never_raises(junk: object) -> None:
    assert disposable_domain(junk) is False  # type: ignore[arg-type]


def test_blocklist_version_names_the_installed_list() -> None:
    version = metadata.version("disposable-email-domains")
    assert blocklist_version() == f"disposable-email-domains {version} ({len(blocklist):,} domains)"


# -- proof of work -----------------------------------------------------------------
def solved(challenge: dict, **changes: object) -> str:
    """The payload the widget would send, solved by altcha's own solver."""
    solution = solve_challenge_v1(
        challenge["challenge"], challenge["salt"], challenge["algorithm"], challenge["maxnumber"]
    )
    assert solution is not None
    fields = {
        "algorithm": challenge["algorithm"],
        "challenge": challenge["challenge"],
        "number": solution.number,
        "salt": challenge["salt"],
        "signature": challenge["signature"],
    }
    return encode({**fields, **changes})


def encode(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def test_a_solved_challenge_passes_once() -> None:
    challenge = pow_challenge(SECRET, 1000)
    assert set(challenge) == {"algorithm", "challenge", "salt", "signature", "maxnumber"}
    assert challenge["algorithm"] == "SHA-256" and challenge["maxnumber"] == 1000
    json.dumps(challenge)  # the page embeds it as JSON
    payload = solved(challenge)
    assert pow_verify(payload, SECRET)
    assert not pow_verify(payload, SECRET)  # replayed


def test_a_payload_is_accepted_by_one_of_many_threads() -> None:
    payload = solved(pow_challenge(SECRET, 1000))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: pow_verify(payload, SECRET), range(32)))
    assert answers.count(True) == 1


def test_the_challenge_expires_in_twenty_minutes() -> None:
    now = dt.datetime.now(dt.UTC)
    challenge = pow_challenge(SECRET, 100, now=now)
    expires = int(urllib.parse.parse_qs(challenge["salt"].split("?")[1])["expires"][0])
    assert expires == int((now + dt.timedelta(minutes=20)).timestamp())
    assert pow_verify(solved(challenge), SECRET)


def test_an_expired_challenge_is_refused() -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=21)
    assert not pow_verify(solved(pow_challenge(SECRET, 100, now=long_ago)), SECRET)


def test_the_key_is_derived_for_its_purpose() -> None:
    assert pow_key(SECRET) != SECRET and pow_key(SECRET) == pow_key(SECRET.encode())
    assert pow_key(SECRET) != pow_key(SECRET + "x")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    # signed with the link secret itself: another key, refused
    made = create_challenge_v1(algorithm="SHA-256", max_number=100, hmac_key=SECRET, expires=later)
    challenge = {**made.to_dict(), "maxnumber": 100}
    assert not pow_verify(solved(challenge), SECRET)
    assert not pow_verify(solved(pow_challenge(SECRET, 100)), "another secret")


def tampered() -> Iterator[tuple[str, str]]:
    """(what was changed, the payload): a genuine solution, each time altered one way."""
    challenge = pow_challenge(SECRET, 100)
    good = json.loads(base64.b64decode(solved(challenge)))
    other = pow_challenge(SECRET, 100)
    far = challenge["salt"].replace("expires=", "expires=9")  # an expiry pushed away
    yield "another number", encode({**good, "number": (good["number"] + 1) % 101})
    yield "the number as text", encode({**good, "number": str(good["number"])})
    yield "a float number", encode({**good, "number": float(good["number"])})
    yield "a boolean number", encode({**good, "number": True})
    yield "a negative number", encode({**good, "number": -1})
    yield "another signature", encode({**good, "signature": other["signature"]})
    yield "an upper-case signature", encode({**good, "signature": good["signature"].upper()})
    yield "another challenge", encode({**good, "challenge": other["challenge"]})
    yield "a later expiry", encode({**good, "salt": far})
    yield "no expiry", encode({**good, "salt": challenge["salt"].split("?")[0]})
    yield "SHA-1", encode({**good, "algorithm": "SHA-1"})
    yield "no algorithm", encode({k: v for k, v in good.items() if k != "algorithm"})
    yield "no signature", encode({k: v for k, v in good.items() if k != "signature"})
    yield "extra fields kept out", encode({**good, "salt": good["salt"] + "x=1&"})


@pytest.mark.parametrize("change", [why for why, _ in tampered()])
def test_a_tampered_payload_is_refused(change: str) -> None:
    payload = dict(tampered())[change]  # made again: challenges are random
    assert not pow_verify(payload, SECRET), change


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        " ",
        "!!!!",
        "not base64 at all",
        "e30=",  # {}
        encode([]),
        encode(["algorithm", "challenge", "number", "salt", "signature"]),
        encode("algorithm challenge number salt signature"),
        encode(5),
        encode(None),
        encode({"algorithm": None, "challenge": 1, "number": {}, "salt": [], "signature": 2}),
        base64.b64encode(b"\xff\xfe{}").decode(),  # not UTF-8
        base64.b64encode(b"[" * 100_000).decode(),  # deep nesting, and too long
        base64.b64encode(b"[" * 700).decode(),
        "A" * 10_000_000,
        "é",
        "\x00",
        None,
        42,
        b"e30=",
        {"algorithm": "SHA-256"},
    ],
    ids=lambda v: repr(v)[:30],
)
def test_garbage_is_refused_and_never_raises(garbage: object) -> None:
    assert pow_verify(garbage, SECRET) is False  # type: ignore[arg-type]


def test_a_challenge_needs_a_positive_difficulty_and_an_aware_time() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        pow_challenge(SECRET, 0)
    with pytest.raises(ValueError, match="time zone"):
        pow_challenge(SECRET, 10, now=dt.datetime(2026, 12, 6, 5, 0))


def test_the_replay_memory_is_bounded_and_forgets_expired_ones_first() -> None:
    spent = _Spent(limit=3)
    now = dt.datetime.now(dt.UTC).timestamp()
    assert spent.spend("a", now - 1)  # expired already: the first to go
    assert spent.spend("b", now + 600) and spent.spend("c", now + 600)
    assert not spent.spend("b", now + 600)
    assert spent.spend("d", now + 600)  # "a" made room
    assert not spent.spend("c", now + 600)
    assert spent.spend("e", now + 600)  # full of live ones: the oldest, "b", forgotten
    assert spent.spend("b", now + 600) and not spent.spend("e", now + 600)


# -- the page's script, in Chromium -------------------------------------------------
FORM = """<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sign up</title></head>
<body><form method='post' action='/subscribe'>
<label for='email'>Email address</label><input id='email' name='email'>
{% include '_pow.html' %}
<button type='submit'>Sign up</button>
</form></body></html>"""
POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class FormSite:
    """A local http.server that answers GET / with the form (a fresh nonce and challenge
    each time, under the nonce CSP) and keeps what POST /subscribe receives."""

    def __init__(self, challenge: Callable[[], dict]) -> None:
        environment = jinja2.Environment(
            loader=jinja2.PackageLoader("newsletter.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        template = environment.from_string(FORM)
        posted = self.posted = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                nonce = secrets.token_urlsafe(16)
                body = template.render(nonce=nonce, challenge=challenge())
                self.answer(body, f"{POLICY}; script-src 'nonce-{nonce}'")

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                posted.append(urllib.parse.parse_qs(self.rfile.read(length).decode()))
                self.answer("<!doctype html><title>Thanks</title><p>Received.", POLICY)

            def answer(self, body: str, policy: str) -> None:
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Security-Policy", policy)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_the_page_solves_the_challenge_in_chromium_under_the_csp() -> None:
    from playwright.sync_api import sync_playwright

    site = FormSite(lambda: pow_challenge(SECRET, 100_000))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            refused: list[str] = []
            page.on("console", lambda m: refused.append(m.text) if "Security" in m.text else 0)
            page.goto(site.url)
            status = page.get_by_role("status")
            button = page.get_by_role("button", name="Sign up")
            assert status.get_attribute("aria-live") == "polite"
            page.get_by_text("Done: you can sign up.").wait_for(timeout=60_000)
            assert button.is_enabled()
            payload = page.locator("[name=altcha]").input_value()
            fields = json.loads(base64.b64decode(payload))
            assert set(fields) == {"algorithm", "challenge", "number", "salt", "signature"}
            assert 0 <= fields["number"] <= 100_000
            page.get_by_label("Email address").fill("reader@example.org")
            button.click()
            page.wait_for_selector("text=Received.")
            [form] = site.posted
            assert form["altcha"] == [payload] and form["email"] == ["reader@example.org"]
            assert pow_verify(form["altcha"][0], SECRET)
            assert refused == []

            # Without JavaScript: nothing to send but the field left empty, and the
            # <noscript> says why.
            quiet = browser.new_context(java_script_enabled=False).new_page()
            quiet.goto(site.url)
            said = quiet.locator("noscript p")  # Playwright's text search skips <noscript>
            assert said.is_visible() and "This form needs JavaScript" in said.inner_text()
            assert quiet.locator("[name=altcha]").input_value() == ""
            assert quiet.get_by_role("status").inner_text() == ""
            browser.close()
    finally:
        site.close()


def unsolvable(max_number: int) -> Callable[[], dict]:
    """Challenges whose number lies past ``max_number``: the page never finds it."""

    def make() -> dict:
        made = create_challenge_v1(
            algorithm="SHA-256",
            max_number=max_number,
            hmac_key=pow_key(SECRET),
            number=max_number + 1,
            expires=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20),
        )
        return {**made.to_dict(), "maxnumber": max_number}

    return make


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
def test_the_button_waits_for_a_solution() -> None:
    """While the page works the button is disabled and the status says so; a challenge
    it cannot solve leaves the button disabled and asks for a reload."""
    from playwright.sync_api import sync_playwright

    working, failing = FormSite(unsolvable(10**9)), FormSite(unsolvable(1_000))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(working.url)
            page.get_by_text("Checking your browser…").wait_for()
            assert page.get_by_role("button", name="Sign up").is_disabled()
            assert page.locator("[name=altcha]").input_value() == ""
            page.close()  # its search would go on for hours
            page = browser.new_page()
            page.goto(failing.url)
            page.get_by_text("The check did not succeed. Please reload the page.").wait_for()
            assert page.get_by_role("button", name="Sign up").is_disabled()
            assert page.locator("[name=altcha]").input_value() == ""
            browser.close()
    finally:
        working.close()
        failing.close()
