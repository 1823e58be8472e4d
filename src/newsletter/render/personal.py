"""What in a campaign depends on the reader, found in the templates' syntax before rendering.

A campaign is compiled (Jinja2 -> MJML -> premailer -> text part) once per
*variant*, never once per reader. Each template is parsed into Jinja2's syntax
tree and every use of ``recipient`` is rewritten before it is compiled:

- an expression printed with ``{{ ... }}`` that involves the reader becomes a
  **slot**: the compiled output holds an opaque token there, and for each
  reader only that expression runs, on the reader's own data. Filters, tests,
  comparisons and inline ``if`` therefore give exactly what rendering the
  whole template for that reader alone would give;
- a ``{% if %}`` test, a ``{% for %}`` iterable or loop filter that involves the
  reader becomes a **decision**: its outcomes choose the variant;
- a ``{% set %}`` or ``{% with %}`` value that involves the reader is
  **deferred**: its expression runs per reader where the variable is used.

A reader's variant is found by asking the decisions in the order a render
would ask them (a trie of outcomes); a variant is compiled the first time a
reader needs it. Most campaigns have no decision and so exactly one variant.

Tokens carry a random nonce drawn for each build, checked against every input,
so text from articles, feeds, pages or subscribers can neither make one nor
consume one. Anything that would make a token lie (a filter applied to text
that holds one, MJML computing with one) is refused with a message that says
what to write instead: a build is never silently wrong.
"""

from __future__ import annotations

import copy
import re
import secrets
import string
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.runtime import LoopContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace
from markupsafe import Markup, escape

from ..errors import RecipientError, TemplateError

NONCE_LENGTH = 12
_PREFIX = 6  # a token cut short still shows this much of the nonce

# Filters that only move or mark text around a token, never look inside it.
TRANSPARENT_FILTERS = frozenset(
    {"safe", "e", "escape", "forceescape", "string", "wordwrap", "indent", "trim", "default", "d"}
)
TRANSPARENT_TESTS = frozenset({"defined", "undefined", "none", "string", "sameas"})

# How a template reaches a reader's field: recipient.NAME, recipient["NAME"],
# recipient.get("NAME", fallback), recipient.first_name_or(fallback).
READER_METHODS = frozenset({"get", "first_name_or"})
STANDARD_FIELDS = ("email", "first_name", "last_name", "name", "tags")

_OUT, _DECIDE, _ITER, _DEFER = "__nl_out", "__nl_decide", "__nl_iter", "__nl_defer"


class NonceCollision(Exception):
    """The nonce drawn for this build already occurs in an input: draw another."""


class _RefusedHere(jinja2.TemplateRuntimeError):
    """Raised inside a render; the caller adds the template's name and line."""


def draw_nonce() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(NONCE_LENGTH))


@dataclass(frozen=True)
class Tokens:
    """Placeholders of one build: ``<nonce><slot id>q``, lowercase letters and digits only,
    which MJML, premailer, Markdown and URL-quoting all pass through untouched."""

    nonce: str

    def __post_init__(self) -> None:
        if len(self.nonce) != NONCE_LENGTH or not self.nonce.isalpha() or not self.nonce.islower():
            raise ValueError("a nonce is 12 lowercase letters")

    def token(self, slot_id: int) -> str:
        return f"{self.nonce}{slot_id}q"

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.nonce) + r"(\d+)q")

    def occurs_in(self, text: str) -> bool:
        """Whether ``text`` holds the nonce or its start, in any case."""
        return self.nonce[:_PREFIX] in text.lower()

    def check(self, text: str, known: int, origin: str) -> None:
        """Refuse text where a token was changed (cased, cut, glued) or made up."""
        lowered = text.lower()
        start = 0
        prefix = self.nonce[:_PREFIX]
        pattern = self.pattern
        while (at := lowered.find(prefix, start)) >= 0:
            found = pattern.match(text, at)
            if found is None or int(found.group(1)) >= known:
                raise TemplateError(
                    f"{origin}: a reader's field was changed by something applied to the text "
                    f"around it (near {text[max(0, at - 30) : at + 30]!r}), so it would not show "
                    "each reader's own value.",
                    "Apply filters to the field itself, e.g. {{ recipient.first_name | upper }}, "
                    "not to a larger text that contains it.",
                )
            start = found.end()


@dataclass(frozen=True)
class Where:
    """A place in a template, for messages: the file (or campaign part) and line."""

    template: str
    line: int
    text: str = ""

    def __str__(self) -> str:
        quoted = f" ({self.text})" if self.text else ""
        return f"{self.template}, line {self.line}{quoted}"


