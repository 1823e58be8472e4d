"""Variants: the decisions over the reader, and the campaign compiled once per outcome.

A ``{% if %}`` test, a ``{% for %}`` iterable or loop filter that involves the
reader is a *decision*: its outcomes choose the variant. A reader's variant is
found by asking the decisions in the order a render would ask them (a trie of
outcomes); a variant is compiled the first time a reader needs it. Most
campaigns have no decision and so exactly one variant.

``ReaderPlan`` holds every slot and decision of one build; the compiled
templates call back into it (``out``, ``decide``, ``defer``) while they render.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jinja2

from ..errors import RecipientError, TemplateError
from .merge import MergeTemplate
from .placeholders import Tokens
from .reader import Reader, UnknownField
from .slots import (
    Deferred,
    ExpressionSlot,
    FieldSlot,
    ReaderExpression,
    Slot,
    capture_key,
    describe_error,
    freeze_captures,
)


class RefusedHere(jinja2.TemplateRuntimeError):
    """Raised inside a render; the caller adds the template's name and line."""


@dataclass(frozen=True, slots=True)
class Variant:
    """The campaign compiled for one set of decisions: outputs split at the reader's slots."""

    number: int
    subject: MergeTemplate
    html: MergeTemplate
    text: MergeTemplate
    slots: tuple[Slot, ...]  # the slots these outputs hold, in the order of ``slot_ids``


@dataclass(frozen=True, slots=True)
class Question:
    """A decision asked at one place of a render, with what it captured there."""

    decision: int
    captures: tuple[tuple[str, Any], ...]
    key: tuple[Any, ...]
    loop: bool  # a {% for %} iterable (the outcome is its items) or a test (True/False)


@dataclass(slots=True)  # mutable: the decisions are appended as the render asks them
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


# Results of one expression the cache keeps before it looks at how often they served.
CACHED_RESULTS = 4096
# What a cached result may be: nothing a template could change once it is shared.
_IMMUTABLE = (str, int, float, bool, type(None))


class _Results:
    """One expression's results with one set of captures, by the values of the fields
    it reads (``fields``; None: it depends on more, and runs for each reader)."""

    __slots__ = ("captures", "fields", "hits", "results", "run", "value")

    def __init__(
        self,
        captures: object,
        fields: tuple[str, ...] | None,
        run: Callable[[Reader], Any],
    ) -> None:
        self.captures = captures  # kept: its id is part of the cache's key
        self.fields = fields
        self.run = run  # the expression for one reader, uncached
        # by the values of ``fields``: the value itself when there is one field
        self.results: dict[Any, tuple[bool, Any]] = {}
        self.hits = 0
        self.value: Callable[[Reader], Any] = run  # with the results kept (``evaluator``)

    def keep(self, key: Any, outcome: tuple[bool, Any]) -> None:
        if len(self.results) >= CACHED_RESULTS:
            if self.hits < CACHED_RESULTS:  # the values are mostly new: stop keeping them
                self.fields = None
                self.results.clear()
                return
            self.results.clear()
            self.hits = 0
        self.results[key] = outcome


def _failure(expr: ReaderExpression, exc: Exception) -> RecipientError:
    """What a reader is told when their data breaks ``expr`` (``exc``: what it raised)."""
    if isinstance(exc, UnknownField):
        return RecipientError(f"{expr.where}: no subscriber has the field {str(exc)!r}.")
    return RecipientError(f"{expr.where} fails for this reader's data: {describe_error(exc)}.")


def _checked(expr: ReaderExpression, run: Callable[..., Any], *args: Any) -> Any:
    """``run(*args)``, the expression for one reader: an undefined result, or any
    failure, is the reader's RecipientError."""
    try:
        result = run(*args)
        if isinstance(result, jinja2.Undefined):
            result._fail_with_undefined_error()
        return result
    except RecipientError:
        raise
    except Exception as exc:
        raise _failure(expr, exc) from None


