"""Subscriber imports: common export shapes import as they are; bad rows are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_process


def test_import_example_and_list(project: Path, run) -> None:
    result = run("subscribers", "import", "subscribers.example.csv")
    assert result.exit_code == 0
    assert "12 added, 0 updated, 0 unchanged, 0 rejected" in result.stderr
    listed = json.loads(run("subscribers", "list", "--format", "json").stdout)
    assert len(listed) == 12
    renee = next(r for r in listed if r["email"] == "renee.castillo@example.net")
    assert renee["first_name"] == "Renée" and renee["tags"] == ["ce", "therapist"]
    assert renee["status"] == "active"
    csv_out = run("subscribers", "list", "--status", "bounced", "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("email,first_name,last_name,status,tags")
    assert len(csv_out.splitlines()) == 2
    tagged = json.loads(run("subscribers", "list", "--tag", "student", "--format", "json").stdout)
    assert {r["email"] for r in tagged} == {
        "zoe.hartmann@example.com",
        "kai.moreno@example.com",
        "mina.park@example.org",
    }


def test_common_export_headers_bom_and_semicolons(project: Path, run) -> None:
    export = project / "export.csv"
    export.write_bytes(
        "\ufeffEmail Address;First Name;Last Name;Tags;Company\r\n"
        "Ana@Example.COM;Ana;Lima;therapist|ce;Clinic One\r\n"
        "\r\n"
        'bob@example.org;"Bob; Jr";;;\r\n'.encode()
    )
    result = run("subscribers", "import", str(export), "--tag", "Imported")
    assert result.exit_code == 0, result.stderr
    assert "2 added" in result.stderr
    listed = {
        r["email"]: r for r in json.loads(run("subscribers", "list", "--format", "json").stdout)
    }
    assert listed["Ana@example.com"]["tags"] == ["ce", "imported", "therapist"]
    assert listed["bob@example.org"]["first_name"] == "Bob; Jr"


def test_invalid_addresses_reported_with_line_numbers_and_not_imported(project: Path, run) -> None:
    bad = project / "bad.csv"
    bad.write_text(
        "email,first_name,status\n"
        "good@example.com,Good,active\n"
        "not-an-address,Nope,active\n"
        ",Empty,active\n"
        "two@@example.com,Two,active\n"
        "ok2@example.com,Ok,sleeping\n"
        "fine@example.org,Fine,\n",
        encoding="utf-8",
    )
    result = run("subscribers", "import", str(bad))
    assert result.exit_code == 0
    assert "line 3: not-an-address:" in result.stderr
    assert "line 4: (empty): no email address" in result.stderr
    assert "line 5: two@@example.com:" in result.stderr
    assert "line 6: ok2@example.com: unknown status 'sleeping'" in result.stderr
    assert "2 added, 0 updated, 0 unchanged, 4 rejected" in result.stderr
    emails = [r["email"] for r in json.loads(run("subscribers", "list", "--format", "json").stdout)]
    assert emails == ["good@example.com", "fine@example.org"]


@pytest.mark.slow
def test_file_without_email_column_exits_1_and_imports_nothing(project: Path) -> None:
    odd = project / "odd.csv"
    odd.write_text("name,phone\nAna,555\n", encoding="utf-8")
    result = run_process("subscribers", "import", str(odd), cwd=project)
    assert result.returncode == 1
    assert "has no email column (columns found: name, phone)" in result.stderr
    assert "Traceback" not in result.stderr
    listed = run_process("subscribers", "list", "--format", "json", cwd=project)
    assert json.loads(listed.stdout) == []


@pytest.mark.slow
def test_utf8_but_for_one_line_exits_1_naming_the_line(project: Path) -> None:
    # A whole file in a legacy encoding imports (test_import_encodings.py); a UTF-8
    # file with one line pasted from a Latin-1 one would import as mojibake instead.
    mixed = project / "mixed.csv"
    mixed.write_bytes(
        "email,first_name\nzoe@example.com,Zoë\nbjorn@example.com,Björn\n".encode()
        + "renee@example.com,Ren\xe9e\n".encode("latin-1")
    )
    result = run_process("subscribers", "import", str(mixed), cwd=project)
    assert result.returncode == 1
    assert "not UTF-8" in result.stderr and "line 4" in result.stderr
    assert "Traceback" not in result.stderr


def test_reimport_never_resubscribes(project: Path, run) -> None:
    run("subscribers", "import", "subscribers.example.csv")
    again = project / "again.csv"
    again.write_text(
        "email,first_name,status\nkai.moreno@example.com,Kai,active\nleah.goldberg@example.net,Leah,\n"
    )
    result = run("subscribers", "import", str(again))
    assert "kai.moreno@example.com stays unsubscribed" in result.stderr
    assert "leah.goldberg@example.net stays bounced" in result.stderr
    listed = {
        r["email"]: r["status"]
        for r in json.loads(run("subscribers", "list", "--format", "json").stdout)
    }
    assert listed["kai.moreno@example.com"] == "unsubscribed"
    assert listed["leah.goldberg@example.net"] == "bounced"
    result = run("subscribers", "import", "subscribers.example.csv")
    assert "0 added, 0 updated, 12 unchanged" in result.stderr


def test_csv_list_neutralises_formulas(project: Path, run) -> None:
    evil = project / "evil.csv"
    evil.write_text('email,first_name\nx@example.com,"=HYPERLINK(""http://evil"")"\n')
    run("subscribers", "import", str(evil))
    out = run("subscribers", "list", "--format", "csv").stdout
    assert "'=HYPERLINK" in out