# -- the reader, as templates see them -----------------------------------------------------
class UnknownField(Exception):
    """A template asked for a field no subscriber has."""


class Reader:
    """``recipient`` for one reader: their fields as attributes, ``get`` and ``first_name_or``.

    A field some subscribers have and this one lacks is empty; a field nobody
    has is an error (the build refuses it before any reader is rendered).
    """

    __slots__ = ("_fields", "_known")

    def __init__(self, fields: Mapping[str, Any], known: Callable[[str], bool]) -> None:
        self._fields = fields
        self._known = known

    def _field(self, name: str) -> Any:
        value = self._fields.get(name)
        if value is not None:
            return value
        if name == "tags":
            return ()
        if name in STANDARD_FIELDS or self._known(name):
            return ""
        raise UnknownField(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._field(name)

    def __getitem__(self, name: str) -> Any:
        if not isinstance(name, str):
            raise KeyError(name)
        return self._field(name)

    def get(self, name: str, fallback: Any = "") -> Any:
        """The field ``name``, or ``fallback`` when this reader has none."""
        value = self._fields.get(name)
        return value if value not in (None, "") else fallback

    def first_name_or(self, fallback: str) -> Any:
        """The reader's first name, or ``fallback`` when it is not known."""
        return self.get("first_name", fallback)

    def __str__(self) -> str:
        return str(self._fields.get("email", ""))


# -- captured values -------------------------------------------------------------------------
@dataclass(frozen=True)
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


@dataclass(frozen=True, eq=False)
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


def _key(value: Any) -> Any:
    """A hashable stand-in for a captured value: the value itself, or its identity."""
    if value is None or isinstance(value, str | int | float | bool | LoopSnapshot | Deferred):
        return value
    if isinstance(value, tuple):
        return tuple(_key(v) for v in value)
    return ("id", id(value))


def _freeze(captures: Mapping[str, Any]) -> tuple[tuple[tuple[str, Any], ...], tuple[Any, ...]]:
    frozen = tuple(sorted((name, _snapshot(v)) for name, v in captures.items()))
    return frozen, tuple((name, _key(v)) for name, v in frozen)


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


@dataclass(frozen=True)
class Question:
    """A decision asked at one place of a render, with what it captured there."""

    decision: int
    captures: tuple[tuple[str, Any], ...]
    key: tuple[Any, ...]
    loop: bool  # a {% for %} iterable (the outcome is its items) or a test (True/False)


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


@dataclass(frozen=True)
class FieldSlot(Slot):
    """A field as it is (or its fallback when empty): the common case, no Jinja2 per reader."""

    name: str
    fallback: Any = ""

    def value(self, plan: ReaderPlan, fields: Mapping[str, Any], reader: Reader) -> Any:
        value = fields.get(self.name)
        if value in (None, ""):
            return () if self.name == "tags" and self.fallback == "" else self.fallback
        return value


@dataclass(frozen=True)
class ExpressionSlot(Slot):
    """An expression over the reader, run for each reader with what it captured."""

    expression: int
    captures: tuple[tuple[str, Any], ...]
    autoescape: bool = False

    def value(self, plan: ReaderPlan, fields: Mapping[str, Any], reader: Reader) -> Any:
        return plan.evaluate(self.expression, self.captures, reader)


# -- the plan: every slot and decision of a build ------------------------------------------------
@dataclass
class RenderSession:
    """One render of a variant: the reader it is rendered for and the decisions it asked."""

    reader: Reader
    path: list[tuple[Question, Any]] = field(default_factory=list)


class _TrieNode:
    __slots__ = ("edges", "question", "variant")

    def __init__(self) -> None:
        self.question: Question | None = None
        self.variant: Any = None
        self.edges: dict[Any, _TrieNode] = {}


class ReaderPlan:
    """Every slot and decision met while rendering a campaign's variants."""

    def __init__(self, tokens: Tokens, known: Callable[[str], bool]) -> None:
        self.tokens = tokens
        self.known = known
        self.expressions: list[ReaderExpression] = []
        self.slots: list[Slot] = []
        self._slot_ids: dict[Any, int] = {}
        self._root = _TrieNode()
        self.session: RenderSession | None = None
        self.decisions = 0  # how many decision points the templates have

    # -- registration (while parsing) --
    def add_expression(self, expression: ReaderExpression) -> int:
        self.expressions.append(expression)
        return len(self.expressions) - 1

    def slot_token(self, slot: Slot, key: Any) -> str:
        slot_id = self._slot_ids.get(key)
        if slot_id is None:
            slot_id = self._slot_ids[key] = len(self.slots)
            self.slots.append(slot)
        return self.tokens.token(slot_id)

    def field_token(self, name: str, fallback: Any = "") -> str:
        """The token of a field as it is: ``unsubscribe_url``, ``recipient.first_name``..."""
        return self.slot_token(FieldSlot(name, fallback), ("field", name, _key(fallback)))

    # -- per reader --
    def evaluate(self, expression: int, captures: Iterable[tuple[str, Any]], reader: Reader) -> Any:
        expr = self.expressions[expression]
        values = {name: self._resolve(value, reader) for name, value in captures}
        try:
            result = expr.evaluate(reader, values)
            if isinstance(result, jinja2.Undefined):
                result._fail_with_undefined_error()
            return result
        except UnknownField as exc:
            raise RecipientError(
                f"{expr.where}: no subscriber has the field {str(exc)!r}."
            ) from None
        except RecipientError:
            raise
        except Exception as exc:
            raise RecipientError(
                f"{expr.where} fails for this reader's data: {_describe(exc)}."
            ) from None

    def _resolve(self, value: Any, reader: Reader) -> Any:
        if isinstance(value, Deferred):
            return self.evaluate(value.expression, value.captures, reader)
        return value

    def answer(self, question: Question, reader: Reader) -> Any:
        """A decision's outcome for a reader: True/False, or a loop's items as a tuple."""
        value = self.evaluate(question.decision, question.captures, reader)
        where = self.expressions[question.decision].where
        try:
            if not question.loop:
                return bool(value)
            items = tuple(value)
            hash(items)
        except TypeError as exc:
            raise RecipientError(
                f"{where}: a loop over a reader's data must give plain values "
                f"(text, numbers), not {_describe(exc)}."
            ) from None
        except jinja2.UndefinedError as exc:
            raise RecipientError(f"{where} fails for this reader's data: {exc}.") from None
        return items

    def variant_for(self, reader: Reader, render: Callable[[RenderSession], Any]) -> Any:
        """The reader's variant, rendering it (with ``render``) the first time it is needed."""
        node = self._root
        while node.question is not None:
            nxt = node.edges.get(self.answer(node.question, reader))
            if nxt is None:
                break
            node = nxt
        else:
            if node.variant is not None:
                return node.variant
        session = RenderSession(reader)
        self.session = session
        try:
            variant = render(session)
        finally:
            self.session = None
        self._insert(session.path, variant)
        return variant

    def _insert(self, path: list[tuple[Question, Any]], variant: Any) -> None:
        node = self._root
        for question, outcome in path:
            if node.question is None and node.variant is None:
                node.question = question
            elif node.question is None or node.question.key != question.key:
                raise TemplateError(
                    "The templates asked different questions of the same reader on two "
                    f"renders ({self.expressions[question.decision].where}).",
                    "Something in them is not the same on every render (a random filter, "
                    "the time, a cycler); take it out of the parts that depend on the reader.",
                )
            node = node.edges.setdefault(outcome, _TrieNode())
        node.variant = variant

    @property
    def variants(self) -> list[Any]:
        found: list[Any] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.variant is not None:
                found.append(node.variant)
            stack.extend(node.edges.values())
        return found

    # -- called from compiled templates --
    def _current(self) -> RenderSession:
        if self.session is None:  # pragma: no cover - only rendered through variant_for
            raise _RefusedHere("a template that depends on the reader was rendered without one")
        return self.session

    def out(self, expression: int, captures: dict[str, Any]) -> str:
        frozen, key = _freeze(captures)
        expr = self.expressions[expression]
        return self.slot_token(
            ExpressionSlot(expression, frozen, expr.autoescape), ("expr", expression, key)
        )

    def decide(self, decision: int, captures: dict[str, Any], loop: bool = False) -> Any:
        session = self._current()
        frozen, key = _freeze(captures)
        question = Question(decision, frozen, (decision, key), loop)
        outcome = self.answer(question, session.reader)
        session.path.append((question, outcome))
        return list(outcome) if loop else outcome

    def defer(self, expression: int, captures: dict[str, Any]) -> Deferred:
        frozen, key = _freeze(captures)
        return Deferred(expression, frozen, ("deferred", expression, key))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


# -- the environment ------------------------------------------------------------------------------
class PersonalEnvironment(SandboxedEnvironment):
    """Jinja2's sandbox, rewriting every template's uses of ``recipient`` as it is parsed."""

    def __init__(self, plan: ReaderPlan, **options: Any) -> None:
        super().__init__(**options)
        self.plan = plan
        self.sources: dict[str, str] = {}
        self.globals.update(
            {
                _OUT: plan.out,
                _DECIDE: lambda i, c: plan.decide(i, c, loop=False),
                _ITER: lambda i, c: plan.decide(i, c, loop=True),
                _DEFER: plan.defer,
            }
        )

    def guard(self) -> None:
        """Make every filter and test (but those that only move text around) refuse text
        that holds a reader's field; call once the filters are all registered."""
        nonce = self.plan.tokens.nonce
        self.filters = {
            name: f if name in TRANSPARENT_FILTERS else _guarded(name, "filter", f, nonce)
            for name, f in self.filters.items()
        }
        self.tests = {
            name: f if name in TRANSPARENT_TESTS else _guarded(name, "test", f, nonce)
            for name, f in self.tests.items()
        }

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        if self.plan.tokens.occurs_in(source):
            raise NonceCollision
        template = super()._parse(source, name, filename)
        label = getattr(self, "display_names", {}).get(name, name or "<template>")
        self.sources[label] = source
        _Rewriter(self, name or "<template>", label, source).rewrite(template)
        return template

    def getattr(self, obj: Any, attribute: str) -> Any:
        self._refuse_token_text(obj, f"`.{attribute}` is taken of")
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self._refuse_token_text(obj, "a part (`[...]`) is taken of")
        return super().getitem(obj, argument)

    def _refuse_token_text(self, obj: Any, what: str) -> None:
        if isinstance(obj, str) and self.plan.tokens.nonce in obj:
            raise _RefusedHere(_token_text_message(what))

    def is_safe_callable(self, obj: Any) -> bool:
        return super().is_safe_callable(obj)


def _token_text_message(action: str) -> str:
    return (
        f"{action} text that holds a reader's field (the greeting, or text with a "
        "{{ recipient... }} in it), so it would see a placeholder instead of each reader's "
        "value. Apply it to the field itself, e.g. {{ recipient.first_name | upper }}"
    )


def _guarded(name: str, kind: str, func: Callable[..., Any], nonce: str) -> Callable[..., Any]:
    """``func`` refusing any argument that is text holding a reader's field."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, str) and nonce in value:
                raise _RefusedHere(_token_text_message(f"the {kind} `{name}` is applied to"))
        return func(*args, **kwargs)

    guarded.__dict__.update(getattr(func, "__dict__", {}))  # keeps jinja_pass_arg
    guarded.__name__ = getattr(func, "__name__", name)
    guarded.__doc__ = func.__doc__
    return guarded


# -- the rewriting ------------------------------------------------------------------------------
class _Rewriter:
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
                node.test = self._call(_DECIDE, node.test)
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
                node.iter = self._call(_ITER, node.iter)
            if self._depends(node.test):
                node.test = self._call(_DECIDE, node.test)
            node.body = self._statements(node.body)
            node.else_ = self._statements(node.else_)
        elif isinstance(node, nodes.Assign):
            if self._depends(node.node):
                node.node = self._call(_DEFER, node.node)
        elif isinstance(node, nodes.With):
            node.values = [self._call(_DEFER, v) if self._depends(v) else v for v in node.values]
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
        return [self._call(_OUT, expr)]

    def _call(self, function: str, expr: nodes.Expr) -> nodes.Expr:
        """``function(<id of expr>, {name: name, ...})`` in place of ``expr``."""
        where = self._where(expr)
        expression = self.plan.add_expression(
            ReaderExpression(self.env, _copy(expr, self.env), where, self.name)
        )
        if function in (_DECIDE, _ITER):
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


class UnknownFieldError(TemplateError):
    """A template uses ``recipient.NAME`` and no subscriber has NAME."""

    def __init__(self, name: str, where: Where) -> None:
        self.name = name
        self.where = where
        super().__init__(f"{where}: no subscriber has the field {name!r}.", None)


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


def known_fields_message(known: Sequence[str]) -> str:
    return (
        "Fields every reader has: "
        + ", ".join(STANDARD_FIELDS)
        + (f"; from the subscribers file: {', '.join(known)}" if known else "")
        + ". Use recipient.get('NAME', 'fallback') for a field only some readers have."
    )


def draw_tokens(inputs: Iterable[str], nonces: Iterator[str] | None = None) -> Tokens:
    """Tokens whose nonce occurs in none of ``inputs`` (articles, campaign text, settings)."""
    texts = [t.lower() for t in inputs if t]
    source = nonces if nonces is not None else iter(draw_nonce, None)
    for nonce in source:
        tokens = Tokens(nonce)
        if not any(nonce[:_PREFIX] in t for t in texts):
            return tokens
    raise TemplateError("Could not draw placeholders that occur in no input.")  # pragma: no cover
