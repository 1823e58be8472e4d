"""Second implementations to compare with, from tests/node (installed by `make node-peers`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed, so the comparison with node mailparser cannot run"
    if not (NODE_DIR / "node_modules" / "mailparser").is_dir():
        return "tests/node/node_modules has no mailparser: run `make node-peers` (needs npm)"
    return None


MAILPARSER_MISSING = _missing()
needs_mailparser = pytest.mark.skipif(
    MAILPARSER_MISSING is not None, reason=MAILPARSER_MISSING or ""
)


def mailparser(paths: list[Path]) -> dict[Path, dict]:
    """What node mailparser reads in each .eml: from, to, replyTo, subject, listId, text."""
    if not paths:
        return {}
    result = subprocess.run(
        ["node", str(NODE_DIR / "parse-eml.js"), *map(str, paths)],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {Path(k): v for k, v in json.loads(result.stdout).items()}