def _kept(entry: _Results) -> Callable[[Reader], Any]:
    """The expression of ``entry`` for one reader, its result (or error) kept by the values
    of the fields it reads while ``entry.fields`` names them."""
    run = entry.run
    results = entry.results  # cleared in place, never replaced

    def value(reader: Reader) -> Any:
        names = entry.fields
        if names is None:
            return run(reader)
        fields = reader._fields
        if len(names) == 1:
            key = fields.get(names[0])
        else:
            key = tuple([fields.get(name) for name in names])
        try:
            ok, found = results[key]
        except KeyError:
            pass
        except TypeError:  # a field's value that cannot be a key
            return run(reader)
        else:
            entry.hits += 1
            if ok:
                return found
            raise RecipientError(*found)
        try:
            found = run(reader)
        except RecipientError as exc:
            entry.keep(key, (False, (exc.message, exc.hint)))
            raise
        if _shareable(found):
            entry.keep(key, (True, found))
        return found

    return value


def _shareable(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(isinstance(v, _IMMUTABLE) for v in value)
    return isinstance(value, _IMMUTABLE)


class ReaderPlan:
    """Every slot and decision met while rendering a campaign's variants.

    An expression that only reads some of the reader's fields (``ReaderExpression.
    fields``) runs once per distinct set of their values; the next reader with the
    same values gets the same result, or the same error.
    """

    def __init__(self, tokens: Tokens, known: Callable[[str], bool]) -> None:
        self.tokens = tokens
        self.known = known
        self.expressions: list[ReaderExpression] = []
        self.slots: list[Slot] = []
        self._slot_ids: dict[Any, int] = {}
        self._root = _TrieNode()
        self.session: RenderSession | None = None
        self.decisions = 0  # how many decision points the templates have
        self.choosing: set[int] = set()  # the decisions' expressions and deferred values
        self._results: dict[tuple[int, int], _Results] = {}
        # each variant by the values of the fields the decisions read (see ``variant_for``)
        self._by_key: dict[Any, Any] = {}  # the value itself when there is one field
        self._key_fields: tuple[str, ...] | None = None
        self._key_version = -1  # how many decisions ``_key_fields`` was found for
        self._key_hits = 0

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
        return self.slot_token(FieldSlot(name, fallback), ("field", name, capture_key(fallback)))

    # -- per reader --
    def evaluate(
        self, expression: int, captures: tuple[tuple[str, Any], ...], reader: Reader
    ) -> Any:
        """The expression's value for the reader; RecipientError if their data breaks it."""
        return self.evaluator(expression, captures)(reader)

    def evaluator(
        self, expression: int, captures: tuple[tuple[str, Any], ...]
    ) -> Callable[[Reader], Any]:
        """``evaluate`` for one expression and its captures, as one call per reader."""
        entry = self._results.get((expression, id(captures)))
        if entry is None or entry.captures is not captures:
            entry = self._results[(expression, id(captures))] = _Results(
                captures,
                self._fields_read(expression, captures),
                self._runner(expression, captures),
            )
            entry.value = _kept(entry)
        return entry.value

    def decision_fields(self) -> tuple[str, ...] | None:
        """Every field that can choose a reader's variant (sorted): those the decisions
        and the deferred values they may capture read. None when one of them depends on
        more than fields (see ``ReaderExpression.fields``)."""
        found: set[str] = set()
        for expression in self.choosing:
            fields = self.expressions[expression].fields
            if fields is None:
                return None
            found.update(fields)
        return tuple(sorted(found))

    def _fields_read(
        self, expression: int, captures: tuple[tuple[str, Any], ...]
    ) -> tuple[str, ...] | None:
        """The fields an expression and the deferred values it captured read, or None
        when its value may depend on more than those."""
        fields = self.expressions[expression].fields
        if fields is None:
            return None
        found = set(fields)
        for _name, value in captures:
            if isinstance(value, Deferred):
                more = self._fields_read(value.expression, value.captures)
                if more is None:
                    return None
                found.update(more)
        return tuple(sorted(found))

    def _runner(
        self, expression: int, captures: tuple[tuple[str, Any], ...]
    ) -> Callable[[Reader], Any]:
        """The expression run for one reader, as ``_evaluate`` runs it: an expression with
        a closure (``ReaderExpression.direct``) and no captures calls it straight."""
        expr = self.expressions[expression]
        run = expr.direct
        if run is None or captures:
            return lambda reader: self._evaluate(expression, captures, reader)

        return lambda reader: _checked(expr, run, reader)

    def _evaluate(
        self, expression: int, captures: tuple[tuple[str, Any], ...], reader: Reader
    ) -> Any:
        expr = self.expressions[expression]
        values = {name: self._resolve(value, reader) for name, value in captures}
        if expr.direct is not None and not values:
            return _checked(expr, expr.direct, reader)
        return _checked(expr, expr.evaluate, reader, values)

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
                f"(text, numbers), not {describe_error(exc)}."
            ) from None
        except jinja2.UndefinedError as exc:
            raise RecipientError(f"{where} fails for this reader's data: {exc}.") from None
        return items

    def variant_for(self, reader: Reader, render: Callable[[RenderSession], Any]) -> Any:
        """The reader's variant, rendering it (with ``render``) the first time it is needed.

        When the decisions read only fields (``decision_fields``), the variant is kept by
        their values: the next reader with the same values gets it without asking the
        decisions again. A template parsed later (an ``{% include %}`` in a branch) may
        add decisions: then the fields are found again and what was kept is dropped."""
        root = self._root
        if root.question is None and root.variant is not None:
            return root.variant  # no decision was asked: the campaign's one variant
        version = len(self.choosing)
        if self._key_version != version:
            self._by_key.clear()
            self._key_hits = 0
            self._key_fields = self.decision_fields() if self.choosing else None
            self._key_version = version
        names = self._key_fields
        if names is None:
            return self._variant_for(reader, render)
        fields = reader._fields
        if len(names) == 1:
            key: Any = fields.get(names[0])
        else:
            key = tuple([fields.get(name) for name in names])
        try:
            variant = self._by_key.get(key)
        except TypeError:  # a field's value that cannot be a key
            return self._variant_for(reader, render)
        if variant is not None:
            self._key_hits += 1
            return variant
        variant = self._variant_for(reader, render)
        if names is self._key_fields and len(self.choosing) == version:
            self._keep_variant(key, variant)  # no decision was added meanwhile
        return variant

    def _keep_variant(self, key: Any, variant: Any) -> None:
        if len(self._by_key) >= CACHED_RESULTS:
            if self._key_hits < CACHED_RESULTS:  # the values are mostly new: stop keeping
                self._key_fields = None
            self._by_key.clear()
            self._key_hits = 0
            return
        self._by_key[key] = variant

    def _variant_for(self, reader: Reader, render: Callable[[RenderSession], Any]) -> Any:
        """The reader's variant found by asking the decisions (the trie), or rendered."""
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
            raise RefusedHere("a template that depends on the reader was rendered without one")
        return self.session

    def out(self, expression: int, captures: dict[str, Any]) -> str:
        frozen, key = freeze_captures(captures)
        expr = self.expressions[expression]
        return self.slot_token(
            ExpressionSlot(expression, frozen, expr.autoescape), ("expr", expression, key)
        )

    def decide(self, decision: int, captures: dict[str, Any], loop: bool = False) -> Any:
        session = self._current()
        frozen, key = freeze_captures(captures)
        question = Question(decision, frozen, (decision, key), loop)
        outcome = self.answer(question, session.reader)
        session.path.append((question, outcome))
        return list(outcome) if loop else outcome

    def defer(self, expression: int, captures: dict[str, Any]) -> Deferred:
        frozen, key = freeze_captures(captures)
        return Deferred(expression, frozen, ("deferred", expression, key))
