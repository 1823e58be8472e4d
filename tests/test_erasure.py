"""`subscribers forget`: the person leaves nothing behind, and nothing brings them back.

Each test is one way an erased person used to survive: a differently cased event,
another subscriber's raw payload, a build sample, the SQLite log, a guessable
hash, an outbox file name, a late provider event, a send already under way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ON_POSTGRES, connect, run_process, set_delivery
from fakes.postmark import FakePostmark
from test_subscribers_more import db_rows

CAMPAIGN = "2026-10-digest"
VICTIM = "victim.person@example.com"
NEIGHBOUR = "x-victim.person@example.com"  # another person whose address ends like hers
BOB = "bob.other@example.org"
PEOPLE = (
    f"email,first_name,last_name\n{VICTIM},Vera,Quist\n{NEIGHBOUR},Xavier,Noor\n{BOB},Bob,Other\n"
)


# -- helpers ------------------------------------------------------------------------
def mentions(text: str, address: str) -> bool:
    """Whether ``text`` names ``address`` itself, in any case (not a longer address)."""
    pattern = rf"(?<![\w.!#$%&'*+/?^`{{|}}~-]){re.escape(address)}(?![\w-]|\.[\w-])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def cells_naming(project: Path, *needles: str) -> list[tuple[str, str, object]]:
    """Every cell of every table that names one of ``needles`` (addresses or names)."""
    found = []
    for table, column, value in db_rows(project / "newsletter.db"):
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if isinstance(text, str) and any(mentions(text, n) for n in needles):
            found.append((table, column, value))
    return found


def import_people(run, project: Path, text: str = PEOPLE) -> None:
    path = project / "people.csv"
    path.write_text(text, encoding="utf-8")
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 0, result.stderr


def import_events(run, project: Path, provider: str, events: list[dict]) -> str:
    path = project / f"{provider}-events.json"
    path.write_text(json.dumps(events), encoding="utf-8")
    result = run("events", "import", str(path), "--provider", provider)
    assert result.exit_code == 0, result.stderr
    return result.stderr


def forget(run, address: str, env: dict[str, str] | None = None):
    result = run("subscribers", "forget", address, "--yes", env=env)
    assert result.exit_code == 0, result.stderr
    return result


def listed(run) -> list[dict]:
    result = run("subscribers", "list", "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def execute(project: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows as tuples, on SQLite and PostgreSQL alike."""
    db = connect(project)
    try:
        cursor = db.execute(sql, params)
        if not cursor.description:
            return []
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in cursor]
    finally:
        db.close()


# -- the database ------------------------------------------------------------------
def test_an_event_recorded_before_import_under_another_case_is_erased(project: Path, run) -> None:
    # given: a bounce for Victim.Person@Example.COM arrives before she is imported
    outcome = import_events(
        run,
        project,
        "postmark",
        [
            {
                "RecordType": "Bounce",
                "ID": 4242,
                "Type": "SoftBounce",
                "MessageID": "b0unce00-0000-4000-8000-000000000001",
                "Email": "Victim.Person@Example.COM",
                "Description": "The mailbox of Victim.Person@Example.COM is full",
                "Details": "smtp;552 5.2.2 <Victim.Person@Example.COM>: over quota",
                "BouncedAt": "2026-10-01T10:00:00Z",
            }
        ],
    )
    assert "no matching subscriber" in outcome
    import_people(run, project)
    assert cells_naming(project, VICTIM)

    # when: she asks to be erased, typing her address in yet another case
    forget(run, "VICTIM.PERSON@example.com")

    # then: not one cell names her, and the event still counts
    assert cells_naming(project, VICTIM, "Quist") == []
    assert execute(project, "SELECT count(*) FROM events")[0][0] == 1
    assert {p["email"] for p in listed(run)} == {NEIGHBOUR, BOB}


