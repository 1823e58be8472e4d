"""Migration 013 (the queue's indexes cover pending deliveries only) on SQLite and (with
TEST_POSTGRES_URL) PostgreSQL: a database of the previous version migrates, every
delivery survives as it was, and the queue goes on from where it stood."""

from __future__ import annotations

from pathlib import Path

import pytest

import newsletter.store.migrations as migrations
from newsletter.models import Audience, DeliveryStatus, SendResult, Subscriber
from newsletter.store import Store, open_store
from test_store import database_url

COLUMNS = (
    "campaign_id, subscriber_id, email, status, provider_message_id, error, response, "
    "attempts, claimed_by, claimed_at, sent_at, updated_at, transport, due_at"
)


def _indexes(store: Store) -> set[str]:
    if store.db.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deliveries'"
    else:
        sql = "SELECT indexname FROM pg_indexes WHERE tablename = 'deliveries'"
    return {r[0] for r in store.db.execute(sql)}


def _rows(store: Store) -> list[tuple[object, ...]]:
    width = COLUMNS.count(",") + 1
    return [
        tuple(r[i] for i in range(width))
        for r in store.db.execute(
            f"SELECT {COLUMNS} FROM deliveries ORDER BY campaign_id, subscriber_id"
        )
    ]


def _previous_version(url: str, monkeypatch: pytest.MonkeyPatch) -> Store:
    """A store made by the migrations before 013, with deliveries in every state."""
    old = [m for m in migrations.MIGRATIONS if m[0] < "013"]
    with monkeypatch.context() as patched:
        patched.setattr(migrations, "MIGRATIONS", old)
        store = open_store(url)
    store.subscribers.import_rows(Subscriber(email=f"r{i}@example.com") for i in range(12))
    ledger = store.ledger
    first = ledger.ensure_campaign("first", "First")
    ledger.enqueue(first, Audience(), "postmark")
    sent = ledger.claim(first.id, "one", 4, "postmark")
    ledger.settle(
        first.id,
        [SendResult(sent[0].subscriber_id, DeliveryStatus.SENT, message_id="m-0")]
        + [
            SendResult(r.subscriber_id, DeliveryStatus.FAILED, error="refused", raw={"n": 1})
            for r in sent[1:3]
        ],
    )  # the fourth stays claimed: in flight when the software was upgraded
    later = ledger.ensure_campaign("later", "Later")
    ledger.enqueue(later, Audience(), "postmark", due=lambda _zone: "2099-12-24T09:00:00Z")
    return store


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_database_of_the_previous_version_migrates_and_keeps_its_deliveries(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a database made before migration 013
    url = database_url(kind, tmp_path)
    old = _previous_version(url, monkeypatch)
    assert {"deliveries_status", "deliveries_due"} <= _indexes(old)
    before = _rows(old)
    old.close()

    # when: the current version opens it
    store = open_store(url)
    try:
        # then: the indexes are replaced, and every delivery is as it was
        found = _indexes(store)
        assert {"deliveries_pending", "deliveries_pending_due"} <= found
        assert not {"deliveries_status", "deliveries_due"} & found
        assert _rows(store) == before
        assert migrations.pending(store.db) == []

        # and the queue goes on: the first campaign's pending readers are claimed lowest
        # id first, the one in flight is not, and the later campaign waits for its time
        ledger = store.ledger
        first, later = ledger.campaign("first"), ledger.campaign("later")
        assert first is not None and later is not None
        pending = [r[1] for r in before if r[0] == first.id and r[3] == "pending"]
        claimed = ledger.claim(first.id, "two", 100, "postmark")
        assert [r.subscriber_id for r in claimed] == pending
        assert ledger.claim(later.id, "two", 100, "postmark") == []
        assert ledger.next_due(later.id) == ("2099-12-24T09:00:00Z", 12)
        assert ledger.delivery_counts(first.id) == {"sent": 1, "failed": 2, "sending": 9}
    finally:
        store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_new_database_has_the_pending_indexes(kind: str, tmp_path: Path) -> None:
    store = open_store(database_url(kind, tmp_path))
    try:
        found = _indexes(store)
        assert {"deliveries_pending", "deliveries_pending_due"} <= found
        assert not {"deliveries_status", "deliveries_due"} & found
    finally:
        store.close()
