"""The store's own parts, on SQLite and (with TEST_POSTGRES_URL) PostgreSQL in the same
run: parameters bound by the dialect, transactions that nest, leases, streaming, and
what recording an event returns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TEST_POSTGRES_URL, _databases
from newsletter.errors import SendConflict
from newsletter.models import (
    CampaignStatus,
    Event,
    EventKind,
    EventOutcome,
    RecordedEvent,
    Subscriber,
    SubscriberStatus,
)
from newsletter.store import Store, open_store
from newsletter.store.dialect import POSTGRESQL, SQLITE
from newsletter.store.subscribers import Subscribers


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
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(database_url(request.param, tmp_path))
    try:
        yield opened
    finally:
        opened.close()


# -- binding parameters --------------------------------------------------------------
def test_sqlite_takes_the_statement_as_written() -> None:
    sql = "SELECT '?', '%' FROM t WHERE a LIKE '%x%' AND b = ?"
    assert SQLITE.bind(sql) == sql


@pytest.mark.parametrize(
    ("sql", "bound"),
    [
        ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
        ("SELECT '?' WHERE a = ?", "SELECT '?' WHERE a = %s"),
        ("SELECT 1 WHERE a LIKE '%x%'", "SELECT 1 WHERE a LIKE '%%x%%'"),
        ("SELECT 5 % 2, ?", "SELECT 5 %% 2, %s"),
        ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', %s"),
        ('SELECT "odd?name" FROM t WHERE a = ?', 'SELECT "odd?name" FROM t WHERE a = %s'),
        ("SELECT 1 -- why?\nWHERE a = ?", "SELECT 1 -- why?\nWHERE a = %s"),
        ("SELECT /* a ? b */ ?", "SELECT /* a ? b */ %s"),
        ("SELECT a FROM t WHERE a LIKE ? ESCAPE '\\' AND b = ?", None),
        (
            "SELECT * FROM unnest(?::bigint[], ?::text[]) WHERE a = ANY(?::bigint[]) AND b = ?",
            "SELECT * FROM unnest(%b::bigint[], %b::text[]) WHERE a = ANY(%b::bigint[]) AND b = %s",
        ),
        ("SELECT '?::text[]', ?", "SELECT '?::text[]', %s"),
    ],
)
def test_postgresql_parameters_are_bound_outside_strings_and_comments(
    sql: str, bound: str | None
) -> None:
    expected = bound or "SELECT a FROM t WHERE a LIKE %s ESCAPE '\\' AND b = %s"
    assert POSTGRESQL.bind(sql) == expected


def test_a_literal_percent_and_a_quoted_question_mark_reach_the_database_as_written(
    store: Store,
) -> None:
    store.subscribers.import_rows(
        [Subscriber(email="max@example.org"), Subscriber(email="ana@example.org")]
    )
    row = store.db.execute(
        "SELECT count(*), '?', '100%' FROM subscribers WHERE email LIKE '%ax@%' AND status = ?",
        ("active",),
    ).fetchone()
    assert tuple(row[i] for i in range(3)) == (1, "?", "100%")
    # a statement with no parameters at all
    assert store.db.execute("SELECT 'a%b?'").fetchone()[0] == "a%b?"


# -- transactions ------------------------------------------------------------------
def test_a_transaction_opened_inside_another_commits_or_rolls_back_with_it(
    store: Store,
) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.db.execute(
            "INSERT INTO settings (key, value) VALUES ('outer', 'x')",
        )
        with store.transaction():
            store.db.execute("INSERT INTO settings (key, value) VALUES ('inner', 'y')")
        raise RuntimeError("the outer one fails after the inner one finished")
    assert store.db.execute("SELECT count(*) FROM settings").fetchone()[0] == 0

    with store.transaction(), store.transaction():
        store.db.execute("INSERT INTO settings (key, value) VALUES ('both', 'z')")
    assert store.db.execute("SELECT value FROM settings").fetchone()[0] == "z"


# -- leases ------------------------------------------------------------------------
def lock_holders(store: Store) -> list[str]:
    return [r[0] for r in store.db.execute("SELECT holder FROM locks ORDER BY name")]


def test_a_lease_is_held_for_the_block_and_let_go_after_it(store: Store) -> None:
    with store.leases.lease("digest:2026-10", 3600, holder="me") as lease:
        assert lease.holder == "me"
        assert lock_holders(store) == ["me"]
        with (
            pytest.raises(SendConflict, match="digest:2026-10"),
            store.leases.lease("digest:2026-10", 3600, holder="another"),
        ):
            pass
    assert lock_holders(store) == []

    with pytest.raises(KeyError), store.leases.lease("digest:2026-10", 3600):
        raise KeyError("the work failed")
    assert lock_holders(store) == [], "let go on an error too"


def test_a_lease_whose_holder_expired_is_taken_over(store: Store) -> None:
    with store.leases.lease("digest:2026-11", 3600, holder="old"):
        store.db.execute("UPDATE locks SET expires_at = '2000-01-01T00:00:00+00:00'")
        with store.leases.lease("digest:2026-11", 60, holder="new"):
            assert lock_holders(store) == ["new"]


def test_a_lease_is_renewed_only_after_a_tenth_of_its_time(store: Store) -> None:
    now = [0.0]
    lease = store.leases.lease("sender:x:me", 100, holder="me")
    lease.clock = lambda: now[0]

    def expiry() -> str:
        return store.db.execute("SELECT expires_at FROM locks").fetchone()[0]

    with lease:
        first = expiry()
        now[0] = 5.0
        lease.renew()
        assert expiry() == first, "too soon: not written"
        now[0] = 11.0
        store.db.execute("UPDATE locks SET expires_at = '2000-01-01T00:00:00+00:00'")
        lease.renew()
        assert expiry() > "2000-01-02"


# -- streaming -----------------------------------------------------------------------
def test_subscribers_stream_a_chunk_at_a_time_with_one_query_for_a_chunks_tags(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = [
        Subscriber(email=f"reader{i}@example.org", tags=("b", "a") if i % 2 else ())
        for i in range(10)
    ]
    store.subscribers.import_rows(people)
    monkeypatch.setattr(Subscribers, "READ_CHUNK", 3)
    statements: list[str] = []
    execute = store.db.execute
    monkeypatch.setattr(
        store.db, "execute", lambda sql, params=(): statements.append(sql) or execute(sql, params)
    )

    listed = list(store.subscribers.stream())

    assert [s.email for s in listed] == [p.email for p in people]
    assert [s.tags for s in listed] == [("a", "b") if i % 2 else () for i in range(10)]
    assert len(statements) == 4 + 4 + 1, "4 chunks and their tags, then an empty chunk"
    assert [s.email for s in store.subscribers.stream(tag="a")] == [p.email for p in people[1::2]]


# -- campaigns and events --------------------------------------------------------------
def test_a_campaigns_status_is_a_campaign_status(store: Store) -> None:
    row = store.ledger.ensure_campaign("october", "October")
    assert row.status is CampaignStatus.DRAFT
    store.ledger.set_campaign_status(row.id, CampaignStatus.PAUSED)
    assert store.ledger.campaign("october").status is CampaignStatus.PAUSED
    assert (
        store.ledger.campaign_slug(row.id) == "october"
        and store.ledger.campaign_slug(row.id + 1) is None
    )


def test_recording_events_says_what_was_done(store: Store) -> None:
    store.subscribers.import_rows([Subscriber(email="zoe@example.org")])
    sid = store.subscribers.id_of("zoe@example.org")

    def soft(n: int) -> RecordedEvent:
        event = Event("postmark", EventKind.SOFT_BOUNCED, "zoe@example.org", None, f"s{n}")
        return store.events.record(event, soft_bounce_limit=2)

    first = soft(1)
    assert first == RecordedEvent(EventOutcome.SOFT_BOUNCE, 1, 2)
    assert str(first) == "soft bounce 1 of 2"
    assert soft(1).outcome is EventOutcome.ALREADY_RECORDED
    second = soft(2)
    assert second == RecordedEvent(EventOutcome.SOFT_BOUNCE_LIMIT, 2, 2)
    assert str(second) == "suppressed after 2 soft bounces"
    assert store.subscribers.status_of(sid) is SubscriberStatus.BOUNCED
    complaint = store.events.record(Event("postmark", EventKind.COMPLAINED, "zoe@example.org"))
    assert str(complaint) == "suppressed (complained)"
    stranger = store.events.record(Event("postmark", EventKind.BOUNCED, "nobody@example.org"))
    assert stranger.outcome is EventOutcome.NO_SUBSCRIBER
    assert str(stranger) == "recorded (no matching subscriber)"
    assert store.subscribers.status_of(sid + 100) is None