def test_forget_matches_an_international_domain_in_either_form(project: Path, run) -> None:
    # given: an address stored with its domain in Unicode, and an event that reports it
    # in A-labels (punycode), as providers do
    stored, wire = "ulrike@bücher.example.com", "ulrike@xn--bcher-kva.example.com"
    import_people(run, project, f"email,first_name,last_name\n{stored},Ulrike,Händler\n{BOB},,\n")
    import_events(
        run,
        project,
        "postmark",
        [{"RecordType": "Delivery", "Recipient": wire.upper(), "MessageID": "m-1"}],
    )

    # when: she is forgotten by the A-label form
    forget(run, "ULRIKE@XN--BCHER-KVA.EXAMPLE.COM")

    # then: both forms are gone and so is she
    assert cells_naming(project, stored, wire, "Händler") == []
    assert [p["email"] for p in listed(run)] == [BOB]


def test_other_subscribers_raw_payloads_lose_the_address_and_stay_valid_json(
    project: Path, run
) -> None:
    # given: events about Bob whose raw payloads list Vera among several recipients,
    # and a provider response for Bob that mentions her
    import_people(run, project)
    assert run("send", CAMPAIGN, "--yes").exit_code == 0
    import_events(
        run,
        project,
        "mailgun",
        [
            {
                "event-data": {
                    "event": "delivered",
                    "id": "mg-event-1",
                    "recipient": BOB,
                    "timestamp": 1790000000,
                    "message": {
                        "headers": {
                            "message-id": "20261020.1@mg.example",
                            "to": f"Vera Quist <Victim.Person@Example.com>, Bob Other <{BOB}>, "
                            f"{NEIGHBOUR}",
                        }
                    },
                    "recipients": ["VICTIM.PERSON@EXAMPLE.COM", BOB, NEIGHBOUR],
                    "user-variables": {"campaign": CAMPAIGN},
                }
            }
        ],
    )
    import_events(
        run,
        project,
        "sendgrid",
        [
            {
                "email": BOB,
                "event": "delivered",
                "sg_event_id": "sg-event-1",
                "sg_message_id": "batch-1.filter0001",
                "timestamp": 1790000000,
                "campaign": CAMPAIGN,
                "personalizations": {
                    VICTIM: {"first_name": "Vera", "last_name": "Quist"},
                    BOB: {"first_name": "Bob"},
                },
                "reason": f"batch with {VICTIM.upper()} and {BOB}",
            }
        ],
    )
    response = {
        "To": BOB,
        "Cc": [f'"Vera Quist" <{VICTIM}>'],
        "Message": f"OK; queued with {VICTIM}",
        "Nested": {"note": "see victim.person@example.com.", "id": 7},
    }
    execute(
        project,
        "UPDATE deliveries SET response = ?, error = ? WHERE email = ?",
        (json.dumps(response), f"450 try later (batch with {VICTIM})", BOB),
    )
    assert len(cells_naming(project, VICTIM)) >= 5

    # when
    forget(run, VICTIM)

    # then: nobody's row names her; Bob's and Xavier's data are intact and parse
    assert cells_naming(project, VICTIM, "Quist") == []
    for (raw,) in execute(project, "SELECT raw FROM events"):
        json.loads(raw)
    mailgun = json.loads(
        execute(project, "SELECT raw FROM events WHERE provider = 'mailgun'")[0][0]
    )
    data = mailgun["event-data"]
    assert data["recipient"] == BOB
    assert data["recipients"] == ["[erased]", BOB, NEIGHBOUR]
    assert BOB in data["message"]["headers"]["to"] and NEIGHBOUR in data["message"]["headers"]["to"]
    sendgrid = json.loads(
        execute(project, "SELECT raw FROM events WHERE provider = 'sendgrid'")[0][0]
    )
    assert sendgrid["personalizations"][BOB] == {"first_name": "Bob"}
    assert "[erased]" in sendgrid["personalizations"]
    row = execute(project, "SELECT response, error FROM deliveries WHERE email = ?", (BOB,))[0]
    kept = json.loads(row[0])
    assert kept["To"] == BOB and kept["Nested"]["id"] == 7
    assert kept["Nested"]["note"] == "see [erased]."
    assert row[1] == "450 try later (batch with [erased])"
    assert {p["email"] for p in listed(run)} == {NEIGHBOUR, BOB}


