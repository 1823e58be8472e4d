"""Migration 014: a reader's tags kept by their key alone on SQLite (``WITHOUT ROWID``);
on PostgreSQL only recorded. Tags that were there stay, and everything that reads or
deletes them works as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ON_POSTGRES, connect

PEOPLE = (
    "email,first_name,tags\nada@example.com,Ada,b;a\nbob@example.com,Bob,\ncy@example.com,Cy,a;c\n"
)


def _open_before_014(project: Path, monkeypatch: pytest.MonkeyPatch):
    import newsletter.store.migrations as migrations
    from newsletter.catalog import load_settings
    from newsletter.store import open_store

    old = [m for m in migrations.MIGRATIONS if m[0] < "014"]
    with monkeypatch.context() as patched:
        patched.setattr(migrations, "MIGRATIONS", old)
        return open_store(load_settings(str(project / "newsletter.toml")).database_url)


def _tags(db) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in db.execute(
            "SELECT s.email, t.tag FROM subscriber_tags t "
            "JOIN subscribers s ON s.id = t.subscriber_id ORDER BY 1, 2"
        )
    ]


def test_tags_of_an_older_database_stay_and_are_kept_by_their_key(
    project: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a database of the previous version with tagged readers
    store = _open_before_014(project, monkeypatch)
    with store.transaction():
        for i, (email, tags) in enumerate(
            (
                ("ada@example.com", ("a", "b")),
                ("bob@example.com", ()),
                ("cy@example.com", ("a", "c")),
            ),
            start=1,
        ):
            store.db.execute(
                "INSERT INTO subscribers (id, email, email_key, created_at, updated_at) "
                "VALUES (?, ?, ?, '2026-01-01', '2026-01-01')",
                (i, email, email),
            )
            for tag in tags:
                store.db.execute(
                    "INSERT INTO subscriber_tags (subscriber_id, tag) VALUES (?, ?)", (i, tag)
                )
    before = _tags(store.db)
    store.close()

    # when: this version opens it
    db = connect(project)

    # then: the same tags, the migration recorded, and on SQLite a table without rowids
    assert (
        _tags(db)
        == before
        == [
            ("ada@example.com", "a"),
            ("ada@example.com", "b"),
            ("cy@example.com", "a"),
            ("cy@example.com", "c"),
        ]
    )
    names = {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
    assert "014_tags_without_rowid" in names
    if not ON_POSTGRES:
        table = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'subscriber_tags'"
        ).fetchone()[0]
        assert "WITHOUT ROWID" in table
        indexes = {
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'subscriber_tags'"
            )
        }
        assert "subscriber_tags_tag" in indexes
        assert db.execute("PRAGMA foreign_key_check(subscriber_tags)").fetchall() == []
    db.close()

    # and: an import adds nothing that is there, the audience reads the tags
    (project / "people.csv").write_text(PEOPLE, encoding="utf-8")
    run("subscribers", "import", "people.csv")
    run("subscribers", "import", "people.csv")
    db = connect(project)
    assert _tags(db) == [
        ("ada@example.com", "a"),
        ("ada@example.com", "b"),
        ("cy@example.com", "a"),
        ("cy@example.com", "c"),
    ]
    listed = run("subscribers", "list", "--tag", "c")
    assert "cy@example.com" in listed.stdout and "ada@example.com" not in listed.stdout

    # and: deleting a reader still deletes their tags (ON DELETE CASCADE)
    with db.transaction():
        db.execute("DELETE FROM subscribers WHERE email_key = 'ada@example.com'")
    assert _tags(db) == [("cy@example.com", "a"), ("cy@example.com", "c")]
    db.close()


def test_a_new_database_applies_every_migration_once(project: Path) -> None:
    from newsletter.store.migrations import MIGRATIONS, migrate

    db = connect(project)
    assert migrate(db) == []
    names = [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
    assert names == sorted(name for name, _ in MIGRATIONS)
    db.close()
