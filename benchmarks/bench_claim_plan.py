"""The claim's plan on a 1M campaign: ``EXPLAIN ANALYZE`` of the claim's locking SELECT as
it was (deliveries joined to readers, locked) and as it is (the delivery ids first, then
their readers), at the start and after 950,000 deliveries were settled (not vacuumed).

    python benchmarks/bench_claim_plan.py --postgres postgresql://... [--subscribers N]
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

COLUMNS = "s.email, s.first_name, s.last_name, s.status, s.erased_at, s.attributes, s.timezone"
PENDING = "d.campaign_id = 1 AND d.status = 'pending' AND (d.due_at IS NULL OR d.due_at <= 'z')"
BEFORE = (
    f"SELECT d.subscriber_id, {COLUMNS} FROM deliveries d JOIN subscribers s "
    f"ON s.id = d.subscriber_id WHERE {PENDING} ORDER BY d.subscriber_id LIMIT 500 "
    "FOR UPDATE OF d SKIP LOCKED"
)
AFTER = (
    "WITH picked AS MATERIALIZED (SELECT d.subscriber_id FROM deliveries d "
    f"WHERE {PENDING} ORDER BY d.subscriber_id LIMIT 500 FOR UPDATE SKIP LOCKED) "
    f"SELECT p.subscriber_id, {COLUMNS} FROM picked p JOIN subscribers s "
    "ON s.id = p.subscriber_id ORDER BY p.subscriber_id"
)


def explain(raw: object, query: str) -> str:
    """The plan's lines, the claim rolled back."""
    raw.execute("BEGIN")  # type: ignore[attr-defined]
    plan = [r[0] for r in raw.execute("EXPLAIN (ANALYZE) " + query)]  # type: ignore[attr-defined]
    raw.execute("ROLLBACK")  # type: ignore[attr-defined]
    return "\n".join(plan)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", required=True, help="an admin URL for a scratch database")
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    args = parser.parse_args()
    import psycopg

    from newsletter.store.connection import connect
    from newsletter.store.migrations import migrate

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    db = connect(args.postgres.rsplit("/", 1)[0] + "/" + name)
    try:
        migrate(db)
        raw = db.raw
        raw.execute(
            "INSERT INTO subscribers (email, email_key, created_at, updated_at) "
            "SELECT 'r' || i || '@example.com', 'r' || i || '@example.com', 't', 't' "
            "FROM generate_series(1, %s) i",
            (args.subscribers,),
        )
        raw.execute("INSERT INTO campaigns (slug, subject, created_at) VALUES ('c', 's', 't')")
        raw.execute(
            "INSERT INTO deliveries (campaign_id, subscriber_id, email, status, updated_at) "
            "SELECT 1, id, email, 'pending', 't' FROM subscribers"
        )
        raw.execute("VACUUM ANALYZE")
        settled = args.subscribers * 95 // 100
        report = [
            ("start", "before", explain(raw, BEFORE)),
            ("start", "after", explain(raw, AFTER)),
        ]
        for low in range(1, settled + 1, 50_000):
            raw.execute(
                "UPDATE deliveries SET status = 'sent' WHERE campaign_id = 1 "
                "AND subscriber_id BETWEEN %s AND %s",
                (low, min(low + 49_999, settled)),
            )
        raw.execute("ANALYZE deliveries")
        moment = f"{settled:,} sent"
        report += [(moment, "before", explain(raw, BEFORE)), (moment, "after", explain(raw, AFTER))]
        for when, which, plan in report:
            print(f"--- {which}, {when}\n{plan}\n")
        print(f"{'moment':>14} {'query':>7} {'execution':>10}")
        for when, which, plan in report:
            took = plan.rsplit("Execution Time: ", 1)[1]
            print(f"{when:>14} {which:>7} {took:>10}")
    finally:
        db.close()
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