@pytest.mark.slow
def test_the_erased_address_is_kept_only_as_a_keyed_hash(project: Path, run) -> None:
    secret = {"NEWSLETTER_SECRET": "a-long-project-secret"}
    import_people(run, project)

    forget(run, "Victim.Person@EXAMPLE.com", env=secret)

    # then: the one row kept is HMAC-SHA256 under the project secret, not a hash
    # anyone could compute from a guessed address
    rows = execute(project, "SELECT email_hash FROM forgotten")
    keyed = hmac.new(b"a-long-project-secret", VICTIM.encode(), hashlib.sha256).hexdigest()
    assert [r[0] for r in rows] == [keyed]
    guessable = {
        hashlib.sha256(f"newsletter-forgotten:{VICTIM}".encode()).hexdigest(),
        hashlib.sha256(VICTIM.encode()).hexdigest(),
    }
    assert not guessable & {r[0] for r in rows}

    # and it still blocks her, in any case, with the same secret
    again = run("subscribers", "import", str(project / "people.csv"), env=secret)
    assert again.exit_code == 0
    assert f"{VICTIM}: erased on request earlier; not imported" in again.stderr
    upper = project / "upper.csv"
    upper.write_text(f"email\n{VICTIM.upper()}\n", encoding="utf-8")
    assert (
        "erased on request earlier" in run("subscribers", "import", str(upper), env=secret).stderr
    )

    # a different secret cannot check the list: the import stops and says why
    other = run_process("subscribers", "import", str(upper), cwd=project)
    assert other.returncode == 1
    assert "NEWSLETTER_SECRET" in other.stderr
    assert VICTIM not in {p["email"].lower() for p in listed(run)}


def test_hashes_of_an_older_version_still_block_and_become_keyed(
    project: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a database of the previous version, with an unkeyed hash and an erased
    # row that a late complaint had brought back into the list
    import newsletter.store.migrations as migrations
    from newsletter.catalog import load_settings
    from newsletter.store import open_store

    old = [m for m in migrations.MIGRATIONS if m[0] < "004"]
    with monkeypatch.context() as patched:
        patched.setattr(migrations, "MIGRATIONS", old)
        store = open_store(load_settings(str(project / "newsletter.toml")).database_url)
    legacy = hashlib.sha256(f"newsletter-forgotten:{VICTIM}".encode()).hexdigest()
    with store.transaction():
        store.db.execute(
            "INSERT INTO forgotten (email_hash, forgotten_at) VALUES (?, '2026-01-01T00:00:00Z')",
            (legacy,),
        )
        store.db.execute(
            "INSERT INTO subscribers (email, email_key, status, status_reason, created_at, "
            "updated_at) VALUES ('forgotten-1@invalid', 'forgotten-1@invalid', 'complained', "
            "'postmark complained', '2026-01-01', '2026-01-01')"
        )
    store.close()

    # when: the address comes back in an import
    again = run("subscribers", "import", str(_people(project)))

    # then: it is refused, the old hash is replaced by a keyed one, and the erased
    # row no longer shows
    assert f"{VICTIM}: erased on request earlier; not imported" in again.stderr
    hashes = [r[0] for r in execute(project, "SELECT email_hash FROM forgotten")]
    assert legacy not in hashes and len(hashes) == 1
    assert {p["email"] for p in listed(run)} == {NEIGHBOUR, BOB}


def _people(project: Path) -> Path:
    path = project / "people.csv"
    path.write_text(PEOPLE, encoding="utf-8")
    return path


def test_every_text_column_is_either_erased_or_free_of_personal_data() -> None:
    """A new table or column must say whether forget has to look at it."""
    from newsletter.store import open_store
    from newsletter.store.erasure import DELETED_WHOLE, ERASABLE, NOT_PERSONAL

    store = open_store("sqlite:///:memory:")
    columns = set()
    for (table,) in store.db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ):
        for row in store.db.execute(f'PRAGMA table_info("{table}")'):
            if row["type"].upper() == "TEXT":
                columns.add(f"{table}.{row['name']}")
    declared = {f"{t}.{c}" for t, spec in ERASABLE.items() for c in spec.columns}
    declared |= {c for c in columns if c.split(".")[0] in DELETED_WHOLE}
    assert columns - declared - NOT_PERSONAL == set(), "classify the new columns"


