"""JSON for request bodies, as bytes: what is the same for a whole campaign is encoded
once, and a request is joined from its pieces in one pass.

Every body is compact JSON with UTF-8 kept as is: the very bytes of
``json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()``. orjson
makes them when it is installed (several times faster on these shapes); the standard
library otherwise.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .base import Body

if TYPE_CHECKING:
    from ..render import OutgoingMessage
    from ..render.message import SharedContent

try:
    import orjson
except ImportError:  # pragma: no cover - a dependency; an install without it still works
    orjson = None  # type: ignore[assignment]


def _std_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# compact JSON of a value made of str, int, bool, None, lists and str-keyed dicts
dumps: Callable[[Any], bytes] = orjson.dumps if orjson is not None else _std_dumps


def join(pieces: list[bytes]) -> Body:
    """A request body from its pieces: never joined whole, sent in chunks as it goes."""
    return Body(pieces)


class PerCampaign:
    """Pieces made once per campaign (a message factory) and key (e.g. a variant).

    A transport may serve several campaigns in its life (automations, sequences): the
    pieces of the last few are kept. Each entry holds its factory, so that the factory's
    ``id`` cannot be reused by another while the entry lives.
    """

    def __init__(self, keep: int = 4) -> None:
        self._keep = keep
        self._entries: dict[int, tuple[Any, dict[Any, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, factory: Any, key: Any, make: Callable[[], Any]) -> Any:
        entry = self._entries.get(id(factory))
        if entry is not None and entry[0] is factory and key in entry[1]:
            return entry[1][key]
        made = make()
        with self._lock:
            entry = self._entries.get(id(factory))
            if entry is None or entry[0] is not factory:
                while len(self._entries) >= self._keep:
                    del self._entries[next(iter(self._entries))]
                entry = self._entries[id(factory)] = (factory, {})
            entry[1][key] = made
        return made


class Substitutions:
    """A shared body's per-reader substitutions (``SharedContent.substitutions``), with
    the placeholders' names worked out once for the variant rather than per reader.

    ``one_line`` makes a value fit a header (the subject's); ``name`` turns a placeholder
    into the key the provider takes (Mailgun keys its recipient-variables by what is
    between ``%recipient.`` and ``%``).
    """

    def __init__(
        self,
        shared: SharedContent,
        one_line: Callable[[str], str],
        name: Callable[[str], str] = str,
    ) -> None:
        self.one_line = one_line
        placeholder = shared.placeholder
        self.html = tuple((name(placeholder("h", i)), i) for i in shared.slots["h"])
        self.text = tuple((name(placeholder("t", i)), i) for i in shared.slots["t"])
        self.subject = tuple((name(placeholder("s", i)), i) for i in shared.slots["s"])

    def values(self, message: OutgoingMessage) -> dict[str, str]:
        """``key -> value`` for one reader, each value escaped for its part."""
        html, text = message.html_values, message.text_values
        out = {key: html[i] for key, i in self.html}
        for key, i in self.text:
            out[key] = text[i]
        for key, i in self.subject:
            out[key] = self.one_line(text[i])
        return out
