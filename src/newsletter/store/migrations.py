"""Ordered, named schema migrations; each runs once, as one script, and is recorded.

They are written for SQLite; ``Dialect.schema`` gives each table's own integer key
its PostgreSQL form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import now_iso

if TYPE_CHECKING:
    from .connection import Connection

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_initial",
        """
        CREATE TABLE subscribers (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL,
            email_key TEXT NOT NULL UNIQUE,
            first_name TEXT NOT NULL DEFAULT '',
            last_name TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'active',
            attributes TEXT NOT NULL DEFAULT '{}',
            subscribed_at TEXT,
            consent_source TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX subscribers_status ON subscribers (status, id);
        CREATE TABLE subscriber_tags (
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, tag)
        );
        CREATE INDEX subscriber_tags_tag ON subscriber_tags (tag, subscriber_id);
        CREATE TABLE campaigns (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            subject TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'draft',
            transport TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT
        );
        CREATE TABLE deliveries (
            campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id),
            email TEXT NOT NULL,
            status TEXT NOT NULL,
            provider_message_id TEXT,
            error TEXT,
            response TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            claimed_by TEXT,
            claimed_at TEXT,
            sent_at TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (campaign_id, subscriber_id)
        );
        CREATE INDEX deliveries_status ON deliveries (campaign_id, status, subscriber_id);
        CREATE INDEX deliveries_subscriber ON deliveries (subscriber_id);
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE locks (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            acquired_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        """,
    ),
]

MIGRATIONS.append(
    (
        "002_events_and_suppression",
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            provider TEXT NOT NULL,
            kind TEXT NOT NULL,
            email TEXT,
            subscriber_id INTEGER REFERENCES subscribers (id) ON DELETE SET NULL,
            campaign_id INTEGER REFERENCES campaigns (id),
            provider_message_id TEXT,
            provider_event_id TEXT,
            occurred_at TEXT,
            detail TEXT,
            raw TEXT NOT NULL,
            received_at TEXT NOT NULL
        );
        CREATE INDEX events_campaign ON events (campaign_id, kind);
        CREATE INDEX events_subscriber ON events (subscriber_id);
        CREATE UNIQUE INDEX events_dedupe ON events (provider, provider_event_id)
            WHERE provider_event_id IS NOT NULL;
        CREATE TABLE forgotten (
            email_hash TEXT PRIMARY KEY,
            forgotten_at TEXT NOT NULL
        );
        CREATE TABLE webhook_nonces (
            provider TEXT NOT NULL,
            nonce TEXT NOT NULL,
            seen_at TEXT NOT NULL,
            PRIMARY KEY (provider, nonce)
        );
        ALTER TABLE subscribers ADD COLUMN soft_bounces INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE subscribers ADD COLUMN status_changed_at TEXT;
        ALTER TABLE subscribers ADD COLUMN status_reason TEXT
        """,
    )
)

MIGRATIONS.append(
    (
        "003_digests",
        """
        CREATE TABLE digest_articles (
            period TEXT NOT NULL,
            article TEXT NOT NULL,
            PRIMARY KEY (period, article)
        );
        CREATE INDEX digest_articles_article ON digest_articles (article)
        """,
    )
)

MIGRATIONS.append(
    (
        "004_campaign_pages",
        """
        CREATE TABLE campaign_pages (
            campaign_id BIGINT PRIMARY KEY REFERENCES campaigns (id),
            subject TEXT NOT NULL,
            preheader TEXT NOT NULL DEFAULT '',
            html TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """,
    )
)

# Erasure: an erased row is marked (a later event cannot unmark it), and the
# hashes of erased addresses are keyed with the project secret. Hashes made before
# are unkeyed ("sha256"): they cannot be converted without the address, so they are
# kept for matching only and replaced by a keyed hash when the address is seen again.
# Rows erased before, which a late complaint may have relisted, are marked too.
MIGRATIONS.append(
    (
        "005_erasure",
        """
        ALTER TABLE subscribers ADD COLUMN erased_at TEXT;
        UPDATE subscribers SET erased_at = coalesce(status_changed_at, updated_at),
            status = 'unsubscribed', status_reason = 'forgotten'
            WHERE status_reason = 'forgotten' OR (substr(email_key, 1, 10) = 'forgotten-'
            AND substr(email_key, length(email_key) - 7) = '@invalid');
        ALTER TABLE forgotten ADD COLUMN scheme TEXT NOT NULL DEFAULT 'sha256';
        ALTER TABLE forgotten ADD COLUMN key_id TEXT
        """,
    )
)

