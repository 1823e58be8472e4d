"""Per-reader templates: any Jinja2 over `recipient` gives each reader exactly what
rendering the whole template for that reader alone gives, or the build refuses it.

The reference is a second, naive implementation of the pipeline in this file: plain
Jinja2 (no rewriting, no tokens) rendering everything again for one reader, then the
same reader-independent stages (Markdown, MJML, premailer, text part).
"""

from __future__ import annotations

import csv
import dataclasses
import email
import email.policy
import json
import re
from pathlib import Path
from typing import Any

import jinja2
import lxml.html
import pytest
from markupsafe import Markup

from conftest import Runner, connect
from newsletter.content.links import UTM
from newsletter.language import direction_context
from newsletter.models import Recipient
from newsletter.project import Project
from newsletter.render.compile import _article_context, _markdown
from newsletter.render.mjml import compile_mjml, extract_inline_css, inline_css
from newsletter.render.templates import BODY, BUILTIN_TEMPLATES, GREETING, SUBJECT
from newsletter.render.text import html_to_text

READERS = [
    # a reader with everything, one with nothing, one whose name needs escaping everywhere
    Recipient(
        1,
        "george@example.com",
        "George",
        "Eliot",
        {"plan": "pro", "city": "Northampton", "age": "47"},
        ("board", "members"),
    ),
    Recipient(2, "anon@example.org", "", "", {"plan": "", "city": "", "age": ""}, ()),
    Recipient(
        3,
        "zoe@example.net",
        'Zoë "Z" O\'Brien & <Co>',
        "Hartmann",
        {"plan": "basic", "city": "Łódź", "age": "29"},
        ("members",),
    ),
]

TEMPLATE_MJML = """\
{% from "_card.mjml" import card %}
<mjml lang="en">
  {% include "_head.mjml" %}
  <mj-body width="600px" background-color="#f4f1ec" css-class="body-bg">
    <mj-section css-class="card" background-color="#ffffff">
      <mj-column>
        <mj-text>
          <p>upper: {{ recipient.first_name | upper }}</p>
          <p>length: {{ recipient.first_name | length }}</p>
          <p>default/title: {{ recipient.first_name | default("friend", true) | title }}</p>
          <p>get/lower: {{ recipient.get("city", "Nowhere") | lower }}</p>
          <p>slice: {{ recipient.first_name[:1] }}</p>
          <p>format: {{ "%s!" % recipient.first_name }}</p>
          <p>join: {{ recipient.tags | join(", ") }} ({{ recipient.tags | length }})</p>
          <p>int: {{ recipient.age | int + 1 }}</p>
          <p>inline if: {{ "Dear " ~ recipient.first_name if recipient.first_name else "Hello" }}</p>
          <p>compare: {{ recipient.first_name == "George" }} {{ recipient.age | int > 40 }}</p>
          <p>test: {{ recipient.plan is defined }} {{ recipient.age | int is even }}</p>
          <p>in: {{ "members" in recipient.tags }}</p>
          <p>field: {{ recipient.first_name }} {{ recipient["last_name"] }} {{ recipient.email }}</p>
          {% if recipient.plan %}<p>plan: {{ recipient.plan }}</p>{% endif %}
          {% if recipient.first_name == "George" %}<p>Hi George.</p>
          {% elif "members" in recipient.tags %}<p>Hi member.</p>
          {% else %}<p>Hi stranger.</p>{% endif %}
          {% if recipient.age | int is even %}<p>even age</p>{% endif %}
          <ul>{% for tag in recipient.tags %}<li>{{ loop.index }}. {{ tag | upper }}</li>{% endfor %}</ul>
          <ul>{% for a in articles %}<li>{{ a.title }} {{ recipient.first_name }} {{ loop.index }}</li>{% endfor %}</ul>
          <ul>{% for tag in recipient.tags if tag != "board" %}<li>{{ tag }}</li>{% else %}<li>no tags</li>{% endfor %}</ul>
          {% set shout = recipient.first_name | upper %}
          {% if shout %}<p>shout: {{ shout }}</p>{% endif %}
          {% with town = recipient.get("city", "") %}<p>town: {{ town | default("none", true) }}</p>{% endwith %}
          <p><a href="https://example.org/?who={{ recipient.email | urlencode }}">link</a></p>
        </mj-text>
        <mj-text>{% if greeting %}<p>{{ greeting }}</p>{% endif %}{{ body_html }}</mj-text>
      </mj-column>
    </mj-section>
    {% if "board" in recipient.tags %}
    <mj-section css-class="card" background-color="#ffffff">
      <mj-column><mj-button href="https://example.org/board">Board papers</mj-button></mj-column>
    </mj-section>
    {% endif %}
    {% for article in articles %}{{ card(article) }}{% endfor %}
    {% include "_footer.mjml" %}
  </mj-body>
</mjml>
"""

