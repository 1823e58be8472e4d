"""Per-reader expressions run once per distinct value of the fields they read.

A campaign's expressions over ``recipient`` keep their results by the values of the
fields they read; the next reader with the same values gets the same result (or the
same error) without running Jinja2 again. These tests hold every reader's parts to
what the expressions give when they run for each reader (the cache turned off on a
second compile of the same campaign) and to the naive reference of test_personal:
byte for byte, for every kind of name, missing fields, template code in the data,
and conditions true and false, with readers repeated so that results are reused.
"""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.sandbox import SandboxedEnvironment

from conftest import Runner
from newsletter.errors import RecipientError
from newsletter.models import Audience, Recipient
from newsletter.project import Project
from newsletter.render.compile import CompiledCampaign
from newsletter.render.reader import Reader, UnknownField
from newsletter.render.slots import reads_only
from newsletter.render.templates import make_environment
from newsletter.render.variants import CACHED_RESULTS, ReaderPlan, _Results
from test_personal import READERS, canonical, personal, render_alone

__all__ = ["personal"]  # the fixture, used by name

HOSTILE = [
    "{{ 7*7 }}",
    "{% if true %}x{% endif %}",
    "{{ recipient.email }}",
    "<script>alert(1)</script>",
    "&amp; &lt; \" ' \\",
    "\u202e\u200d\U0001f469\u200d\U0001f4bb",
    "line\nbreak\r\n\ttab\x7f",
    "\u2028\u2029",
]
NAMES = ["George", "", "Zoë", "Łukasz", "李小龍", "محمد", "Ёжик", "ग्रेस", "O'Brien", "🙂", "e\u0301"]


def readers() -> list[Recipient]:
    """Readers of every kind, each value met by several readers, in no helpful order."""
    found = list(READERS)
    plans = ["pro", "basic", "", "{{ plan }}"]
    cities = ["Northampton", "", "Łódź", "{% raw %}"]
    ages = ["47", "", "29", "x", "-3"]
    tag_sets: list[tuple[str, ...]] = [(), ("members",), ("board", "members"), ("board",)]
    for i in range(60):
        first = (NAMES + HOSTILE)[i % (len(NAMES) + len(HOSTILE))]
        attributes = {"plan": plans[i % 4], "city": cities[i % 3], "age": ages[i % 5]}
        if i % 7 == 0:
            attributes = {}  # a reader with none of the extra fields
        found.append(
            Recipient(
                100 + i,
                f"reader{i}@example.com",
                first,
                HOSTILE[i % len(HOSTILE)] if i % 5 == 0 else "Doe",
                attributes,
                tag_sets[i % 4],
            )
        )
    return found


def uncached(compiled: CompiledCampaign) -> CompiledCampaign:
    """The campaign with every expression running for each reader as a compiled template,
    as if nothing it read were known and no expression could be a closure."""
    plan = compiled.plan
    for expression in plan.expressions:
        expression.fields = None
        expression.direct = None
    # and forget what the sample's build kept: each expression's runner and results,
    # the variants by the deciding fields' values, each variant's slot getters
    plan._results.clear()
    plan._key_version = -1
    compiled._getters.clear()
    return compiled


def outcome(compiled: CompiledCampaign, fields: dict[str, Any]) -> Any:
    try:
        personal = compiled.personalize(fields)
    except RecipientError as exc:
        return ("error", exc.message)
    return (
        personal.variant.number,
        personal.values,
        personal.html_values,
        personal.text_values,
        compiled.preview(fields),
    )


def test_cached_results_are_those_of_running_every_expression(personal: Project) -> None:
    composer = personal.composer
    fields_of = composer.personalizer("personal", 1)
    cached = composer.compile(composer.campaign("personal"))
    plain = uncached(composer.compile(composer.campaign("personal")))
    assert any(e.fields for e in cached.plan.expressions)  # the cache is used at all
    everyone = readers()
    for reader in everyone + everyone[::-1]:  # the second time round, results are reused
        fields = fields_of(reader)
        assert outcome(cached, fields) == outcome(plain, fields), reader


