"""The rewriting of a template's syntax tree: every use of ``recipient`` found and replaced.

Each template is parsed into Jinja2's syntax tree and rewritten before it is compiled:

- an expression printed with ``{{ ... }}`` that involves the reader becomes a
  **slot** (see ``slots``): the compiled output holds an opaque token there, and
  for each reader only that expression runs, on the reader's own data. Filters,
  tests, comparisons and inline ``if`` therefore give exactly what rendering the
  whole template for that reader alone would give;
- a ``{% if %}`` test, a ``{% for %}`` iterable or loop filter that involves the
  reader becomes a **decision** (see ``variants``): its outcomes choose the variant;
- a ``{% set %}`` or ``{% with %}`` value that involves the reader is
  **deferred**: its expression runs per reader where the variable is used.

What cannot be done once per campaign (a filtered block around a reader's field,
a macro called with one, an include chosen by the reader) is refused here, with a
message that says what to write instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import jinja2
from jinja2 import nodes

from ..errors import TemplateError
from .reader import READER_METHODS, STANDARD_FIELDS, UnknownFieldError, Where
from .slots import ReaderExpression

if TYPE_CHECKING:
    from .templates import PersonalEnvironment

_T = TypeVar("_T")

# The functions a rewritten template calls (globals of ``PersonalEnvironment``).
OUT, DECIDE, ITER, DEFER = "__nl_out", "__nl_decide", "__nl_iter", "__nl_defer"


class Rewriter:
    """Finds what depends on the reader in one template and rewrites it (see module doc)."""

    def __init__(self, env: PersonalEnvironment, name: str, label: str, source: str) -> None:
        self.env = env
        self.plan = env.plan
        self.name = name  # the name it was loaded by (its extension chooses autoescaping)
        self.label = label  # the name people know it by, for messages
        self.lines = source.splitlines()
        self.tainted: set[str] = {"recipient"}
        self.callables: set[str] = {"caller", "self"}

    def rewrite(self, template: nodes.Template) -> None:
        self._find_taint(template)
        self._check_fields(template)
        template.body = self._statements(template.body)

    # -- analysis --
    def _find_taint(self, template: nodes.Template) -> None:
        """Which names are macros (never called with a reader's field) and which variables
        hold a value over the reader, however many assignments away."""
        self._find_callables(template)
        while self._spread_taint(template):
            pass

    def _find_callables(self, template: nodes.Template) -> None:
        self.callables.update(macro.name for macro in template.find_all(nodes.Macro))
        for imported in template.find_all(nodes.FromImport):
            self.callables.update(
                item[1] if isinstance(item, tuple) else item for item in imported.names
            )
        self.callables.update(imported.target for imported in template.find_all(nodes.Import))

    def _spread_taint(self, template: nodes.Template) -> bool:
        """One pass: a variable given a value over the reader depends on the reader too.
        Whether any name was new (then another pass may find more)."""
        before = len(self.tainted)
        for node in template.find_all((nodes.Assign, nodes.With)):
            for target, value in _assignments(node):
                if self._depends(value):
                    self.tainted.update(name.name for name in _walk(target, nodes.Name))
        return len(self.tainted) > before

    def _depends(self, node: nodes.Node | None) -> bool:
        if node is None:
            return False
        if isinstance(node, nodes.Name):
            return node.ctx == "load" and node.name in self.tainted
        return any(n.ctx == "load" and n.name in self.tainted for n in node.find_all(nodes.Name))

    def _check_fields(self, template: nodes.Template) -> None:
        """A field no subscriber has is an error now, naming the fields there are."""
        for node in _walk(template, (nodes.Getattr, nodes.Getitem)):
            target = node.node
            if not (isinstance(target, nodes.Name) and target.name == "recipient"):
                continue
            if isinstance(node, nodes.Getattr):
                name = node.attr
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                name = node.arg.value
            else:
                continue
            if name in READER_METHODS or name in STANDARD_FIELDS or self.plan.known(name):
                continue
            raise UnknownFieldError(name, self._where(node))

    def _where(self, node: nodes.Node) -> Where:
        line = node.lineno
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        return Where(self.label, line, text[:80])

    def _refuse(self, node: nodes.Node, problem: str, instead: str) -> TemplateError:
        return TemplateError(f"{self._where(node)}: {problem}", instead)

    # -- statements --
    def _statements(self, body: list[nodes.Node]) -> list[nodes.Node]:
        return [self._statement(node) for node in body]

    def _statement(self, node: nodes.Node) -> nodes.Node:
        rewrite = _kind_of(_STATEMENTS, node)
        if rewrite is not None:
            rewrite(self, node)
        elif isinstance(getattr(node, "body", None), list):
            node.body = self._statements(node.body)  # Block, Scope, eval-context modifiers
        return node

    def _rewrite_output(self, node: nodes.Output) -> None:
        node.nodes = [part for child in node.nodes for part in self._output(child)]

    def _rewrite_if(self, node: nodes.If) -> None:
        if self._depends(node.test):
            node.test = self._call(DECIDE, node.test)
        node.body = self._statements(node.body)
        node.elif_ = self._statements(node.elif_)
        node.else_ = self._statements(node.else_)

    def _rewrite_for(self, node: nodes.For) -> None:
        if self._depends(node.iter):
            if node.recursive:
                raise self._refuse(
                    node,
                    "a recursive loop over a reader's data is not supported.",
                    "Loop over the reader's data without `recursive`.",
                )
            node.iter = self._call(ITER, node.iter)
        if self._depends(node.test):
            node.test = self._call(DECIDE, node.test)
        node.body = self._statements(node.body)
        node.else_ = self._statements(node.else_)

    def _rewrite_assign(self, node: nodes.Assign) -> None:
        if self._depends(node.node):
            node.node = self._call(DEFER, node.node)

    def _rewrite_with(self, node: nodes.With) -> None:
        node.values = [self._call(DEFER, v) if self._depends(v) else v for v in node.values]
        node.body = self._statements(node.body)

    def _rewrite_filtered_block(self, node: nodes.FilterBlock | nodes.AssignBlock) -> None:
        """A block whose whole text goes through a filter: a token inside would be filtered."""
        filtered = node.filter
        if filtered is not None and (
            self._depends(filtered) or self._holds_reader_output(node.body)
        ):
            raise self._refuse(
                node,
                "a filtered block ({% filter %}, or {% set %} with a filter) around a "
                "reader's field would filter a placeholder, not the reader's value.",
                "Apply the filter to the field itself: {{ recipient.first_name | upper }}.",
            )
        node.body = self._statements(node.body)

    def _rewrite_macro(self, node: nodes.Macro | nodes.CallBlock) -> None:
        exprs = [*node.defaults] + ([node.call] if isinstance(node, nodes.CallBlock) else [])
        if any(self._depends(e) for e in exprs):
            raise self._refuse(
                node,
                "a macro called or defaulted with a reader's field would build markup per "
                "reader, which is compiled once per campaign.",
                "Choose between fixed calls with {% if recipient... %}, or print the field "
                "inside the macro as {{ recipient.NAME }}.",
            )
        node.body = self._statements(node.body)

    def _check_template_name(
        self, node: nodes.Include | nodes.Extends | nodes.Import | nodes.FromImport
    ) -> None:
        if self._depends(node.template):
            raise self._refuse(
                node,
                "the template to include cannot depend on the reader.",
                "Include fixed templates and choose between them with {% if %}.",
            )

    def _check_expression_statement(self, node: nodes.ExprStmt) -> None:
        if self._depends(node.node):
            raise self._refuse(
                node, "a statement over a reader's data is not supported.", "Remove it."
            )

    def _holds_reader_output(self, body: list[nodes.Node]) -> bool:
        return any(
            self._depends(child)
            for output in nodes.Template(body).find_all(nodes.Output)
            for child in output.nodes
        )

    def _output(self, expr: nodes.Node) -> list[nodes.Node]:
        """What prints ``expr``: itself, or slots for the parts that depend on the reader.

        ``a ~ b`` prints exactly as ``a`` then ``b`` (each escaped where HTML is), so its
        parts become separate outputs and a plain field among them needs no Jinja2 per
        reader.
        """
        if isinstance(expr, nodes.TemplateData) or not self._depends(expr):
            return [expr]
        if isinstance(expr, nodes.Concat):
            return [part for child in expr.nodes for part in self._output(child)]
        self._check_printable(expr)
        simple = _field_access(expr)
        if simple is not None:
            name, fallback = simple
            token = self.plan.field_token(name, fallback)
            return [nodes.Const(token, lineno=expr.lineno).set_environment(self.env)]
        return [self._call(OUT, expr)]

    def _check_printable(self, expr: nodes.Node) -> None:
        """Refuse what would make a reader's value into markup: ``| safe``, a macro call."""
        for f in _walk(expr, nodes.Filter):
            if f.name in ("safe",):
                raise self._refuse(
                    expr,
                    "`| safe` on a reader's field would put their text into the email as HTML.",
                    "A reader's data is always escaped; remove `| safe`.",
                )
        for call in _walk(expr, nodes.Call):
            callee = call.node
            while isinstance(callee, nodes.Getattr):
                callee = callee.node
            if isinstance(callee, nodes.Name) and callee.name in self.callables:
                raise self._refuse(
                    expr,
                    f"the macro `{callee.name}` is called with a reader's field; its markup "
                    "would be built per reader, while templates are compiled once per campaign.",
                    "Choose between fixed calls with {% if recipient... %}, or print the field "
                    "inside the macro as {{ recipient.NAME }}.",
                )

    def _call(self, function: str, expr: nodes.Expr) -> nodes.Expr:
        """``function(<id of expr>, {name: name, ...})`` in place of ``expr``."""
        where = self._where(expr)
        expression = self.plan.add_expression(
            ReaderExpression(self.env, _copy(expr, self.env), where, self.name)
        )
        if function in (DECIDE, ITER):
            self.plan.decisions += 1
        if function != OUT:  # a decision, or a value a decision may capture
            self.plan.choosing.add(expression)
        names = sorted({n.name for n in _walk(expr, nodes.Name) if n.ctx == "load"})
        captures = nodes.Dict(
            [
                nodes.Pair(nodes.Const(n), nodes.Name(n, "load"), lineno=expr.lineno)
                for n in names
                if n != "recipient"
            ],
            lineno=expr.lineno,
        )
        call = nodes.Call(
            nodes.Name(function, "load", lineno=expr.lineno),
            [nodes.Const(expression, lineno=expr.lineno), captures],
            [],
            None,
            None,
            lineno=expr.lineno,
        )
        return call.set_environment(self.env)


def _walk(node: nodes.Node, kind: type[nodes.Node] | tuple[type[nodes.Node], ...]) -> Iterator[Any]:
    """``node`` itself and every node below it that is a ``kind``."""
    if isinstance(node, kind):
        yield node
    yield from node.find_all(kind)


def _field_access(expr: nodes.Node) -> tuple[str, Any] | None:
    """(field, fallback) when ``expr`` only reads a field: no Jinja2 needed per reader."""
    read = _kind_of(_FIELD_READS, expr)
    return read(expr) if read is not None else None


def _is_recipient(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) and node.name == "recipient" and node.ctx == "load"


def _attribute_field(expr: nodes.Getattr) -> tuple[str, Any] | None:
    """``recipient.NAME``: the field NAME (but not the method ``get``, unless called)."""
    if not _is_recipient(expr.node) or expr.attr in READER_METHODS:
        return None
    return expr.attr, ""


def _item_field(expr: nodes.Getitem) -> tuple[str, Any] | None:
    """``recipient["NAME"]``: the field NAME."""
    arg = expr.arg
    if _is_recipient(expr.node) and isinstance(arg, nodes.Const) and isinstance(arg.value, str):
        return arg.value, ""
    return None


def _method_field(expr: nodes.Call) -> tuple[str, Any] | None:
    """``recipient.get("NAME", fallback)`` or ``recipient.first_name_or(fallback)``."""
    method = expr.node
    args = _constant_arguments(expr)
    if args is None or not isinstance(method, nodes.Getattr) or not _is_recipient(method.node):
        return None
    if method.attr == "first_name_or" and len(args) == 1:
        return "first_name", args[0]
    if method.attr == "get" and len(args) in (1, 2) and isinstance(args[0], str):
        return args[0], args[1] if len(args) == 2 else ""
    return None


def _constant_arguments(call: nodes.Call) -> list[Any] | None:
    """The values of a call's arguments when they are all positional constants."""
    if call.kwargs or call.dyn_args is not None or call.dyn_kwargs is not None:
        return None
    if not all(isinstance(a, nodes.Const) for a in call.args):
        return None
    return [a.value for a in call.args]


_FIELD_READS: dict[type[nodes.Node], Callable[[Any], tuple[str, Any] | None]] = {
    nodes.Getattr: _attribute_field,
    nodes.Getitem: _item_field,
    nodes.Call: _method_field,
}

# How each kind of statement is rewritten; the others are rewritten in their body.
_STATEMENTS: dict[type[nodes.Node], Callable[[Rewriter, Any], None]] = {
    nodes.Output: Rewriter._rewrite_output,
    nodes.If: Rewriter._rewrite_if,
    nodes.For: Rewriter._rewrite_for,
    nodes.Assign: Rewriter._rewrite_assign,
    nodes.With: Rewriter._rewrite_with,
    nodes.FilterBlock: Rewriter._rewrite_filtered_block,
    nodes.AssignBlock: Rewriter._rewrite_filtered_block,
    nodes.Macro: Rewriter._rewrite_macro,
    nodes.CallBlock: Rewriter._rewrite_macro,
    nodes.Include: Rewriter._check_template_name,
    nodes.Extends: Rewriter._check_template_name,
    nodes.Import: Rewriter._check_template_name,
    nodes.FromImport: Rewriter._check_template_name,
    nodes.ExprStmt: Rewriter._check_expression_statement,
}


def _kind_of(table: dict[type[nodes.Node], _T], node: nodes.Node) -> _T | None:
    """The entry of ``table`` for ``node``'s class or the nearest class it derives from."""
    for kind in type(node).__mro__:
        found = table.get(kind)
        if found is not None:
            return found
    return None


def _assignments(node: nodes.Assign | nodes.With) -> list[tuple[nodes.Node, nodes.Node]]:
    """(target, value) of each assignment a ``{% set %}`` or ``{% with %}`` makes."""
    if isinstance(node, nodes.Assign):
        return [(node.target, node.node)]
    return list(zip(node.targets, node.values, strict=True))


def _copy(node: nodes.Node, env: jinja2.Environment) -> nodes.Node:
    """A deep copy of a syntax subtree (the original is rewritten in place)."""
    return copy.deepcopy(node, {id(env): env})
