"""Slots: the places of a compiled output that hold a value of the reader's.

A printed expression over ``recipient`` becomes a slot. A plain field
(``recipient.first_name``, ``recipient.get("city", "")``) is a ``FieldSlot``:
read from the reader's fields, no Jinja2 per reader. Anything else is an
``ExpressionSlot``: the expression alone is compiled (``ReaderExpression``) and
runs for each reader, with the template variables it captured where it was
printed. A ``{% set %}`` value over the reader is ``Deferred`` the same way.
"""

from __future__ import annotations

import operator
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jinja2 import nodes
from jinja2.runtime import LoopContext
from jinja2.utils import Namespace
from markupsafe import Markup, escape

from .reader import READER_METHODS, Reader, Where

# the characters markupsafe's escape replaces; text without them comes back as it is
_HTML_SPECIAL = re.compile("[&<>'\"]").search

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
        # The same expression as a Python closure over the reader, when it is made of
        # forms whose compiled Jinja2 is a plain call or operator (see ``direct``).
        self.direct = direct(env, node)

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
    if isinstance(node, nodes.Getattr | nodes.Getitem) and _is_reader(node.node):
        name = _field_named(node)
        if name is None:
            return False
        found.add(name)
        return True
    if isinstance(node, nodes.Call):
        return _reads_call(node, found)
    if isinstance(node, nodes.Filter) and (
        node.name in IMPURE_FILTERS or any(_names_impure(arg) for arg in node.args)
    ):
        return False
    return all(_reads(child, found) for child in node.iter_child_nodes())


def _field_named(node: nodes.Getattr | nodes.Getitem) -> str | None:
    """The field ``recipient.NAME`` or ``recipient["NAME"]`` reads; None for a method,
    an internal name or a name worked out at run time."""
    if isinstance(node, nodes.Getattr):
        name = node.attr
        return None if name in READER_METHODS or name.startswith("_") else name
    arg = node.arg
    if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
        return None if arg.value.startswith("_") else arg.value
    return None


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


# Jinja2's comparison operators, as its compiler writes them in Python.
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}
Direct = Callable[[Reader], Any]


def direct(env: PersonalEnvironment, node: nodes.Node) -> Direct | None:
    """``node`` as a closure over the reader, doing what Jinja2's compiled code does:
    a field read as the environment reads it, a filter or test called with the value and
    its constant arguments, an inline if, a comparison, not/and/or. None for any other
    form (those run as a compiled template): variables, calls but ``recipient.get`` and
    ``first_name_or``, ``~``, arithmetic, filters that take the context or environment."""
    make = _DIRECT.get(type(node))
    return make(env, node) if make is not None else None


def _direct_const(env: PersonalEnvironment, node: nodes.Const) -> Direct:
    value = node.value
    return lambda reader: value


def _direct_getattr(env: PersonalEnvironment, node: nodes.Getattr) -> Direct | None:
    name = node.attr
    if not _is_reader(node.node) or name in READER_METHODS or name.startswith("_"):
        return None
    return lambda reader: reader._field(name)


def _direct_getitem(env: PersonalEnvironment, node: nodes.Getitem) -> Direct | None:
    arg = node.arg
    if not (_is_reader(node.node) and isinstance(arg, nodes.Const) and type(arg.value) is str):
        return None
    name = arg.value
    return lambda reader: reader._field(name)


def _direct_call(env: PersonalEnvironment, node: nodes.Call) -> Direct | None:
    method = node.node
    if not (isinstance(method, nodes.Getattr) and _is_reader(method.node)):
        return None
    if method.attr not in READER_METHODS or node.kwargs or node.dyn_args or node.dyn_kwargs:
        return None
    if not all(isinstance(a, nodes.Const) for a in node.args):
        return None
    args = tuple(a.value for a in node.args)
    attr = method.attr
    return lambda reader: getattr(reader, attr)(*args)


