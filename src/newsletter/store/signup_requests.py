"""Sign-up requests: the ``signup_requests`` table, the limits counted from it, the queue
of confirmation emails and what a confirmation link saw.

One row per accepted sign-up POST. Its keys are keyed hashes (HMAC under the project
secret): the mailbox (``mailbox_address``: lowercased, ``+tag`` and the local part's dots
removed, googlemail.com as gmail.com), the client (an IPv4 address or an IPv6 network)
and the client's wider network. The limits are counted from these rows inside the
sign-up's own transaction, under the same table locks as every writer of a person, so
several ``serve`` processes share them and two requests cannot both pass a limit of one.

A sign-up never changes a known person's record: a new address gets a ``pending``
subscriber row without names; the names and the consent proof (``subscriber_log``) are
written when the person confirms. The queue is claimed with
``UPDATE ... WHERE mail_state = 'queued'``, so a confirmation goes at most once even
with several processes; a claim left in ``sending`` (a process killed mid-send) is
marked failed after ``STUCK_AFTER``, never sent again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..models import SubscriberStatus
from .connection import Connection
from .forgotten import Forgotten
from .signups import LogAction, Membership, SignupOutcome, iso
from .subscribers import Subscribers

STUCK_AFTER = dt.timedelta(minutes=10)  # a send that took longer than this died
SIGNED_UP = "signed up"  # the status_reason of a pending row a sign-up created


class MailState(StrEnum):
    NONE = "none"  # no confirmation for this request (a member, a limit, one went today)
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a sender
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RequestKeys:
    """Who a sign-up came from, as keyed hashes."""

    mailbox: str
    client: str
    network: str


@dataclass(frozen=True, slots=True)
class RequestLimits:
    per_client_per_hour: int
    per_network_per_hour: int
    per_address_per_hour: int
    confirmation_interval_hours: int = 24


@dataclass(frozen=True, slots=True)
class RequestForm:
    """What the form said: names (kept until confirmed) and the consent's context."""

    email: str
    first_name: str
    last_name: str
    source: str
    form_version: str


@dataclass(frozen=True, slots=True)
class Claimed:
    """A confirmation to send now: the request, to whom, when claimed."""

    request_id: int
    email: str
    subscriber_id: int
    claimed_at: str


@dataclass(frozen=True, slots=True)
class RequestRow:
    id: int
    subscriber_id: int | None
    mail_state: str
    mailed_at: str | None
    scanner_at: str | None
    used_at: str | None
    status: SubscriberStatus | None  # the person's, None when erased or gone