TEMPLATE_TXT = """\
upper: {{ recipient.first_name | upper }} / {{ recipient.first_name | length }}
{% if recipient.plan %}plan: {{ recipient.plan }}{% else %}no plan{% endif %}

{% for tag in recipient.tags %}- {{ tag }}
{% endfor %}
{{ greeting }}

{{ body_text }}
{% include "_footer.txt" %}
"""

CAMPAIGN = """\
---
subject: '{{ recipient.first_name | default("Reader", true) }}, {{ "your pro" if recipient.plan == "pro" else "your" }} notes & <news>'
template: personal
greeting: '"Dear " ~ recipient.first_name ~ "," if recipient.first_name else "Hello there,"'
articles:
  - articles/2026-10-06-the-case-for-rest-between-sessions.md
  - articles/2026-10-15-supervision-is-not-a-report-card.md
---
{% if recipient.plan == "pro" %}Thank you for being on the **pro** plan.{% else %}Have a look at our plans.{% endif %}

{% if "members" in recipient.tags %}Members meet on Thursday.{% endif %}

Your city: {{ recipient.city | default("unknown", true) }}.
"""


class AloneReader:
    """`recipient` for the reference: a plain object holding the reader's own values."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.__dict__.update(fields)

    def get(self, name: str, fallback: Any = "") -> Any:
        value = self.__dict__.get(name)
        return value if value not in (None, "") else fallback

    def first_name_or(self, fallback: str) -> Any:
        return self.get("first_name", fallback)


def render_alone(proj: Project, slug: str, fields: dict[str, Any]) -> tuple[str, str, str]:
    """The whole pipeline rendered for one reader, with plain Jinja2."""
    campaign = proj.composer.campaign(slug)
    info = proj.composer.info()
    parts = {
        BODY: "\n" * (campaign.body_line - 1) + campaign.body,
        SUBJECT: campaign.subject,
        GREETING: "{{ (" + campaign.greeting + ") }}" if campaign.greeting else "",
    }
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.DictLoader(parts),
                jinja2.FileSystemLoader(proj.settings.templates_dir),
                jinja2.FileSystemLoader(BUILTIN_TEMPLATES),
            ]
        ),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(["mjml", "html", "xml"], default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["date"] = lambda v, fmt="%B %-d, %Y": v.strftime(fmt) if v else ""
    utm = UTM(campaign.utm_campaign, "newsletter", "email")
    context: dict[str, Any] = {
        **direction_context(campaign.lang or info.language),
        "newsletter": info,
        "campaign": campaign,
        "preheader": campaign.preheader,
        "articles": [_article_context(a, utm) for a in campaign.articles],
        "recipient": AloneReader(fields),
        "unsubscribe_url": fields["unsubscribe_url"],
        "web_url": f"{info.public_url}/c/{campaign.slug}",
    }
    subject = " ".join(env.get_template(SUBJECT).render(context).split())
    context["subject"] = subject
    context["greeting"] = env.get_template(GREETING).render(context).strip()
    body_html = utm.tag_html(_markdown.render(env.get_template(BODY).render(context)))
    context["body_html"] = Markup(body_html)
    context["body_text"] = html_to_text(body_html).strip()
    mjml, css = extract_inline_css(env.get_template(f"{campaign.template}.mjml").render(context))
    html = inline_css(compile_mjml(mjml, "reference"), css)
    text = env.get_template(f"{campaign.template}.txt").render(context)
    return subject, html, "\n".join(text.split("\n\n\n")).strip() + "\n"


def canonical(html: str) -> str:
    """HTML as lxml serialises it: the same document whatever its entity spellings."""
    return lxml.html.tostring(lxml.html.fromstring(html), encoding="unicode")


@pytest.fixture
def personal(project: Path) -> Project:
    (project / "templates" / "personal.mjml").write_text(TEMPLATE_MJML, encoding="utf-8")
    (project / "templates" / "personal.txt").write_text(TEMPLATE_TXT, encoding="utf-8")
    (project / "campaigns" / "personal.md").write_text(CAMPAIGN, encoding="utf-8")
    with open(project / "readers.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "first_name", "last_name", "tags", "plan", "city", "age"])
        for r in READERS:
            writer.writerow(
                [r.email, r.first_name, r.last_name, ";".join(r.tags)]
                + [r.attributes[k] for k in ("plan", "city", "age")]
            )
    result = Runner()("subscribers", "import", "readers.csv")
    assert result.exit_code == 0, result.output
    return Project.load()


def test_every_form_gives_each_reader_what_rendering_alone_gives(personal: Project) -> None:
    compiled = personal.composer.compile(personal.composer.campaign("personal"))
    fields_of = personal.composer.personalizer("personal", 1)
    for reader in READERS:
        fields = fields_of(reader)
        subject, html, text = compiled.preview(fields)
        alone = render_alone(personal, "personal", fields)
        assert subject == alone[0], reader.email
        assert text == alone[2], reader.email
        assert canonical(html) == canonical(alone[1]), reader.email
    # the three readers took three paths through the {% if %}/{% for %} blocks...
    assert len(compiled.variants) == 3
    # ...and each variant was compiled once, not once per reader
    for reader in READERS * 5:
        compiled.personalize(fields_of(reader))
    assert len(compiled.variants) == 3


def test_the_findings_each_reader_gets_their_own_value(personal: Project) -> None:
    compiled = personal.composer.compile(personal.composer.campaign("personal"))
    fields_of = personal.composer.personalizer("personal", 1)
    george, anon, zoe = (compiled.preview(fields_of(r)) for r in READERS)
    assert "upper: GEORGE" in george[1] and "upper: ZOË" in zoe[1]
    assert "length: 6" in george[1] and "length: 0" in anon[1]
    assert "plan: pro" in george[1] and "plan:" not in anon[1]
    assert "Hi George." in george[1] and "Hi member." in zoe[1] and "Hi stranger." in anon[1]
    assert "Board papers" in george[1] and "Board papers" not in zoe[1]
    assert "compare: True True" in george[1] and "compare: False False" in anon[1]
    assert george[0] == "George, your pro notes & <news>"
    assert anon[0] == "Reader, your notes & <news>"
    # the reader's data is text, escaped in HTML, as typed in the text part
    assert "Zoë &#34;Z&#34; O&#39;Brien &amp; &lt;Co&gt;" in zoe[1]
    assert "<Co>" not in zoe[1]
    assert 'upper: ZOË "Z" O\'BRIEN & <CO>' in zoe[2]
    assert compiled.tokens.nonce not in george[1] + george[2] + george[0]


def test_sending_gives_every_reader_their_own_message(personal: Project, project: Path) -> None:
    result = Runner()("send", "personal", "--yes")
    assert result.exit_code == 0, result.stderr
    outbox = {
        p.name.split("-", 1)[1]: p.read_text()
        for p in (project / "outbox" / "personal").glob("*.eml")
    }
    for reader in READERS:
        (raw,) = [v for k, v in outbox.items() if k.startswith(reader.email)]
        message = email.message_from_string(raw, policy=email.policy.default)
        text = message.get_body(("plain",)).get_content()
        expected = reader.first_name.upper()
        assert f"upper: {expected} / {len(reader.first_name)}" in text


REFUSED = {
    "macro with a reader's field": (
        "{% macro hi(n) %}<mj-text>{{ n }}</mj-text>{% endmacro %}{{ hi(recipient.first_name) }}",
        "the macro `hi` is called with a reader's field",
    ),
    "safe on a reader's field": ("{{ recipient.first_name | safe }}", "| safe"),
    "filter block": (
        "{% filter upper %}Hello {{ recipient.first_name }}{% endfilter %}",
        "a filtered block ({% filter %}",
    ),
    "filtered set block": (
        "{% set x | upper %}Hi {{ recipient.first_name }}{% endset %}{{ x }}",
        "a filtered block ({% filter %}, or {% set %} with a filter)",
    ),
    "a filter on text that holds a reader's field": (
        "{{ greeting | upper }}",
        "the filter `upper` is applied to text that holds a reader's field",
    ),
    "a method of text that holds a reader's field": (
        "{{ greeting.lower() }}",
        "`.lower` is taken of text that holds a reader's field",
    ),
    "a reader's value where MJML computes": (
        '<mj-image src="https://example.org/a.png" width="{{ recipient.first_name }}px" />',
        "used where MJML computes with it",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_constructs_that_cannot_be_right_are_refused(case: str, project: Path, run: Runner) -> None:
    snippet, message = REFUSED[case]
    (project / "templates" / "digest.mjml").write_text(
        "<mjml><mj-body><mj-section><mj-column>"
        + (snippet if "mj-" in snippet else f"<mj-text>{snippet}</mj-text>")
        + '<mj-text><a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>'
        "</mj-column></mj-section></mj-body></mjml>",
        encoding="utf-8",
    )
    run("subscribers", "import", "subscribers.example.csv")
    build = run("build", "2026-10-digest")
    assert build.exit_code == 1
    assert message in build.stderr, build.stderr
    check = run("check", "2026-10-digest")
    assert check.exit_code == 1 and message in check.stderr
    assert "Traceback" not in build.stderr + check.stderr


def test_a_field_no_subscriber_has_is_an_error_naming_the_known_ones(
    project: Path, run: Runner
) -> None:
    run("subscribers", "import", "subscribers.example.csv")
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("Warmly,", "Warmly, {{ recipient.firstname }}")
    )
    for command in ("build", "check"):
        result = run(command, "2026-10-digest")
        assert result.exit_code == 1
        assert "no subscriber has the field 'firstname'" in result.stderr
        assert "first_name" in result.stderr and "last_name" in result.stderr
        assert "2026-10-digest.md, line" in result.stderr
    # a column of the subscribers file is a field like any other, once someone has it
    path.write_text(path.read_text(encoding="utf-8").replace("firstname", "nickname"))
    result = run("build", "2026-10-digest")
    assert result.exit_code == 1 and "no subscriber has the field 'nickname'" in result.stderr
    (project / "extra.csv").write_text("email,nickname\nnew.reader@example.org,Nia\n")
    assert run("subscribers", "import", "extra.csv").exit_code == 0
    assert run("build", "2026-10-digest", "--to", "new.reader@example.org").exit_code == 0
    assert "Warmly, Nia" in (project / "build" / "2026-10-digest" / "email.txt").read_text()
    assert run("build", "2026-10-digest").exit_code == 0  # readers without one: empty


def test_a_reader_whose_data_breaks_an_expression_is_invalid_alone(
    project: Path, run: Runner
) -> None:
    (project / "people.csv").write_text(
        "email,first_name,tags\nfirst@example.org,Ana,members\nnotags@example.org,Bo,\n"
        "third@example.org,Cy,board\n"
    )
    run("subscribers", "import", "people.csv")
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "Warmly,", "Your first group: {{ recipient.tags[0] }}.\n\nWarmly,"
        )
    )
    result = run("send", "2026-10-digest", "--yes")
    assert result.exit_code == 3, result.stderr
    report = json.loads(run("report", "2026-10-digest", "--format", "json").stdout)
    statuses = {r["email"]: (r["status"], r["error"]) for r in report["recipients"]}
    assert statuses["first@example.org"][0] == "sent"
    assert statuses["third@example.org"][0] == "sent"
    status, error = statuses["notags@example.org"]
    assert status == "invalid" and "2026-10-digest.md, line" in error and "tags" in error
    assert "sending" not in {s for s, _ in statuses.values()}
    db = connect(project)
    assert db.execute("SELECT count(*) FROM deliveries WHERE status = 'sending'").fetchone()[0] == 0


def test_old_style_tokens_in_article_text_are_just_text(project: Path, run: Runner) -> None:
    article = project / "articles" / "2026-10-30-tokens.md"
    article.write_text(
        "---\ntitle: What zznlm99zz means\nurl: https://example.org/t?a=zznlm0zz&d=zznlm3zz\n"
        "date: 2026-10-30\n---\nThe text zznlm1zz and zznlm99zz stays as typed.\n",
        encoding="utf-8",
    )
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "articles:\n", "articles:\n  - articles/2026-10-30-tokens.md\n", 1
        )
    )
    run("subscribers", "import", "subscribers.example.csv")
    result = run("build", "2026-10-digest")
    assert result.exit_code == 0, result.stderr
    html = (project / "build" / "2026-10-digest" / "email.html").read_text()
    assert "What zznlm99zz means" in html and "The text zznlm1zz and zznlm99zz" in html
    assert "a=zznlm0zz&amp;d=zznlm3zz" in html
    assert run("send", "2026-10-digest", "--yes").exit_code == 0


def test_text_that_holds_the_nonce_is_detected_and_another_is_drawn(proj_plain: Project) -> None:
    proj = proj_plain
    campaign = proj.composer.campaign("2026-10-digest")
    campaign.articles[0] = dataclasses.replace(
        campaign.articles[0], title="A title with qqqqqqqqqqqq and zzzzzz in it"
    )
    nonces = iter(["qqqqqqqqqqqq", "zzzzzzzzzzzz", "abcdefghijkl"])
    from newsletter.render import compile_campaign

    compiled = compile_campaign(proj.composer.info(), campaign, nonces=nonces)
    assert compiled.tokens.nonce == "abcdefghijkl"
    html = compiled.preview({"first_name": "Ana", "unsubscribe_url": "https://u"})[1]
    assert "A title with qqqqqqqqqqqq and zzzzzz in it" in html
    assert "Hello Ana," in html


def test_a_made_up_token_in_text_cannot_consume_a_reader_value(proj_plain: Project) -> None:
    """Even knowing the scheme, article text cannot guess the build's nonce."""
    proj = proj_plain
    campaign = proj.composer.campaign("2026-10-digest")
    compiled = proj.composer.compile(campaign)
    guess = compiled.tokens.nonce  # a guess would have to be this; it is drawn per build
    campaign.articles[0] = dataclasses.replace(
        campaign.articles[0],
        excerpt=f"steal {guess}0q here",
        excerpt_html=f"<p>steal {guess}0q here</p>",
    )
    again = proj.composer.compile(campaign)
    assert again.tokens.nonce != guess
    html = again.preview({"first_name": "Ana", "unsubscribe_url": "https://secret/u/1"})[1]
    assert f"steal {guess}0q here" in html