def test_cached_results_are_what_rendering_alone_gives(personal: Project) -> None:
    composer = personal.composer
    fields_of = composer.personalizer("personal", 1)
    compiled = composer.compile(composer.campaign("personal"))
    everyone = readers()
    for reader in everyone:  # warm: every value seen once
        compiled.personalize(fields_of(reader))
    # the reference folds the subject's whitespace as str.split() sees it and knows
    # nothing of the pipeline's handling of format characters (bidi marks, joiners) and
    # combining marks, nor of missing fields, so
    # it is asked about readers without them; the test above covers those
    shown = [
        r
        for r in everyone
        if r.attributes and not any(_odd_space(str(v)) for v in fields_of(r).values())
    ]
    for reader in shown[:: len(shown) // 8]:
        fields = fields_of(reader)
        subject, html, text = compiled.preview(fields)
        alone = render_alone(personal, "personal", fields)
        assert (subject, text) == (alone[0], alone[2]), reader
        assert canonical(html) == canonical(alone[1]), reader


def _odd_space(text: str) -> bool:
    if unicodedata.normalize("NFC", text) != text:
        return True
    return any(c != " " and unicodedata.category(c)[0] in "CZ" for c in text)


def test_template_code_in_a_field_stays_text(personal: Project) -> None:
    composer = personal.composer
    fields_of = composer.personalizer("personal", 1)
    compiled = composer.compile(composer.campaign("personal"))
    reader = Recipient(9, "t@example.com", "{{ 7*7 }}", "", {"plan": "{{ 6*7 }}"}, ())
    for _ in range(3):
        subject, html, text = compiled.preview(fields_of(reader))
        assert "{{ 7*7 }}" in html and "49" not in html
        assert "{{ 7*7 }}" in subject and "{{ 7*7 }}" in text and "49" not in subject
        assert "plan: {{ 6*7 }}" in text and "42" not in text


def test_an_error_is_given_again_to_each_reader_with_the_same_values(
    project: Path, run: Runner
) -> None:
    (project / "people.csv").write_text(
        "email,first_name,tags\n"
        + "".join(f"r{i}@example.org,Ana,{'members' if i % 2 else ''}\n" for i in range(6))
    )
    run("subscribers", "import", "people.csv")
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "Warmly,", "First group: {{ recipient.tags[0] | upper }}.\n\nWarmly,"
        )
    )
    composer = Project.load().composer
    campaign = composer.campaign("2026-10-digest")
    cached = composer.compile(campaign)
    plain = uncached(composer.compile(campaign))
    fields_of = composer.personalizer("2026-10-digest", 1)
    found = []
    for recipient in composer.subscribers.audience_recipients(campaign.audience):
        fields = fields_of(recipient)
        found.append(outcome(cached, fields))
        assert found[-1] == outcome(plain, fields)
    errors = [f for f in found if f[0] == "error"]
    assert len(errors) == 3 and len(set(errors)) == 1 and "tags" in errors[0][1]
    problems = composer.reader_problems(campaign, cached)
    assert "3 of 6 readers' messages cannot be built" in problems[0].message


@pytest.mark.parametrize(
    ("source", "fields"),
    [
        ("recipient.first_name | upper", ("first_name",)),
        ('"a" if "ce" in recipient.tags else recipient["last_name"]', ("last_name", "tags")),
        ('recipient.get("city", "x") ~ recipient.first_name_or("y")', ("city", "first_name")),
        ("recipient.age | int + shared.count", ("age",)),
        # the reader as a whole, a call, a random pick: not a function of the fields
        ("recipient", None),
        ("recipient | string", None),
        ("recipient.first_name.upper()", None),
        ("recipient.tags | random", None),
        ('recipient.tags | map("random") | list', None),
        ("recipient.get(name)", None),
        ("recipient[name]", None),
        ("recipient.get", None),
        ("recipient._fields", None),
        ("cycle.next() ~ recipient.first_name", None),
    ],
)
def test_what_an_expression_reads(source: str, fields: tuple[str, ...] | None) -> None:
    node = jinja2.Environment().parse("{{ " + source + " }}").body[0].nodes[0]
    assert reads_only(node) == fields


def test_a_field_through_the_sandbox_is_what_the_sandbox_gives() -> None:
    plan = ReaderPlan.__new__(ReaderPlan)
    plan.tokens = type("T", (), {"nonce": "\x00nonce"})()
    env = make_environment(None, plan)
    sandbox = SandboxedEnvironment()
    known = {"city"}.__contains__
    reader = Reader({"first_name": "Ana", "tags": ("a",), "city": ""}, known)
    for name in ("first_name", "last_name", "tags", "city", "email", "name"):
        assert env.getattr(reader, name) == sandbox.getattr(reader, name)
    for name in ("get", "first_name_or"):
        assert env.getattr(reader, name)("first_name") == reader.get("first_name")
    for name in ("_fields", "__class__"):
        assert isinstance(env.getattr(reader, name), jinja2.Undefined)
    with pytest.raises(UnknownField):
        env.getattr(reader, "shoe_size")
    with pytest.raises(UnknownField):
        sandbox.getattr(reader, "shoe_size")


