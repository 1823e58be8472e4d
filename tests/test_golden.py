"""Each built-in template's whole email, as built, compared with a committed golden copy.

After an intended change to a template, an article or the pipeline, regenerate with
``UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from newsletter.models import Recipient
from newsletter.project import Project

GOLDEN = Path(__file__).parent / "golden"
READER = Recipient(4, "zoe.hartmann@example.com", "Zoë", "Hartmann", {"city": "Northampton"})


@pytest.mark.parametrize("template", ["digest", "announcement", "plain"])
def test_built_email_matches_golden(
    project: Path, monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET", "golden-secret")
    proj = Project.load()
    campaign = replace(proj.composer.campaign("2026-10-digest"), template=template)
    compiled = proj.composer.compile(campaign)
    fields = proj.composer.personalizer(campaign.slug, 7)(READER)
    subject, html, text = compiled.preview(fields)
    built = {"html": html, "txt": f"Subject: {subject}\n\n{text}"}
    for suffix, content in built.items():
        path = GOLDEN / f"{template}.{suffix}"
        if os.environ.get("UPDATE_GOLDEN"):
            path.write_text(content, encoding="utf-8")
        assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1"
        assert content == path.read_text(encoding="utf-8"), (
            f"{template}.{suffix} changed; if intended, regenerate with UPDATE_GOLDEN=1"
        )
