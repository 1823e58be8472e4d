"""Header lines: every name, in any script, comes back exactly from every address header.

Given a newsletter whose name, sender, reply-to and reader are called NAME, when
its message is built, then Python's `email` (policy.default) and node mailparser
both read NAME and the address back from From, To, Reply-To, List-Id and the
Subject, with no defects; lines stay within 78 characters where they can fold
and 998 always; each encoded-word is at most 75 characters and holds whole
UTF-8 characters; and nothing in a name can add a header.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import quopri
import re
import shutil
from email.header import decode_header, make_header
from email.headerregistry import HeaderRegistry
from pathlib import Path

import pytest

from conftest import EXAMPLE_FILES, REPO, prepare_database, set_newsletter
from newsletter.models import Recipient
from newsletter.project import Project
from newsletter.render.headers import (
    address_header,
    encoded_words,
    list_id_header,
    unstructured_header,
)
from node_peers import mailparser, needs_mailparser

LONG_LATIN = (
    "Dr. Maria-Theresia von Habsburg-Lothringen, Ärztin für Psychotherapie und "
    "Psychosomatische Medizin, Lehrtherapeutin, Supervisorin, Gründerin des Arbeitskreises "
    "für Achtsamkeit in der Praxis; Mitglied der Deutschen Gesellschaft für "
    "Verhaltenstherapie (DGVT) e.V., Zürich – Wien – Köln"
)
NAMES = {
    "latin": "Renée Castillo-Øvergård",
    "latin-caps": "JÜRGEN MÜLLER",
    "greek": "Αλέξανδρος Παπαδόπουλος",
    "cjk": "山田太郎",
    "chinese-with-latin": "王小明 (Wang Xiaoming)",
    "arabic": "محمد بن عبد الله",
    "hebrew": "דוד בן-גוריון",
    "rtl-and-latin": "Dr. ליאת כהן, PhD",
    "emoji": "Ana 🌻🌈 Lima",
    "emoji-sequence": "👩‍⚕️ Dr. Ana",
    "long-latin": LONG_LATIN,
    "long-ascii": ("Riverbend Clinicians Collective, Continuing Education Committee; " * 5).strip(),
    "quotes": 'Jane "JJ" Doe',
    "backslash": "Back\\slash \\ Team",
    "comma": "Bell, PsyD",
    "angle-and-at": "Eve <eve@example.org>",
    "at": "someone@example.org",
    "r-and-d": "R&D",
    "encoded-word": "=?utf-8?q?x?=",
    "encoded-word-b": "Jürgen =?UTF-8?B?SGk=?=",
    "dots": "A. B. C.",
}
# A run of non-ASCII words longer than one encoded-word must be split into adjacent
# encoded-words. RFC 2047 readers (mail clients, mailparser) join them; Python's email
# before CPython gh-128110 puts a space between them in a display name.
LONG_RUNS = {
    "long-greek": " ".join(["Συλλογικότητα Κλινικών Ψυχολόγων"] * 10),
    "long-cjk": "山田太郎" * 80,
}
ALL = {**NAMES, **LONG_RUNS}
FROM = "news@bücher.example"  # an internationalised domain: goes out in A-labels
FROM_SENT = "news@xn--bcher-kva.example"
REPLY_TO = "editor@riverbend-clinicians.example"
READER = "reader@example.com"
ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
ADDRESS_HEADERS = ("From", "To", "Reply-To", "List-Id")


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One .eml per name: newsletter, sender, reply-to and reader all called by it."""
    root = tmp_path_factory.mktemp("headers") / "project"
    root.mkdir()
    for name in EXAMPLE_FILES:
        source = REPO / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, root / name)
    prepare_database(root)
    config = root / "newsletter.toml"  # List-Id from the name and the sender's domain
    config.write_text(re.sub(r"(?m)^list_id = .*\n", "", config.read_text("utf-8")), "utf-8")
    (root / "campaigns" / "names.md").write_text(
        '---\nsubject: "{{ recipient.first_name }}"\ntemplate: plain\n---\n\nHello '
        '{{ recipient.first_name_or("friend") }},\n\nA short letter.\n',
        encoding="utf-8",
    )
    out = root / "eml"
    out.mkdir()
    paths = {}
    for key, name in ALL.items():
        set_newsletter(
            root,
            name=name,
            **{"from": f"{_quoted(name)} <{FROM}>", "reply_to": f"{_quoted(name)} <{REPLY_TO}>"},
        )
        project = Project.load(str(root / "newsletter.toml"))
        try:
            compiled = project.composer.compile(project.composer.campaign("names"))
            recipient = Recipient(1, READER, first_name=name)
            fields = project.composer.personalizer("names", 1)(recipient)
            message = project.composer.factory(compiled).message(recipient, fields)
            paths[key] = out / f"{key}.eml"
            paths[key].write_bytes(message.as_bytes())
        finally:
            project.close()
    return paths