# -- late events ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_late_complaint_matched_by_message_id_never_brings_her_back(
    project: Path, run, tmp_path: Path
) -> None:
    import_people(run, project)
    assert run("send", CAMPAIGN, "--yes").exit_code == 0
    history = json.loads(run("subscribers", "history", VICTIM, "--format", "json").stdout)
    message_id = history[0]["provider_message_id"]
    forget(run, VICTIM)

    # when: her complaint arrives, matched by the message id alone, then a bounce by address
    import_events(
        run,
        project,
        "postmark",
        [
            {
                "RecordType": "SpamComplaint",
                "ID": 901,
                "MessageID": message_id,
                "BouncedAt": "2026-10-21T09:00:00Z",
                "Details": "Vera Quist marked it as spam",
            },
            {
                "RecordType": "Bounce",
                "ID": 902,
                "Type": "HardBounce",
                "Email": VICTIM.upper(),
                "Description": f"{VICTIM} does not exist",
            },
        ],
    )

    # then: the list, the export and the history know nothing of her
    people = listed(run)
    assert {p["email"] for p in people} == {NEIGHBOUR, BOB}
    assert not [p for p in people if p["status"] in ("complained", "bounced")]
    complained = run("subscribers", "list", "--status", "complained", "--format", "json")
    assert json.loads(complained.stdout) == []
    assert run("subscribers", "export", str(tmp_path / "all.csv")).exit_code == 0
    assert "forgotten" not in (tmp_path / "all.csv").read_text(encoding="utf-8")
    assert run_process("subscribers", "history", VICTIM, cwd=project).returncode == 1
    # the events count, without anything that identifies her
    late = execute(project, "SELECT email, detail, raw FROM events ORDER BY id")
    assert [tuple(r) for r in late] == [(None, None, "{}"), (None, None, "{}")]
    assert cells_naming(project, VICTIM, "Quist") == []


# -- files ---------------------------------------------------------------------------
def test_outbox_files_are_removed_by_exact_name_and_by_their_headers(project: Path, run) -> None:
    import_people(run, project)
    assert run("send", CAMPAIGN, "--yes").exit_code == 0
    tests = run("send", CAMPAIGN, "--test", "Victim.Person@example.com", "--test", NEIGHBOUR)
    assert tests.exit_code == 0, tests.stderr
    folder = project / "outbox" / CAMPAIGN
    hers = folder / f"00000001-{VICTIM}.eml"
    (folder / "kept-a-copy.eml").write_bytes(hers.read_bytes())  # renamed by someone
    before = sorted(p.name for p in folder.iterdir())
    assert len(before) == 6, before

    result = forget(run, VICTIM)

    after = sorted(p.name for p in folder.iterdir())
    assert after == [
        f"00000002-{NEIGHBOUR}.eml",
        f"00000003-{BOB}.eml",
        f"test-{NEIGHBOUR}.eml",
    ]
    assert "Removed 3 file(s)" in result.stderr


def test_build_samples_made_for_her_are_removed(project: Path, run) -> None:
    import_people(run, project)
    for campaign, reader in ((CAMPAIGN, VICTIM.upper()), ("winter-workshop", BOB)):
        built = run("build", campaign, "--to", reader)
        assert built.exit_code == 0, built.stderr
    hers, his = project / "build" / CAMPAIGN, project / "build" / "winter-workshop"
    assert mentions((hers / "sample.eml").read_text(encoding="utf-8"), VICTIM)

    forget(run, VICTIM)

    assert sorted(p.name for p in hers.iterdir()) == []
    assert sorted(p.name for p in his.iterdir()) == ["email.html", "email.txt", "sample.eml"]