@pytest.fixture
def proj_plain(project: Path) -> Project:
    return Project.load()


def test_greeting_is_the_templates_own_and_can_be_changed_or_removed(
    project: Path, run: Runner
) -> None:
    run("subscribers", "import", "subscribers.example.csv")
    path = project / "campaigns" / "2026-10-digest.md"
    original = path.read_text(encoding="utf-8")
    assert "Hello" not in original, "the example campaign writes no greeting of its own"
    build_text = project / "build" / "2026-10-digest" / "email.txt"
    assert (
        run("build", "2026-10-digest", "--to", "office@riverbend-clinicians.example").exit_code == 0
    )
    assert "Hello there," in build_text.read_text()
    path.write_text(
        original.replace(
            "template: digest",
            'template: digest\ngreeting: \'"Dear " ~ recipient.first_name_or("colleague") ~ ","\'',
        )
    )
    assert run("build", "2026-10-digest").exit_code == 0
    assert "Dear " in build_text.read_text() and "Hello" not in build_text.read_text()
    path.write_text(original.replace("template: digest", "template: digest\ngreeting: false"))
    assert run("build", "2026-10-digest").exit_code == 0
    assert "Hello" not in build_text.read_text() and "Dear" not in build_text.read_text()
    path.write_text(original.replace("template: digest", "template: digest\ngreeting: Hi all"))
    result = run("build", "2026-10-digest")
    assert result.exit_code == 1 and "(greeting)" in result.stderr


