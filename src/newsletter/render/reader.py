"""The reader as templates see them (``recipient``), and the fields a template may ask.

How a template reaches a reader's field: ``recipient.NAME``, ``recipient["NAME"]``,
``recipient.get("NAME", fallback)``, ``recipient.first_name_or(fallback)``. A field
no subscriber has is refused when the template is parsed, naming the fields there are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import TemplateError

READER_METHODS = frozenset({"get", "first_name_or"})
STANDARD_FIELDS = ("email", "first_name", "last_name", "name", "tags")


@dataclass(frozen=True, slots=True)
class Where:
    """A place in a template, for messages: the file (or campaign part) and line."""

    template: str
    line: int
    text: str = ""

    def __str__(self) -> str:
        quoted = f" ({self.text})" if self.text else ""
        return f"{self.template}, line {self.line}{quoted}"


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


class UnknownFieldError(TemplateError):
    """A template uses ``recipient.NAME`` and no subscriber has NAME."""

    def __init__(self, name: str, where: Where) -> None:
        self.name = name
        self.where = where
        super().__init__(f"{where}: no subscriber has the field {name!r}.", None)


def known_fields_message(known: Sequence[str]) -> str:
    return (
        "Fields every reader has: "
        + ", ".join(STANDARD_FIELDS)
        + (f"; from the subscribers file: {', '.join(known)}" if known else "")
        + ". Use recipient.get('NAME', 'fallback') for a field only some readers have."
    )
