"""A hostile, international subscribers file imports into exactly the rows it always
did, on SQLite and PostgreSQL: the same rejections with their line numbers and
reasons, the same merges of repeated addresses, the same tags and attributes. The
bulk path (a file's rows as tuples, many to a statement) gives what importing one
Subscriber at a time gives, and a file that fails part way leaves nothing behind.

EXPECTED_* were written from what the import made before it read rows as tuples
(the previous round's code), with the import's own timestamp shown as "NOW".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import TEST_POSTGRES_URL, _databases
from newsletter import members
from newsletter.addresses import Carrier
from newsletter.audience import read_subscribers
from newsletter.errors import InputError
from newsletter.store import Store, open_store

CSV = (
    "E-Mail Address,Prénom,Last Name,Tags,Status,Created,Source,Time Zone,Email Disabled,"
    "Ville,Notiz\r\n"
    'Ana@Example.com,Ana,Silva,"VIP; news",,2024-01-02,form,Europe/Lisbon,,Lisboa,\r\n'
    "  bob@example.org  ,Bob,O'Brien,news|Weekly,Active,,,,,,'=SUM(A1)\r\n"
    "ana@example.com,,Santos,extra,,,,,,Porto,\r\n"
    'jörg@bücher.de,Jörg,Müller,,,,,,,Köln,"Grüße, ""quoted"""\r\n'
    'olga@XN--BCHER-KVA.de,Ольга,Петрова,"""a"",""b""",,,,,,,\r\n'
    "ñoño@example.es,Ñoño,Pérez,,,,,,,,\r\n"
    ",,nobody,,,,,,,,\r\n"
    "\r\n"
    " , , ,,,,,,,,\r\n"
    "carl@example.net,Carl,Too,,,,,,,,,surplus\r\n"
    "dora@example.net,Dora,Wide,,,,,,,,,   \r\n"
    "eve@example.net,Eve,Status,,sleeping,,,,,,\r\n"
    "fay@example.net,Fay,Zone,,,,,Mars/Olympus,,,\r\n"
    "gil@example.net,Gil,Off,,,,,,TRUE,,\r\n"
    "hal@example.net,Hal,Bounced,,Bounced,,,america/new_york,,,\r\n"
    "not-an-address,X,Y,,,,,,,,\r\n"
    "ivy@@example.net,Ivy,,,,,,,,,\r\n"
    ".jo@example.net,Jo,,,,,,,,,\r\n"
    '"kim\r\n@example.net",Kim,,,,,,,,,\r\n'
    "lee@example.net,'@home,'+1 555,'-tag,,,,,,'=x,\r\n"
    "mo@example.net,Mo\r\n"
    "BOB@EXAMPLE.ORG,Robert,,Second,,,,,,,\r\n"
    "李@例子.测试,李,王,,,,,,,北京,\r\n"
    "zoë@example.com,Zoë,Ærø,  Mixed Case ;; ,,,,,,,\r\n"
    'ruth@sub.example.co.uk,"Ruth, Jr.","Line\nTwo",,pending,,,UTC,,,\r\n'
    + "x"
    * 65
    + "@example.com,Long,,,,,,,,,\r\n"
    "sam@" + "a" * 64 + ".com,Sam,,,,,,,,,\r\n"
    "tom@example.com\u200b,Tom,,,,,,,,,\r\n"
    "uma@example.com,Uma,\u202eevil,,,,,,,,\r\n"
)
COLUMNS = (
    "id, email, email_key, first_name, last_name, status, attributes, subscribed_at, "
    "consent_source, timezone"
)