def test_the_results_kept_are_bounded() -> None:
    """Values that are mostly new (a first name) stop being kept; values that repeat are
    kept afresh once there are too many."""
    mostly_new = _Results((), ("first_name",), str)
    for i in range(CACHED_RESULTS + 1):
        mostly_new.keep((f"Reader{i}",), (True, f"READER{i}"))
    assert mostly_new.fields is None and not mostly_new.results
    repeated = _Results((), ("tags",), str)
    for i in range(CACHED_RESULTS):
        repeated.keep((i,), (True, i))
    repeated.hits = CACHED_RESULTS
    repeated.keep(("new",), (True, "new"))
    assert repeated.fields == ("tags",) and repeated.results == {("new",): (True, "new")}


def _run(fn: Any, *args: Any) -> Any:
    try:
        value = fn(*args)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    return (type(value), value)


def test_an_expression_as_a_closure_gives_what_its_compiled_template_gives(
    personal: Project,
) -> None:
    """Filters, tests, inline if, comparisons, not/and/or over fields: the closure a
    simple expression becomes returns (or raises) exactly what Jinja2 gives."""
    path = personal.settings.root / "campaigns" / "personal.md"
    path.write_text(
        path.read_text(encoding="utf-8")
        + "\n{{ recipient.first_name | upper }} {{ recipient.last_name | length }}"
        " {{ 'x' if recipient.age == '47' else recipient.get('city', 'none') | title }}"
        " {{ recipient['plan'] | default('free', true) | center(9) }}"
        " {{ not recipient.plan and 'members' in recipient.tags }}"
        " {{ recipient.age is number or recipient.age | int is odd }}"
        " {{ recipient.first_name_or('you') | truncate(3, true, '') }}"
        " {{ recipient.tags | first }} {{ recipient.age | int(7) > 30 }}"
        " {{ 'board' not in recipient.tags }} {{ recipient.age | float | round(1) }}\n",
        encoding="utf-8",
    )
    composer = Project.load().composer
    compiled = composer.compile(composer.campaign("personal"))
    fields_of = composer.personalizer("personal", 1)
    expressions = [e for e in compiled.plan.expressions if e.direct is not None]
    assert len(expressions) >= 12
    for reader in readers():
        made = Reader(fields_of(reader), compiled.plan.known)
        for expression in expressions:
            expected = _run(expression.evaluate, made, {})
            assert _run(expression.direct, made) == expected, (expression.where, reader)


def test_values_equal_as_keys_but_of_other_types_are_not_taken_for_each_other(
    personal: Project,
) -> None:
    """1, 1.0 and True are one dict key. Attributes are JSON and may hold any of them; a
    reader gets the result of their own value (as text), never one kept for another."""
    composer = personal.composer
    fields_of = composer.personalizer("personal", 1)
    cached = composer.compile(composer.campaign("personal"))
    plain = uncached(composer.compile(composer.campaign("personal")))
    values: list[Any] = [1, True, 1.0, "1", 0, False, 0.0, ""]
    for round_ in range(2):
        for i, value in enumerate(values):
            reader = Recipient(500 + i, f"typed{i}@example.com", "Ann", "Lee", {"plan": value}, ())
            fields = fields_of(reader)
            assert outcome(cached, fields) == outcome(plain, fields), (round_, value)


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "<b>&amp;\"'",
        "",
        0,
        -3,
        10**40,
        1.5,
        -0.0,
        float("inf"),
        float("nan"),
        2.5e-10,
        True,
        None,
        ("a", "<b>"),
        jinja2.utils.markupsafe.Markup("<i>safe</i>"),
    ],
)
def test_a_value_as_html_is_what_escape_gives(value: Any) -> None:
    from markupsafe import escape

    from newsletter.render.slots import Slot

    shown = Slot().html(value)
    assert shown == str(escape(value)) and type(shown) is str


# -- the send's pass over the audience, when its decisions read only tags ----------------------
TAGGED = """\
{% if "members" in recipient.tags %}Members' corner.{% endif %}
{% if recipient.tags | length > 1 %}You follow several things.{% else %}One thing.{% endif %}
{{ recipient.first_name | upper }} and {{ recipient.last_name | length }}.

Warmly,"""
TAG_SETS = ["", "members", "board;members", "board", "<b>;&amp", "Łódź;李", "members;zz"]


