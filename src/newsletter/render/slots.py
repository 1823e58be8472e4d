"""Slots: the places of a compiled output that hold a value of the reader's.

A printed expression over ``recipient`` becomes a slot. A plain field
(``recipient.first_name``, ``recipient.get("city", "")``) is a ``FieldSlot``:
read from the reader's fields, no Jinja2 per reader. Anything else is an
``ExpressionSlot``: the expression alone is compiled (``ReaderExpression``) and
runs for each reader, with the template variables it captured where it was
printed. A ``{% set %}`` value over the reader is ``Deferred`` the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jinja2 import nodes
from jinja2.runtime import LoopContext
from jinja2.utils import Namespace
from markupsafe import Markup, escape

from .reader import READER_METHODS, Reader, Where

if TYPE_CHECKING:
    from .templates import PersonalEnvironment
    from .variants import ReaderPlan


@dataclass(frozen=True, slots=True)
class LoopSnapshot:
    """A ``loop`` variable frozen at the moment an expression captured it."""

    index: int
    index0: int
    revindex: int
    revindex0: int
    first: bool
    last: bool
    length: int
    depth: int
    depth0: int


@dataclass(frozen=True, eq=False, slots=True)
class Deferred:
    """A ``{% set %}`` value that depends on the reader: evaluated per reader where used."""

    expression: int
    captures: tuple[tuple[str, Any], ...]
    key: tuple[Any, ...]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Deferred) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


def _snapshot(value: Any) -> Any:
    """A value safe to keep past the moment it was captured (loops and namespaces move on)."""
    if isinstance(value, LoopContext):
        return LoopSnapshot(
            value.index,
            value.index0,
            value.revindex,
            value.revindex0,
            value.first,
            value.last,
            value.length,
            value.depth,
            value.depth0,
        )
    if isinstance(value, Namespace):
        return Namespace(**dict(value._Namespace__attrs))  # type: ignore[attr-defined]
    return value


def capture_key(value: Any) -> Any:
    """A hashable stand-in for a captured value: the value itself, or its identity."""
    if value is None or isinstance(value, str | int | float | bool | LoopSnapshot | Deferred):
        return value
    if isinstance(value, tuple):
        return tuple(capture_key(v) for v in value)
    return ("id", id(value))


def freeze_captures(
    captures: Mapping[str, Any],
) -> tuple[tuple[tuple[str, Any], ...], tuple[Any, ...]]:
    """(name, value) pairs kept past the render that captured them, and their hashable key:
    the same place rendered with the same values is the same slot."""
    frozen = tuple(sorted((name, _snapshot(v)) for name, v in captures.items()))
    return frozen, tuple((name, capture_key(v)) for name, v in frozen)


# -- expressions that run per reader ------------------------------------------------------------
class ReaderExpression:
    """One expression over ``recipient``, compiled on its own so it can run for each reader."""

    def __init__(self, env: PersonalEnvironment, node: nodes.Expr, where: Where, template: str):
        self.where = where
        self.autoescape = bool(env.autoescape(template) if callable(env.autoescape) else False)
        body = nodes.Template(
            [nodes.Assign(nodes.Name("__nl_result", "store"), node, lineno=node.lineno)],
            lineno=node.lineno,
        )
        body.set_environment(env)
        code = env.compile(body, name=template)
        self._template = env.template_class.from_code(env, code, env.make_globals(None), None)
        self._contexts = threading.local()
        # The fields it reads, when nothing else about the reader or the moment can
        # change its value: then the same values (and captures) give the same result.
        self.fields = reads_only(node)

    def evaluate(self, reader: Reader, captures: Mapping[str, Any]) -> Any:
        # One context per thread, its variables replaced each time: making a new one
        # (a copy of every global) would cost more than running the expression.
        context = getattr(self._contexts, "context", None)
        if context is None:
            context = self._contexts.context = self._template.new_context({})
        context.vars = {**captures, "recipient": reader}
        for _ in self._template.root_render_func(context):
            pass
        return context.vars["__nl_result"]


# Filters whose result is not a function of their arguments.
IMPURE_FILTERS = frozenset({"random", "shuffle"})


def reads_only(node: nodes.Node) -> tuple[str, ...] | None:
    """The reader's fields ``node`` reads, sorted, when its value depends on nothing but
    them and its captured variables: ``recipient`` is only read by field (``.NAME``,
    ``["NAME"]``, ``.get("NAME", ...)``, ``.first_name_or(...)``), and nothing is called
    but those (a call could be a cycler, the time...) nor filtered at random.
    None otherwise."""
    found: set[str] = set()
    return tuple(sorted(found)) if _reads(node, found) else None


def _reads(node: nodes.Node, found: set[str]) -> bool:
    if isinstance(node, nodes.Name):
        return node.name != "recipient"  # the reader as a whole: str(), iteration...
    if isinstance(node, nodes.Getattr) and _is_reader(node.node):
        if node.attr in READER_METHODS or node.attr.startswith("_"):
            return False
        found.add(node.attr)
        return True
    if isinstance(node, nodes.Getitem) and _is_reader(node.node):
        if not (isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)):
            return False
        if node.arg.value.startswith("_"):
            return False
        found.add(node.arg.value)
        return True
    if isinstance(node, nodes.Call):
        return _reads_call(node, found)
    if isinstance(node, nodes.Filter) and (
        node.name in IMPURE_FILTERS or any(_names_impure(arg) for arg in node.args)
    ):
        return False
    return all(_reads(child, found) for child in node.iter_child_nodes())


def _reads_call(node: nodes.Call, found: set[str]) -> bool:
    """``recipient.get("NAME", ...)`` or ``recipient.first_name_or(...)``; no other call."""
    method = node.node
    if not (isinstance(method, nodes.Getattr) and _is_reader(method.node)):
        return False
    if node.kwargs or node.dyn_args is not None or node.dyn_kwargs is not None:
        return False
    if method.attr == "first_name_or" and len(node.args) == 1:
        found.add("first_name")
    elif method.attr == "get" and len(node.args) in (1, 2):
        name = node.args[0]
        if not (isinstance(name, nodes.Const) and isinstance(name.value, str)):
            return False
        found.add(name.value)
    else:
        return False
    return all(_reads(arg, found) for arg in node.args)


def _names_impure(arg: nodes.Node) -> bool:
    """``map("random")``: a filter that applies another, named by its argument."""
    return (
        isinstance(arg, nodes.Const) and isinstance(arg.value, str) and arg.value in IMPURE_FILTERS
    )


def _is_reader(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "recipient"


class Slot:
    """A place in the compiled output that holds a value of the reader's."""

    autoescape = False

    def value(self, plan: ReaderPlan, fields: Mapping[str, Any], reader: Reader) -> Any:
        raise NotImplementedError

    def html(self, value: Any) -> str:
        """The value as HTML: escaped, unless the template marked it safe itself."""
        return str(escape(value))

    def text(self, value: Any) -> str:
        """The value as plain text."""
        if isinstance(value, Markup) and self.autoescape:
            return value.unescape()
        return str(value)


@dataclass(frozen=True, slots=True)
class FieldSlot(Slot):
    """A field as it is (or its fallback when empty): the common case, no Jinja2 per reader."""

    name: str
    fallback: Any = ""

    def value(self, plan: ReaderPlan, fields: Mapping[str, Any], reader: Reader) -> Any:
        value = fields.get(self.name)
        if value in (None, ""):
            return () if self.name == "tags" and self.fallback == "" else self.fallback
        return value


@dataclass(frozen=True, slots=True)
class ExpressionSlot(Slot):
    """An expression over the reader, run for each reader with what it captured."""

    expression: int
    captures: tuple[tuple[str, Any], ...]
    autoescape: bool = False

    def value(self, plan: ReaderPlan, fields: Mapping[str, Any], reader: Reader) -> Any:
        return plan.evaluate(self.expression, self.captures, reader)


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
