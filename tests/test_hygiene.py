"""Text from outside is data: never template code, never terminal commands; and nothing
private leaks through messages or file permissions.

Given hostile articles, feeds, subscribers and settings, when the commands run, then
the text shows up literally, the host is untouched, secrets are redacted and files
holding readers' data are the owner's alone.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import stat
from pathlib import Path

import pytest

from conftest import ON_POSTGRES, run_process

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

PAYLOAD = "{{ lipsum.__globals__['os'].system('touch pwned-by-title') }} and {% raw %}"


def _article(project: Path, title: str, date: str = "2026-10-29") -> Path:
    path = project / "articles" / f"{date}-hostile.md"
    path.write_text(
        f"---\ntitle: {json.dumps(title)}\ndate: {date}\nauthor: Mallory\n"
        "url: https://blog.riverbend-clinicians.example/hostile\n---\n"
        "An article whose title is template code.\n",
        encoding="utf-8",
    )
    return path


def test_a_title_in_a_digest_subject_is_printed_not_run(project: Path) -> None:
    """The digest writes the subject with an article's title into a campaign file that
    `build` renders later: the title must come out as typed, and run nothing."""
    config = project / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "[delivery]",
            '[digest]\nsubject = "{{ newsletter.name }}: {{ articles[0].title }}"\n\n[delivery]',
        ),
        encoding="utf-8",
    )
    _article(project, PAYLOAD)
    run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    written = run_process("digest", "--today", "2026-11-01", cwd=project)
    assert written.returncode == 0, written.stderr
    built = run_process("build", "digest-2026-10", cwd=project)
    assert built.returncode == 0, built.stderr
    assert not (project / "pwned-by-title").exists()
    sample = (project / "build" / "digest-2026-10" / "sample.eml").read_bytes()
    message = email.message_from_bytes(sample, policy=email.policy.default)
    assert str(message["Subject"]) == f"Riverbend Clinicians Collective: {PAYLOAD}"
    sent = run_process("send", "digest-2026-10", "--yes", cwd=project)
    assert sent.returncode == 0, sent.stderr
    assert not (project / "pwned-by-title").exists()


def test_templates_run_in_the_sandbox(project: Path) -> None:
    """Even the staff's own templates cannot reach Python's internals."""
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "Warmly,", "{{ lipsum.__globals__['os'].system('touch pwned-by-template') }}\n\nWarmly,"
        ),
        encoding="utf-8",
    )
    result = run_process("build", "2026-10-digest", cwd=project)
    assert result.returncode == 1
    assert "unsafe" in result.stderr and "Traceback" not in result.stderr
    assert not (project / "pwned-by-template").exists()


BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
)


@pytest.mark.parametrize(
    ("front_matter", "says"),
    [
        (BOMB, "uses a YAML alias"),
        ("title: " + "[" * 20000 + "]" * 20000 + "\n", "nested more than 16 levels"),
        ("title: x\nexcerpt: '" + "y" * 70_000 + "'\n", "at most 65,536 are read"),
    ],
    ids=["alias bomb", "deep nesting", "huge"],
)
def test_hostile_front_matter_is_refused_quickly_and_clearly(
    project: Path, front_matter: str, says: str
) -> None:
    (project / "articles" / "2026-10-30-bomb.md").write_text(
        f"---\n{front_matter}---\nBody.\n", encoding="utf-8"
    )
    (project / "campaigns" / "bomb.md").write_text(
        f"---\nsubject: Hi\n{front_matter}---\nBody.\n", encoding="utf-8"
    )
    for args in (["articles", "articles/2026-10-30-bomb.md"], ["build", "bomb"]):
        result = run_process(*args, cwd=project, timeout=30)
        assert result.returncode == 1, result.stderr
        assert says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31mRed\u202eevil\x9b"


def test_terminal_control_characters_are_not_printed(project: Path) -> None:
    (project / "hostile.csv").write_text(
        f"email,first_name,last_name\nmallory@example.com,{ESCAPES},Q\n", encoding="utf-8"
    )
    assert run_process("subscribers", "import", "hostile.csv", cwd=project).returncode == 0
    _article(project, f"Title {ESCAPES}")
    outputs = [
        run_process("subscribers", "list", cwd=project),
        run_process("articles", "articles/2026-10-29-hostile.md", cwd=project),
        run_process("subscribers", "history", "mallory@example.com", cwd=project),
    ]
    for result in outputs:
        assert result.returncode == 0, result.stderr
        for control in ("\x1b", "\x07", "\x9b", "\u202e"):
            assert control not in result.stdout + result.stderr
    assert "Red" in outputs[0].stdout and "\ufffd" in outputs[0].stdout
    # data formats keep the data as it is (JSON escapes it)
    listed = run_process("subscribers", "list", "--format", "json", cwd=project)
    (mallory,) = [r for r in json.loads(listed.stdout) if r["email"] == "mallory@example.com"]
    assert mallory["first_name"] == ESCAPES


def test_credentials_in_urls_never_reach_a_message(project: Path) -> None:
    for url in (
        "postgresql://newsletter:s3cret-pw@127.0.0.1:1/nowhere",
        "mysql://newsletter:s3cret-pw@127.0.0.1/nowhere",
    ):
        result = run_process(
            "subscribers", "list", cwd=project, env={"NEWSLETTER_DATABASE_URL": url}
        )
        assert result.returncode == 1
        assert "s3cret-pw" not in result.stdout + result.stderr
    assert "mysql://***@127.0.0.1/nowhere" in result.stderr


@pytest.mark.skipif(ON_POSTGRES, reason="the SQLite file's permissions")
def test_files_with_readers_data_are_the_owners_alone(project: Path) -> None:
    old = os.umask(0o022)  # a permissive umask, as on many machines
    try:
        assert (
            run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode
            == 0
        )
        assert run_process("build", "2026-10-digest", cwd=project).returncode == 0
        assert run_process("send", "2026-10-digest", "--yes", cwd=project).returncode == 0
        assert run_process("articles", "--refresh", cwd=project).returncode in (0, 1)
    finally:
        os.umask(old)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(project / "newsletter.db") == 0o600
    for extra in ("newsletter.db-wal", "newsletter.db-shm"):
        if (project / extra).exists():
            assert mode(project / extra) == 0o600, extra
    outbox = project / "outbox" / "2026-10-digest"
    assert mode(outbox) == 0o700
    assert {mode(p) for p in outbox.glob("*.eml")} == {0o600}
    assert {mode(p) for p in (project / "build" / "2026-10-digest").iterdir()} == {0o600}


# Where a file may be renamed into place or a temporary file made: files.py, the one
# writer of whole files. Nothing else needs it: a campaign file, an export, a page or a
# private file each goes through files.write_atomic / atomic_file / write_private /
# publish_files.
ATOMIC_WRITERS = {"files.py"}
RENAMES = re.compile(
    r"os\.(replace|rename)\(|shutil\.move|NamedTemporaryFile|mkstemp"
    r"|\.(replace|rename)\(\s*[\w.]+\s*\)"  # Path.replace(target): str.replace takes two
)


def test_files_are_written_whole_in_one_place() -> None:
    source = Path(__file__).resolve().parents[1] / "src" / "newsletter"
    found = [
        f"{path.relative_to(source)}:{number}: {line.strip()}"
        for path in sorted(source.rglob("*.py"))
        if str(path.relative_to(source)) not in ATOMIC_WRITERS
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if RENAMES.search(line)
    ]
    assert not found, "write through newsletter.files instead:\n" + "\n".join(found)


def test_an_export_is_the_owners_alone_and_a_digest_file_keeps_the_umasks_permissions(
    project: Path,
) -> None:
    """An export holds the whole list: 0600 whatever the umask, written whole, also over
    an older export readable by everyone and over a temporary file a cut-short export
    left; a campaign file a digest writes keeps the umask's permissions."""
    export = project / "export.csv"
    again = project / "again.csv"
    old = os.umask(0o022)
    try:
        assert (
            run_process("subscribers", "import", "subscribers.example.csv", cwd=project).returncode
            == 0
        )
        assert run_process("subscribers", "export", str(export), cwd=project).returncode == 0
        again.write_text("an older export\n", encoding="utf-8")  # 0644
        (project / ".again.csv.tmp").write_text("cut short\n", encoding="utf-8")  # 0644
        assert run_process("subscribers", "export", str(again), cwd=project).returncode == 0
        _article(project, "A plain title")
        assert run_process("digest", "--today", "2026-11-01", cwd=project).returncode == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    assert stat.S_IMODE(again.stat().st_mode) == 0o600
    assert again.read_text(encoding="utf-8") == export.read_text(encoding="utf-8")
    assert export.read_text(encoding="utf-8").startswith("email,first_name,")
    written = project / "campaigns" / "digest-2026-10.md"
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert not [p.name for p in project.rglob("*.tmp")]


