"""The repository's example project, copied for a test or a benchmark to work on (the
benchmarks put tests/ on their path and import it from here)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_FILES = (
    "newsletter.toml",
    "articles",
    "images",
    "campaigns",
    "sequences",
    "templates",
    "subscribers.example.csv",
    ".newsletter",  # the example blog's fetched feed and page: builds work offline
)
# What a send or a sign-up needs: no sequences (no welcome mail), no example readers.
CAMPAIGN_FILES = ("newsletter.toml", "articles", "images", "campaigns", "templates", ".newsletter")


def copy_example(folder: Path, names: Iterable[str] = EXAMPLE_FILES) -> Path:
    """The example project's ``names`` (files and folders) copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name)
        else:
            shutil.copy(source, folder / name)
    return folder
