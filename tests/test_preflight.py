"""`newsletter check`'s preflight: what the transport can do, readers' data, links and
templates, each through the real CLI in a child process."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from conftest import run_process, set_delivery, set_newsletter
from test_check import check, write

pytestmark = pytest.mark.slow


def test_a_non_ascii_reply_to_with_postmark_is_an_error_before_any_send(project: Path) -> None:
    from fakes.postmark import FakePostmark

    set_newsletter(project, reply_to="rédaction@riverbend-clinicians.example")
    run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    slug = write(project)
    assert check(project, slug)[0] == 0, "the outbox carries SMTPUTF8"
    with FakePostmark(token="t") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url)
        status, problems, _ = check(project, slug)
        assert status == 1
        [found] = [p for p in problems if p["code"] == "transport-cannot-send"]
        assert "reply_to" in found["message"] and "SMTPUTF8" in found["message"]
        assert "ASCII" in found["where"]
        env = {"NEWSLETTER_API_KEY": "t"}
        dry = run_process("send", slug, "--dry-run", cwd=project, env=env)
        assert dry.returncode == 1 and "reply_to" in dry.stderr, dry.stdout + dry.stderr
        real = run_process("send", slug, "--yes", cwd=project, env=env)
        assert real.returncode == 1 and "Sending" not in real.stdout
        assert pm.requests == []


def test_a_non_ascii_from_with_postmark_is_an_error(project: Path) -> None:
    set_newsletter(project, **{"from": "Jörg <jörg@riverbend-clinicians.example>"})
    set_delivery(project, transport="postmark")
    status, problems, _ = check(project, write(project))
    assert status == 1
    [found] = [p for p in problems if p["code"] == "transport-cannot-send"]
    assert "[newsletter] from" in found["message"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
        "http://192.168.1.20",
        "http://10.0.0.7/news",
        "http://localhost:8000",
        "http://news.local",
        "http://[::ffff:127.0.0.1]",
        "http://0.0.0.0",
    ],
)
def test_a_public_url_only_this_machine_can_reach_is_a_warning_for_a_real_send(
    project: Path, url: str
) -> None:
    set_newsletter(project, public_url=url)
    slug = write(project)
    status, problems, _ = check(project, slug)
    assert "local-public-url" not in {p["code"] for p in problems}, "the outbox reaches no one"
    set_delivery(project, transport="smtp", host="127.0.0.1", port=2525)
    status, problems, _ = check(project, slug)
    assert status == 0
    [found] = [p for p in problems if p["code"] == "local-public-url"]
    assert found["level"] == "warning" and url in found["message"]


def test_a_public_public_url_is_not_flagged(project: Path) -> None:
    set_newsletter(project, public_url="https://news.example.net")
    set_delivery(project, transport="smtp", host="127.0.0.1", port=2525)
    _, problems, _ = check(project, write(project))
    assert "local-public-url" not in {p["code"] for p in problems}


def _first_reader_breaks_an_expression(project: Path, n_broken: int = 1) -> None:
    """Readers whose first one (the one `check` used to build for) has no tags, which
    ``recipient.tags[0]`` needs; ``n_broken`` readers in all have none."""
    rows = [f"notags{i}@example.org,No{i}," for i in range(n_broken)]
    rows += ["second@example.org,Ana,members", "third@example.org,Cy,board"]
    (project / "people.csv").write_text("email,first_name,tags\n" + "\n".join(rows) + "\n")
    assert run_process("subscribers", "import", "people.csv", cwd=project).returncode == 0
    write(project, body="Your first group: {{ recipient.tags[0] }}.")


def test_a_first_reader_whose_data_breaks_an_expression_blocks_no_one(project: Path) -> None:
    _first_reader_breaks_an_expression(project)
    status, problems, _ = check(project, "c")
    assert status == 0, problems
    [found] = [p for p in problems if p["code"] == "reader-data"]
    assert found["level"] == "warning"
    assert "1 of 3 readers" in found["message"] and "notags0@example.org" in found["message"]
    assert run_process("build", "c", cwd=project).returncode == 0
    sent = run_process("send", "c", "--yes", cwd=project)
    assert sent.returncode == 3, sent.stderr  # some readers invalid
    report = run_process("report", "c", "--format", "json", cwd=project)
    statuses = {r["email"]: r["status"] for r in json.loads(report.stdout)["recipients"]}
    assert statuses == {
        "notags0@example.org": "invalid",
        "second@example.org": "sent",
        "third@example.org": "sent",
    }


def test_check_names_ten_failing_readers_and_counts_the_rest(project: Path) -> None:
    _first_reader_breaks_an_expression(project, n_broken=25)
    status, problems, _ = check(project, "c")
    assert status == 0
    [found] = [p for p in problems if p["code"] == "reader-data"]
    assert "25 of 27 readers" in found["message"]
    named = [
        f"notags{i}@example.org:"
        for i in range(25)
        if f"notags{i}@example.org:" in found["message"]
    ]
    assert len(named) == 10 and found["message"].endswith("; and 15 more")


def test_a_template_that_fails_for_every_reader_still_stops_the_send(project: Path) -> None:
    (project / "people.csv").write_text("email,first_name\na@example.org,A\nb@example.org,B\n")
    assert run_process("subscribers", "import", "people.csv", cwd=project).returncode == 0
    write(project, body="Your first group: {{ recipient.tags[0] }}.")
    status, problems, _ = check(project, "c")
    assert status == 1 and [p["code"] for p in problems] == ["does-not-build"]
    sent = run_process("send", "c", "--yes", cwd=project)
    assert sent.returncode == 1 and "tags" in sent.stderr


def _template(project: Path, name: str, text: str) -> None:
    (project / "templates" / name).write_text(text, encoding="utf-8")


IMAGES = """<mj-section><mj-column>
<mj-image src="https://blog.example.org/logo.png" alt="Riverbend" width="200px" />
<mj-image src="https://blog.example.org/rule.png" alt="" />
<mj-image src="https://blog.example.org/{{ 'a' if 2 > 1 else 'b' }}.png" alt="A or B" />
<mj-image data-alt="not alt"
  src="https://blog.example.org/team.png"></mj-image>
