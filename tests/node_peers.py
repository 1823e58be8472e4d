"""Second implementations to compare with, from tests/node (installed by `make node-peers`):
node mailparser (a MIME parser), node mjml (the reference MJML compiler) and node mailauth
(a DKIM verifier)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"


def missing(module: str) -> str | None:
    """Why node ``module`` cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return f"node is not installed, so the comparison with node {module} cannot run"
    if not (NODE_DIR / "node_modules" / module).is_dir():
        return f"tests/node/node_modules has no {module}: run `make node-peers` (needs npm)"
    return None


MAILPARSER_MISSING = missing("mailparser")
needs_mailparser = pytest.mark.skipif(
    MAILPARSER_MISSING is not None, reason=MAILPARSER_MISSING or ""
)


def run_node(script: str, *args: str, input: str | None = None) -> str:
    """``node tests/node/SCRIPT ARGS...`` (stdin ``input``): its standard output."""
    result = subprocess.run(
        ["node", str(NODE_DIR / script), *args],
        cwd=NODE_DIR,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def mailparser(paths: list[Path]) -> dict[Path, dict]:
    """What node mailparser reads in each .eml: from, to, replyTo, subject, listId, text."""
    if not paths:
        return {}
    found = json.loads(run_node("parse-eml.js", *map(str, paths)))
    return {Path(k): v for k, v in found.items()}


def compile_with_reference(source: str) -> str:
    """HTML from the reference MJML compiler."""
    return run_node("mjml.js", input=source)


MAILAUTH_MISSING = missing("mailauth")
needs_mailauth = pytest.mark.skipif(MAILAUTH_MISSING is not None, reason=MAILAUTH_MISSING or "")


def mailauth_dkim(dns_server: str, paths: list[Path]) -> dict[Path, list[dict]]:
    """What node mailauth finds of each .eml's DKIM signatures, the keys asked of
    ``dns_server`` (host:port): domain, selector, result ("pass", "fail", ...)."""
    found = json.loads(run_node("dkim-verify.js", dns_server, *map(str, paths)))
    return {Path(k): v for k, v in found.items()}
