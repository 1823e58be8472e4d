"""What SQL looks like on each database: the few words that differ, and parameters.

The store's SQL is written once, with ``?`` parameters. A ``Dialect`` says what its
database needs instead (``%s`` on PostgreSQL, where a literal ``%`` must also be
doubled) and ``bind`` rewrites a statement token by token: a ``?`` or ``%`` inside a
quoted string, a quoted name or a comment is text, never a parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# The pieces of a statement ``bind`` must not look into, and the two characters it
# rewrites elsewhere.
_TOKENS = re.compile(
    r"""
      '(?:[^']|'')*'?      # a string ('' is a quote inside it)
    | "(?:[^"]|"")*"?      # a quoted name
    | --[^\n]*             # a comment to the end of the line
    | /\*.*?(?:\*/|\Z)     # a block comment
    | \?::\w+\[\]          # an array parameter (PostgreSQL)
    | [?%]
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Dialect:
    """The SQL words one database needs where SQLite and PostgreSQL differ."""

    name: str
    placeholder: str  # what a ``?`` parameter becomes
    # what an array parameter (``?::bigint[]``) becomes: binary on PostgreSQL, which
    # psycopg dumps several times faster than an array's text form
    array_placeholder: str
    percent: str  # what a literal ``%`` becomes (the driver reads ``%`` as a parameter)
    begin: str  # how a write transaction starts
    identity_key: str  # a table's own integer key, numbered by the database
    for_update: str  # locks the rows a decision is made from, until the commit
    skip_locked: str  # ... and passes over rows another transaction holds
    ilike: str  # LIKE that folds case
    table_locks: bool  # whether writers take table locks (``LOCK TABLE``)
    arrays: bool  # whether a parameter may be an array (``= ANY(?)``, ``unnest(?)``)
    # whether the store gathers a table's statistics itself after filling it (PostgreSQL:
    # a query planned before autovacuum's first ANALYZE may take a plan that reads the
    # whole table; SQLite plans the store's queries well without statistics)
    analyze: bool

    def bind(self, sql: str) -> str:
        """``sql`` (``?`` parameters) as this database's driver takes it."""
        if self.placeholder == "?" and self.percent == "%":
            return sql
        return _bind(sql, self.placeholder, self.percent, self.array_placeholder)

    def schema(self, statement: str) -> str:
        """A migration's statement (written for SQLite) for this database: each table's
        own ``INTEGER PRIMARY KEY`` becomes this database's identity key."""
        return statement.replace("INTEGER PRIMARY KEY", self.identity_key)

    def locked(self, select: str, of: str = "", skip_locked: bool = False) -> str:
        """``select`` locking the rows it reads until the commit (``of``: only the rows of
        these tables); with ``skip_locked``, rows another transaction holds are passed over."""
        if not self.for_update:
            return select
        return (
            select
            + self.for_update
            + (f" OF {of}" if of else "")
            + (self.skip_locked if skip_locked else "")
        )

    def among(self, column: str) -> str:
        """SQL true when ``column`` is one of the ids bound, as ``ids`` gives them, to
        its one ``?``: a whole batch in one statement."""
        if self.arrays:
            return f"{column} = ANY(?::bigint[])"
        return f"{column} IN (SELECT value FROM json_each(?))"

    def ids(self, ids: list[int]) -> Any:
        """A list of ids as ``among`` binds it."""
        if self.arrays:
            return ids
        return "[" + ",".join(str(int(i)) for i in ids) + "]"

    def in_list(self, column: str, ids: list[int]) -> tuple[str, list[Any]]:
        """SQL true when ``column`` is one of ``ids``, with its parameters: one array on
        PostgreSQL (one value for the driver to bind, one statement text whatever the
        count), a ``?`` for each id on SQLite."""
        if self.arrays:
            return f"{column} = ANY(?::bigint[])", [list(ids)]
        return f"{column} IN ({', '.join('?' * len(ids))})", list(ids)


@lru_cache(maxsize=512)
def _bind(sql: str, placeholder: str, percent: str, array_placeholder: str) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group()
        if token == "?":
            return placeholder
        if token.startswith("?"):
            return array_placeholder + token[1:]
        return token.replace("%", percent)

    return _TOKENS.sub(replace, sql)


SQLITE = Dialect(
    name="sqlite",
    placeholder="?",
    array_placeholder="?",
    percent="%",
    begin="BEGIN IMMEDIATE",  # the write lock at once: no deadlock upgrading a read lock
    identity_key="INTEGER PRIMARY KEY",
    for_update="",  # BEGIN IMMEDIATE already lets one writer in at a time
    skip_locked="",
    ilike="LIKE",  # SQLite's LIKE folds ASCII case
    table_locks=False,
    arrays=False,
    analyze=False,
)

POSTGRESQL = Dialect(
    name="postgresql",
    placeholder="%s",
    array_placeholder="%b",
    percent="%%",
    begin="BEGIN",  # row locks do the serialising
    identity_key="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    for_update=" FOR UPDATE",
    skip_locked=" SKIP LOCKED",  # senders split a campaign instead of waiting on each other
    ilike="ILIKE",
    table_locks=True,
    arrays=True,
    analyze=True,
)
