"""Time zones and stored times: IANA names, wall-clock times, the monthly schedule.

Every decision about "is it due" takes ``now`` (aware) from its caller, so that
``newsletter run --now`` can run as if at any time. Times are stored as ISO 8601 UTC
strings ("2026-12-10T08:00:00Z"), which compare as text in the order of time.

A wall-clock time in a zone is resolved with zoneinfo, the rules of PEP 495: a time
that does not exist on that day (the clocks spring forward over it) moves forward by
the length of the gap (02:30 becomes 03:30); a time that happens twice (the clocks
fall back) is the first one (``fold=0``). Either way it is one instant: it goes out once.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = dt.UTC

_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")


@functools.lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo | None:
    """The IANA zone called ``name`` ("Europe/Berlin"), or None when there is none."""
    text = name.strip()
    if not _ZONE_NAME.match(text):
        return None
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_name(found: dt.tzinfo | None) -> str | None:
    """The IANA name of a zone (None for a fixed offset)."""
    key = getattr(found, "key", None)
    return key if isinstance(key, str) else None


def at_wall_clock(day: dt.date, time: dt.time, tz: dt.tzinfo) -> dt.datetime:
    """``day`` at ``time`` on the clocks of ``tz``, as an aware UTC datetime: a time in a
    spring-forward gap moves forward by the gap, an ambiguous one is the first (fold=0)."""
    local = dt.datetime.combine(day, time.replace(tzinfo=None, fold=0), tzinfo=tz)
    return local.astimezone(UTC)


def iso(moment: dt.datetime) -> str:
    """An aware datetime as it is stored: ISO 8601 in UTC, to the second, "Z"."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def from_iso(text: str) -> dt.datetime:
    """A stored time (or any ISO 8601 date-time; naive means UTC) as an aware datetime."""
    moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_now(text: str | None) -> dt.datetime:
    """``--now``: an ISO 8601 date-time (with an offset, or UTC when it has none); the
    real time when not given. ValueError with the reason when it is not one."""
    if text is None:
        return dt.datetime.now(UTC)
    try:
        return from_iso(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date-time; write it as 2026-12-10T09:00+01:00 "
            "(or 2026-12-10T08:00Z; without an offset it is UTC)"
        ) from None


def reader_due(send_at: dt.datetime, reader_zone: str | None, fallback: dt.tzinfo) -> dt.datetime:
    """When a reader gets a ``local_time`` campaign: ``send_at``'s wall-clock date and
    time (as written, in its own zone) on the reader's clocks, or ``fallback``'s for a
    reader without a known zone."""
    tz = (zone(reader_zone) if reader_zone else None) or fallback
    return at_wall_clock(send_at.date(), send_at.timetz(), tz)


class DueTimes:
    """Each reader's due time (stored form) for a ``local_time`` campaign, by zone name;
    computed once per zone, so a list of any size costs as many zones as it has."""

    def __init__(self, send_at: dt.datetime, fallback: dt.tzinfo) -> None:
        self.send_at = send_at
        self.fallback = fallback
        self._known: dict[str | None, str] = {}

    def __call__(self, reader_zone: str | None) -> str:
        found = self._known.get(reader_zone)
        if found is None:
            found = self._known[reader_zone] = iso(
                reader_due(self.send_at, reader_zone, self.fallback)
            )
        return found


# -- [digest] schedule: "DAY HH:MM [Area/City]" ---------------------------------------
@dataclass(frozen=True, slots=True)
class MonthlyTime:
    """A day of the month (1-28) at a wall-clock time in a zone: the digest's schedule."""

    day: int
    time: dt.time
    tz: dt.tzinfo

    @property
    def zone_label(self) -> str:
        return zone_name(self.tz) or "UTC"

    def in_month(self, year: int, month: int) -> dt.datetime:
        """This month's moment, as an aware UTC datetime."""
        return at_wall_clock(dt.date(year, month, self.day), self.time, self.tz)

    def last_due(self, now: dt.datetime) -> dt.datetime | None:
        """This month's moment (in the zone's calendar) if it has come by ``now``."""
        local = now.astimezone(self.tz)
        moment = self.in_month(local.year, local.month)
        return moment if moment <= now else None

    def next_after(self, now: dt.datetime) -> dt.datetime:
        """The first moment after ``now``."""
        local = now.astimezone(self.tz)
        moment = self.in_month(local.year, local.month)
        if moment > now:
            return moment
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return self.in_month(year, month)


SCHEDULE_EXAMPLE = 'schedule = "1 09:00 Europe/Berlin" (day of month 1-28, a 24-hour time, a zone)'
_SCHEDULE = re.compile(r"^(\d{1,2})\s+(\d{1,2}):(\d{2})(?:\s+(\S+))?$")


def parse_monthly(text: str) -> MonthlyTime:
    """``"DAY HH:MM [Area/City]"``: ValueError saying what is wrong when it is not one."""
    match = _SCHEDULE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not DAY HH:MM [Area/City]")
    day, hour, minute, name = int(match[1]), int(match[2]), int(match[3]), match[4]
    if not 1 <= day <= 28:
        raise ValueError(f"the day {day} is not a day every month has (1-28)")
    if hour > 23 or minute > 59:
        raise ValueError(f"{match[2]}:{match[3]} is not a 24-hour time")
    tz: dt.tzinfo = UTC
    if name:
        found = zone(name)
        if found is None:
            raise ValueError(
                f"{name!r} is not a known time zone (an IANA name, e.g. Europe/Berlin)"
            )
        tz = found
    return MonthlyTime(day, dt.time(hour, minute), tz)
