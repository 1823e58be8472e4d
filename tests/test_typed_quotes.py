"""Quotes stay as typed in the plain-text part (the contract), while the HTML part keeps
its typographic quotes: the letter, a Markdown article's excerpt, and a project template
with no `.txt` of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_process

pytestmark = pytest.mark.slow

ARTICLE = """---
title: Quoted
url: https://blog.example.org/quoted/
---
She said "rest" and it's what we'd all needed.
"""

OWN_TEMPLATE = """<mjml><mj-body><mj-section><mj-column>
<mj-text>{{ body_html }}</mj-text>
<mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a> {{ newsletter.postal_address }}</mj-text>
</mj-column></mj-section></mj-body></mjml>
"""


def build(project: Path, template: str) -> tuple[str, str]:
    (project / "articles" / "quoted.md").write_text(ARTICLE, encoding="utf-8")
    (project / "templates" / "mine.mjml").write_text(OWN_TEMPLATE, encoding="utf-8")
    (project / "campaigns" / "quotes.md").write_text(
        f'---\nsubject: \'Say "hello"\'\npreheader: "A line."\ntemplate: {template}\n'
        "articles:\n  - articles/quoted.md\n---\n"
        "\"hello\" she said, and it's fine.\n\nAnother 'quoted' paragraph.\n",
        encoding="utf-8",
    )
    out = project / "out"
    result = run_process("build", "quotes", "--out", str(out), cwd=project)
    assert result.returncode == 0, result.stderr
    return (
        (out / "email.html").read_text(encoding="utf-8"),
        (out / "email.txt").read_text(encoding="utf-8"),
    )


@pytest.mark.parametrize("template", ["digest", "plain", "mine"])
def test_the_text_part_keeps_quotes_as_typed(project: Path, template: str) -> None:
    (project / "templates").mkdir(exist_ok=True)
    html, text = build(project, template)
    assert '"hello" she said, and it\'s fine.' in text
    assert "Another 'quoted' paragraph." in text
    assert not {"\u201c", "\u201d", "\u2018", "\u2019"} & set(text), text
    assert "\u201chello\u201d she said, and it\u2019s fine." in html
    if template == "digest":
        assert "She said \"rest\" and it's what we'd all needed." in text
        assert "She said \u201crest\u201d" in html
