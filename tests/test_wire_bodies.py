"""Postmark's request body, written from pieces encoded once per campaign, is exactly the
plain encoding of its documented shape.

Given readers with names in every script, quotes, backslashes, control characters,
emoji and U+2028, an internationalised domain, a campaign with per-reader logic (Jinja2
over ``recipient`` in the subject and the body), with a Reply-To and without, tracking
on and off, and a transactional message, when the transport builds its batch, then the
body's bytes equal ``json.dumps`` (``ensure_ascii=False``, compact separators, UTF-8) of
a list holding, per message, the dict Postmark documents, built plainly here; and parsed,
it holds the same values.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from newsletter.delivery.base import Body, json_array
from newsletter.errors import RecipientError
from newsletter.models import Recipient
from newsletter.project import Project
from newsletter.providers.postmark import PostmarkTransport, message_json
from newsletter.render import OutgoingMessage
from newsletter.render.headers import header_safe

SLUG = "2026-10-digest"
NAMES = [
    ("Ana", "Pérez"),
    ("Ζωή", "Παπαδοπούλου"),  # Greek
    ("Алёна", "Смирнова"),  # Cyrillic
    ("فاطمة", "الزهراء"),  # Arabic (right to left)
    ("שרה", "כהן"),  # Hebrew
    ("美咲", "佐藤"),  # Japanese
    ("민준", "김"),  # Korean
    ("प्रिया", "शर्मा"),  # Devanagari
    ("สมชาย", "ใจดี"),  # Thai
    ("Ngọc", "Nguyễn"),  # Vietnamese, combining marks
    ('Say "hi"', "Back\\slash"),
    ("Tab\there", "new\nline\r\x00\x1f\x7f"),
    ("Line\u2028sep", "para\u2029sep"),
    ("Emoji 🎉", "👩🏽‍⚕️"),
    ("", ""),  # no name at all
    ("O'Brien", "<script>&amp;"),
]
ADDRESSES = ["info@bücher.de", "reader@example.com", "r.ü@xn--bcher-kva.de", "x@ÉXAMPLE.org"]
PERSONAL = (
    "{{ recipient.first_name | upper }}, {{ recipient.last_name | length }} letters: "
    '{{ "a member" if "ce" in recipient.tags else "a reader" }}.\n\n'
    '{% if "ce" in recipient.tags %}Your CE hours are waiting.{% else %}'
    "Earn CE hours with us.{% endif %}\n\nWarmly,"
)
SUBJECT = 'subject: "October at Riverbend: rest, supervision and a winter workshop"'


def reference(messages: list[OutgoingMessage], transport: PostmarkTransport) -> bytes:
    """The documented encoding: the plain shape, dumped by the standard library."""
    shape = [message_json(m, transport.message_stream, transport.tracking) for m in messages]
    return json.dumps(shape, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def readers() -> list[Recipient]:
    out = []
    for i, (first, last) in enumerate(NAMES):
        for j, address in enumerate(ADDRESSES):
            out.append(
                Recipient(
                    subscriber_id=1000 * i + j + 1,
                    email=address,
                    first_name=first,
                    last_name=last,
                    tags=("ce",) if (i + j) % 2 else ("therapist",),
                    attributes={"city": f"Città {first}"},
                )
            )
    return out


def messages(project: Path, *, reply_to: bool, transactional: bool = False) -> list[Any]:
    toml = project / "newsletter.toml"
    lines = toml.read_text(encoding="utf-8").splitlines(keepends=True)
    if not reply_to:
        toml.write_text("".join(x for x in lines if not x.startswith("reply_to")), "utf-8")
    composer = Project.load().composer
    campaign = composer.campaign(SLUG)
    compiled = composer.compile(campaign)
    factory = composer.factory(compiled, carrier=PostmarkTransport.carrier())
    if transactional:
        factory = dataclasses.replace(factory, transactional=True)
    fields = composer.personalizer(SLUG, 7)
    made = []
    for recipient in readers():
        try:
            made.append(factory.message(recipient, fields(recipient)))
        except RecipientError:  # an address Postmark cannot carry is refused before
            continue
    return made


@pytest.fixture
def personal(project: Path) -> Path:
    """The example campaign with per-reader logic in its subject and its body."""
    path = project / "campaigns" / f"{SLUG}.md"
    text = path.read_text(encoding="utf-8")
    text = text.replace("Warmly,", PERSONAL).replace(
        SUBJECT, 'subject: "{{ recipient.first_name }}, \\"October\\" at Riverbend \\\\ 🎉"'
    )
    path.write_text(text, encoding="utf-8")
    return project


@pytest.mark.parametrize("reply_to", [True, False])
@pytest.mark.parametrize("tracking", [(False, False), (True, True), (True, False)])
def test_the_batch_is_the_plain_encoding_of_its_shape(
    personal: Path, reply_to: bool, tracking: tuple[bool, bool]
) -> None:
    made = messages(personal, reply_to=reply_to)
    assert len(made) == 3 * len(NAMES)  # r.ü@ is refused: Postmark cannot carry it
    assert len({m.variant.number for m in made}) == 2, "both branches of the reader's logic"
    transport = PostmarkTransport("t", clicks=tracking[0], opens=tracking[1])
    body = bytes(transport.build_request(made).body)
    expected = reference(made, transport)
    assert json.loads(body) == json.loads(expected)
    assert body == expected
    # and again, from the pieces now cached with the campaign
    assert bytes(transport.build_request(made[:5]).body) == reference(made[:5], transport)
    one = transport.payload_json(made[0])
    assert json.loads(one)["ReplyTo" if reply_to else "From"]
    assert ("ReplyTo" in json.loads(one)) is reply_to


def test_a_static_subject_and_a_transactional_message(project: Path) -> None:
    """The subject the same for every reader, encoded once; a message to one person: no
    list headers."""
    for transactional in (False, True):
        made = messages(project, reply_to=True, transactional=transactional)
        transport = PostmarkTransport("t", message_stream='outbound "s" é', opens=True)
        body = bytes(transport.build_request(made).body)
        assert body == reference(made, transport)
        first = json.loads(body)[0]
        names = [h["Name"] for h in first["Headers"]]
        if transactional:
            assert names == ["Auto-Submitted", "Message-ID"]
        else:
            assert names == ["List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Message-ID"]


def test_each_reader_keeps_their_own_fields(personal: Path) -> None:
    made = messages(personal, reply_to=True)
    transport = PostmarkTransport("t")
    sent = json.loads(bytes(transport.build_request(made).body))
    unsubscribe = [
        h["Value"] for m in sent for h in m["Headers"] if h["Name"] == "List-Unsubscribe"
    ]
    assert len(set(unsubscribe)) == len(made), "each reader's own signed link"
    for message, item in zip(made, sent, strict=True):
        assert item["Metadata"]["subscriber"] == str(message.recipient.subscriber_id)
        assert item["To"] == message.to_display
        assert item["HtmlBody"] == message.html and item["TextBody"] == message.text
        # the reader's own name, made safe for a header (control characters as spaces)
        assert item["Subject"].startswith(header_safe(message.recipient.first_name))
    assert sent[0]["Subject"] != sent[4]["Subject"]


def test_a_body_is_sent_in_chunks_that_join_to_its_bytes(personal: Path) -> None:
    made = messages(personal, reply_to=True)
    body = PostmarkTransport("t").build_request(made).body
    assert isinstance(body, Body)
    whole = bytes(body)
    chunks = list(body)
    assert len(chunks) > 1 and b"".join(chunks) == whole and len(body) == len(whole)
    assert all(len(c) >= Body.chunk for c in chunks[:-1])
    assert list(body) == chunks, "it can be sent again, the same (a retry)"


def test_an_empty_batch_and_the_shared_array_helper() -> None:

    assert json_array([]) == b"[]"
    assert json_array([b"1"]) == b"[1]"
    assert json_array(iter([b"1", b'{"a":2}'])) == b'[1,{"a":2}]'
