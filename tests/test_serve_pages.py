"""serve's pages and routes without a server: every template escapes what it is given and
refuses what it is not; the route table answers each path with one handler and its methods."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest

from newsletter.web import pages
from newsletter.web.serve import ROUTES, Refused, ServeApp, _route

HOSTILE = "<img src=x onerror=alert(1)> & 'q' \"q\" {{ 7*7 }}"
TEMPLATES = Path(pages.__file__).parent / "templates"
# every name a template reads, besides title and message
CONTEXT = {
    "signup.html": ("problem", "honeypot", "form_token", "form_version", "source", "consent"),
    "confirm.html": ("nonce",),
}
# names that are not text: the page's switches
SWITCHES: dict[str, dict[str, object]] = {
    "signup.html": {"challenge": None, "nonce": ""},
    "confirm.html": {"auto": True},
}


def names() -> list[str]:
    """The pages (a partial, ``_*.html``, is tested with the page that includes it, and
    ``_pow.html`` in test_guards.py)."""
    return sorted(p.name for p in TEMPLATES.glob("*.html") if not p.name.startswith("_"))


@pytest.mark.parametrize("name", names())
def test_every_page_escapes_what_it_is_given(name: str) -> None:
    context = dict.fromkeys(CONTEXT.get(name, ()), HOSTILE)
    html = pages.page(HOSTILE, HOSTILE, name, **context, **SWITCHES.get(name, {}))
    assert "<img" not in html and "onerror=alert(1)>" not in html
    shown = 3 + len(context) + (name == "signup.html")  # title twice; the form's version too
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") == shown
    assert "{{ 7*7 }}" in html and "49" not in html
    assert html.startswith("<!doctype html>") and "<html lang='en' dir='ltr'>" in html


@pytest.mark.parametrize("name", sorted(CONTEXT))
def test_a_page_refuses_a_value_it_was_not_given(name: str) -> None:
    with pytest.raises(jinja2.UndefinedError):
        pages.page("Title", "", name)


def test_no_template_marks_anything_safe() -> None:
    for path in TEMPLATES.glob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\|\s*safe|autoescape\s+false|Markup", text), path.name


def test_the_message_paragraph_is_left_out_when_empty() -> None:
    assert "<p" not in pages.page("Only a title").split("<body>")[1]
    assert "<p dir='auto'>Some text</p>" in pages.page("Title", "Some text")


def environ(method: str, path: str) -> dict[str, object]:
    return {"REQUEST_METHOD": method, "PATH_INFO": path}


@pytest.mark.parametrize(
    ("path", "handler", "rest"),
    [
        ("/u/a.b.c", ServeApp._unsubscribe, "a.b.c"),
        ("/c/2026-10-digest", ServeApp._web_version, "2026-10-digest"),
        ("/archive", ServeApp._archive, ""),
        ("/archive/feed.xml", ServeApp._archive, "feed.xml"),
        ("/subscribe", ServeApp._subscribe, ""),
        ("/health", ServeApp._health, ""),
    ],
)
def test_a_path_goes_to_one_handler_with_the_rest(path: str, handler: object, rest: str) -> None:
    route, found = _route(environ("GET", path))
    assert route.handler is handler and found == rest


@pytest.mark.parametrize("path", ["/", "/subscribe/x", "/healthz", "/u", "/archived"])
def test_paths_no_route_takes_are_not_found(path: str) -> None:
    with pytest.raises(Refused) as refused:
        _route(environ("GET", path))
    assert refused.value.status == "404 Not Found"


def test_a_method_a_route_does_not_take_names_those_it_does() -> None:
    with pytest.raises(Refused) as refused:
        _route(environ("DELETE", "/confirm/x"))
    assert refused.value.status == "405 Method Not Allowed"
    assert refused.value.headers == (("Allow", "GET, HEAD, POST"),)
    with pytest.raises(Refused) as refused:
        _route(environ("GET", "/webhooks/postmark"))
    assert refused.value.headers == (("Allow", "POST"),)


def test_each_route_is_listed_once_and_only_sign_up_lowers_the_body_limit() -> None:
    assert len({r.path for r in ROUTES}) == len(ROUTES)
    limits = {r.path: r.body_limit(1024 * 1024) for r in ROUTES}
    assert limits.pop("/subscribe") == 16 * 1024
    assert set(limits.values()) == {1024 * 1024}
    assert next(r for r in ROUTES if r.path == "/subscribe").body_limit(1000) == 1000
