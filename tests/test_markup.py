"""The compiled markup of the built-in templates: what mjml-python gets wrong, put right.

The widths are compared with the reference MJML compiler (node ``mjml``, a pinned
test peer in tests/node); those tests skip when node or the module is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import mjml
import pytest
from lxml import html as lxml_html

from example_emails import CAMPAIGNS, TEMPLATES, build_example
from newsletter.render import mjml as mjml_stage
from newsletter.render.text import html_to_text
from node_peers import compile_with_reference, missing


def reference_compiler() -> str | None:
    """Why the reference compiler cannot run here, or None when it can."""
    return missing("mjml")


def image_widths(html: str) -> list[tuple[str, str, str]]:
    """(src, the img's width attribute, the width of the cell that holds it) per image."""
    widths = []
    for img in lxml_html.document_fromstring(html).iter("img"):
        cell = next(img.iterancestors("td"))
        cell_width = re.search(r"(?:^|;)\s*width:\s*([^;]+)", cell.get("style", ""))
        widths.append(
            (img.get("src", ""), img.get("width", ""), cell_width.group(1) if cell_width else "")
        )
    return widths


def mjml_of(project: Path, template: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """(the MJML the pipeline hands to mjml-python, the built email's HTML)."""
    sources: list[str] = []
    compile_with_python = mjml.mjml2html

    def spy(source: str) -> str:
        sources.append(source)
        return compile_with_python(source)

    monkeypatch.setattr(mjml, "mjml2html", spy)  # as the compile stage loads it
    html = (build_example(project, template) / "email.html").read_text(encoding="utf-8")
    assert len(sources) == 1
    return sources[0], html


@pytest.mark.slow
@pytest.mark.parametrize("template", TEMPLATES)
def test_images_are_as_wide_as_the_reference_compiler_makes_them(
    project: Path, monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    reason = reference_compiler()
    if reason:
        pytest.skip(reason)
    source, html = mjml_of(project, template, monkeypatch)
    ours = image_widths(mjml.mjml2html(source))
    reference = image_widths(compile_with_reference(source))
    print(f"{template}: mjml-python {ours}; reference {reference}")
    assert ours == reference
    assert image_widths(html) == reference, "the built email keeps the widths"
    if template != "plain":
        assert reference and all(width == "552" for _, width, _ in reference)


@pytest.mark.parametrize("template", TEMPLATES)
def test_no_element_carries_a_vertical_align_attribute(project: Path, template: str) -> None:
    html = (build_example(project, template) / "email.html").read_text(encoding="utf-8")
    stray = re.findall(r"<[a-z][^<>]*\svertical-align=[^<>]*>", html, re.I)
    assert not stray, stray[:3]


def test_stray_attributes_go_but_css_and_text_stay() -> None:
    html = mjml_stage.compile_mjml(
        "<mjml><mj-body><mj-section><mj-column>"
        '<mj-text>Set vertical-align="middle" in CSS</mj-text>'
        '<mj-button href="https://example.org/" vertical-align="top">Go</mj-button>'
        "</mj-column></mj-section></mj-body></mjml>",
        "test",
    )
    assert not re.search(r"<[^<>]*\svertical-align=", html)
    assert 'Set vertical-align="middle" in CSS' in html
    assert "vertical-align:top" in html.replace(" ", ""), "the column's CSS is untouched"


@pytest.mark.parametrize("template", TEMPLATES)
def test_preheader_is_hidden_without_a_colour_and_comes_first(project: Path, template: str) -> None:
    built = build_example(project, template)
    html = (built / "email.html").read_text(encoding="utf-8")
    body = lxml_html.document_fromstring(html).find("body")
    preheader = body[0]
    assert preheader.tag == "div" and not (body.text or "").strip()
    style = preheader.get("style", "").replace(" ", "")
    for rule in ("display:none", "max-height:0", "overflow:hidden", "mso-hide:all"):
        assert rule in style, style
    assert "color" not in style, "text the colour of the page is what spam filters flag"
    words = campaign_preheader(project, template)
    content = preheader.text_content()
    assert content.startswith(words)
    padding = content[len(words) :]
    assert set(padding) <= {"\u034f", "\u200c", "\u00a0", " "}
    assert padding.count("\u200c") >= 50, "padding keeps body text out of the inbox preview"
    assert words not in html_to_text(html), "the text fallback leaves hidden text out"


def campaign_preheader(project: Path, template: str) -> str:
    campaign = (project / "campaigns" / f"{CAMPAIGNS[template]}.md").read_text(encoding="utf-8")
    return re.search(r'^preheader: "(.*)"$', campaign, re.M).group(1)
