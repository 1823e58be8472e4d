"""The example campaign's sample message through SpamAssassin (Debian's package, its own
rules, local tests only: no network, no sa-update)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import Runner
from example_emails import build_example

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("spamassassin") is None, reason="needs spamassassin (Debian's package)"
    ),
]


def spamassassin(eml: Path, home: Path) -> tuple[float, list[str]]:
    """(score, the rules hit) for one message."""
    done = subprocess.run(
        ["spamassassin", "-L", "-t", "-x"],
        stdin=eml.open("rb"),
        capture_output=True,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    status = re.search(
        rb"^X-Spam-Status: .*?score=(-?[\d.]+) .*?tests=(.*?)\s+autolearn=",
        done.stdout,
        re.M | re.S,
    )
    assert status, done.stdout[:2000]
    tests = re.sub(rb"\s+", b"", status.group(2)).decode()
    return float(status.group(1)), [t for t in tests.split(",") if t and t != "none"]


def test_the_sample_message_has_no_low_contrast_text(
    project: Path, tmp_path: Path, record_property
) -> None:
    imported = Runner()("subscribers", "import", "subscribers.example.csv")
    assert imported.exit_code == 0, imported.output
    eml = build_example(project, "digest") / "sample.eml"
    score, hits = spamassassin(eml, tmp_path)
    print(f"SpamAssassin: score {score}, hits {', '.join(hits)}")
    record_property("spamassassin", f"score={score} tests={','.join(hits)}")
    assert "HTML_FONT_LOW_CONTRAST" not in hits, hits