def _tagged_project(project: Path, run: Runner, decision: str | None = None) -> Project:
    text = TAGGED if decision is None else TAGGED.replace('"members" in recipient.tags', decision)
    digest = (project / "campaigns" / "2026-10-digest.md").read_text(encoding="utf-8")
    (project / "campaigns" / "tagged.md").write_text(
        digest.replace("Warmly,", text), encoding="utf-8"
    )
    names = NAMES + HOSTILE
    with open(project / "tagged.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "first_name", "last_name", "tags"])
        for i in range(40):
            writer.writerow(
                [
                    f"t{i}@example.org",
                    names[i % len(names)],
                    names[-i % len(names)],
                    TAG_SETS[(i * 5) % len(TAG_SETS)],
                ]
            )
    result = run("subscribers", "import", "tagged.csv")
    assert result.exit_code == 0, result.output
    return Project.load()


def _variants(compiled: CompiledCampaign) -> list[Any]:
    return sorted(
        (v.number, v.subject.literals, v.html.literals, v.text.literals, v.slots)
        for v in compiled.variants
    )


def test_the_variants_built_from_tags_are_those_every_reader_needs(
    project: Path, run: Runner
) -> None:
    composer = _tagged_project(project, run).composer
    campaign = composer.campaign("tagged")
    by_tags = composer.compile(campaign)
    assert by_tags.plan.decision_fields() == ("tags",)
    assert composer.reader_problems(campaign, by_tags, every_reader=False) == []
    # the same, reader by reader, with each reader's own fields
    by_reader = composer.compile(campaign)
    fields_of = composer.personalizer("tagged", 1)
    for recipient in composer.subscribers.audience_recipients(campaign.audience):
        by_reader.variant_of(fields_of(recipient))
    assert len(by_reader.variants) > 2
    assert _variants(by_tags) == _variants(by_reader)
    # and every reader's parts from it are those of the campaign rendered for each
    plain = uncached(composer.compile(campaign))
    for recipient in composer.subscribers.audience_recipients(campaign.audience):
        fields = fields_of(recipient)
        assert outcome(by_tags, fields) == outcome(plain, fields), recipient


def test_a_decision_some_tags_break_still_names_each_reader(project: Path, run: Runner) -> None:
    composer = _tagged_project(project, run, 'recipient.tags[0] | upper == "MEMBERS"').composer
    campaign = composer.campaign("tagged")
    compiled = composer.compile(campaign)
    assert compiled.plan.decision_fields() == ("tags",)
    untagged = [
        r.email for r in composer.subscribers.audience_recipients(campaign.audience) if not r.tags
    ]
    assert untagged
    problems = composer.reader_problems(campaign, compiled, every_reader=False)
    assert len(problems) == 1
    message = problems[0].message
    assert message.startswith(f"{len(untagged)} of 40 readers' messages cannot be built")
    assert all(email in message for email in untagged[:10])


def test_a_decision_parsed_later_is_asked_of_readers_whose_tags_were_seen(
    project: Path, run: Runner
) -> None:
    """A template included in one branch decides on the first name: a reader with the
    tags of an earlier reader, and another name, gets the variant of their own name."""
    (project / "templates" / "nested.txt").write_text(
        '{% if recipient.first_name == "Ana" %}Hello Ana.{% else %}Hello you.{% endif %}',
        encoding="utf-8",
    )
    branch = '{% if "members" in recipient.tags %}{% include "nested.txt" %}{% endif %}'
    composer = _tagged_project(project, run, None).composer
    path = project / "campaigns" / "tagged.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("Warmly,", branch + "\n\nWarmly,"),
        encoding="utf-8",
    )
    campaign = composer.campaign("tagged")
    compiled = composer.compile(campaign)
    plain = uncached(composer.compile(campaign))
    fields_of = composer.personalizer("tagged", 1)
    people = [
        Recipient(1, "a@example.org", "Bea", "", {}, ("members",)),
        Recipient(2, "b@example.org", "Ana", "", {}, ("members",)),
        Recipient(3, "c@example.org", "Ana", "", {}, ()),
        Recipient(4, "d@example.org", "Bea", "", {}, ("members",)),
        Recipient(5, "e@example.org", "Ana", "", {}, ("members",)),
    ]
    shown = []
    for reader in people:
        fields = fields_of(reader)
        assert outcome(compiled, fields) == outcome(plain, fields), reader
        shown.append(compiled.preview(fields)[2])
    assert ["Hello Ana." in text for text in shown] == [False, True, False, False, True]
    assert composer.reader_problems(campaign, compiled, every_reader=False) == []


def test_the_sets_of_tags_are_those_of_the_readers_in_order(project: Path, run: Runner) -> None:
    subscribers = _tagged_project(project, run).composer.subscribers
    for audience in (
        Audience(),
        Audience(tags_any=("members",)),
        Audience(exclude_tags=("board",)),
        Audience(tags_all=("members", "zz")),
        Audience(tags_any=("nobody",)),
    ):
        first: dict[tuple[str, ...], None] = {}
        for recipient in subscribers.audience_recipients(audience):
            first.setdefault(recipient.tags, None)
        assert subscribers.audience_tag_sets(audience, 4096) == list(first), audience
    assert subscribers.audience_tag_sets(Audience(), len(TAG_SETS) - 1) is None
    assert subscribers.audience_tag_sets(Audience(), len(TAG_SETS)) is not None