</mj-column></mj-section>
"""


def test_an_mj_image_without_alt_in_a_project_template_is_named_with_its_line(
    project: Path,
) -> None:
    _template(project, "_header.mjml", IMAGES)
    # a template this campaign does not use is the project's all the same
    _template(
        project, "announcement.mjml", "<mjml><mj-body><mj-image\nsrc='x.png'/></mj-body></mjml>"
    )
    _, problems, _ = check(project, write(project))
    found = [p for p in problems if p["code"] == "template-image-without-alt"]
    assert [(p["level"], p["where"].split(":")[0]) for p in found] == [
        ("warning", "templates/_header.mjml, line 5"),
        ("warning", "templates/announcement.mjml, line 1"),
    ]
    assert "team.png" in found[0]["message"] and 'alt=""' in found[0]["where"]


def test_project_templates_whose_images_all_have_alt_are_not_flagged(project: Path) -> None:
    _template(
        project,
        "_header.mjml",
        IMAGES.replace("<mj-image data-alt", "<mj-image alt='Team' data-alt"),
    )
    _, problems, _ = check(project, write(project))
    assert "template-image-without-alt" not in {p["code"] for p in problems}


class _HeadIsWrong(http.server.BaseHTTPRequestHandler):
    """A server that answers HEAD 404 and GET 200, as some do."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(404)
        self.end_headers()

    def do_GET(self) -> None:
        body = b"<html><body>fine</body></html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_broken_and_unreachable_links_are_warnings_and_offline_requests_none(
    project: Path,
) -> None:
    from blog_server import Blog

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
    dead = f"http://127.0.0.1:{closed.getsockname()[1]}/page"
    head = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HeadIsWrong)
    threading.Thread(target=head.serve_forever, daemon=True).start()
    try:
        with Blog() as blog:
            blog.routes["/ok/"] = ("text/html", b"<html><body>ok</body></html>")
            blog.errors["/down/"] = (503, "Service Unavailable")
            slug = write(
                project,
                articles=False,
                body=(
                    f"[ok]({blog.url}/ok/), [gone]({blog.url}/gone/), [down]({blog.url}/down/), "
                    f"[dead]({dead}), [head](http://127.0.0.1:{head.server_address[1]}/x) "
                    "and [example](https://blog.example.org/never-asked)."
                ),
            )
            status, problems, _ = check(project, slug, "--offline")
            assert status == 0 and problems == [] and blog.hits == {}
            status, problems, _ = check(project, slug)
            assert status == 0
            broken = sorted(p["message"] for p in problems if p["code"] == "broken-link")
            assert len(broken) == 3, broken
            assert any("/gone/" in b and "404" in b for b in broken)
            assert any("/down/" in b and "503" in b for b in broken)
            assert any(dead in b for b in broken)
            assert all(p["level"] == "warning" for p in problems if p["code"] == "broken-link")
    finally:
        head.shutdown()
        head.server_close()
        closed.close()