class SignupRequests:
    """The ``signup_requests`` table."""

    def __init__(
        self, db: Connection, subscribers: Subscribers, forgotten: Forgotten, membership: Membership
    ) -> None:
        self.db = db
        self.subscribers = subscribers
        self.forgotten = forgotten
        self.membership = membership

    def _count(self, where: str, params: tuple[Any, ...]) -> int:
        return int(
            self.db.execute(
                f"SELECT count(*) FROM signup_requests WHERE {where}", params
            ).fetchone()[0]
        )

    # -- a sign-up --------------------------------------------------------------------
    def record(
        self, form: RequestForm, keys: RequestKeys, limits: RequestLimits, now: dt.datetime
    ) -> tuple[SignupOutcome, int | None]:
        """Record a sign-up (the address already valid): its outcome and the request's id
        (None when a limit refused it). Whatever the address, the same reads and writes."""
        at, hour_ago = iso(now), iso(now - dt.timedelta(hours=1))
        db = self.db
        with db.transaction():
            # one sign-up at a time, across processes: the limits are counted, then used
            db.lock(("subscribers",), "ROW EXCLUSIVE")
            db.lock(("signup_requests",), "SHARE ROW EXCLUSIVE")
            limited = self._limited(keys, limits, hour_ago)
            if limited is not None:
                return limited, None
            erased = self.forgotten.includes(form.email)
            row = None if erased else self.subscribers._row(form.email)
            since = iso(now - dt.timedelta(hours=limits.confirmation_interval_hours))
            recent = self._count(
                "mailbox_key = ? AND mail_state IN (?, ?, ?) AND created_at >= ?",
                (keys.mailbox, MailState.QUEUED, MailState.SENDING, MailState.SENT, since),
            )
            if erased:
                sid, outcome = None, SignupOutcome.ERASED
            elif row is None:
                sid, outcome = self._insert_pending(form.email, at), SignupOutcome.CONFIRMATION
            else:
                sid, outcome = int(row["id"]), _outcome_of(SubscriberStatus(row["status"]))
            if outcome is SignupOutcome.CONFIRMATION and recent:
                outcome = SignupOutcome.RECENT
            queued = outcome is SignupOutcome.CONFIRMATION
            request_id = db.execute(
                "INSERT INTO signup_requests (subscriber_id, mailbox_key, client_key, "
                "network_key, first_name, last_name, source, form_version, created_at, "
                "outcome, mail_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    sid,
                    keys.mailbox,
                    keys.client,
                    keys.network,
                    form.first_name if queued else "",
                    form.last_name if queued else "",
                    form.source or None,
                    form.form_version,
                    at,
                    str(outcome),
                    str(MailState.QUEUED if queued else MailState.NONE),
                ),
            ).fetchone()[0]
        return outcome, int(request_id)

    def _limited(
        self, keys: RequestKeys, limits: RequestLimits, since: str
    ) -> SignupOutcome | None:
        """Which limit this sign-up is over this hour, if any: the client's, its
        network's, the mailbox's."""
        for column, key, limit, outcome in (
            ("client_key", keys.client, limits.per_client_per_hour, SignupOutcome.CLIENT_LIMIT),
            ("network_key", keys.network, limits.per_network_per_hour, SignupOutcome.NETWORK_LIMIT),
            ("mailbox_key", keys.mailbox, limits.per_address_per_hour, SignupOutcome.ADDRESS_LIMIT),
        ):
            if self._count(f"{column} = ? AND created_at >= ?", (key, since)) >= limit:
                return outcome
        return None

    def _insert_pending(self, email: str, at: str) -> int:
        """A new person, pending their confirmation, without names; their id."""
        return int(
            self.db.execute(
                "INSERT INTO subscribers (email, email_key, first_name, last_name, "
                "status, attributes, status_reason, status_changed_at, created_at, "
                "updated_at) VALUES (?, ?, '', '', 'pending', '{}', ?, ?, ?, ?) RETURNING id",
                (email, email.lower(), SIGNED_UP, at, at, at),
            ).fetchone()[0]
        )

    # -- the queue --------------------------------------------------------------------
    def claim(self, cap: int, per_network: int, now: dt.datetime, most: int = 50) -> list[Claimed]:
        """Claim queued confirmations to send now (at most ``most``): within ``cap`` an
        hour in all and ``per_network`` an hour for each network, taken round-robin
        across the networks that wait, oldest first. The rest wait in the queue."""
        at, hour_ago = iso(now), iso(now - dt.timedelta(hours=1))
        db = self.db
        with db.transaction():
            db.lock(("signup_requests",), "SHARE ROW EXCLUSIVE")  # one claimer at a time
            db.execute(
                "UPDATE signup_requests SET mail_state = ?, detail = ? "
                "WHERE mail_state = ? AND claimed_at < ?",
                (
                    str(MailState.FAILED),
                    "the sending process stopped before it finished; not sent again",
                    str(MailState.SENDING),
                    iso(now - STUCK_AFTER),
                ),
            )
            used = {
                r[0]: int(r[1])
                for r in db.execute(
                    "SELECT network_key, count(*) FROM signup_requests WHERE claimed_at >= ? "
                    "GROUP BY network_key",
                    (hour_ago,),
                )
            }
            budget = min(most, cap - sum(used.values()))
            if budget <= 0:
                return []
            waiting = db.execute(
                "SELECT r.id, r.network_key FROM signup_requests r WHERE r.mail_state = ? "
                "ORDER BY r.id LIMIT 5000",
                (str(MailState.QUEUED),),
            ).fetchall()
            chosen = _round_robin([(int(r[0]), r[1]) for r in waiting], used, per_network, budget)
            claimed = []
            for request_id in chosen:
                done = db.execute(
                    "UPDATE signup_requests SET mail_state = ?, claimed_at = ? "
                    "WHERE id = ? AND mail_state = ?",
                    (str(MailState.SENDING), at, request_id, str(MailState.QUEUED)),
                )
                if done.rowcount == 1:
                    claimed.append(request_id)
            return self._recipients(claimed, at)

    def _recipients(self, claimed: list[int], at: str) -> list[Claimed]:
        """Whom the claimed requests go to; one whose person may no longer get it (erased,
        active, bounced) is closed without an email."""
        out = []
        for request_id in claimed:
            row = self.db.execute(
                "SELECT s.id, s.email, s.status FROM signup_requests r JOIN subscribers s "
                "ON s.id = r.subscriber_id WHERE r.id = ? AND s.erased_at IS NULL",
                (request_id,),
            ).fetchone()
            if row is None or row["status"] not in ("pending", "unsubscribed"):
                self.finish(request_id, MailState.NONE, None, "no confirmation needed any more")
                continue
            out.append(Claimed(request_id, row["email"], int(row["id"]), at))
        return out

    def finish(
        self, request_id: int, state: MailState, mailed_at: str | None, detail: str | None = None
    ) -> None:
        """A claimed confirmation went (``SENT``, at ``mailed_at``) or did not."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE signup_requests SET mail_state = ?, mailed_at = ?, detail = ? "
                "WHERE id = ? AND mail_state = ?",
                (str(state), mailed_at, detail, request_id, str(MailState.SENDING)),
            )

    def queued(self) -> int:
        return self._count("mail_state = ?", (str(MailState.QUEUED),))

    # -- the links --------------------------------------------------------------------
    def row(self, request_id: int) -> RequestRow | None:
        """A request with its person's status (None: no such request)."""
        r = self.db.execute(
            "SELECT r.id, r.subscriber_id, r.mail_state, r.mailed_at, r.scanner_at, r.used_at, "
            "s.status, s.erased_at FROM signup_requests r LEFT JOIN subscribers s "
            "ON s.id = r.subscriber_id WHERE r.id = ?",
            (request_id,),
        ).fetchone()
        if r is None:
            return None
        status = None if r["status"] is None or r["erased_at"] else SubscriberStatus(r["status"])
        return RequestRow(
            int(r["id"]),
            r["subscriber_id"],
            r["mail_state"],
            r["mailed_at"],
            r["scanner_at"],
            r["used_at"],
            status,
        )

    def saw_scanner(self, request_id: int, now: dt.datetime) -> None:
        """The email's hidden link was followed: a scanner, not the person."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE signup_requests SET scanner_at = ? WHERE id = ? AND scanner_at IS NULL",
                (iso(now), request_id),
            )

    def confirm(self, request_id: int, now: dt.datetime) -> SubscriberStatus | None:
        """The person confirmed with this request's link: active, with its names (when
        given) and its consent, and every open request of theirs used. The status before
        (None: no such request or person; a used link changes nothing)."""
        at = iso(now)
        db = self.db
        with db.transaction():
            db.lock(("subscribers",), "ROW EXCLUSIVE")
            db.lock(("signup_requests",), "SHARE ROW EXCLUSIVE")
            r = db.execute(
                db.dialect.locked("SELECT * FROM signup_requests WHERE id = ?"), (request_id,)
            ).fetchone()
            if r is None or r["subscriber_id"] is None:
                return None
            sid = int(r["subscriber_id"])
            before = self.membership._locked_status(sid)
            if before is None or r["used_at"] is not None:
                return before if r["used_at"] is None else _used(before)
            if before in (SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED):
                self._activate(sid, r, at)
            db.execute(
                "UPDATE signup_requests SET used_at = ? "
                "WHERE subscriber_id = ? AND used_at IS NULL",
                (at, sid),
            )
        return before

    def _activate(self, sid: int, r: Any, at: str) -> None:
        """Active with the request's names and consent, logged as the consent proof."""
        source = "sign-up form" + f" {r['form_version'] or ''}".rstrip()
        if r["source"]:
            source += f" on {r['source']}"
        names = [(c, r[c]) for c in ("first_name", "last_name") if r[c]]
        sets = "".join(f", {c} = ?" for c, _ in names)
        self.db.execute(
            "UPDATE subscribers SET status = 'active', status_reason = 'confirmed', "
            f"status_changed_at = ?, updated_at = ?, subscribed_at = ?, consent_source = ?{sets} "
            "WHERE id = ?",
            (at, at, at, source, *(v for _, v in names), sid),
        )
        log = self.membership.log
        log(
            sid,
            LogAction.SIGNUP,
            r["created_at"],
            source=r["source"],
            form_version=r["form_version"],
            client_hash=r["client_key"],
        )
        log(sid, LogAction.CONFIRMATION_SENT, r["mailed_at"] or r["created_at"])
        log(sid, LogAction.CONFIRMED, at, detail=source)

    # -- expiry and erasure -----------------------------------------------------------
    def expire(self, confirm_days: int, now: dt.datetime) -> tuple[int, int]:
        """Delete the requests older than ``confirm_days`` and the pending people a
        sign-up created who have no newer one: nothing of them is kept. (requests,
        people) deleted."""
        cutoff = iso(now - dt.timedelta(days=confirm_days))
        db = self.db
        with db.transaction():
            db.lock(("subscribers",), "SHARE ROW EXCLUSIVE")
            db.lock(("signup_requests",), "SHARE ROW EXCLUSIVE")
            requests = db.execute(
                "DELETE FROM signup_requests WHERE created_at < ?", (cutoff,)
            ).rowcount
            people = [
                int(r[0])
                for r in db.execute(
                    "SELECT s.id FROM subscribers s WHERE s.status = 'pending' "
                    "AND s.status_reason = ? AND s.created_at < ? AND s.erased_at IS NULL "
                    "AND NOT EXISTS (SELECT 1 FROM signup_requests r WHERE r.subscriber_id = s.id)",
                    (SIGNED_UP, cutoff),
                )
            ]
            self._delete_people(people)
        return int(requests or 0), len(people)

    def _delete_people(self, ids: Iterable[int]) -> None:
        for sid in ids:
            for table in ("subscriber_log", "subscriber_tags", "sequence_entries", "events"):
                self.db.execute(f"DELETE FROM {table} WHERE subscriber_id = ?", (sid,))
            self.db.execute("DELETE FROM subscribers WHERE id = ?", (sid,))

    def forget(self, subscriber_ids: Iterable[int], mailbox: str) -> None:
        """An erased person's requests, and any of their mailbox (in the caller's
        transaction)."""
        for sid in subscriber_ids:
            self.db.execute("DELETE FROM signup_requests WHERE subscriber_id = ?", (sid,))
        self.db.execute("DELETE FROM signup_requests WHERE mailbox_key = ?", (mailbox,))


