"""Subscriber stories with real-world export files (tests/data/imports/).

Each file is written in the shape a common tool exports: Mailchimp's audience
export, Substack's email list, a European Excel "CSV UTF-8" file, a Google
Contacts export, and a file with bad rows. The people are fictional.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLE_FILES, ON_POSTGRES, REPO, connect, prepare_database, run_process

DATA = Path(__file__).resolve().parent / "data" / "imports"
CAMPAIGN = "2026-10-digest"


# -- helpers ------------------------------------------------------------------
def import_file(run, name: str, *extra: str):
    result = run("subscribers", "import", str(DATA / name), *extra)
    assert result.exit_code == 0, result.stderr
    return result


def listed(run, *args: str) -> dict[str, dict]:
    result = run("subscribers", "list", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return {r["email"]: r for r in json.loads(result.stdout)}


def summary_line(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith("Imported "))


def exported(run, path: Path, *args: str) -> list[dict[str, str]]:
    result = run("subscribers", "export", str(path), *args)
    assert result.exit_code == 0, result.stderr
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def fresh_project(tmp_path: Path, name: str = "fresh") -> Path:
    """A second, untouched copy of the example project (its own newsletter.db)."""
    root = tmp_path / name
    root.mkdir()
    for item in EXAMPLE_FILES:
        source = REPO / item
        if source.is_dir():
            shutil.copytree(source, root / item)
        else:
            shutil.copy(source, root / item)
    prepare_database(root)
    return root


def db_rows(db: Path) -> list[tuple[str, str, object]]:
    """(table, column, value) for every cell of every table of the project's database."""
    connection = connect(db.parent)
    try:
        listing = (
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            if ON_POSTGRES
            else "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        tables = [r[0] for r in connection.execute(listing)]
        cells = []
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            if ON_POSTGRES:
                columns = [getattr(d, "name", d[0]) for d in cursor.description]
            for row in cursor:
                values = list(row.values()) if isinstance(row, dict) else list(row)
                cells += [(table, c, v) for c, v in zip(columns, values, strict=True)]
        return cells
    finally:
        connection.close()


def cells_mentioning(db: Path, needle: str) -> list[tuple[str, str, object]]:
    needle = needle.lower()
    return [
        (table, column, value)
        for table, column, value in db_rows(db)
        if (isinstance(value, str) and needle in value.lower())
        or (isinstance(value, bytes) and needle.encode() in value.lower())
    ]


def attributes_by_email(db: Path) -> dict[str, dict[str, str]]:
    connection = connect(db.parent)
    try:
        return {
            row[0]: json.loads(row[1])
            for row in connection.execute("SELECT email, attributes FROM subscribers")
        }
    finally:
        connection.close()


# -- Mailchimp ------------------------------------------------------------------
def test_mailchimp_audience_export_imports_names_dates_and_multiline_notes(
    project: Path, run, tmp_path: Path
) -> None:
    result = import_file(run, "mailchimp.csv")
    assert summary_line(result.stderr).endswith("4 added, 0 updated, 0 unchanged, 0 rejected."), (
        result.stderr
    )

    people = listed(run)
    assert list(people) == [
        "maya.okafor@example.com",
        "ines.pena@example.org",
        "oliver.grant@example.net",
        "thu.nguyen@example.com",
    ]
    assert (
        people["ines.pena@example.org"]["first_name"],
        people["ines.pena@example.org"]["last_name"],
    ) == ("Inés", "Peña")
    # a quoted last name with a comma in it stays one cell
    assert people["thu.nguyen@example.com"]["last_name"] == "Nguyen, LCSW"
    # OPTIN_TIME is the subscription date
    assert people["maya.okafor@example.com"]["subscribed_at"] == "2024-03-11 14:02:51"
    assert all(p["status"] == "active" for p in people.values())
    # an empty TAGS cell gives no tags (a non-empty one: see the Mailchimp tags test below)
    assert people["oliver.grant@example.net"]["tags"] == []

    # the other Mailchimp columns are kept as attributes, multi-line NOTES intact
    rows = {r["email"]: r for r in exported(run, tmp_path / "out.csv")}
    maya = rows["maya.okafor@example.com"]
    assert maya["notes"] == (
        "Met at the spring CE day, asked about supervision groups.\nPrefers evening workshops."
    )
    assert maya["timezone"] == "America/New_York" and maya["leid"] == "183746251"
    assert rows["thu.nguyen@example.com"]["notes"] == (
        "Volunteer coordinator\nfor the January CE day;\ncall before 5pm"
    )
    assert rows["ines.pena@example.org"]["notes"] == (
        'Said "thanks, see you in January" after the webinar.'
    )

    again = import_file(run, "mailchimp.csv")
    assert summary_line(again.stderr).endswith("0 added, 0 updated, 4 unchanged, 0 rejected.")


def test_mailchimp_tags_cell_becomes_separate_tags(project: Path, run) -> None:
    import_file(run, "mailchimp.csv")
    people = listed(run)
    assert people["ines.pena@example.org"]["tags"] == ["psychologist"]
    assert people["maya.okafor@example.com"]["tags"] == ["ce", "therapist"]
    assert people["thu.nguyen@example.com"]["tags"] == ["ce", "social-worker", "volunteer"]
    assert {
        p["email"]
        for p in json.loads(run("subscribers", "list", "--tag", "ce", "--format", "json").stdout)
    } == {"maya.okafor@example.com", "thu.nguyen@example.com"}


# -- Substack -------------------------------------------------------------------
def test_substack_email_list_imports_with_its_columns_as_attributes(
    project: Path, run, tmp_path: Path
) -> None:
    result = import_file(run, "substack.csv", "--tag", "Substack")
    assert summary_line(result.stderr).endswith("4 added, 0 updated, 0 unchanged, 0 rejected.")

    people = listed(run)
    # the domain is lower-cased, the local part is kept as the person typed it
    assert list(people) == [
        "lena.brooks@example.com",
        "raj.patel@example.org",
        "Chloe.Dubois@example.net",
        "quiet.reader@example.com",
    ]
    assert all(p["tags"] == ["substack"] for p in people.values())
    assert all(p["first_name"] == "" and p["last_name"] == "" for p in people.values())
    # email_disabled=true: they turned our emails off on Substack, so they stay off here
    assert people["quiet.reader@example.com"]["status"] == "unsubscribed"
    assert people["lena.brooks@example.com"]["status"] == "active"
    assert people["raj.patel@example.org"]["subscribed_at"] == "2024-02-01T10:00:00.000Z"

    rows = {r["email"]: r for r in exported(run, tmp_path / "out.csv")}
    assert rows["raj.patel@example.org"]["plan"] == "yearly"
    assert rows["raj.patel@example.org"]["first_payment_at"] == "2024-02-01T10:04:12.000Z"
    assert rows["Chloe.Dubois@example.net"]["active_subscription"] == "true"

    # the address is found whatever its case
    unsub = run("subscribers", "unsubscribe", "CHLOE.DUBOIS@EXAMPLE.NET")
    assert unsub.exit_code == 0, unsub.stderr
    assert listed(run)["Chloe.Dubois@example.net"]["status"] == "unsubscribed"

    again = import_file(run, "substack.csv", "--tag", "Substack")
    assert summary_line(again.stderr).endswith("0 added, 0 updated, 4 unchanged, 0 rejected.")
    assert "Chloe.Dubois@example.net stays unsubscribed" in again.stderr


# -- Excel, European style ------------------------------------------------------
def test_excel_semicolon_bom_crlf_export_merges_case_duplicates(project: Path, run) -> None:
    raw = (DATA / "excel-semicolon.csv").read_bytes()
    # guard: the file really is what Excel's "CSV UTF-8" writes in a European locale
    assert raw.startswith(b"\xef\xbb\xbfE-mail;First Name;Last name;Tags\r\n")
    assert raw.count(b"\r\n") == raw.count(b"\n") and b"\r\n\r\n" in raw

    result = import_file(run, "excel-semicolon.csv")
    # five address rows: four people, one of them twice (MixedCase, then lower case)
    assert summary_line(result.stderr).endswith("4 added, 1 updated, 0 unchanged, 0 rejected.")
    assert "line" not in result.stderr

    people = listed(run)
    assert list(people) == [
        "Ana.Lima@example.com",
        "bjorn.sorensen@example.net",
        "francoise.lefevre@example.org",
        "joerg.mueller@example.com",
    ]
    ana = people["Ana.Lima@example.com"]
    # the lower-case duplicate (no names) merged: names kept, its tag added
    assert (ana["first_name"], ana["last_name"]) == ("Ana", "Lima")
    assert ana["tags"] == ["ce", "newsletter-2024", "therapist"]
    # spaces (and a no-break space) around the address are dropped
    bjorn = people["bjorn.sorensen@example.net"]
    assert (bjorn["first_name"], bjorn["last_name"]) == ("Björn", "Sørensen")
    francoise = people["francoise.lefevre@example.org"]
    assert (francoise["first_name"], francoise["last_name"]) == ("Françoise", "Lefèvre")
    assert francoise["tags"] == ["ce", "social-worker"]
    assert people["joerg.mueller@example.com"]["last_name"] == "Müller"
    assert all(p["status"] == "active" for p in people.values())

    again = import_file(run, "excel-semicolon.csv")
    assert summary_line(again.stderr).endswith("0 added, 0 updated, 5 unchanged, 0 rejected.")
    assert len(listed(run)) == 4


# -- Google Contacts --------------------------------------------------------------
def test_google_contacts_export_imports(project: Path, run) -> None:
    result = run("subscribers", "import", str(DATA / "google-contacts.csv"))
    assert result.exit_code == 0, result.stderr
    people = listed(run)
    assert people["priya.raman@example.org"]["first_name"] == "Priya"
    assert people["tomas.ortega@example.net"]["first_name"] == "Tomás"


def test_a_cleaned_export_imports_as_bounced(project: Path, run, tmp_path: Path) -> None:
    cleaned = tmp_path / "cleaned.csv"
    cleaned.write_text("Email Address,First Name\ngone@example.com,Gone\n", encoding="utf-8")
    result = run("subscribers", "import", str(cleaned), "--status", "bounced")
    assert result.exit_code == 0, result.stderr
    assert listed(run)["gone@example.com"]["status"] == "bounced"


# -- bad rows ---------------------------------------------------------------------
def test_bad_rows_are_named_by_line_and_reason_and_good_rows_imported(project: Path, run) -> None:
    result = import_file(run, "bad-rows.csv")
    err = result.stderr
    expected = {
        3: ("no-at-sign.example.com", "must have an @-sign"),
        4: ("dee@@example.org", "after the @-sign contains invalid characters: '@'"),
        5: ("ana maria@example.com", "invalid characters before the @-sign: SPACE"),
        6: ("Ana Lima <ana.lima@example.com>", "display name and angle brackets"),
        7: ("pat@intranet", "It should have a period"),
        9: ("sam.quinn@example.net", "unknown status 'sleeping' (use active, unsubscribed"),
        10: ("toni.many@example.com", "7 fields but the header has 5"),
    }
    rejected = [line.strip() for line in err.splitlines() if line.strip().startswith("line ")]
    assert len(rejected) == len(expected), err
    for report, (number, (value, reason)) in zip(rejected, sorted(expected.items()), strict=True):
        assert report.startswith(f"line {number}: {value}: "), report
        assert reason in report, report
    assert summary_line(err).endswith("5 added, 0 updated, 0 unchanged, 7 rejected.")

    people = listed(run)
    assert {e: (p["first_name"], p["status"], p["tags"]) for e, p in people.items()} == {
        "hana.sato@example.com": ("Hana", "active", ["ce"]),
        "ravi.iyer@example.org": ("Ravi", "active", ["therapist"]),  # empty status: active
        "lucja.kowalska@example.net": ("Łucja", "unsubscribed", []),  # "Unsubscribed"
        "kim.short@example.org": ("Kim", "active", []),  # a short row is fine
        "emile.zola@example.com": ("Émile", "pending", ["student"]),
    }
    for bad in ("ana.lima@example.com", "toni.many@example.com", "sam.quinn@example.net"):
        assert bad not in json.dumps(list(people))

    again = import_file(run, "bad-rows.csv")
    assert summary_line(again.stderr).endswith("0 added, 0 updated, 5 unchanged, 7 rejected.")


def test_rejected_multiline_row_is_reported_at_its_first_line(project: Path, run) -> None:
    path = project / "notes.csv"
    path.write_text(
        "email,first_name,notes\n"  # 1
        'good@example.com,Good,"two\nlines"\n'  # 2-3
        "bad-one,Bad,single\n"  # 4
        'bad-two,Bad,"spans\nthree\nlines"\n'  # 5-7
        "last@example.com,Last,\n",  # 8
        encoding="utf-8",
    )
    result = run("subscribers", "import", str(path))
    assert "line 4: bad-one:" in result.stderr  # single-line rows are right
    assert "line 5: bad-two:" in result.stderr  # today: "line 7: bad-two:"


# -- sticky statuses ---------------------------------------------------------------
def test_reimport_never_resubscribes_after_unsubscribe(project: Path, run) -> None:
    import_file(run, "excel-semicolon.csv")
    import_file(run, "bad-rows.csv")
    for email in ("ana.lima@example.com", "hana.sato@example.com"):
        result = run("subscribers", "unsubscribe", email)
        assert result.exit_code == 0 and "is unsubscribed" in result.stderr

    # no status column at all
    again = import_file(run, "excel-semicolon.csv")
    assert (
        "Ana.Lima@example.com stays unsubscribed (an import never re-subscribes anyone)"
        in again.stderr
    )
    assert summary_line(again.stderr).endswith("0 added, 0 updated, 5 unchanged, 0 rejected.")
    # a status column that says "active"
    again = import_file(run, "bad-rows.csv")
    assert "hana.sato@example.com stays unsubscribed" in again.stderr

    people = listed(run)
    assert people["Ana.Lima@example.com"]["status"] == "unsubscribed"
    assert people["hana.sato@example.com"]["status"] == "unsubscribed"
    assert people["bjorn.sorensen@example.net"]["status"] == "active"


def test_reimport_never_reactivates_a_bounced_address(project: Path, run) -> None:
    import_file(run, "mailchimp.csv")
    bounce = project / "postmark-bounces.json"
    bounce.write_text(
        json.dumps(
            [
                {
                    "RecordType": "Bounce",
                    "ID": 4242,
                    "Type": "HardBounce",
                    "Email": "maya.okafor@example.com",
                    "BouncedAt": "2026-10-20T09:12:00Z",
                    "Description": "The server was unable to deliver your message.",
                    "MessageStream": "broadcast",
                }
            ]
        ),
        encoding="utf-8",
    )
    events = run("events", "import", str(bounce), "--provider", "postmark")
    assert events.exit_code == 0, events.stderr
    assert listed(run)["maya.okafor@example.com"]["status"] == "bounced"

    again = import_file(run, "mailchimp.csv")
    assert "maya.okafor@example.com stays bounced" in again.stderr
    assert listed(run)["maya.okafor@example.com"]["status"] == "bounced"
    dry = run("send", CAMPAIGN, "--dry-run")
    assert "3 recipient(s)" in dry.stderr


# -- forget (erasure) -------------------------------------------------------------
ANA = "ana.lima@example.com"


def send_digest(run) -> None:
    result = run("send", CAMPAIGN, "--yes")
    assert result.exit_code == 0, result.stderr


@pytest.mark.slow
def test_forget_erases_the_person_everywhere_and_blocks_reimport(
    project: Path, run, tmp_path: Path
) -> None:
    import_file(run, "excel-semicolon.csv")  # stored as Ana.Lima@example.com
    send_digest(run)
    events = project / "postmark-events.json"
    events.write_text(
        json.dumps(
            [
                {
                    "RecordType": "Delivery",
                    "MessageID": "c0ffee00-0000-4000-8000-000000000001",
                    "Recipient": "Ana.Lima@example.com",
                    "DeliveredAt": "2026-10-20T10:00:00Z",
                    "Details": "Test delivery to Ana.Lima@example.com",
                    "Tag": CAMPAIGN,
                    "Metadata": {"campaign": CAMPAIGN, "subscriber": "1"},
                }
            ]
        ),
        encoding="utf-8",
    )
    assert run("events", "import", str(events), "--provider", "postmark").exit_code == 0
    before = json.loads(run("subscribers", "history", ANA, "--format", "json").stdout)
    assert before[0]["events"] == ["delivered"]
    assert cells_mentioning(project / "newsletter.db", ANA)  # the scan finds it before

    forget = run("subscribers", "forget", ANA, "--yes")
    assert forget.exit_code == 0, forget.stderr
    assert f"{ANA} is erased" in forget.stderr

    listing = run("subscribers", "list", "--format", "json").stdout
    assert ANA not in listing.lower()
    people = json.loads(listing)
    assert not [p for p in people if (p["first_name"], p["last_name"]) == ("Ana", "Lima")]
    assert len([p for p in people if p["status"] == "active"]) == 3

    exported(run, tmp_path / "export.csv")
    assert ANA not in (tmp_path / "export.csv").read_text(encoding="utf-8").lower()

    report = run("report", CAMPAIGN, "--format", "json")
    assert report.exit_code == 0
    assert ANA not in report.stdout.lower()
    assert json.loads(report.stdout)["counts"]["sent"] == 4  # aggregate counts survive

    outbox = project / "outbox" / CAMPAIGN
    assert sorted(p.name.split("-", 1)[1] for p in outbox.glob("*.eml")) == [
        "bjorn.sorensen@example.net.eml",
        "francoise.lefevre@example.org.eml",
        "joerg.mueller@example.com.eml",
    ]

    history = run_process("subscribers", "history", ANA, cwd=project)
    assert history.returncode == 1
    assert f"{ANA} is not a subscriber" in history.stderr

    again = import_file(run, "excel-semicolon.csv")
    assert "Ana.Lima@example.com: erased on request earlier; not imported" in again.stderr
    assert f"{ANA}: erased on request earlier; not imported" in again.stderr
    assert summary_line(again.stderr).endswith("0 added, 0 updated, 3 unchanged, 2 rejected.")
    assert ANA not in run("subscribers", "list", "--format", "json").stdout.lower()

    assert cells_mentioning(project / "newsletter.db", ANA) == []


def test_events_arriving_after_forget_do_not_bring_the_address_back(project: Path, run) -> None:
    import_file(run, "excel-semicolon.csv")
    send_digest(run)
    assert run("subscribers", "forget", ANA, "--yes").exit_code == 0
    late = project / "late-open.json"
    late.write_text(
        json.dumps(
            {
                "RecordType": "Open",
                "MessageID": "c0ffee00-0000-4000-8000-000000000002",
                "Recipient": ANA,
                "ReceivedAt": "2026-10-22T09:00:00Z",
                "Tag": CAMPAIGN,
                "Metadata": {"campaign": CAMPAIGN, "subscriber": "1"},
            }
        ),
        encoding="utf-8",
    )
    assert run("events", "import", str(late), "--provider", "postmark").exit_code == 0
    assert cells_mentioning(project / "newsletter.db", ANA) == []


# -- export ----------------------------------------------------------------------
def test_export_then_import_into_a_fresh_project_gives_the_same_list(
    project: Path, run, tmp_path: Path
) -> None:
    other = fresh_project(tmp_path)
    for name in ("mailchimp.csv", "substack.csv", "excel-semicolon.csv", "bad-rows.csv"):
        import_file(run, name)
    run("subscribers", "unsubscribe", "raj.patel@example.org")
    original = listed(run)
    assert len(original) == 17
    first = tmp_path / "first.csv"
    exported(run, first)

    config = ("--config", str(other / "newsletter.toml"))
    result = run("subscribers", "import", str(first), *config)
    assert result.exit_code == 0, result.stderr
    assert summary_line(result.stderr).endswith("17 added, 0 updated, 0 unchanged, 0 rejected.")
    copy = {
        r["email"]: r
        for r in json.loads(run("subscribers", "list", "--format", "json", *config).stdout)
    }
    assert copy == original
    assert list(copy) == list(original)  # same order, too
    second = tmp_path / "second.csv"
    run("subscribers", "export", str(second), *config)
    assert second.read_bytes() == first.read_bytes()

    # a status filter exports only those
    rows = exported(run, tmp_path / "unsub.csv", "--status", "unsubscribed")
    assert {r["email"] for r in rows} == {
        "raj.patel@example.org",
        "lucja.kowalska@example.net",
        "quiet.reader@example.com",
    }


def test_export_neutralises_cells_a_spreadsheet_would_run(
    project: Path, run, tmp_path: Path
) -> None:
    import_file(run, "formulas.csv")
    people = listed(run)
    # stored as given...
    assert people["formula.first@example.com"]["first_name"] == '=HYPERLINK("http://x","y")'
    assert people["phone.last@example.org"]["last_name"] == "+1-555"

    rows = {r["email"]: r for r in exported(run, tmp_path / "out.csv")}
    # ...and exported with a leading quote, so a spreadsheet shows them as text
    assert rows["formula.first@example.com"]["first_name"] == '\'=HYPERLINK("http://x","y")'
    assert rows["formula.first@example.com"]["last_name"] == "Safe"
    assert rows["phone.last@example.org"]["last_name"] == "'+1-555"
    assert rows["phone.last@example.org"]["consent_source"] == "'@import-2025"
    assert rows["phone.last@example.org"]["company"] == "'-Minus Clinic"
    assert rows["formula.first@example.com"]["company"] == "Clinic One"
    text = (tmp_path / "out.csv").read_text(encoding="utf-8")
    for row in csv.reader(io.StringIO(text)):
        assert not [c for c in row if c[:1] in ("=", "+", "-", "@")], row


def test_round_trip_keeps_values_that_start_with_plus_or_minus(
    project: Path, run, tmp_path: Path
) -> None:
    other = fresh_project(tmp_path)
    import_file(run, "mailchimp.csv")
    import_file(run, "formulas.csv")
    out = tmp_path / "out.csv"
    exported(run, out)
    config = ("--config", str(other / "newsletter.toml"))
    assert run("subscribers", "import", str(out), *config).exit_code == 0
    copy = {
        r["email"]: r
        for r in json.loads(run("subscribers", "list", "--format", "json", *config).stdout)
    }
    assert copy["phone.last@example.org"]["last_name"] == "+1-555"
    before = attributes_by_email(project / "newsletter.db")
    after = attributes_by_email(other / "newsletter.db")
    assert after["maya.okafor@example.com"]["phone_number"] == "+1 413 555 0142"
    assert after == before


def test_export_after_forget_still_imports_back_cleanly(project: Path, run, tmp_path: Path) -> None:
    other = fresh_project(tmp_path)
    import_file(run, "excel-semicolon.csv")
    assert run("subscribers", "forget", ANA, "--yes").exit_code == 0
    out = tmp_path / "out.csv"
    exported(run, out)
    result = run("subscribers", "import", str(out), "--config", str(other / "newsletter.toml"))
    assert result.exit_code == 0
    assert summary_line(result.stderr).endswith("3 added, 0 updated, 0 unchanged, 0 rejected.")


# -- history and dry run ------------------------------------------------------------
@pytest.mark.slow
def test_history_after_a_send_lists_the_campaign(project: Path, run) -> None:
    import_file(run, "excel-semicolon.csv")
    empty = run("subscribers", "history", "joerg.mueller@example.com", "--format", "json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []
    send_digest(run)

    result = run("subscribers", "history", "ANA.LIMA@EXAMPLE.COM", "--format", "json")
    assert result.exit_code == 0, result.stderr
    records = json.loads(result.stdout)
    assert len(records) == 1
    record = records[0]
    assert record["campaign"] == CAMPAIGN
    assert record["status"] == "sent"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["sent_at"]), record
    assert record["provider_message_id"]

    table = run("subscribers", "history", ANA)
    assert table.exit_code == 0
    assert "Ana.Lima@example.com: active" in table.stderr
    assert CAMPAIGN in table.stdout and "sent" in table.stdout

    unknown = run_process("subscribers", "history", "nobody@example.com", cwd=project)
    assert unknown.returncode == 1 and "nobody@example.com is not a subscriber" in unknown.stderr


def test_dry_run_shows_the_count_and_a_sample_and_sends_nothing(project: Path, run) -> None:
    import_file(run, "mailchimp.csv")
    import_file(run, "excel-semicolon.csv")
    run("subscribers", "unsubscribe", "maya.okafor@example.com")
    active = {e for e, p in listed(run).items() if p["status"] == "active"}
    assert len(active) == 7

    result = run("send", CAMPAIGN, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert f"Campaign {CAMPAIGN}: 7 recipient(s) via outbox" in result.stderr
    sample_line = next(
        (line for line in result.stderr.splitlines() if line.startswith("For example: ")), None
    )
    assert sample_line is not None, result.stderr
    sample = [a for a in sample_line[len("For example: ") :].split(", ") if a != "..."]
    assert sample and set(sample) <= active
    assert "maya.okafor@example.com" not in sample_line
    assert sample_line.endswith(", ...") == (len(sample) < 7)
    assert "Dry run: nothing was sent." in result.stderr

    assert not (project / "outbox").exists()
    assert run("report", CAMPAIGN).exit_code == 1  # nothing recorded either
