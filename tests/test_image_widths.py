"""A project's own template with an `mj-image` and no `width`: the built email's image is
as wide as the reference compiler (node mjml, tests/node) makes it, not the column's whole
width. Compared with node mjml when it is installed; the expected widths are also fixed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_process
from node_peers import compile_with_reference, missing

pytestmark = pytest.mark.slow

FOOTER = (
    '<mj-section><mj-column><mj-text>{{ body_html }} <a href="{{ unsubscribe_url }}">'
    "Unsubscribe</a> {{ newsletter.postal_address }}</mj-text></mj-column></mj-section>"
)
IMG = 'src="https://blog.example.org/a.png" alt="A"'
LAYOUTS = {
    "padded-20px-in-a-section-padded-4px": (
        f'<mj-section padding="0 4px"><mj-column><mj-image {IMG} padding="0 20px" />'
        "</mj-column></mj-section>",
        ["552"],
    ),
    "padded-20px": (
        f'<mj-section><mj-column><mj-image {IMG} padding="10px 20px" /></mj-column></mj-section>',
        ["560"],
    ),
    "bordered-column-and-sides": (
        '<mj-section padding="10px 24px" border-left="2px solid red"><mj-column padding="0 4px" '
        f'border="1px solid #000"><mj-image {IMG} padding-left="20px" padding-right="8px" />'
        "</mj-column></mj-section>",
        ["512"],
    ),
    "mj-attributes-and-mj-class": (
        '<mj-wrapper padding="0 10px"><mj-section padding="0 5px"><mj-column>'
        f'<mj-image {IMG} /><mj-image mj-class="wide" {IMG} /></mj-column></mj-section>'
        "</mj-wrapper>",
        ["546", "510"],
    ),
    "a-group-of-two-columns": (
        f"<mj-section><mj-group><mj-column><mj-image {IMG} /></mj-column><mj-column><mj-image "
        f'{IMG} padding="0 10px" /></mj-column></mj-group></mj-section>',
        ["276", "280"],
    ),
}
HEAD = (
    '<mj-head><mj-attributes><mj-class name="wide" padding="0 30px" />'
    '<mj-image padding="5px 12px" /></mj-attributes></mj-head>'
)


def widths(html: str) -> list[str]:
    return re.findall(r'<img\b[^>]*?\bwidth="(\d+)"', html)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_image_without_a_width_is_as_wide_as_node_mjml_makes_it(
    project: Path, layout: str
) -> None:
    sections, expected = LAYOUTS[layout]
    mjml = f"<mjml>{HEAD}<mj-body>{sections}{FOOTER}</mj-body></mjml>\n"
    (project / "templates" / "pictured.mjml").write_text(mjml, encoding="utf-8")
    (project / "campaigns" / "pictured.md").write_text(
        '---\nsubject: "Pictured"\npreheader: "A line."\ntemplate: pictured\n---\nHello.\n',
        encoding="utf-8",
    )
    out = project / "out"
    built = run_process("build", "pictured", "--out", str(out), cwd=project)
    assert built.returncode == 0, built.stderr
    assert widths((out / "email.html").read_text(encoding="utf-8")) == expected
    if missing("mjml") is None:
        reference = mjml.replace("{{ body_html }}", "Hello.").replace("{{ unsubscribe_url }}", "u")
        reference = reference.replace("{{ newsletter.postal_address }}", "Street")
        assert widths(compile_with_reference(reference)) == expected


def test_an_image_with_a_width_keeps_it(project: Path) -> None:
    mjml = (
        f'<mjml><mj-body><mj-section><mj-column><mj-image {IMG} width="200px" '
        f'padding="0 20px" /></mj-column></mj-section>{FOOTER}</mj-body></mjml>\n'
    )
    (project / "templates" / "small.mjml").write_text(mjml, encoding="utf-8")
    (project / "campaigns" / "small.md").write_text(
        '---\nsubject: "Small"\npreheader: "A line."\ntemplate: small\n---\nHello.\n',
        encoding="utf-8",
    )
    out = project / "out"
    assert run_process("build", "small", "--out", str(out), cwd=project).returncode == 0
    assert widths((out / "email.html").read_text(encoding="utf-8")) == ["200"]
