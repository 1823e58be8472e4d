"""Function length and cyclomatic complexity of the package: the figures a refactor is
judged by. Lengths come from the syntax tree (lines from ``def`` to the last line of
the body); complexity from ruff's McCabe check (C901), which the project already uses.

    python benchmarks/code_metrics.py [--top 15] [--json]
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "newsletter"


def functions() -> list[tuple[str, int]]:
    """(module:qualified name, lines) of every function and method."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = path.relative_to(PACKAGE.parent).with_suffix("").as_posix()

        def visit(node: ast.AST, prefix: str, module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    name = f"{prefix}{child.name}"
                    assert child.end_lineno is not None
                    found.append((f"{module}:{name}", child.end_lineno - child.lineno + 1))
                    visit(child, name + ".")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")

        visit(tree, "")
    return found


def complexity() -> list[tuple[str, int]]:
    """(module:function, McCabe complexity) for every function, from ruff."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--select",
            "C901",
            "--config",
            "lint.mccabe.max-complexity = 0",
            "--output-format",
            "json",
            "--no-cache",
            str(PACKAGE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    out = []
    for item in json.loads(result.stdout or "[]"):
        match = re.match(r"`(.+)` is too complex \((\d+) > 0\)", item["message"])
        if match:
            module = Path(item["filename"]).relative_to(PACKAGE.parent).with_suffix("")
            out.append((f"{module.as_posix()}:{match.group(1)}", int(match.group(2))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lengths = functions()
    sizes = [n for _, n in lengths]
    cc = complexity()
    summary = {
        "modules": len(list(PACKAGE.rglob("*.py"))),
        "functions": len(sizes),
        "median_lines": statistics.median(sizes),
        "over_50_lines_percent": round(100 * sum(n > 50 for n in sizes) / len(sizes), 1),
        "longest": sorted(lengths, key=lambda x: -x[1])[: args.top],
        "most_complex": sorted(cc, key=lambda x: -x[1])[: args.top],
        "median_complexity": statistics.median([c for _, c in cc]) if cc else 0,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{summary['modules']} modules, {summary['functions']} functions; median "
        f"{summary['median_lines']} lines, {summary['over_50_lines_percent']} % over 50; "
        f"median complexity {summary['median_complexity']}"
    )
    print(f"\nLongest {args.top}:")
    for name, n in summary["longest"]:
        print(f"  {n:4d}  {name}")
    print(f"\nMost complex {args.top}:")
    for name, n in summary["most_complex"]:
        print(f"  {n:4d}  {name}")


if __name__ == "__main__":
    main()