# Records are values: frozen (a change makes a new one, ``dataclasses.replace``) and
# slotted. A record that is state being filled says so on its decorator's line
# ("# mutable: why"). render/ and web/serve.py are being reorganised: they follow when
# their classes settle.
# MessageFactory (render/message.py) sets its per-campaign caches in __post_init__, on
# the per-reader hot path; it is built once per send and never changed after.
EXCEPTIONS = {"render/message.py": ("class MessageFactory",)}
DATACLASS = re.compile(r"^@(dataclasses\.)?dataclass\b(.*)$")


def test_records_are_frozen_and_slotted() -> None:
    source = Path(__file__).resolve().parents[1] / "src" / "newsletter"
    wrong = []
    for path in sorted(source.rglob("*.py")):
        name = str(path.relative_to(source))
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            found = DATACLASS.match(line.strip())
            if not found:
                continue
            following = lines[number] if number < len(lines) else ""
            if following.startswith(EXCEPTIONS.get(name, ("\0",))):
                continue
            options = found.group(2)
            if "slots=True" not in options or (
                "frozen=True" not in options and "# mutable:" not in options
            ):
                wrong.append(f"{name}:{number}: {line.strip()}")
    assert not wrong, "records are @dataclass(frozen=True, slots=True):\n" + "\n".join(wrong)