# -- the SQLite log ------------------------------------------------------------------
@pytest.mark.skipif(ON_POSTGRES, reason="PostgreSQL keeps no -wal file beside the database")
def test_no_copy_survives_in_the_sqlite_files_while_another_process_holds_them(
    project: Path, run
) -> None:
    import_people(run, project, f"email,first_name,last_name\n{VICTIM},Vera,Quist\n{BOB},Bob,\n")
    holder = sqlite3.connect(project / "newsletter.db")  # as `serve` does, all along
    try:
        holder.execute("SELECT count(*) FROM subscribers").fetchone()
        assert run("send", CAMPAIGN, "--yes").exit_code == 0
        for i in range(3):  # more writes: the log keeps older frames with her in them
            import_people(run, project, f"email,first_name\n{VICTIM},Vera{i}\n")
        files = [project / f"newsletter.db{suffix}" for suffix in ("", "-wal", "-shm")]
        assert victim_bytes(files), "the files hold her before"

        forget(run, VICTIM)

        holder.execute("SELECT count(*) FROM subscribers").fetchone()  # still open, still works
        assert victim_bytes(files) == {}
    finally:
        holder.close()


def victim_bytes(files: list[Path]) -> dict[str, int]:
    found = {}
    for path in files:
        data = path.read_bytes().lower() if path.exists() else b""
        count = sum(data.count(n) for n in (VICTIM.encode(), b"quist"))
        if count:
            found[path.name] = count
    return found


# -- a send under way ----------------------------------------------------------------
def many_readers(project: Path, run, n: int, victim_at: int) -> None:
    rows = [f"reader{i:03d}@example.com,R{i}," for i in range(n)]
    rows[victim_at] = f"{VICTIM},Vera,Quist"
    import_people(run, project, "email,first_name,last_name\n" + "\n".join(rows) + "\n")


