"""The rendering pipeline: each stage once, and each known pitfall handled."""

from __future__ import annotations

import email
import email.policy
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from newsletter.errors import TemplateError
from newsletter.models import Recipient
from newsletter.project import Project
from newsletter.render import mjml as mjml_stage


@pytest.fixture
def proj(project: Path) -> Project:
    return Project.load()


def fields_for(proj: Project, recipient: Recipient, slug: str = "2026-10-digest") -> dict[str, str]:
    return proj.composer.personalizer(slug, 1)(recipient)


def test_inline_styles_are_inlined_and_media_queries_stay_in_head(proj: Project) -> None:
    compiled = proj.composer.compile(proj.composer.campaign("2026-10-digest"))
    html = compiled.preview({})[1]
    head, body = html.split("</head>", 1)
    # the rules of <mj-style inline="inline"> end up on the elements ...
    assert "color:#1f3d36" in body.replace(" ", "")
    assert "color: #1f3d36" not in head, "inline-only rules leave no <style> behind"
    # ... while responsive and dark-mode rules stay in <head>, and nothing is marked for premailer
    assert "@media only screen and (max-width: 480px)" in head
    assert "prefers-color-scheme: dark" in head
    assert "<style" not in body
    assert "data-premailer" not in html


def test_css_inliner_logs_nothing_about_email_only_properties(
    proj: Project, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    html = "<html><head></head><body><p class='x'>hi</p></body></html>"
    with caplog.at_level(logging.DEBUG):
        out = mjml_stage.inline_css(
            html, ".x { mso-line-height-rule: exactly; color-scheme: light dark; }"
        )
    assert "mso-line-height-rule" in out
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert capfd.readouterr().err == ""


def test_merge_fields_survive_premailer_and_are_escaped(proj: Project) -> None:
    compiled = proj.composer.compile(proj.composer.campaign("2026-10-digest"))
    recipient = Recipient(7, "zoe@example.com", 'Zoë <script>alert("x")</script>', "Hartmann")
    message = proj.composer.factory(compiled).message(recipient, fields_for(proj, recipient))
    nonce = compiled.tokens.nonce
    assert nonce not in message.html and nonce not in message.text
    assert "%20" not in message.html.split("Unsubscribe")[0][-300:]
    assert "Hello Zoë &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Hartmann" not in message.html
    assert "Hello Zoë &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;," in message.html
    assert "<script>" not in message.html
    assert 'Hello Zoë <script>alert("x")</script>,' in message.text
    assert f'href="{message.unsubscribe_url}"' in message.html
    assert message.unsubscribe_url.startswith("https://news.riverbend-clinicians.example/u/")


def test_first_name_fallback(proj: Project) -> None:
    compiled = proj.composer.compile(proj.composer.campaign("2026-10-digest"))
    recipient = Recipient(8, "office@example.net", "", "")
    message = proj.composer.factory(compiled).message(recipient, fields_for(proj, recipient))
    assert "Hello there," in message.text
    assert "Hello there," in message.html


def test_no_mjml_or_premailer_call_per_recipient(
    proj: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = proj.composer.compile(proj.composer.campaign("2026-10-digest"))
    factory = proj.composer.factory(compiled)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled once per campaign, never per recipient")

    # the compiler imports them when it first compiles: the libraries' own names
    monkeypatch.setattr("mjml.mjml2html", forbidden)
    monkeypatch.setattr("premailer.Premailer", forbidden)
    for i in range(50):
        recipient = Recipient(i, f"r{i}@example.com", f"Reader{i}")
        message = factory.message(recipient, fields_for(proj, recipient))
        assert f"Hello Reader{i}," in message.text
        assert message.as_bytes()


def test_every_built_in_template_compiles(proj: Project, project: Path) -> None:
    for template in ("digest", "announcement", "plain"):
        campaign = replace(proj.composer.campaign("2026-10-digest"), template=template)
        compiled = proj.composer.compile(campaign)
        _subject, html, text = compiled.preview(
            {"first_name": "Ana", "unsubscribe_url": "https://u", "web_url": "https://w"}
        )
        assert 'lang="en"' in html
        assert "Unsubscribe" in html and "https://u" in text
        assert "214 Mill Street" in html and "214 Mill Street" in text
        assert "The Case for Rest Between Sessions" in text


def test_undefined_template_variable_is_an_error(proj: Project, project: Path) -> None:
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "October has been", "{{ reader_title }} October has been"
        )
    )
    with pytest.raises(TemplateError, match="'reader_title' is undefined") as info:
        proj.composer.compile(proj.composer.campaign("2026-10-digest"))
    # the line of the campaign file itself, not of its text after the front matter
    line = next(
        n
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "reader_title" in text
    )
    assert f"2026-10-digest.md, line {line}" in str(info.value)