def _outcome_of(status: SubscriberStatus) -> SignupOutcome:
    if status is SubscriberStatus.ACTIVE:
        return SignupOutcome.ACTIVE
    if status in (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED):
        return SignupOutcome.SUPPRESSED
    return SignupOutcome.CONFIRMATION  # pending, or unsubscribed and asking again


def _used(before: SubscriberStatus) -> SubscriberStatus | None:
    """What a used link stands for: a person still active is subscribed; anyone else
    (unsubscribed since, signed up again) needs their new link."""
    return SubscriberStatus.ACTIVE if before is SubscriberStatus.ACTIVE else None


def _round_robin(
    waiting: list[tuple[int, str]], used: dict[str, int], per_network: int, budget: int
) -> list[int]:
    """Up to ``budget`` request ids, one network at a time in turn (in the order each
    first waits), none beyond ``per_network`` an hour with what it ``used``."""
    queues: dict[str, list[int]] = {}
    for request_id, network in waiting:
        queues.setdefault(network, []).append(request_id)
    room = {n: per_network - used.get(n, 0) for n in queues}
    chosen: list[int] = []
    while len(chosen) < budget:
        turn = [n for n, q in queues.items() if q and room[n] > 0]
        if not turn:
            break
        for network in turn[: budget - len(chosen)]:
            chosen.append(queues[network].pop(0))
            room[network] -= 1
    return chosen


def when(text: str | None) -> dt.datetime | None:
    """A stored time as a datetime (None stays None)."""
    return None if not text else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
