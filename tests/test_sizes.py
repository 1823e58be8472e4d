"""One unit for sizes: `build` and `check` say the same figure for the same email,
in KB as Gmail counts them (its "102 KB" clipping limit is 102,400 bytes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_process

pytestmark = pytest.mark.slow


def test_build_and_check_give_one_size_in_one_unit(project: Path) -> None:
    body = "\n\n".join("A paragraph that says rather a lot. " * 12 for _ in range(300))
    (project / "campaigns" / "long.md").write_text(
        f'---\nsubject: "Long"\npreheader: "A line."\n---\n{body}\n', encoding="utf-8"
    )
    out = project / "out"
    built = run_process("build", "long", "--out", str(out), cwd=project)
    assert built.returncode == 0, built.stderr
    size = (out / "email.html").stat().st_size
    assert size > 102_400
    figure = f"{size / 1000:.1f} KB"
    assert f"email.html  ({figure})" in built.stderr, built.stderr
    assert "over 102.4 KB (102,400 bytes)" in built.stderr

    check = run_process("check", "long", "--format", "json", cwd=project)
    [clip] = [p for p in json.loads(check.stdout) if p["code"] == "gmail-clipping"]
    assert f"The HTML is {figure} ({size:,} bytes)" in clip["message"], clip["message"]
    assert "over 102.4 KB (102,400 bytes)" in clip["message"]
    sizes = set(re.findall(r"[\d.]+ KB", clip["message"] + built.stderr))
    assert sizes == {figure, "102.4 KB"}


def test_an_email_just_over_102_000_bytes_is_not_clipped(project: Path) -> None:
    """Gmail's limit is 102,400 bytes: the old 102,000-byte limit flagged emails Gmail shows
    whole."""
    out = project / "out"
    words = "\n\n".join("A paragraph that says rather a lot. " * 12 for _ in range(150))
    size, padding = 0, 0
    for _ in range(4):  # a last paragraph grown until the HTML is about 102,200 bytes
        (project / "campaigns" / "edge.md").write_text(
            f'---\nsubject: "Edge"\npreheader: "A line."\n---\n{words}\n\n{"x" * padding}\n',
            encoding="utf-8",
        )
        assert run_process("build", "edge", "--out", str(out), cwd=project).returncode == 0
        size = (out / "email.html").stat().st_size
        if 102_000 < size <= 102_400:
            break
        padding = max(padding + 102_200 - size, 0)
    assert 102_000 < size <= 102_400, size
    check = run_process("check", "edge", "--format", "json", cwd=project)
    assert "gmail-clipping" not in {p["code"] for p in json.loads(check.stdout)}