def start_send(project: Path) -> subprocess.Popen[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", CAMPAIGN, "--yes"],
        cwd=project,
        env=env | {"NEWSLETTER_API_KEY": "pm"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def delivery_status(project: Path, address: str) -> str | None:
    rows = execute(project, "SELECT status FROM deliveries WHERE email = ?", (address,))
    return rows[0][0] if rows else None


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
def test_forget_while_her_batch_waits_its_turn_sends_her_nothing(project: Path, run) -> None:
    # given: a rate-limited send through a slow provider, two batches in flight; her
    # batch is claimed (built in memory) and waits ~2 s for the rate limit
    many_readers(project, run, 150, victim_at=70)
    with FakePostmark(token="pm", latency=0.3) as pm:
        set_delivery(
            project,
            transport="postmark",
            base_url=pm.url,
            batch_size=50,
            concurrency=2,
            rate_limit=25,
        )
        sender = start_send(project)
        try:
            wait_for(lambda: delivery_status(project, VICTIM) == "sending")
            assert VICTIM not in " ".join(pm.accepted_to()).lower()

            # when: she is forgotten from another process's point of view (this one)
            forget(run, VICTIM)
            assert sender.wait(timeout=120) == 0, sender.stderr.read()
        finally:
            if sender.poll() is None:
                sender.kill()

        # then: she got nothing, everyone else got theirs, and her row names no one
        accepted = " ".join(pm.accepted_to()).lower()
        assert VICTIM not in accepted
        assert accepted.count("@example.com") == 149, "her batch went out, without her"
    rows = execute(
        project,
        "SELECT d.status, d.error, d.response FROM deliveries d "
        "JOIN subscribers s ON s.id = d.subscriber_id WHERE s.erased_at IS NOT NULL",
    )
    assert [tuple(r) for r in rows] == [("skipped", "subscriber was erased", None)]
    assert cells_naming(project, VICTIM, "Quist") == []


@pytest.mark.slow
def test_forget_while_her_message_is_on_the_wire_keeps_no_trace_of_the_answer(
    project: Path, run
) -> None:
    # given: her batch is at the provider, which takes 2 s to answer
    many_readers(project, run, 60, victim_at=10)
    with FakePostmark(token="pm", latency=2.0) as pm:
        set_delivery(project, transport="postmark", base_url=pm.url, batch_size=50)
        sender = start_send(project)
        try:
            wait_for(lambda: delivery_status(project, VICTIM) == "sending")
            time.sleep(0.5)  # the request is written: it is on the wire

            # when: she is forgotten before the answer comes back (from a thread)
            errors: list[BaseException] = []

            def erase() -> None:
                try:
                    forget(run, VICTIM)
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

            worker = threading.Thread(target=erase)
            worker.start()
            worker.join(timeout=60)
            assert not errors
            assert sender.wait(timeout=120) == 0, sender.stderr.read()
        finally:
            if sender.poll() is None:
                sender.kill()
        assert VICTIM in " ".join(pm.accepted_to()).lower()  # it was already sent

    # then: the answer recorded afterwards keeps nothing of hers
    rows = execute(
        project,
        "SELECT d.status, d.response FROM deliveries d "
        "JOIN subscribers s ON s.id = d.subscriber_id WHERE s.erased_at IS NOT NULL",
    )
    assert [tuple(r) for r in rows] == [("sent", None)]
    assert cells_naming(project, VICTIM, "Quist") == []


def test_samples_built_with_out_are_removed_wherever_they_are(
    project: Path, run, tmp_path: Path
) -> None:
    """`build --out` notes the folder; `forget` removes the samples made for her there
    too, names a folder outside the project (a copy may have been made from it), and
    leaves another reader's sample alone until that reader is forgotten."""
    import_people(run, project)
    outside, inside = tmp_path / "elsewhere" / "hers", project / "samples" / "winter"
    bobs = tmp_path / "elsewhere" / "bobs"
    for campaign, reader, out in (
        (CAMPAIGN, VICTIM, outside),
        ("winter-workshop", VICTIM.upper(), inside),
        (CAMPAIGN, BOB, bobs),
    ):
        built = run("build", campaign, "--to", reader, "--out", str(out))
        assert built.exit_code == 0, built.stderr
    assert mentions((outside / "sample.eml").read_text(encoding="utf-8"), VICTIM)

    result = forget(run, VICTIM)

    assert sorted(outside.iterdir()) == [] and sorted(inside.iterdir()) == []
    assert sorted(p.name for p in bobs.iterdir()) == ["email.html", "email.txt", "sample.eml"]
    assert "Removed 6 file(s)" in result.stderr
    said = " ".join(result.stderr.split())
    assert f"in {outside}, outside the project (build --out)" in said
    assert str(inside) not in said and str(bobs) not in said
    again = forget(run, BOB)
    assert sorted(bobs.iterdir()) == []
    assert f"in {bobs}, outside the project" in " ".join(again.stderr.split())


def test_a_sample_that_cannot_be_removed_is_named(
    project: Path, run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file `forget` cannot remove (a read-only folder, another owner) is named with
    the reason, the command fails, and the next `forget` tries it again."""
    import_people(run, project)
    out = tmp_path / "shared" / "sample"
    assert run("build", CAMPAIGN, "--to", VICTIM, "--out", str(out)).exit_code == 0
    stuck = out / "sample.eml"
    unlink = Path.unlink

    def refuse(path: Path, missing_ok: bool = False) -> None:
        if path == stuck:  # as the file system answers for a folder we may not write
            raise PermissionError(13, "Permission denied", str(path))
        unlink(path, missing_ok)

    with monkeypatch.context() as patched:
        patched.setattr(Path, "unlink", refuse)
        result = run("subscribers", "forget", VICTIM, "--yes")
    assert result.exit_code == 1
    said = " ".join(result.stderr.split())
    assert f"could not be removed: {stuck} (Permission denied)" in said, said
    assert "Remove them by hand." in said
    assert sorted(p.name for p in out.iterdir()) == ["sample.eml"]

    again = forget(run, VICTIM)  # the folder is still noted: tried again
    assert sorted(out.iterdir()) == []
    assert "Removed 1 file(s)" in again.stderr