def _direct_filter(env: PersonalEnvironment, node: nodes.Filter | nodes.Test) -> Direct | None:
    table = env.filters if isinstance(node, nodes.Filter) else env.tests
    func = table.get(node.name)
    if func is None or getattr(func, "jinja_pass_arg", None) is not None or node.node is None:
        return None
    if node.kwargs or node.dyn_args or node.dyn_kwargs:
        return None
    if not all(isinstance(a, nodes.Const) for a in node.args):
        return None
    inner = direct(env, node.node)
    if inner is None:
        return None
    args = tuple(a.value for a in node.args)
    if not args:
        return lambda reader: func(inner(reader))
    return lambda reader: func(inner(reader), *args)


def _direct_condexpr(env: PersonalEnvironment, node: nodes.CondExpr) -> Direct | None:
    if node.expr2 is None:
        return None
    test, yes, no = direct(env, node.test), direct(env, node.expr1), direct(env, node.expr2)
    if test is None or yes is None or no is None:
        return None
    return lambda reader: yes(reader) if test(reader) else no(reader)


def _direct_compare(env: PersonalEnvironment, node: nodes.Compare) -> Direct | None:
    if len(node.ops) != 1 or node.ops[0].op not in _COMPARE:
        return None
    left, right = direct(env, node.expr), direct(env, node.ops[0].expr)
    if left is None or right is None:
        return None
    compare = _COMPARE[node.ops[0].op]
    return lambda reader: compare(left(reader), right(reader))


def _direct_not(env: PersonalEnvironment, node: nodes.Not) -> Direct | None:
    inner = direct(env, node.node)
    return None if inner is None else lambda reader: not inner(reader)


def _direct_and_or(env: PersonalEnvironment, node: nodes.And | nodes.Or) -> Direct | None:
    left, right = direct(env, node.left), direct(env, node.right)
    if left is None or right is None:
        return None
    if isinstance(node, nodes.And):
        return lambda reader: left(reader) and right(reader)
    return lambda reader: left(reader) or right(reader)


_DIRECT: dict[type[nodes.Node], Callable[[Any, Any], Direct | None]] = {
    nodes.Const: _direct_const,
    nodes.Getattr: _direct_getattr,
    nodes.Getitem: _direct_getitem,
    nodes.Call: _direct_call,
    nodes.Filter: _direct_filter,
    nodes.Test: _direct_filter,
    nodes.CondExpr: _direct_condexpr,
    nodes.Compare: _direct_compare,
    nodes.Not: _direct_not,
    nodes.And: _direct_and_or,
    nodes.Or: _direct_and_or,
}


class Slot:
    """A place in the compiled output that holds a value of the reader's."""

    autoescape = False

    def value(self, plan: ReaderPlan, fields: Mapping[str, Any], reader: Reader) -> Any:
        raise NotImplementedError

    def getter(self, plan: ReaderPlan) -> Callable[[Reader], Any]:
        """``value`` as one call with the reader (whose fields are ``fields``)."""
        return lambda reader: self.value(plan, reader._fields, reader)

    def html(self, value: Any) -> str:
        """The value as HTML: escaped, unless the template marked it safe itself."""
        kind = type(value)
        if kind is str:
            if not _HTML_SPECIAL(value):
                return value  # what escape gives, as text: nothing in it to escape
        elif kind is int or kind is float:
            return str(value)  # digits, sign, point, e, inf, nan: what escape gives
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

    def getter(self, plan: ReaderPlan) -> Callable[[Reader], Any]:
        name = self.name
        empty = () if name == "tags" and self.fallback == "" else self.fallback

        def value(reader: Reader) -> Any:
            found = reader._fields.get(name)
            return empty if found in (None, "") else found

        return value


@dataclass(frozen=True, slots=True)
class ExpressionSlot(Slot):
    """An expression over the reader, run for each reader with what it captured."""

    expression: int
    captures: tuple[tuple[str, Any], ...]
    autoescape: bool = False

    def value(self, plan: ReaderPlan, fields: Mapping[str, Any], reader: Reader) -> Any:
        return plan.evaluate(self.expression, self.captures, reader)

    def getter(self, plan: ReaderPlan) -> Callable[[Reader], Any]:
        return plan.evaluator(self.expression, self.captures)


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