def test_unknown_mjml_tag_is_an_error(proj: Project, project: Path) -> None:
    (project / "templates" / "digest.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-txt>Hi</mj-txt></mj-column></mj-section></mj-body></mjml>"
    )
    with pytest.raises(TemplateError, match="<mj-txt> is not an MJML tag"):
        proj.composer.compile(proj.composer.campaign("2026-10-digest"))


def test_broken_mjml_is_an_error_with_its_place(proj: Project, project: Path) -> None:
    (project / "templates" / "digest.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column><mj-text>Hi</mj-column></mj-section></mj-body></mjml>"
    )
    with pytest.raises(TemplateError, match="does not compile") as info:
        proj.composer.compile(proj.composer.campaign("2026-10-digest"))
    assert "line 1" in str(info.value)


def test_project_template_overrides_built_in_partial(proj: Project, project: Path) -> None:
    (project / "templates" / "_header.mjml").write_text(
        "<mj-section><mj-column><mj-text>Our own masthead</mj-text></mj-column></mj-section>"
    )
    compiled = proj.composer.compile(proj.composer.campaign("2026-10-digest"))
    assert "Our own masthead" in compiled.preview({})[1]


def test_eml_is_valid_mime_with_list_headers(proj: Project) -> None:
    compiled = proj.composer.compile(proj.composer.campaign("2026-10-digest"))
    recipient = Recipient(3, "renee.castillo@example.net", "Renée", "Castillo")
    message = proj.composer.factory(compiled).message(recipient, fields_for(proj, recipient))
    raw = message.as_bytes()
    head, body = raw.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 998 for line in head.split(b"\r\n")), "RFC 5322 line limit"
    assert all(len(line) <= 76 for line in body.split(b"\r\n")), "quoted-printable lines"
    assert b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.defects == []
    assert str(msg["To"]) == "Renée Castillo <renee.castillo@example.net>"
    assert str(msg["From"]) == "Riverbend Clinicians Collective <news@riverbend-clinicians.example>"
    assert str(msg["Reply-To"]) == "editor@riverbend-clinicians.example"
    assert str(msg["Subject"]) == "October at Riverbend: rest, supervision and a winter workshop"
    assert msg["Date"] and len(msg.get_all("Date")) == 1
    assert msg["Message-ID"].endswith("@riverbend-clinicians.example>")
    assert msg["List-Unsubscribe"] == (
        f"<{message.unsubscribe_url}>, <mailto:unsubscribe@riverbend-clinicians.example?subject=unsubscribe>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (
        msg["List-Id"] == "Riverbend Clinicians Collective <monthly.riverbend-clinicians.example>"
    )
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
    assert parts[0].get_content().replace("\r\n", "\n") == message.text
    assert parts[1].get_content().replace("\r\n", "\n") == message.html.replace("\r\n", "\n")


def test_headers_cannot_be_injected(proj: Project) -> None:
    compiled = proj.composer.compile(proj.composer.campaign("2026-10-digest"))
    recipient = Recipient(
        9, "eve@example.com", "Eve\r\nBcc: victim@example.org", "X\nSubject: spam"
    )
    message = proj.composer.factory(compiled).message(recipient, fields_for(proj, recipient))
    msg = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert msg["Bcc"] is None
    assert len(msg.get_all("Subject")) == 1
    assert msg["To"].addresses[0].addr_spec == "eve@example.com"


def test_subject_with_merge_field_and_non_ascii(proj: Project, project: Path) -> None:
    path = project / "campaigns" / "2026-10-digest.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            'subject: "October at Riverbend:',
            "subject: \"{{ recipient.first_name_or('Friend') }}, October — at Riverbend:",
        )
    )
    compiled = proj.composer.compile(proj.composer.campaign("2026-10-digest"))
    recipient = Recipient(3, "zoe@example.com", "Zoë")
    message = proj.composer.factory(compiled).message(recipient, fields_for(proj, recipient))
    msg = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert str(msg["Subject"]).startswith("Zoë, October — at Riverbend:")
