"""Our HTML -> text and our CLI table against libraries that do the same, when installed.

    python benchmarks/bench_text_and_tables.py [--extra-path DIR]

html_to_text: the example campaign's email (as `newsletter build` writes it) converted
1,000 times by ``render/text.py`` and by inscriptis. Tables: 10,000 rows of
`newsletter report`'s columns printed by the CLI's own ``_emit`` and by tabulate and
rich. ``--extra-path`` appends a folder where those libraries are installed (they are
not dependencies of newsletter) to ``sys.path``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLUMNS = ["email", "status", "transport", "provider_message_id", "error", "sent_at"]


def timed(label: str, work: Callable[[], object], repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        work()
    seconds = time.perf_counter() - started
    print(f"  {label:<34} {seconds:7.3f} s")
    return seconds


def example_html() -> str:
    from newsletter.project import Project

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in (
            "newsletter.toml",
            "articles",
            "images",
            "campaigns",
            "templates",
            ".newsletter",
        ):
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
        project = Project.load(str(folder / "newsletter.toml"))
        try:
            return project.composer.build("2026-10-digest").html.read_text(encoding="utf-8")
        finally:
            project.close()


def bench_text(html: str) -> None:
    from newsletter.render.text import html_to_text

    print(f"html_to_text, the example email ({len(html) / 1024:.1f} KB) x 1000:")
    timed("newsletter.render.text", lambda: html_to_text(html), 1000)
    try:
        from inscriptis import get_text
        from inscriptis.model.config import ParserConfig
    except ImportError:
        print("  inscriptis                         not installed")
        return
    config = ParserConfig(display_links=True)
    timed("inscriptis (display_links)", lambda: get_text(html, config), 1000)
    ours, theirs = html_to_text(html), get_text(html, config)
    print(f"  output: ours {len(ours.splitlines())} lines, inscriptis {len(theirs.splitlines())}")
    print("  ours, first lines:       " + " | ".join(ours.strip().splitlines()[:6]))
    print("  inscriptis, first lines: " + " | ".join(theirs.strip().splitlines()[:6]))


def bench_tables() -> None:
    from newsletter.cli import _emit

    rows = [
        {
            "email": f"reader{i}@example.com",
            "status": "sent" if i % 7 else "failed",
            "transport": "postmark",
            "provider_message_id": f"<2026-10-digest.{i}.ec569cf4615f@example.org>",
            "error": None if i % 7 else "422 Inactive recipient",
            "sent_at": "2026-11-01T09:00:00Z",
        }
        for i in range(10_000)
    ]
    print("a table of 10,000 rows (`newsletter report CAMPAIGN`'s columns):")

    def ours() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            _emit(rows, "table", COLUMNS)

    timed("newsletter.cli._emit", ours)
    try:
        from tabulate import tabulate
    except ImportError:
        print("  tabulate                           not installed")
    else:
        values = [[r[c] or "" for c in COLUMNS] for r in rows]
        timed("tabulate (plain)", lambda: tabulate(values, COLUMNS, tablefmt="plain"))
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print("  rich                               not installed")
    else:

        def rich_table() -> None:
            table = Table(*COLUMNS, box=None)
            for r in rows:
                table.add_row(*(r[c] or "" for c in COLUMNS))
            Console(file=io.StringIO(), width=200).print(table)

        timed("rich (Table, no box)", rich_table)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--extra-path", help="a folder with inscriptis, tabulate and rich")
    args = parser.parse_args()
    if args.extra_path:
        sys.path.append(args.extra_path)
    bench_text(example_html())
    bench_tables()


if __name__ == "__main__":
    main()