def head_lines(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def field_lines(raw: bytes, field: str) -> list[bytes]:
    """The physical lines of one header field (its first line and continuations)."""
    lines, inside = [], False
    for line in head_lines(raw):
        if line[:1] in (b" ", b"\t"):
            if inside:
                lines.append(line)
            continue
        inside = line.lower().startswith(field.lower().encode() + b":")
        if inside:
            lines.append(line)
    return lines


def unfolded(raw: bytes, field: str) -> str:
    return b"".join(field_lines(raw, field)).decode("utf-8").split(":", 1)[1].strip()


def rfc2047_phrase(raw: bytes, field: str) -> tuple[str, str]:
    """(display name as an RFC 2047 reader decodes it, what is in the angle brackets)."""
    value = unfolded(raw, field)
    phrase, _, angle = value.rpartition(" <")
    return str(make_header(decode_header(phrase))), angle.rstrip(">")


def parse(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def list_id_phrase(raw: bytes) -> tuple[str, list, str]:
    """(display name, defects, id) of List-Id, its phrase parsed as Python parses names."""
    phrase, _, angle = unfolded(raw, "List-Id").rpartition(" <")
    header = HeaderRegistry()("To", f"{phrase} <list@example.com>")
    return header.addresses[0].display_name, list(header.defects), angle.rstrip(">")


@pytest.mark.parametrize("key", list(NAMES))
def test_python_reads_every_name_back_exactly(built: dict[str, Path], key: str) -> None:
    name, path = NAMES[key], built[key]
    msg = parse(path)
    assert msg.defects == []
    expected = {"From": FROM_SENT, "To": READER, "Reply-To": REPLY_TO}
    for field, address in expected.items():
        header = msg[field]
        assert list(header.defects) == [], (field, header.defects)
        assert [(a.display_name, a.addr_spec) for a in header.addresses] == [(name, address)]
    assert str(msg["Subject"]) == name
    assert msg["Subject"].defects == ()
    display, defects, list_id = list_id_phrase(path.read_bytes())
    assert (display, defects) == (name, [])
    assert list_id.endswith(".xn--bcher-kva.example")


@pytest.mark.parametrize("key", list(LONG_RUNS))
def test_a_long_run_of_one_script_is_split_as_rfc_2047_says(
    built: dict[str, Path], key: str
) -> None:
    name, path = LONG_RUNS[key], built[key]
    raw = path.read_bytes()
    msg = parse(path)
    assert msg.defects == []
    for field, address in {"From": FROM_SENT, "To": READER, "Reply-To": REPLY_TO}.items():
        assert list(msg[field].defects) == []
        [mailbox] = msg[field].addresses
        assert mailbox.addr_spec == address
        # Python (gh-128110) adds a space where the encoded-words meet; nothing else differs
        assert mailbox.display_name.replace(" ", "") == name.replace(" ", "")
        assert rfc2047_phrase(raw, field) == (name, address)
    assert str(msg["Subject"]) == name  # unstructured: Python joins encoded-words correctly
    assert rfc2047_phrase(raw, "List-Id")[0] == name


@pytest.mark.slow
@needs_mailparser
def test_mailparser_reads_every_name_back_exactly(built: dict[str, Path]) -> None:
    parsed = mailparser(list(built.values()))
    for key, path in built.items():
        name, got = ALL[key], parsed[path]
        assert got["from"] == [{"name": name, "address": "news@bücher.example"}], key
        assert got["to"] == [{"name": name, "address": READER}], key
        assert got["replyTo"] == [{"name": name, "address": REPLY_TO}], key
        assert got["subject"] == name, key
        assert got["listId"]["name"] == name, key
        assert got["listId"]["id"].endswith(".xn--bcher-kva.example"), key
        assert got["text"].startswith(f"Hello {name},"), key


@pytest.mark.parametrize("key", list(ALL))
def test_lines_and_encoded_words_keep_their_limits(built: dict[str, Path], key: str) -> None:
    raw = built[key].read_bytes()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    for field in (*ADDRESS_HEADERS, "Subject"):
        lines = field_lines(raw, field)
        assert lines, field
        for line in lines:  # over 78 only for one token that cannot be folded (an <address>)
            assert len(line) <= 78 or b" " not in line.strip().split(b": ", 1)[-1], (field, line)
        value = b"".join(lines).decode("ascii")
        for match in ENCODED_WORD.finditer(value):
            assert len(match.group(0)) <= 75, match.group(0)
            assert match.group(1).lower() == "utf-8"
            data = match.group(3).encode("ascii")
            if match.group(2).lower() == "b":
                data = base64.b64decode(data)
            else:
                data = quopri.decodestring(data.replace(b"_", b" "), header=True)
            data.decode("utf-8")  # strict: each word holds whole characters
        if field != "Subject":  # the addr-spec and List-Id's <label.domain> are never encoded
            assert value.rstrip().endswith(">")
            assert "=?" not in value[value.rindex("<") :]


@pytest.mark.parametrize(
    ("key", "literal"), [("encoded-word", "=?utf-8?q?x?="), ("encoded-word-b", "=?UTF-8?B?SGk=?=")]
)
def test_text_that_looks_encoded_is_encoded_so_no_client_decodes_it(
    built: dict[str, Path], key: str, literal: str
) -> None:
    raw = built[key].read_bytes()
    for field in (*ADDRESS_HEADERS, "Subject"):
        assert literal not in unfolded(raw, field), field  # and read back as typed, above


def test_plain_ascii_names_go_as_typed(built: dict[str, Path]) -> None:
    raw = built["r-and-d"].read_bytes()
    assert f"R&D <{READER}>" in unfolded(raw, "To")
    assert unfolded(raw, "Subject") == "R&D"
    assert unfolded(built["comma"].read_bytes(), "To") == f'"Bell, PsyD" <{READER}>'
    assert unfolded(built["quotes"].read_bytes(), "To") == f'"Jane \\"JJ\\" Doe" <{READER}>'


def test_subject_keeps_ampersands_brackets_and_quotes_as_typed(project: Path) -> None:
    subject = "Q&A: <new> \"quotes\", 'apostrophes' & =?utf-8?q?x?= — über"
    path = project / "campaigns" / "qa.md"
    path.write_text(
        f"---\nsubject: {json.dumps(subject, ensure_ascii=False)}\ntemplate: plain\n---\n\nHi.\n",
        encoding="utf-8",
    )
    proj = Project.load()
    compiled = proj.composer.compile(proj.composer.campaign("qa"))
    recipient = Recipient(1, READER, "Sam")
    message = proj.composer.factory(compiled).message(
        recipient, proj.composer.personalizer("qa", 1)(recipient)
    )
    assert message.subject == subject
    msg = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert str(msg["Subject"]) == subject and msg["Subject"].defects == ()


@pytest.mark.parametrize(
    "evil",
    [
        "Eve\r\nBcc: victim@example.org",
        "Eve\nBcc: victim@example.org",
        "Eve\rBcc: victim@example.org",
        "Eve\x00\r\nBcc: victim@example.org",
        "Eve\u2028Bcc: victim@example.org",
        "Eve\x85Bcc: victim@example.org",
        "Ève\r\n\r\nbody injected",
    ],
)
def test_no_value_can_start_a_header_of_its_own(evil: str) -> None:
    lines = [
        address_header("To", evil, READER),
        address_header("From", evil, FROM_SENT),
        list_id_header(f"{evil} <list.example.org>"),
        unstructured_header("Subject", evil),
    ]
    head = "\r\n".join(lines)
    for line in head.split("\r\n"):
        assert line.startswith((" ", "To:", "From:", "List-Id:", "Subject:")), line
    for char in "\x00\x85\u2028\n\r":
        assert char not in head.replace("\r\n", "")
    msg = email.message_from_string(head + "\r\n\r\nbody\r\n", policy=email.policy.default)
    assert msg["Bcc"] is None and msg.defects == []
    assert msg["To"].addresses[0].addr_spec == READER


def test_encoded_words_never_split_a_character_and_stay_within_75() -> None:
    for text in ("€" * 200, "😀" * 100, "aé" * 150, "山" * 7 + " a" * 50, "ß" * 37):
        words = encoded_words(text, first=40)
        assert len(words[0]) <= 40
        assert all(len(w) <= 75 for w in words)
        decoded = [str(make_header(decode_header(w))) for w in words]
        assert "".join(decoded) == text


def test_a_254_character_address_stays_whole_on_a_line_of_its_own() -> None:
    address = "a" * 64 + "@" + ".".join(["b" * 63, "c" * 63, "d" * 57]) + ".org"
    assert len(address) == 254
    line = address_header("To", "Renée Castillo", address)
    msg = email.message_from_string(line + "\r\n\r\nx\r\n", policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == address
    assert all(len(part) <= 998 for part in line.split("\r\n"))
    assert f"<{address}>" in line.split("\r\n")[-1]
