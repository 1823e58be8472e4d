"""Leases and locks: a named row in ``locks`` held by one process until it expires.

A holder renews its lease while it works; one whose lease expired, or whose process
on this host is gone, has lost it, and the next taker takes it over.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import SendConflict
from .connection import Connection


def new_holder() -> str:
    """An id for one holder: its host, its process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """The ``locks`` table."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    def acquire(self, name: str, holder: str, ttl_seconds: int = 600) -> None:
        """Hold ``name`` exclusively; a lock whose holder died or expired is taken over."""
        host = socket.gethostname()
        now = dt.datetime.now(dt.UTC)
        values = (
            name,
            holder,
            host,
            os.getpid(),
            now.isoformat(),
            (now + dt.timedelta(seconds=ttl_seconds)).isoformat(),
        )
        db = self.db
        with db.transaction():
            taken = db.execute(
                "INSERT INTO locks (name, holder, host, pid, acquired_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                values,
            ).rowcount
            if taken:
                return
            row = db.execute(
                db.dialect.locked("SELECT * FROM locks WHERE name = ?"), (name,)
            ).fetchone()
            if row["holder"] != holder and not is_lost(row, now):
                raise SendConflict(
                    f"Another process (pid {row['pid']} on {row['host']}, since "
                    f"{row['acquired_at']}) is working on this: {name}.",
                    "Wait for it to finish, then run the command again; nothing it has "
                    "sent will be sent twice.",
                )
            db.execute(
                "UPDATE locks SET holder = ?, host = ?, pid = ?, acquired_at = ?, expires_at = ? "
                "WHERE name = ?",
                (*values[1:], name),
            )

    def refresh(self, name: str, holder: str, ttl_seconds: int = 600) -> None:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl_seconds)
        with self.db.transaction():
            self.db.execute(
                "UPDATE locks SET expires_at = ? WHERE name = ? AND holder = ?",
                (expires.isoformat(), name, holder),
            )

    def release(self, name: str, holder: str) -> None:
        with self.db.transaction():
            self.db.execute("DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder))

    def find(self, name: str) -> Any:
        """The row of lease ``name``, or None."""
        return self.db.execute("SELECT * FROM locks WHERE name = ?", (name,)).fetchone()

    def lease(self, name: str, ttl_seconds: int, holder: str | None = None) -> Lease:
        """Lease ``name`` (not yet taken: ``with`` takes it); ``holder`` defaults to a new id."""
        return Lease(self, name, ttl_seconds, holder or new_holder())


class Lease:
    """``with store.lease(name, ttl) as lease:`` holds ``name`` for the block and lets it
    go after, whatever happens; ``lease.renew()`` keeps it while the work goes on.

    Taking it raises ``SendConflict`` while another live holder has it.
    """

    def __init__(
        self,
        leases: Leases,
        name: str,
        ttl_seconds: int,
        holder: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.name = name
        self.ttl_seconds = ttl_seconds
        self.holder = holder
        self.clock = clock
        self._renewed = 0.0

    def __enter__(self) -> Lease:
        self.leases.acquire(self.name, self.holder, self.ttl_seconds)
        self._renewed = self.clock()
        return self

    def __exit__(self, *_: object) -> None:
        self.leases.release(self.name, self.holder)

    def renew(self) -> None:
        """Push the expiry out again, once a tenth of the lease's time has passed since it
        was last pushed (cheap enough to call after every batch)."""
        if self.clock() - self._renewed > self.ttl_seconds / 10:
            self.leases.refresh(self.name, self.holder, self.ttl_seconds)
            self._renewed = self.clock()


def is_lost(row: Any, now: dt.datetime | None = None) -> bool:
    """Whether a lease row's holder has lost it: expired, or its process on this host is
    gone."""
    now = now or dt.datetime.now(dt.UTC)
    if dt.datetime.fromisoformat(row["expires_at"]) < now:
        return True
    return row["host"] == socket.gethostname() and not _pid_alive(row["pid"])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
