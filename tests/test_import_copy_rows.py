"""Bulk inserts (``Connection.copy_rows``, what an import writes its readers and tags
with) store exactly the rows given, on SQLite and on PostgreSQL.

On SQLite many rows go in one statement, with the values every row shares (``same``)
bound once per statement. Given row counts on both sides of a statement's size, odd
values (NULL, empty, quotes, "?1", non-ASCII) and shared values, when the rows are
copied, then the table holds them in order, each with the shared values; a row that
breaks a constraint fails the transaction and leaves none of them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import connect

ODD = [None, "", "'", '"?1"', "?2 ?", "Ñandú 例え", "a" * 300, "x;y", "0"]


def _values(rows) -> list[tuple[object, ...]]:
    return [tuple(row[i] for i in range(5)) for row in rows]


def _rows(count: int) -> list[tuple[object, ...]]:
    return [(n, ODD[n % len(ODD)], ODD[(n * 5 + 1) % len(ODD)]) for n in range(count)]


@pytest.fixture
def db(project: Path):
    db = connect(project)
    db.run_script(
        "CREATE TABLE copied (n INTEGER NOT NULL UNIQUE, a TEXT, b TEXT, made TEXT, by TEXT)"
    )
    yield db
    db.close()


# 999 parameters a statement at most: 333 rows of 3, 332 with two shared values
@pytest.mark.parametrize("count", [0, 1, 2, 331, 332, 333, 334, 665, 666, 667, 1000, 2345])
def test_copied_rows_are_the_rows_given_in_order(db, count: int) -> None:
    rows = _rows(count)
    with db.transaction():
        db.copy_rows("copied", ("n", "a", "b"), rows, {"made": "then", "by": None})
        db.copy_rows("copied", ("n", "a", "b", "made"), [(-1 - n, a, b, "own") for n, a, b in rows])
    stored = db.execute("SELECT n, a, b, made, by FROM copied WHERE n >= 0 ORDER BY n").fetchall()
    assert _values(stored) == [(*r, "then", None) for r in rows]
    own = db.execute("SELECT n, a, b, made, by FROM copied WHERE n < 0 ORDER BY n DESC").fetchall()
    assert _values(own) == [(-1 - n, a, b, "own", None) for n, a, b in rows]


def test_a_row_that_breaks_a_constraint_leaves_none(db) -> None:
    rows = _rows(700)
    rows[500] = (3, "repeat", "of row 3")
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"), db.transaction():
        db.copy_rows("copied", ("n", "a", "b"), rows, {"made": "then"})
    assert db.execute("SELECT count(*) FROM copied").fetchone()[0] == 0
