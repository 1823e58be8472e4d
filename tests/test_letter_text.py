"""The letter is text: angle brackets as typed, only Markdown's HTML read as markup,
and a tag the campaign leaves open named with its file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_process

pytestmark = pytest.mark.slow

LETTER = """---
subject: "Angle brackets"
preheader: "A line for the inbox."
---
Please reply with <your name> before Friday.

Remember that a < b, always.

This is <b>bold</b> and <a href="javascript:alert(1)" onclick="x()">a link</a>.

<script>alert("gotcha")</script>

<your name>
"""


def write(project: Path, slug: str, text: str) -> None:
    (project / "campaigns" / f"{slug}.md").write_text(text, encoding="utf-8")


def build(project: Path, slug: str) -> tuple[str, str]:
    out = project / "out"
    result = run_process("build", slug, "--out", str(out), cwd=project)
    assert result.returncode == 0, result.stderr
    return (
        (out / "email.html").read_text(encoding="utf-8"),
        (out / "email.txt").read_text(encoding="utf-8"),
    )


def test_angle_brackets_in_a_letter_show_as_typed_and_only_markdown_html_is_markup(
    project: Path,
) -> None:
    write(project, "brackets", LETTER)
    check = run_process("check", "brackets", "--format", "json", cwd=project)
    problems = json.loads(check.stdout)
    assert not [p for p in problems if p["code"] == "does-not-build"], check.stdout
    html, text = build(project, "brackets")
    assert "Please reply with &lt;your name&gt; before Friday." in html
    assert "a &lt; b, always." in html
    assert "<b>bold</b>" in html
    link = re.search(r"<a\b[^>]*>a link</a>", html)
    assert link and "href" not in link.group(0), "an unsafe link and an event handler go"
    assert "javascript" not in html and "onclick" not in html
    assert "<script" not in html and "gotcha" not in html
    assert "&lt;your name&gt;</" in html, "a line holding only the words stays text"
    assert "Please reply with <your name> before Friday." in text
    assert "a < b, always." in text
    assert "This is bold and a link." in text
    assert "gotcha" not in text


@pytest.mark.parametrize(
    ("body", "line", "says"),
    [
        ("First.\n\nThis is <b>bold that never ends.\n", 7, "<b> is never closed"),
        ("First.\n\nSome\ntext</em> here.\n", 8, "</em> closes an element that is not open"),
        ("First.\n\n<div>\n\nopen block\n", 7, "<div> is never closed"),
    ],
)
def test_a_tag_the_campaign_breaks_is_named_with_its_file_and_line(
    project: Path, body: str, line: int, says: str
) -> None:
    write(project, "broken", '---\nsubject: "Broken"\npreheader: "x"\n---\n' + body)
    where = f"broken.md, line {line}: "
    built = run_process("build", "broken", cwd=project)
    assert built.returncode == 1
    assert where in built.stderr and says in built.stderr, built.stderr
    assert "MJML" not in built.stderr and "template '" not in built.stderr
    check = run_process("check", "broken", "--format", "json", cwd=project)
    assert check.returncode == 1
    [problem] = [p for p in json.loads(check.stdout) if p["level"] == "error"]
    assert where in problem["message"] and says in problem["message"]
    assert re.search(r"write \\<|Close it with|Open <", problem["where"])


def test_an_articles_angle_brackets_show_as_typed_too(project: Path) -> None:
    (project / "articles" / "brackets.md").write_text(
        "---\ntitle: Brackets\nurl: https://blog.example.org/brackets/\n---\n"
        "Reply with <your name>, as a < b. This is <b>bold</b>. <script>alert(1)</script>"
        "Left <i>open.\n",
        encoding="utf-8",
    )
    write(
        project,
        "with-article",
        '---\nsubject: "Brackets"\npreheader: "x"\narticles:\n  - articles/brackets.md\n---\nHi.\n',
    )
    html, text = build(project, "with-article")
    assert "Reply with &lt;your name&gt;, as a &lt; b." in html
    assert re.search(r"<(b|strong)\b[^>]*>bold</\1>", html)
    assert "alert" not in html and "<script" not in html
    assert "Reply with <your name>, as a < b. This is bold." in text
