"""The import graph as docs/architecture.md draws it: the contracts in pyproject.toml
([tool.importlinter]) kept, no circle between newsletter's modules, and the outbox
known by its abilities (flags), never by its name outside its own module."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import newsletter

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(newsletter.__file__).resolve().parent  # the tree under test


def test_the_import_contracts_are_kept() -> None:
    """`lint-imports` over pyproject.toml: layers, no circles, the registry a leaf,
    render and delivery kept apart from the database and the providers. It runs in a
    process of its own: import-linter configures logging as it starts, which would
    silence this process's loggers for the tests that follow."""
    command = [str(Path(sys.executable).with_name("lint-imports")), "--config", "pyproject.toml"]
    command += ["--no-cache"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " 0 broken" in done.stdout


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("type_checking", [False, True], ids=["run", "annotations too"])
def test_no_circle_between_the_modules_of_newsletter(type_checking: bool) -> None:
    """Between newsletter's top-level modules and packages, with the imports made inside
    functions (grimp reads those) and, the second time, those for annotations only."""
    graph = grimp.build_graph(
        "newsletter",
        include_external_packages=False,
        exclude_type_checking_imports=not type_checking,
        cache_dir=None,
    )
    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = (".".join(m.split(".")[:2]) for m in (module, imported))
            if a != b and "newsletter" not in (a, b):
                edges.setdefault(a, set()).add(b)
    assert _cycles(edges) == []
    registry = graph.find_modules_directly_imported_by("newsletter.providers")
    if not type_checking:
        assert registry <= {"newsletter.errors", "newsletter.models"}


def test_the_outbox_is_named_only_in_its_own_module() -> None:
    """Other modules ask a transport's abilities (``rehearsal``, ``local_files``,
    ``resend_safe``), never whether it is the outbox: no ``"outbox"`` string, in code or
    in SQL, outside providers/outbox.py."""
    own = PACKAGE / "providers" / "outbox.py"
    named = re.compile(r"""["']outbox["']""")
    found = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != own
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if named.search(line)
    ]
    assert found == []