# The outbox is a rehearsal: each delivery says which transport settled it, and a
# campaign that went only to the outbox keeps a summary of that rehearsal when it is
# then sent for real. Each campaign's articles are recorded, so a digest never features
# an article a campaign already sent.
MIGRATIONS.append(
    (
        "006_rehearsals_and_featured",
        """
        ALTER TABLE deliveries ADD COLUMN transport TEXT;
        UPDATE deliveries SET transport = (
            SELECT c.transport FROM campaigns c WHERE c.id = deliveries.campaign_id
        ) WHERE status NOT IN ('pending', 'sending', 'skipped');
        CREATE TABLE rehearsals (
            campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
            transport TEXT NOT NULL,
            messages INTEGER NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            archived_at TEXT NOT NULL
        );
        CREATE INDEX rehearsals_campaign ON rehearsals (campaign_id);
        CREATE TABLE campaign_articles (
            campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
            article TEXT NOT NULL,
            PRIMARY KEY (campaign_id, article)
        );
        CREATE INDEX campaign_articles_article ON campaign_articles (article)
        """,
    )
)

# Sign-up and staff actions: one row per thing that happened to a subscriber's
# membership (a sign-up with its consent proof, a confirmation email, the confirmation,
# a staff add or resubscribe, an unsubscribe). The sign-up limits are counted from it,
# so several serve processes share them. ``client_hash`` is a keyed hash of the client's
# address, never the address itself.
MIGRATIONS.append(
    (
        "007_signup",
        """
        CREATE TABLE subscriber_log (
            id INTEGER PRIMARY KEY,
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id),
            action TEXT NOT NULL,
            at TEXT NOT NULL,
            source TEXT,
            form_version TEXT,
            client_hash TEXT,
            detail TEXT
        );
        CREATE INDEX subscriber_log_subscriber ON subscriber_log (subscriber_id, action, at);
        CREATE INDEX subscriber_log_action ON subscriber_log (action, at);
        CREATE INDEX subscriber_log_client ON subscriber_log (client_hash, at)
        """,
    )
)


# The public archive: a campaign whose front matter says `archive: false` keeps its web
# version (its emails link to it) but is not listed; known at send time, kept with the page.
MIGRATIONS.append(
    (
        "008_archive",
        """
        ALTER TABLE campaign_pages ADD COLUMN in_archive INTEGER NOT NULL DEFAULT 1
        """,
    )
)

# Reports: a click's link and the user agent of an open or a click, to count links and
# tell scanners from readers; and the membership changes provider events make, so the
# list's history month by month is read from one table.
MIGRATIONS.append(
    (
        "009_reports",
        """
        ALTER TABLE events ADD COLUMN url TEXT;
        ALTER TABLE events ADD COLUMN user_agent TEXT
        """,
    )
)

# Scheduled sends: a delivery may wait until its reader's time (``due_at``, NULL: due
# now; `local_time` campaigns), a reader may have a time zone (an IANA name), and a
# campaign a person paused (`schedule pause`) says so, apart from a pause for failures.
MIGRATIONS.append(
    (
        "010_schedule",
        """
        ALTER TABLE deliveries ADD COLUMN due_at TEXT;
        ALTER TABLE subscribers ADD COLUMN timezone TEXT;
        ALTER TABLE campaigns ADD COLUMN paused_by TEXT;
        CREATE INDEX deliveries_due ON deliveries (campaign_id, status, due_at)
        """,
    )
)

# Sequences: when `run` first saw each sequence (readers who become active from then on
# enter it) and each step (the grace rule: a step added later reaches only readers for
# whom it is not overdue by more than the sequence's grace), and who entered which
# sequence when. A step is a campaign (slug <sequence>--<step>); its deliveries are added
# as readers become due.
MIGRATIONS.append(
    (
        "011_sequences",
        """
        CREATE TABLE sequences (
            name TEXT PRIMARY KEY,
            first_seen_at TEXT NOT NULL
        );
        CREATE TABLE sequence_steps (
            slug TEXT PRIMARY KEY,
            first_seen_at TEXT NOT NULL
        );
        CREATE TABLE sequence_entries (
            sequence TEXT NOT NULL,
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id),
            entered_at TEXT NOT NULL,
            PRIMARY KEY (sequence, subscriber_id)
        );
        CREATE INDEX sequence_entries_entered ON sequence_entries (sequence, entered_at)
        """,
    )
)


