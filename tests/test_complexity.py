"""No function under src/newsletter is harder to follow than cyclomatic complexity 15
(radon's count: one plus each branch, loop, boolean operator and handler). Past that a
function holds more paths than a reader or a test keeps in mind; split it by what it does."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from textwrap import indent

from radon.complexity import cc_visit
from radon.visitors import Class, Function

SRC = Path(__file__).resolve().parent.parent / "src" / "newsletter"
LIMIT = 15


def _functions(blocks: Iterable[Function], prefix: str = "") -> Iterator[Function]:
    """Each function and its closures, named by the path to it (``outer.inner``)."""
    for block in blocks:
        name = f"{prefix}{block.name}"
        yield block._replace(name=name)
        yield from _functions(block.closures, f"{name}.")


def _in_class(cls: Class, prefix: str) -> Iterator[Function]:
    """The methods of a nested class, which radon leaves out of its flat list."""
    name = f"{prefix}{cls.name}."
    yield from _functions(cls.methods, name)
    for inner in cls.inner_classes:
        yield from _in_class(inner, name)


def every_function(code: str) -> Iterator[Function]:
    """Every function radon counts in ``code``: top-level ones, methods (radon lists a
    top-level class's methods beside it), nested classes' methods, and closures."""
    for block in cc_visit(code):
        if isinstance(block, Class):
            for inner in block.inner_classes:
                yield from _in_class(inner, f"{block.name}.")
        else:
            yield from _functions([block], f"{block.classname}." if block.is_method else "")


def too_complex(root: Path = SRC, limit: int = LIMIT) -> list[str]:
    """``file:line name complexity`` for each function over ``limit``, hardest first."""
    found = [
        (-function.complexity, str(path.relative_to(root.parent.parent)), function.lineno, function)
        for path in sorted(root.rglob("*.py"))
        for function in every_function(path.read_text(encoding="utf-8"))
        if function.complexity > limit
    ]
    found.sort(key=lambda item: item[:3])
    return [f"{where}:{line} {f.name} {f.complexity}" for _, where, line, f in found]


def test_the_count_sees_methods_and_closures(tmp_path: Path) -> None:
    """The check itself: branchy methods, nested classes' methods and closures are found."""
    body = "".join(f"if x == {i}:\n    return {i}\n" for i in range(16))
    source = "\n".join(
        [
            "class C:",
            "    def method(self, x):",
            indent(body, " " * 8),
            "    class D:",
            "        def deep(self, x):",
            indent(body, " " * 12),
            "def outer():",
            "    def inner(x):",
            indent(body, " " * 8),
            "    return inner",
        ]
    )
    package = tmp_path / "src" / "newsletter"
    package.mkdir(parents=True)
    (package / "m.py").write_text(source, encoding="utf-8")
    found = too_complex(package)
    assert [line.split()[1:] for line in found] == [
        ["C.method", "17"],
        ["C.D.deep", "17"],
        ["outer.inner", "17"],
    ]
    assert found[0].startswith("src/newsletter/m.py:2 ")


def test_no_function_is_over_the_complexity_limit() -> None:
    over = too_complex()
    assert not over, f"{len(over)} functions over complexity {LIMIT}:\n" + "\n".join(over)


if __name__ == "__main__":  # `make complexity`: the hardest functions, whatever their count
    import sys

    top = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    print("\n".join(too_complex(limit=0)[:top]))