EXPECTED_UTF8 = {
    "counts": (13, 2, 0),
    "rejected": [
        (8, "", "no email address"),
        (11, "carl@example.net", "12 fields but the header has 11"),
        (
            13,
            "eve@example.net",
            "unknown status 'sleeping' (use active, unsubscribed, bounced, complained, pending)",
        ),
        (
            14,
            "fay@example.net",
            "unknown time zone 'Mars/Olympus' in the timezone column (use an IANA name "
            "such as Europe/Berlin or America/New_York, or leave it empty)",
        ),
        (
            16,
            "hal@example.net",
            "unknown time zone 'america/new_york' in the timezone column (use an IANA name "
            "such as Europe/Berlin or America/New_York, or leave it empty)",
        ),
        (17, "not-an-address", "An email address must have an @-sign."),
        (18, "ivy@@example.net", "The part after the @-sign contains invalid characters: '@'."),
        (19, ".jo@example.net", "An email address cannot start with a period."),
        (20, "kim\r\n@example.net", "the address contains a line break"),
        (
            29,
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx@example.com",
            "The part before the @ is 65 octets long, over the limit of 64.",
        ),
        (
            30,
            "sam@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
            "After the @-sign, periods cannot be separated by so many characters (1 "
            "character too many).",
        ),
        (
            31,
            "tom@example.com\u200b",
            "The email address contains unsafe characters: ZERO WIDTH SPACE.",
        ),
    ],
    "rows": [
        (
            1,
            "Ana@example.com",
            "ana@example.com",
            "Ana",
            "Santos",
            "active",
            '{"ville": "Porto"}',
            "2024-01-02",
            "form",
            "Europe/Lisbon",
        ),
        (
            2,
            "bob@example.org",
            "bob@example.org",
            "Robert",
            "O'Brien",
            "active",
            '{"notiz": "=SUM(A1)"}',
            "NOW",
            None,
            None,
        ),
        (
            3,
            "jörg@bücher.de",
            "jörg@bücher.de",
            "Jörg",
            "Müller",
            "active",
            '{"notiz": "Grüße, \\"quoted\\"", "ville": "Köln"}',
            "NOW",
            None,
            None,
        ),
        (
            4,
            "olga@bücher.de",
            "olga@bücher.de",
            "Ольга",
            "Петрова",
            "active",
            "{}",
            "NOW",
            None,
            None,
        ),
        (
            5,
            "ñoño@example.es",
            "ñoño@example.es",
            "Ñoño",
            "Pérez",
            "active",
            "{}",
            "NOW",
            None,
            None,
        ),
        (
            6,
            "dora@example.net",
            "dora@example.net",
            "Dora",
            "Wide",
            "active",
            "{}",
            "NOW",
            None,
            None,
        ),
        (
            7,
            "gil@example.net",
            "gil@example.net",
            "Gil",
            "Off",
            "unsubscribed",
            "{}",
            "NOW",
            None,
            None,
        ),
        (
            8,
            "lee@example.net",
            "lee@example.net",
            "@home",
            "+1 555",
            "active",
            '{"ville": "=x"}',
            "NOW",
            None,
            None,
        ),
        (9, "mo@example.net", "mo@example.net", "Mo", "", "active", "{}", "NOW", None, None),
        (
            10,
            "李@例子.测试",
            "李@例子.测试",
            "李",
            "王",
            "active",
            '{"ville": "北京"}',
            "NOW",
            None,
            None,
        ),
        (11, "zoë@example.com", "zoë@example.com", "Zoë", "Ærø", "active", "{}", "NOW", None, None),
        (
            12,
            "ruth@sub.example.co.uk",
            "ruth@sub.example.co.uk",
            "Ruth, Jr.",
            "Line\nTwo",
            "pending",
            "{}",
            "NOW",
            None,
            "UTC",
        ),
        (
            13,
            "uma@example.com",
            "uma@example.com",
            "Uma",
            "\u202eevil",
            "active",
            "{}",
            "NOW",
            None,
            None,
        ),
    ],
    "tags": [
        (1, "extra"),
        (1, "imported"),
        (1, "news"),
        (1, "vip"),
        (2, "imported"),
        (2, "news"),
        (2, "second"),
        (2, "weekly"),
        (3, "imported"),
        (4, "a"),
        (4, "b"),
        (4, "imported"),
        (5, "imported"),
        (6, "imported"),
        (7, "imported"),
        (8, "-tag"),
        (8, "imported"),
        (9, "imported"),
        (10, "imported"),
        (11, "imported"),
        (11, "mixed case"),
        (12, "imported"),
        (13, "imported"),
    ],
}