def test_links_through_a_shortener_are_warnings(project: Path) -> None:
    slug = write(
        project,
        articles=False,
        body=(
            "[a](https://bit.ly/3xYz), [b](https://www.tinyurl.com/abc), [c](https://t.co/q), "
            "[d](https://bit.ly/3xYz), [e](https://notbit.ly/x), [f](https://bit.ly.example.net/x), "
            "[g](https://cutt.ly./z) and [h](https://example.net/bit.ly/x)."
        ),
    )
    status, problems, _ = check(project, slug, "--offline")
    assert status == 0
    found = [
        p["message"].split()[2].split("?")[0] for p in problems if p["code"] == "shortened-link"
    ]
    assert found == [
        "https://bit.ly/3xYz",
        "https://www.tinyurl.com/abc",
        "https://t.co/q",
        "https://cutt.ly./z",
    ]


FAINT = """<mj-section background-color="#ffffff"><mj-column>
<mj-text color="#aaaaaa">Words in a faint grey</mj-text>
<mj-text color="#595959">Words in a dark enough grey</mj-text>
</mj-column></mj-section>
"""


def test_text_too_faint_in_light_mode_is_a_warning(project: Path) -> None:
    _template(project, "_header.mjml", FAINT)
    status, problems, _ = check(project, write(project), "--offline")
    assert status == 0
    found = [p for p in problems if p["code"] == "low-contrast"]
    assert [(p["level"], p["message"].split(":")[0]) for p in found] == [
        ("warning", "Text #aaaaaa on #ffffff is 2.3")
    ]
    assert "in light and dark mode" in found[0]["message"]  # no dark rule changes it
    assert "faint grey" in found[0]["message"]


def test_text_too_faint_in_dark_mode_is_a_warning(project: Path) -> None:
    from newsletter.render.templates import BUILTIN_TEMPLATES

    head = (BUILTIN_TEMPLATES / "_head.mjml").read_text(encoding="utf-8")
    dark = head.replace(
        ".card .text div { color: #e6e3dd !important; }",
        ".card .text div { color: #3a3a3a !important; }",
    )
    assert dark != head
    _template(project, "_head.mjml", dark)
    status, problems, _ = check(project, write(project), "--offline")
    assert status == 0
    found = [p for p in problems if p["code"] == "low-contrast"]
    assert found and all("dark mode" in p["message"] for p in found)
    assert any(p["message"].startswith("Text #3a3a3a on #262b29 is 1.") for p in found)


@pytest.mark.parametrize("template", ["digest", "announcement", "plain"])
def test_the_built_in_templates_meet_the_contrast_in_both_schemes(
    project: Path, template: str
) -> None:
    slug = write(project)
    path = project / "campaigns" / f"{slug}.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("---\n", f"---\ntemplate: {template}\n", 1),
        encoding="utf-8",
    )
    _, problems, _ = check(project, slug, "--offline")
    assert "low-contrast" not in {p["code"] for p in problems}


def test_hostile_templates_and_styles_are_read_without_a_crash(project: Path) -> None:
    from newsletter.render.templates import BUILTIN_TEMPLATES

    # a template this campaign does not use, not even UTF-8, with an unclosed mj-image
    (project / "templates" / "announcement.mjml").write_bytes(
        b"<mjml><mj-body>\xff\xfe<mj-image src='x.png' alt='\xe9'/><mj-image src='{{ '>' }}'"
    )
    head = (BUILTIN_TEMPLATES / "_head.mjml").read_text(encoding="utf-8")
    rules = (
        "a::before, .card:hover div, :not(, .x{ color: var(--ink) !important; }"
        " .card .text div { color: rgba(0, 0, 0, 0.2) !important; background: url(x.png); }"
        " @media (prefers-color-scheme: dark) { .nested { color: #000 !important; } }"
    )
    _template(project, "_head.mjml", head.replace(":root {", rules + " :root {", 1))
    result = run_process("check", write(project), "--offline", cwd=project)
    assert "Traceback" not in result.stderr and result.returncode == 0, result.stderr
    result = run_process("check", "c", "--offline", "--format", "json", cwd=project)
    found = [p for p in json.loads(result.stdout) if p["code"] == "template-image-without-alt"]
    assert [p["where"].split(":")[0] for p in found] == ["templates/announcement.mjml, line 1"]