def test_subject_and_text_part_show_what_was_typed(project: Path, run: Runner) -> None:
    config = project / "newsletter.toml"
    config.write_text(config.read_text().replace('name = "Riverbend', 'name = "R&D <Riverbend'))
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        re.sub(
            r"(?m)^subject:.*$",
            "subject: '{{ newsletter.name }}: \"quotes\" & <angles>'",
            path.read_text(encoding="utf-8"),
        )
    )
    run("subscribers", "import", "subscribers.example.csv")
    assert run("build", "2026-10-digest").exit_code == 0
    out = project / "build" / "2026-10-digest"
    message = email.message_from_bytes(
        (out / "sample.eml").read_bytes(), policy=email.policy.default
    )
    assert str(message["Subject"]) == 'R&D <Riverbend Clinicians Collective: "quotes" & <angles>'
    body = (out / "email.txt").read_text()
    assert "R&D <Riverbend" in body and "&amp;" not in body and "&lt;" not in body
    assert "R&amp;D &lt;Riverbend" in (out / "email.html").read_text()


def test_text_part_from_markdown_is_plain_with_tagged_unbroken_links(
    project: Path, run: Runner
) -> None:
    path = project / "campaigns" / "2026-10-digest.md"
    long_url = "https://example.org/" + "a-very-long-path-segment/" * 5 + "end"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "Warmly,",
            f"Read **this** and _that_ at [our long page]({long_url}) or "
            "[write to us](mailto:editor@example.org).\n\nWarmly,",
        )
    )
    run("subscribers", "import", "subscribers.example.csv")
    assert run("build", "2026-10-digest").exit_code == 0
    text = (project / "build" / "2026-10-digest" / "email.txt").read_text()
    assert (
        "**" not in text and "_that_" not in text and "Read this and that" in " ".join(text.split())
    )
    tagged = long_url + "?utm_source=newsletter&utm_medium=email&utm_campaign=2026-10-digest"
    assert any(line.strip().endswith(f"({tagged})") or tagged in line for line in text.splitlines())
    assert "write to us (editor@example.org)" in " ".join(text.split())
    assert "](" not in text