EXPECTED_ASCII = {
    "counts": (9, 2, 0),
    "rejected": [
        (
            5,
            "jörg@bücher.de",
            "the outbox cannot deliver to a non-ASCII local part ('jörg'): that needs "
            "SMTPUTF8, which its API does not offer",
        ),
        (
            7,
            "ñoño@example.es",
            "the outbox cannot deliver to a non-ASCII local part ('ñoño'): that needs "
            "SMTPUTF8, which its API does not offer",
        ),
        (8, "", "no email address"),
        (11, "carl@example.net", "12 fields but the header has 11"),
        (
            13,
            "eve@example.net",
            "unknown status 'sleeping' (use active, unsubscribed, bounced, complained, pending)",
        ),
        (
            14,
            "fay@example.net",
            "unknown time zone 'Mars/Olympus' in the timezone column (use an IANA name "
            "such as Europe/Berlin or America/New_York, or leave it empty)",
        ),
        (
            16,
            "hal@example.net",
            "unknown time zone 'america/new_york' in the timezone column (use an IANA name "
            "such as Europe/Berlin or America/New_York, or leave it empty)",
        ),
        (17, "not-an-address", "An email address must have an @-sign."),
        (18, "ivy@@example.net", "The part after the @-sign contains invalid characters: '@'."),
        (19, ".jo@example.net", "An email address cannot start with a period."),
        (20, "kim\r\n@example.net", "the address contains a line break"),
        (
            25,
            "李@例子.测试",
            "the outbox cannot deliver to a non-ASCII local part ('李'): that needs "
            "SMTPUTF8, which its API does not offer",
        ),
        (
            26,
            "zoë@example.com",
            "the outbox cannot deliver to a non-ASCII local part ('zoë'): that needs "
            "SMTPUTF8, which its API does not offer",
        ),
        (
            29,
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx@example.com",
            "The part before the @ is 65 octets long, over the limit of 64.",
        ),
        (
            30,
            "sam@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
            "After the @-sign, periods cannot be separated by so many characters (1 "
            "character too many).",
        ),
        (
            31,
            "tom@example.com\u200b",
            "The email address contains unsafe characters: ZERO WIDTH SPACE.",
        ),
    ],
    "rows": [
        (
            1,
            "Ana@example.com",
            "ana@example.com",
            "Ana",
            "Santos",
            "active",
            '{"ville": "Porto"}',
            "2024-01-02",
            "form",
            "Europe/Lisbon",
        ),
        (
            2,
            "bob@example.org",
            "bob@example.org",
            "Robert",
            "O'Brien",
            "active",
            '{"notiz": "=SUM(A1)"}',
            "NOW",
            None,
            None,
        ),
        (
            3,
            "olga@bücher.de",
            "olga@bücher.de",
            "Ольга",
            "Петрова",
            "active",
            "{}",
            "NOW",
            None,
            None,
        ),
        (
            4,
            "dora@example.net",
            "dora@example.net",
            "Dora",
            "Wide",
            "active",
            "{}",
            "NOW",
            None,
            None,
        ),
        (
            5,
            "gil@example.net",
            "gil@example.net",
            "Gil",
            "Off",
            "unsubscribed",
            "{}",
            "NOW",
            None,
            None,
        ),
        (
            6,
            "lee@example.net",
            "lee@example.net",
            "@home",
            "+1 555",
            "active",
            '{"ville": "=x"}',
            "NOW",
            None,
            None,
        ),
        (7, "mo@example.net", "mo@example.net", "Mo", "", "active", "{}", "NOW", None, None),
        (
            8,
            "ruth@sub.example.co.uk",
            "ruth@sub.example.co.uk",
            "Ruth, Jr.",
            "Line\nTwo",
            "pending",
            "{}",
            "NOW",
            None,
            "UTC",
        ),
        (
            9,
            "uma@example.com",
            "uma@example.com",
            "Uma",
            "\u202eevil",
            "active",
            "{}",
            "NOW",
            None,
            None,
        ),
    ],
    "tags": [
        (1, "extra"),
        (1, "imported"),
        (1, "news"),
        (1, "vip"),
        (2, "imported"),
        (2, "news"),
        (2, "second"),
        (2, "weekly"),
        (3, "a"),
        (3, "b"),
        (3, "imported"),
        (4, "imported"),
        (5, "imported"),
        (6, "-tag"),
        (6, "imported"),
        (7, "imported"),
        (8, "imported"),
        (9, "imported"),
    ],
}


