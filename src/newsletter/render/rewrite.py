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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import nodes

from ..errors import TemplateError
from .reader import READER_METHODS, STANDARD_FIELDS, UnknownFieldError, Where
from .slots import ReaderExpression

if TYPE_CHECKING:
    from .templates import PersonalEnvironment

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
        for macro in template.find_all(nodes.Macro):
            self.callables.add(macro.name)
        for imported in template.find_all(nodes.FromImport):
            for item in imported.names:
                self.callables.add(item[1] if isinstance(item, tuple) else item)
        for imported in template.find_all(nodes.Import):
            self.callables.add(imported.target)
        changed = True
        while changed:
            changed = False
            for node in template.find_all((nodes.Assign, nodes.With)):
                pairs = (
                    [(node.target, node.node)]
                    if isinstance(node, nodes.Assign)
                    else list(zip(node.targets, node.values, strict=True))
                )
                for target, value in pairs:
                    if self._depends(value):
                        for name in target.find_all(nodes.Name):
                            if name.name not in self.tainted:
                                self.tainted.add(name.name)
                                changed = True
                        if isinstance(target, nodes.Name) and target.name not in self.tainted:
                            self.tainted.add(target.name)
                            changed = True

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
        if isinstance(node, nodes.Output):
            node.nodes = [part for child in node.nodes for part in self._output(child)]
        elif isinstance(node, nodes.If):
            if self._depends(node.test):
                node.test = self._call(DECIDE, node.test)
            node.body = self._statements(node.body)
            node.elif_ = [self._statement(n) for n in node.elif_]
            node.else_ = self._statements(node.else_)
        elif isinstance(node, nodes.For):
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
        elif isinstance(node, nodes.Assign):
            if self._depends(node.node):
                node.node = self._call(DEFER, node.node)
        elif isinstance(node, nodes.With):
            node.values = [self._call(DEFER, v) if self._depends(v) else v for v in node.values]
            node.body = self._statements(node.body)
        elif isinstance(node, nodes.FilterBlock | nodes.AssignBlock):
            # a block whose whole text goes through a filter: a token inside would be filtered
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
        elif isinstance(node, nodes.Macro | nodes.CallBlock):
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
        elif isinstance(node, nodes.Include | nodes.Extends | nodes.Import | nodes.FromImport):
            if self._depends(node.template):
                raise self._refuse(
                    node,
                    "the template to include cannot depend on the reader.",
                    "Include fixed templates and choose between them with {% if %}.",
                )
        elif isinstance(node, nodes.ExprStmt):
            if self._depends(node.node):
                raise self._refuse(
                    node, "a statement over a reader's data is not supported.", "Remove it."
                )
        elif hasattr(node, "body") and isinstance(node.body, list):
            node.body = self._statements(node.body)  # Block, Scope, eval-context modifiers
        return node

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
        simple = _field_access(expr)
        if simple is not None:
            name, fallback = simple
            token = self.plan.field_token(name, fallback)
            return [nodes.Const(token, lineno=expr.lineno).set_environment(self.env)]
        return [self._call(OUT, expr)]

    def _call(self, function: str, expr: nodes.Expr) -> nodes.Expr:
        """``function(<id of expr>, {name: name, ...})`` in place of ``expr``."""
        where = self._where(expr)
        expression = self.plan.add_expression(
            ReaderExpression(self.env, _copy(expr, self.env), where, self.name)
        )
        if function in (DECIDE, ITER):
            self.plan.decisions += 1
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

    def is_recipient(n: nodes.Node) -> bool:
        return isinstance(n, nodes.Name) and n.name == "recipient" and n.ctx == "load"

    if isinstance(expr, nodes.Getattr) and is_recipient(expr.node):
        return None if expr.attr in READER_METHODS else (expr.attr, "")
    if (
        isinstance(expr, nodes.Getitem)
        and is_recipient(expr.node)
        and isinstance(expr.arg, nodes.Const)
        and isinstance(expr.arg.value, str)
    ):
        return expr.arg.value, ""
    if (
        isinstance(expr, nodes.Call)
        and isinstance(expr.node, nodes.Getattr)
        and is_recipient(expr.node.node)
        and not expr.kwargs
        and expr.dyn_args is None
        and expr.dyn_kwargs is None
        and all(isinstance(a, nodes.Const) for a in expr.args)
    ):
        args = [a.value for a in expr.args]
        if expr.node.attr == "first_name_or" and len(args) == 1:
            return "first_name", args[0]
        if expr.node.attr == "get" and len(args) in (1, 2) and isinstance(args[0], str):
            return args[0], args[1] if len(args) == 2 else ""
    return None


def _copy(node: nodes.Node, env: jinja2.Environment) -> nodes.Node:
    """A deep copy of a syntax subtree (the original is rewritten in place)."""
    return copy.deepcopy(node, {id(env): env})