def test_a_variant_that_does_not_build_stops_the_send_before_anything_goes_out(
    project: Path, run: Runner
) -> None:
    """Only students' variant has a broken tag: the first reader's builds, the send must not."""
    run("subscribers", "import", "subscribers.example.csv")
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(path.read_text(encoding="utf-8").replace("template: digest", "template: mine"))
    digest = (BUILTIN_TEMPLATES / "digest.mjml").read_text(encoding="utf-8")
    (project / "templates" / "mine.mjml").write_text(
        digest.replace(
            '{% include "_footer.mjml" %}',
            '{% if "student" in recipient.tags %}<mj-sectoin></mj-sectoin>{% endif %}\n'
            '    {% include "_footer.mjml" %}',
        ),
        encoding="utf-8",
    )
    assert run("build", "2026-10-digest").exit_code == 0  # Dana is no student
    check = run("check", "2026-10-digest")
    assert check.exit_code == 1 and "<mj-sectoin> is not an MJML tag" in check.stderr
    send = run("send", "2026-10-digest", "--yes")
    assert send.exit_code == 1 and "mj-sectoin" in send.stderr
    assert not (project / "outbox" / "2026-10-digest").exists()
    assert "Traceback" not in check.stderr + send.stderr


def test_check_names_readers_whose_data_breaks_an_expression(project: Path, run: Runner) -> None:
    run("subscribers", "import", "subscribers.example.csv")
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "Warmly,", "Initial: {{ recipient.first_name[0] }}.\n\nWarmly,"
        )
    )
    result = run("check", "2026-10-digest")
    assert result.exit_code == 0, result.stderr  # a warning: one reader, not the campaign
    assert "1 of 10 readers' messages cannot be built" in result.stderr
    assert "intake.office@example.net" in result.stderr