def database_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if not TEST_POSTGRES_URL:
        pytest.skip("set TEST_POSTGRES_URL to run this on PostgreSQL too")
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(TEST_POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    _databases.append(name)  # dropped at the end of the session
    return TEST_POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def opened(kind: str, tmp_path: Path, name: str) -> Store:
    folder = tmp_path / name
    folder.mkdir()
    return open_store(database_url(kind, folder))


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[Store]:
    made = opened(kind, tmp_path, "bulk")
    try:
        yield made
    finally:
        made.close()


def contents(store: Store) -> dict[str, Any]:
    """What the tables hold, the import's own timestamp shown as NOW."""
    rows = []
    for row in store.db.execute(f"SELECT {COLUMNS}, created_at FROM subscribers ORDER BY id"):
        values = [row[name] for name in COLUMNS.split(", ")]
        if values[7] == row["created_at"]:
            values[7] = "NOW"
        rows.append(tuple(values))
    tags = [
        (r["subscriber_id"], r["tag"])
        for r in store.db.execute("SELECT subscriber_id, tag FROM subscriber_tags ORDER BY 1, 2")
    ]
    return {"rows": rows, "tags": tags}


def imported(store: Store, path: Path, smtputf8: bool) -> dict[str, Any]:
    result = members.import_subscribers(
        store.subscribers, Carrier(smtputf8=smtputf8), path, ("Imported",), "active"
    )
    return {
        "counts": (result.added, result.updated, result.unchanged),
        "rejected": [(r.line, r.value, r.reason) for r in result.rejected],
        **contents(store),
    }


@pytest.mark.parametrize("smtputf8", [True, False])
@pytest.mark.parametrize("chunk", [5000, 2])
def test_a_hostile_international_file_gives_exactly_the_rows_it_always_did(
    store: Store, tmp_path: Path, smtputf8: bool, chunk: int
) -> None:
    path = tmp_path / "hostile.csv"
    path.write_text(CSV, encoding="utf-8")
    store.subscribers.IMPORT_CHUNK = chunk  # repeats and tags across chunk boundaries
    expected = EXPECTED_UTF8 if smtputf8 else EXPECTED_ASCII
    assert imported(store, path, smtputf8) == expected


@pytest.mark.parametrize("smtputf8", [True, False])
def test_the_bulk_path_gives_what_one_subscriber_at_a_time_gives(
    kind: str, tmp_path: Path, smtputf8: bool
) -> None:
    path = tmp_path / "hostile.csv"
    path.write_text(CSV + CSV.split("\r\n", 1)[1].replace("example", "exampel"), "utf-8")
    bulk, single = opened(kind, tmp_path, "bulk"), opened(kind, tmp_path, "single")
    try:
        result = imported(bulk, path, smtputf8)
        parsed = read_subscribers(path, ("Imported",), "active", Carrier(smtputf8=smtputf8))
        counts = [0, 0, 0]
        for sub in parsed.rows:  # the Subscriber path, one transaction per reader
            summary = single.subscribers.import_rows([sub])
            counts = [
                counts[0] + summary.added,
                counts[1] + summary.updated,
                counts[2] + summary.unchanged,
            ]
        assert result["counts"] == tuple(counts)
        assert result["rejected"] == [(r.line, r.value, r.reason) for r in parsed.rejected]
        assert {k: v for k, v in result.items() if k in ("rows", "tags")} == contents(single)
        again = imported(bulk, path, smtputf8)  # the same file again: all there already
        assert again["rows"] == result["rows"] and again["tags"] == result["tags"]
        assert again["counts"][0] == 0
    finally:
        bulk.close()
        single.close()


def test_a_file_that_fails_part_way_leaves_nothing(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    good = "".join(f"reader{i}@example.com,Reader,{i},a;b\n" for i in range(12_000))
    path.write_text(
        f"email,first_name,last_name,tags\n{good}late@example.com,a\rb\n", encoding="utf-8"
    )
    with pytest.raises(InputError, match="line 12002: the CSV is malformed"):
        members.import_subscribers(store.subscribers, Carrier(), path)
    assert store.db.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    assert store.db.execute("SELECT count(*) FROM subscriber_tags").fetchone()[0] == 0
