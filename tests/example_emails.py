"""Each built-in template's email, built by `newsletter build` in a copy of the example project.

The example project has a campaign for ``digest`` and one for ``announcement``;
``plain`` gets the digest's letter and articles under a campaign of its own.
"""

from __future__ import annotations

from pathlib import Path

from conftest import Runner

TEMPLATES = ("digest", "announcement", "plain")
CAMPAIGNS = {"digest": "2026-10-digest", "announcement": "winter-workshop", "plain": "plain-letter"}


def build_example(project: Path, template: str) -> Path:
    """Build the example campaign that uses ``template``; the folder with email.html etc."""
    slug = CAMPAIGNS[template]
    if template == "plain":
        digest = (project / "campaigns" / "2026-10-digest.md").read_text(encoding="utf-8")
        assert "template: digest" in digest
        (project / "campaigns" / f"{slug}.md").write_text(
            digest.replace("template: digest", "template: plain"), encoding="utf-8"
        )
    result = Runner()("build", slug)
    assert result.exit_code == 0, result.output
    return project / "build" / slug
