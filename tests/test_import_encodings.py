"""Subscriber files in the encoding a spreadsheet wrote import as they are.

Windows Excel's "CSV (semicolon)" in a German or French locale writes
windows-1252 with ";" and CRLF and no BOM; older tools write ISO-8859-1. The
encoding is detected, named in the summary, and every name arrives intact. A
file that is not text at all is still refused, and nothing is imported.

The files under tests/data/imports/ were written with Python's own codecs:
``Path(name).write_bytes(TEXT.encode("cp1252"))`` (``"latin-1"`` for
latin1.csv), where TEXT is the matching constant below;
``test_the_files_are_what_the_tools_write`` checks that they still are.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import run_process

DATA = Path(__file__).resolve().parent / "data" / "imports"

# A German Windows Excel user's sheet, saved as "CSV (Trennzeichen-getrennt)".
GERMAN_EXCEL = (
    "E-Mail;Vorname;Nachname;Ort;Spende;Notiz\r\n"
    "joerg.mueller@example.de;Jörg;Müller;Köln;25 €;„Grüße aus Köln“\r\n"
    "renee.lefevre@example.fr;Renée;Lefèvre;Paris;10 €;\r\n"
    "oyvind.hansen@example.no;Øyvind;Hansen;Tromsø;;\r\n"
    'maria.nunez@example.es;María;Ñúñez;Málaga;5 €;"Sagt ""¡Hola!"" – immer"\r\n'
    'francois.dubois@example.ch;François;Dubois;Zürich;;"Bahnhofstraße 5; 2. OG"\r\n'
    "gruesse.weiss@example.at;Grüße;Weiß;Wien;;‚Danke‘ …\r\n"
)
# A French one, saved as "CSV (séparateur: point-virgule)"; œ is windows-1252 only.
FRENCH_EXCEL = (
    "Adresse e-mail;Prénom;Nom;Ville\r\n"
    "helene.cote@example.fr;Hélène;Côté;Montréal\r\n"
    "laetitia.coeurdoux@example.fr;Lætitia;Cœurdoux;Besançon\r\n"
    "noel.leclerc@example.be;Noël;Leclerc;Liège\r\n"
    "zoe.brule@example.fr;Zoé;Brûlé;Orléans\r\n"
)
# An older tool's ISO-8859-1 export.
LATIN1 = (
    "email,first_name,last_name,city\n"
    "renee.blanc@example.com,Renée,Blanc,Orléans\n"
    "jose.garcia@example.com,José,García,Córdoba\n"
    "ines.muller@example.com,Inès,Müller,Genève\n"
)


def imported(run, path: Path) -> str:
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return next(line for line in result.stderr.splitlines() if line.startswith("Imported "))


def people(run) -> dict[str, tuple[str, str]]:
    listed = json.loads(run("subscribers", "list", "--format", "json").stdout)
    return {p["email"]: (p["first_name"], p["last_name"]) for p in listed}


def exported(run, tmp_path: Path) -> dict[str, dict[str, str]]:
    import csv

    out = tmp_path / "export.csv"
    assert run("subscribers", "export", str(out)).exit_code == 0
    with open(out, encoding="utf-8", newline="") as fh:
        return {row["email"]: row for row in csv.DictReader(fh)}


def test_the_files_are_what_the_tools_write() -> None:
    german = (DATA / "excel-de-cp1252.csv").read_bytes()
    assert german == GERMAN_EXCEL.encode("cp1252")
    assert not german.startswith(b"\xef\xbb\xbf")  # no BOM
    assert german.count(b"\r\n") == german.count(b"\n") == 7  # CRLF
    assert b"\x80" in german and b"\x84" in german  # the euro sign and a low quote
    french = (DATA / "excel-fr-cp1252.csv").read_bytes()
    assert french == FRENCH_EXCEL.encode("cp1252")
    latin1 = (DATA / "latin1.csv").read_bytes()
    assert latin1 == LATIN1.encode("latin-1")
    for data in (german, french, latin1):
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")


def test_german_excel_semicolon_cp1252_imports_every_name_intact(
    project: Path, run, tmp_path: Path
) -> None:
    summary = imported(run, DATA / "excel-de-cp1252.csv")
    assert summary == (
        f"Imported {DATA / 'excel-de-cp1252.csv'} (windows-1252, semicolon-separated): "
        "6 added, 0 updated, 0 unchanged, 0 rejected."
    )
    assert people(run) == {
        "joerg.mueller@example.de": ("Jörg", "Müller"),
        "renee.lefevre@example.fr": ("Renée", "Lefèvre"),
        "oyvind.hansen@example.no": ("Øyvind", "Hansen"),
        "maria.nunez@example.es": ("María", "Ñúñez"),
        "francois.dubois@example.ch": ("François", "Dubois"),
        "gruesse.weiss@example.at": ("Grüße", "Weiß"),
    }
    rows = exported(run, tmp_path)  # the other columns are attributes, intact too
    assert rows["joerg.mueller@example.de"]["spende"] == "25 €"
    assert rows["joerg.mueller@example.de"]["notiz"] == "„Grüße aus Köln“"
    assert rows["oyvind.hansen@example.no"]["ort"] == "Tromsø"
    assert rows["maria.nunez@example.es"]["notiz"] == 'Sagt "¡Hola!" – immer'
    assert rows["francois.dubois@example.ch"]["notiz"] == "Bahnhofstraße 5; 2. OG"
    assert rows["gruesse.weiss@example.at"]["notiz"] == "‚Danke‘ …"

    again = imported(run, DATA / "excel-de-cp1252.csv")
    assert again.endswith("0 added, 0 updated, 6 unchanged, 0 rejected.")


def test_french_excel_headers_and_cp1252_only_letters(project: Path, run) -> None:
    summary = imported(run, DATA / "excel-fr-cp1252.csv")
    assert "(windows-1252, semicolon-separated): 4 added," in summary
    found = people(run)
    # "Adresse e-mail", "Prénom" and "Nom" are the email, first and last name columns
    assert found["helene.cote@example.fr"] == ("Hélène", "Côté")
    assert found["laetitia.coeurdoux@example.fr"] == ("Lætitia", "Cœurdoux")
    assert found["noel.leclerc@example.be"] == ("Noël", "Leclerc")
    assert found["zoe.brule@example.fr"] == ("Zoé", "Brûlé")


def test_latin1_file_imports_read_as_windows_1252(project: Path, run) -> None:
    summary = imported(run, DATA / "latin1.csv")
    # Every ISO-8859-1 letter is the same byte in windows-1252 (which only adds
    # printable characters where ISO-8859-1 has control codes), so the summary names
    # the one Excel writes.
    assert summary.endswith(
        "latin1.csv (windows-1252, comma-separated): 3 added, 0 updated, 0 unchanged, 0 rejected."
    )
    found = people(run)
    assert found["renee.blanc@example.com"] == ("Renée", "Blanc")
    assert found["jose.garcia@example.com"] == ("José", "García")
    assert found["ines.muller@example.com"] == ("Inès", "Müller")


def test_utf8_files_say_so(project: Path, run) -> None:
    with_bom = imported(run, DATA / "excel-semicolon.csv")  # Excel's "CSV UTF-8"
    assert "excel-semicolon.csv (UTF-8, semicolon-separated): 4 added" in with_bom
    assert people(run)["bjorn.sorensen@example.net"] == ("Björn", "Sørensen")
    plain = imported(run, Path("subscribers.example.csv"))
    assert plain.startswith("Imported subscribers.example.csv (UTF-8, comma-separated): ")


@pytest.mark.parametrize(
    ("codec", "name", "text", "expected"),
    [
        (
            "cp1250",
            "windows-1250",
            "email;first_name;last_name\r\nlucja@example.pl;Łucja;Wąsowska\r\n"
            "zofia@example.pl;Zofia;Śliwińska\r\n",
            {"lucja@example.pl": ("Łucja", "Wąsowska"), "zofia@example.pl": ("Zofia", "Śliwińska")},
        ),
        (
            "cp1251",
            "windows-1251",
            "email;first_name;last_name\r\nivan@example.ru;Иван;Петров\r\n"
            "olga@example.ru;Ольга;Смирнова\r\n",
            {"ivan@example.ru": ("Иван", "Петров"), "olga@example.ru": ("Ольга", "Смирнова")},
        ),
    ],
)
def test_other_excel_locales(
    project: Path, run, codec: str, name: str, text: str, expected: dict
) -> None:
    path = project / f"{codec}.csv"
    path.write_bytes(text.encode(codec))
    assert f"({name}, semicolon-separated)" in imported(run, path)
    assert people(run) == expected


@pytest.mark.slow
def test_a_legacy_byte_far_down_a_long_file_is_found(project: Path, run) -> None:
    path = project / "long.csv"
    rows = "".join(f"reader{i}@example.com;Reader;{i}\r\n" for i in range(30_000))
    path.write_bytes(
        ("E-Mail;Vorname;Nachname\r\n" + rows + "last@example.com;Zoë;Müller\r\n").encode("cp1252")
    )
    summary = imported(run, path)
    assert "(windows-1252, semicolon-separated): 30001 added" in summary
    assert people(run)["last@example.com"] == ("Zoë", "Müller")


def garbage(size: int, low: int = 0) -> bytes:
    rng = random.Random(11)
    return bytes(rng.randrange(low, 256) for _ in range(size))


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (garbage(8192), "contains NUL bytes"),
        (garbage(8192, low=1), "nor text in an encoding a spreadsheet writes"),
        (b"\x89PNG\r\n\x1a\n" + garbage(4000, low=128), "nor text in an encoding"),
        ("email,first_name\nana@example.com,Ana\n".encode("utf-16"), "UTF-16"),
        (
            "email,first_name\nzoe@example.com,Zoë\nbjorn@example.com,Björn\n".encode()
            + "renee@example.com,Ren\xe9e\n".encode("latin-1"),
            "UTF-8 text except for line 4",
        ),
    ],
    ids=["binary", "binary-without-nul", "png", "utf-16", "utf-8-but-one-line"],
)
def test_what_is_not_text_is_still_refused(project: Path, run, content: bytes, said: str) -> None:
    path = project / "members.csv"
    path.write_bytes(content)
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path}"), result.stderr
    assert said in result.stderr
    assert "nothing was imported" in result.stderr
    assert people(run) == {}


@pytest.mark.slow
def test_through_the_real_entry_point(project: Path) -> None:
    good = run_process("subscribers", "import", str(DATA / "excel-de-cp1252.csv"), cwd=project)
    assert good.returncode == 0 and "(windows-1252, semicolon-separated)" in good.stderr
    path = project / "photo.csv"
    path.write_bytes(garbage(4096))
    bad = run_process("subscribers", "import", str(path), cwd=project)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr and bad.stderr.startswith("Error: ")
