"""Claiming and settling deliveries, and numbering imported readers, on SQLite and (with
TEST_POSTGRES_URL) PostgreSQL in the same run: lowest id first across many batches,
readers who left settled ``skipped`` with why, the raw answer kept only for messages a
provider did not take."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.models import Audience, DeliveryStatus, SendResult, Subscriber
from newsletter.store import Store, open_store
from newsletter.store.subscribers import Subscribers
from test_store import database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(database_url(request.param, tmp_path))
    try:
        yield opened
    finally:
        opened.close()


def readers(store: Store, count: int, tagged_every: int = 0) -> list[int]:
    """``count`` new readers, r0@example.com on; their ids in file order."""
    store.subscribers.import_rows(
        Subscriber(
            email=f"r{i}@example.com",
            first_name=f"R{i}",
            tags=("even",) if tagged_every and i % tagged_every == 0 else (),
        )
        for i in range(count)
    )
    return [
        r[0]
        for r in store.db.execute(
            "SELECT id FROM subscribers WHERE email LIKE 'r%@example.com' ORDER BY id"
        )
    ]


def campaign(store: Store, slug: str = "c") -> int:
    row = store.ledger.ensure_campaign(slug, "Subject")
    store.ledger.enqueue(row, Audience(), "postmark")
    return row.id


def delivery(store: Store, campaign_id: int, subscriber_id: int) -> dict[str, object]:
    row = store.db.execute(
        "SELECT status, error, attempts, claimed_by, claimed_at, transport, response, "
        "provider_message_id, sent_at FROM deliveries WHERE campaign_id = ? "
        "AND subscriber_id = ?",
        (campaign_id, subscriber_id),
    ).fetchone()
    return dict(row)


def test_claims_go_lowest_first_across_batches_and_past_a_gap_of_readers_who_left(
    store: Store,
) -> None:
    # given: 60 readers; 25 in the middle (more than a batch) left after the freeze
    ids = readers(store, 60)
    cid = campaign(store)
    gone = ids[20:45]
    store.db.execute(
        "UPDATE subscribers SET status = 'unsubscribed' WHERE id BETWEEN ? AND ?",
        (gone[0], gone[-1]),
    )

    # when: batches of 10 are claimed until none is left
    batches = []
    while got := store.ledger.claim(cid, "me", 10, transport="postmark"):
        batches.append([r.subscriber_id for r in got])

    # then: every active reader once, in id order, each batch non-empty; the gap skipped
    claimed = [sid for batch in batches for sid in batch]
    assert claimed == ids[:20] + ids[45:]
    assert all(batch == sorted(batch) for batch in batches)
    for sid in gone:
        row = delivery(store, cid, sid)
        assert (row["status"], row["error"], row["attempts"]) == (
            "skipped",
            "subscriber is unsubscribed",
            0,
        )
        assert row["claimed_by"] is None
    for sid in claimed:
        row = delivery(store, cid, sid)
        assert row["status"] == "sending" and row["attempts"] == 1
        assert row["claimed_by"] == "me" and row["claimed_at"] and row["transport"] == "postmark"
    assert store.ledger.delivery_counts(cid) == {"sending": 35, "skipped": 25}


def test_a_claim_takes_what_was_given_back_first_even_after_ten_thousand_were_sent(
    store: Store,
) -> None:
    # given: 10,500 readers, of which the first 10,000 are claimed and settled sent
    ids = readers(store, 10_500)
    cid = campaign(store)
    for _ in range(20):
        got = store.ledger.claim(cid, "me", 500)
        store.ledger.settle(
            cid,
            [SendResult(r.subscriber_id, DeliveryStatus.SENT, f"m{r.subscriber_id}") for r in got],
        )
    assert store.ledger.delivery_counts(cid) == {"sent": 10_000, "pending": 500}

    # when: a claimed batch is given back, and a failed one is queued again
    taken = store.ledger.claim(cid, "me", 5)
    assert [r.subscriber_id for r in taken] == ids[10_000:10_005]
    store.ledger.release(cid, [r.subscriber_id for r in taken])
    store.db.execute(
        "UPDATE deliveries SET status = 'failed' WHERE campaign_id = ? AND subscriber_id = ?",
        (cid, ids[3]),
    )
    store.ledger.requeue(cid, [DeliveryStatus.FAILED])

    # then: the lowest pending ids come first, the re-queued one before the rest
    got = store.ledger.claim(cid, "other", 4)
    assert [r.subscriber_id for r in got] == [ids[3], *ids[10_000:10_003]]
    assert delivery(store, cid, ids[3])["attempts"] == 2
    assert delivery(store, cid, ids[10_000])["attempts"] == 2


def test_a_claim_waits_for_readers_not_yet_due(store: Store) -> None:
    ids = readers(store, 4)
    cid = campaign(store)
    store.db.execute(
        "UPDATE deliveries SET due_at = '2999-01-01T00:00:00Z' WHERE subscriber_id IN (?, ?)",
        (ids[0], ids[2]),
    )
    got = store.ledger.claim(cid, "me", 10)
    assert [r.subscriber_id for r in got] == [ids[1], ids[3]]
    assert store.ledger.claim(cid, "me", 10) == []


def test_a_claim_carries_each_readers_fields_and_tags(store: Store) -> None:
    ids = readers(store, 7, tagged_every=3)
    cid = campaign(store)
    got = store.ledger.claim(cid, "me", 10)
    assert [(r.subscriber_id, r.email, r.first_name, r.tags) for r in got] == [
        (sid, f"r{i}@example.com", f"R{i}", ("even",) if i % 3 == 0 else ())
        for i, sid in enumerate(ids)
    ]


def test_settle_keeps_the_raw_answer_only_for_messages_the_provider_did_not_take(
    store: Store,
) -> None:
    ids = readers(store, 5)
    cid = campaign(store)
    store.ledger.claim(cid, "me", 10)
    answer = {"ErrorCode": 0, "Message": "OK", "To": "someone"}
    store.ledger.settle(
        cid,
        [
            SendResult(ids[0], DeliveryStatus.SENT, "m0", raw=answer),
            SendResult(ids[1], DeliveryStatus.QUEUED, "m1", raw=answer),
            SendResult(ids[2], DeliveryStatus.FAILED, error="450 later", raw={"code": 450}),
            SendResult(ids[3], DeliveryStatus.REJECTED, error="bad", raw={"code": 406}),
            SendResult(ids[4], DeliveryStatus.UNKNOWN, error="lost", raw=None),
        ],
    )
    rows = [delivery(store, cid, sid) for sid in ids]
    assert [r["status"] for r in rows] == ["sent", "queued", "failed", "rejected", "unknown"]
    assert [r["response"] for r in rows[:2]] == [None, None]
    assert [json.loads(str(r["response"])) for r in rows[2:4]] == [{"code": 450}, {"code": 406}]
    assert rows[4]["response"] is None
    assert [r["provider_message_id"] for r in rows[:2]] == ["m0", "m1"]
    assert [bool(r["sent_at"]) for r in rows] == [True, True, False, False, False]
    assert [r["error"] for r in rows[2:]] == ["450 later", "bad", "lost"]
    assert all(r["claimed_by"] is None for r in rows)
    assert store.ledger.message_target("m1", None) is not None


def test_settle_suppresses_and_a_repeated_answer_for_one_reader_ends_as_the_last(
    store: Store,
) -> None:
    ids = readers(store, 3)
    cid = campaign(store)
    store.ledger.claim(cid, "me", 10)
    store.ledger.settle(
        cid,
        [
            SendResult(ids[0], DeliveryStatus.FAILED, error="first"),
            SendResult(ids[1], DeliveryStatus.INVALID, error="dead", suppress=True),
            SendResult(ids[0], DeliveryStatus.SENT, "m0"),
        ],
    )
    assert delivery(store, cid, ids[0])["status"] == "sent"
    assert delivery(store, cid, ids[1])["status"] == "invalid"
    assert delivery(store, cid, ids[2])["status"] == "sending"
    statuses = {r[0]: r[1] for r in store.db.execute("SELECT id, status FROM subscribers")}
    assert statuses[ids[1]] == "bounced" and statuses[ids[0]] == "active"


def test_imported_readers_get_their_own_tags_across_chunks_repeats_and_gaps(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: small chunks, and a reader removed at the end of the table (a gap in ids)
    monkeypatch.setattr(Subscribers, "IMPORT_CHUNK", 4)
    readers(store, 3)
    store.db.execute("DELETE FROM subscribers WHERE email = 'r2@example.com'")

    # when: more readers come, with tags, one of them twice in the file
    summary = store.subscribers.import_rows(
        [
            Subscriber(email=f"t{i}@example.com", tags=(f"tag{i}",) if i % 2 else ())
            for i in range(10)
        ]
        + [Subscriber(email="t3@example.com", tags=("again",))]
    )

    # then: each reader has their own tags, and the ids follow the file
    assert (summary.added, summary.updated) == (10, 1)
    rows = store.db.execute(
        "SELECT id, email FROM subscribers WHERE email LIKE 't%' ORDER BY id"
    ).fetchall()
    assert [r[1] for r in rows] == [f"t{i}@example.com" for i in range(10)]
    tags = store.subscribers.tags_of([r[0] for r in rows])
    assert {r[1]: tags.get(r[0], []) for r in rows} == {
        f"t{i}@example.com": (["again", "tag3"] if i == 3 else [f"tag{i}"] if i % 2 else [])
        for i in range(10)
    }
