"""One connection to the database, SQLite or PostgreSQL, with sqlite3's API.

``execute`` and ``executemany`` take SQL with ``?`` parameters on both (the dialect
binds them); rows read by column name and by position on both. What the two drivers
do differently beyond SQL words is here: opening, bulk inserts (COPY on PostgreSQL),
table locks, and clearing old copies of erased rows from disk.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..files import create_private
from .dialect import POSTGRESQL, SQLITE, Dialect


class Connection:
    """A database connection in autocommit mode; ``transaction()`` groups statements."""

    dialect: Dialect

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._depth = 0  # open transaction() blocks

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(self.dialect.bind(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        return self.raw.executemany(self.dialect.bind(sql), [tuple(r) for r in rows])

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """BEGIN ... COMMIT, or ROLLBACK on error. A transaction opened inside another
        joins it: its statements commit or roll back with the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self.raw.execute(self.dialect.begin)
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self.raw.execute("ROLLBACK")
            raise
        self._depth = 0
        self.raw.execute("COMMIT")

    def run_script(self, script: str) -> None:
        """Run a script of several statements (a migration) in one transaction of its
        own: all of it, or none. It takes no parameters."""
        with self.transaction():
            self.raw.execute(script)  # psycopg runs several statements when given no parameters

    def lock(self, tables: tuple[str, ...], mode: str) -> None:
        """Take table locks at the start of a transaction, where the database has them.

        Writers that record a person take ROW EXCLUSIVE, ``forget`` takes SHARE ROW
        EXCLUSIVE (always in the order subscribers, deliveries, events): whichever
        comes second sees what the first committed. SQLite needs none: BEGIN
        IMMEDIATE already lets one writer in at a time.
        """
        if self.dialect.table_locks:
            self.execute(f"LOCK TABLE {', '.join(tables)} IN {mode} MODE")

    def copy_rows(
        self,
        table: str,
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
        same: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert many new rows at once. ``same``: columns with one value for every row
        (not in ``columns``, not in the rows' tuples)."""
        if same:
            columns = (*columns, *same)
            rows = [(*row, *same.values()) for row in rows]
        marks = ", ".join("?" * len(columns))
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def next_ids(self, table: str, count: int) -> range | None:
        """The ids the next ``count`` rows inserted into ``table`` get, when this
        connection may give them itself (None: the database numbers them)."""
        return None

    def purge(self) -> bool:
        """Leave no old copy of erased rows on disk; False when that could not be done."""
        raise NotImplementedError

    def close(self) -> None:
        self.raw.close()


class SQLiteConnection(Connection):
    """One file, WAL mode; erased data leaves no bytes behind (``secure_delete``)."""

    dialect = SQLITE

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            create_private(Path(path))  # readers' data: the owner's alone (-wal/-shm follow)
        try:
            raw = sqlite3.connect(path, timeout=30, isolation_level=None)
            raw.row_factory = sqlite3.Row
            raw.execute("PRAGMA journal_mode=WAL")
            raw.execute("PRAGMA foreign_keys=ON")
            raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("PRAGMA secure_delete=ON")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"The database {path} cannot be opened: {exc}.",
                "Check [database] url in newsletter.toml; the file must be a SQLite database.",
            ) from None
        super().__init__(raw)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(sql, params)  # sqlite3 takes ``?`` as it is

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        return self.raw.executemany(sql, rows)

    def run_script(self, script: str) -> None:
        """sqlite3 runs a script only through ``executescript``, which first commits any
        open transaction: the script brings its own BEGIN and COMMIT instead, and an
        error part way rolls back what it did."""
        if self._depth:
            raise RuntimeError("a script cannot run inside another transaction on SQLite")
        try:
            self.raw.executescript(f"{self.dialect.begin};\n{script}\n;\nCOMMIT;")
        except BaseException:
            if self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
            raise

    def copy_rows(
        self,
        table: str,
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
        same: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert many new rows at once: many rows to a statement (``VALUES (...), (...)``),
        and ``same``'s values bound once per statement. Binding a value and stepping a
        statement cost more in sqlite3 than SQLite's own insert of a short row."""
        if not rows:
            return
        shared = list(same.values()) if same else []
        names = (*columns, *same) if same else columns
        width = len(columns)
        per = max(1, (_MOST_PARAMETERS - len(shared)) // width)
        full = len(rows) - len(rows) % per
        if full:
            sql = _values_sql(table, names, width, per)
            flat = list(itertools.chain.from_iterable(rows[:full]))
            step = per * width
            for start in range(0, full * width, step):
                self.raw.execute(sql, shared + flat[start : start + step])
        if full < len(rows):
            sql = _values_sql(table, names, width, 1)
            self.raw.executemany(sql, [(*shared, *row) for row in rows[full:]])

    def next_ids(self, table: str, count: int) -> range | None:
        """Inside a write transaction (``BEGIN IMMEDIATE``: the only writer), the ids
        after the largest one, as SQLite itself would give them."""
        if not self.raw.in_transaction:
            return None
        last = self.raw.execute(f"SELECT max(id) FROM {table}").fetchone()[0] or 0
        return range(last + 1, last + 1 + count)

    def purge(self) -> bool:
        """The log is checkpointed and truncated: every page it held is written to the
        database, where secure_delete has zeroed the old contents. False when a
        connection kept reading an older snapshot past the busy timeout."""
        busy = self.raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        return not busy


class Row(dict):  # type: ignore[type-arg]
    """A row readable by column name and by position, like sqlite3.Row (by position
    also where two columns have one name)."""

    __slots__ = ("_values",)

    def __init__(self, names: list[str], values: Sequence[Any]) -> None:
        super().__init__(zip(names, values, strict=True))
        self._values = values

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return self._values[key]
        return super().__getitem__(key)


def _row_factory(cursor: Any) -> Any:
    names = [c.name for c in cursor.description or ()]
    return lambda values: Row(names, values)


class PostgresConnection(Connection):
    """psycopg 3, in autocommit mode; rows as ``Row``."""

    dialect = POSTGRESQL

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "A postgresql:// database needs psycopg, which is not installed.",
                "Install it with: pip install 'newsletter[postgres]'",
            ) from None
        try:
            raw = psycopg.connect(url, autocommit=True, row_factory=_row_factory)
        except psycopg.Error as exc:
            raise ConfigError(
                f"Cannot connect to the PostgreSQL database: {str(exc).strip()}.",
                "Check [database] url / NEWSLETTER_DATABASE_URL (postgresql://USER:PASSWORD@"
                "HOST:5432/DBNAME) and that the server is running.",
            ) from None
        super().__init__(raw)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        cursor = self.raw.cursor()
        cursor.executemany(self.dialect.bind(sql), [tuple(r) for r in rows])
        return cursor

    def copy_rows(
        self,
        table: str,
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
        same: Mapping[str, Any] | None = None,
    ) -> None:
        """New rows through COPY: the bulk path, many times faster than INSERTs."""
        if same:
            columns = (*columns, *same)
            rows = [(*row, *same.values()) for row in rows]
        with self.raw.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def purge(self) -> bool:
        """Old row versions go now rather than at the next autovacuum (the server's own
        WAL and backups follow its retention)."""
        self.execute("VACUUM subscribers, subscriber_tags, deliveries, events")
        return True


# the most parameters one statement may have in any SQLite (999 before 3.32)
_MOST_PARAMETERS = 999


@functools.lru_cache(maxsize=64)
def _values_sql(table: str, names: tuple[str, ...], width: int, count: int) -> str:
    """INSERT of ``count`` rows of ``width`` values each, then the shared values (the
    names after the first ``width``) that every row repeats: those are ?1..?k, bound
    once, and each row's own values follow them in order."""
    shared = [f"?{n}" for n in range(1, len(names) - width + 1)]
    numbers = itertools.count(len(shared) + 1)
    rows = (
        "(" + ", ".join([*(f"?{next(numbers)}" for _ in range(width)), *shared]) + ")"
        for _ in range(count)
    )
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES {', '.join(rows)}"


def connect(url: str) -> Connection:
    """A connection for a database URL: sqlite:///PATH or postgresql://..."""
    if url.startswith("sqlite:///"):
        return SQLiteConnection(url[len("sqlite:///") :])
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresConnection(url)
    raise ConfigError(
        f"Database URL {url!r} is not understood.",
        "Use sqlite:///PATH (relative to newsletter.toml) or postgresql://...",
    )