# Sign-up requests: one row per accepted sign-up POST, the queue its confirmation email
# waits in (``mail_state``: none, queued, sending, sent, failed) and what its links saw.
# The sign-up limits are counted from it; the keys are keyed hashes, never an address.
# A request is deleted after ``[signup] confirm_days``; names wait here until confirmed.
MIGRATIONS.append(
    (
        "012_signup_requests",
        """
        CREATE TABLE signup_requests (
            id INTEGER PRIMARY KEY,
            subscriber_id INTEGER REFERENCES subscribers (id) ON DELETE CASCADE,
            mailbox_key TEXT NOT NULL,
            client_key TEXT NOT NULL,
            network_key TEXT NOT NULL,
            first_name TEXT NOT NULL DEFAULT '',
            last_name TEXT NOT NULL DEFAULT '',
            source TEXT,
            form_version TEXT,
            created_at TEXT NOT NULL,
            outcome TEXT NOT NULL,
            mail_state TEXT NOT NULL DEFAULT 'none',
            claimed_at TEXT,
            mailed_at TEXT,
            scanner_at TEXT,
            used_at TEXT,
            detail TEXT
        );
        CREATE INDEX signup_requests_created ON signup_requests (created_at);
        CREATE INDEX signup_requests_mail ON signup_requests (mail_state, id);
        CREATE INDEX signup_requests_client ON signup_requests (client_key, created_at);
        CREATE INDEX signup_requests_network ON signup_requests (network_key, created_at);
        CREATE INDEX signup_requests_mailbox ON signup_requests (mailbox_key, created_at);
        CREATE INDEX signup_requests_subscriber ON signup_requests (subscriber_id)
        """,
    )
)


# The queue's indexes cover pending deliveries only. Each message updates its delivery
# twice (claimed, then settled) and every update of a row writes a new entry into each
# index whose rows it belongs to: with ``status`` as a key column that was all four
# indexes, twice. A claimed or settled delivery is in no partial index, so those updates
# now write only the primary key and ``deliveries_subscriber``, and the indexes a claim
# walks hold only the deliveries still to send. Queries over other statuses read the
# campaign's deliveries on the primary key.
MIGRATIONS.append(
    (
        "013_pending_deliveries",
        """
        DROP INDEX deliveries_status;
        DROP INDEX deliveries_due;
        CREATE INDEX deliveries_pending ON deliveries (campaign_id, subscriber_id)
            WHERE status = 'pending';
        CREATE INDEX deliveries_pending_due ON deliveries (campaign_id, due_at)
            WHERE status = 'pending'
        """,
    )
)


# A reader's tags are kept by their key alone (``WITHOUT ROWID``): on SQLite the table
# was a rowid table beside an index of that same key, two B-trees written for every tag
# an import adds. PostgreSQL keeps no rowids; its table stays as it is.
MIGRATIONS.append(
    (
        "014_tags_without_rowid",
        """
        CREATE TABLE subscriber_tags_by_key (
            subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            PRIMARY KEY (subscriber_id, tag)
        ) WITHOUT ROWID;
        INSERT INTO subscriber_tags_by_key (subscriber_id, tag)
            SELECT subscriber_id, tag FROM subscriber_tags ORDER BY subscriber_id, tag;
        DROP TABLE subscriber_tags;
        ALTER TABLE subscriber_tags_by_key RENAME TO subscriber_tags;
        CREATE INDEX subscriber_tags_tag ON subscriber_tags (tag, subscriber_id)
        """,
    )
)

# Migrations that change only one database's storage: on the other they are recorded
# and nothing is run.
ONLY_ON = {"014_tags_without_rowid": "sqlite"}


def pending(db: Connection) -> list[str]:
    """The migrations not yet applied to this database, in order."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
    return [name for name, _ in MIGRATIONS if name not in done]


def _literal(text: str) -> str:
    """``text`` as an SQL string literal (a script takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def migrate(db: Connection) -> list[str]:
    """Apply every migration not yet recorded, in order; return their names. Each runs
    as one script together with the row that records it: both happen, or neither."""
    applied = []
    todo = set(pending(db))
    for name, sql in MIGRATIONS:
        if name not in todo:
            continue
        record = (
            "INSERT INTO schema_migrations (name, applied_at) "
            f"VALUES ({_literal(name)}, {_literal(now_iso())})"
        )
        if ONLY_ON.get(name, db.dialect.name) != db.dialect.name:
            db.run_script(record)
        else:
            db.run_script(f"{db.dialect.schema(sql).strip().rstrip(';')}\n;\n{record}")
        applied.append(name)
    return applied
