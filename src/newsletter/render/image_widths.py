"""An ``mj-image`` without a ``width``: the width the reference MJML compiler gives it.

mjml-python sizes such an image to its column's whole width (600 px in a one-column
email) where node mjml takes off the image's horizontal padding and the column's
padding and borders (552 px with 24 px of padding each side). Outlook for Windows
uses the ``width`` attribute, so the image spilled over its padding there. Before
compiling, each ``mj-image`` with no width in the usual nesting (``mj-body >
[mj-wrapper >] mj-section > [mj-group >] mj-column > mj-image``) gets the width node
mjml computes, with attributes resolved as MJML does: the element's own, its
``mj-class``, ``mj-attributes`` for its tag, ``mj-all``, then MJML's defaults.
"""

from __future__ import annotations

import re

from lxml import etree

# MJML's own defaults for the attributes that decide a width
DEFAULTS: dict[str, dict[str, str]] = {
    "mj-body": {"width": "600px"},
    "mj-wrapper": {"padding": "20px 0"},
    "mj-section": {"padding": "20px 0"},
    "mj-image": {"padding": "10px 25px"},
}
_SIDES = {"top": 0, "right": 1, "bottom": 2, "left": 3}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_IMAGE_OR_COMMENT = re.compile(r"<!--.*?-->|<mj-image\b", re.S)
_BARE_AMPERSAND = re.compile(r"&(?!#?[A-Za-z0-9]+;)")


class _Attributes:
    """Attribute lookup as MJML resolves it."""

    def __init__(self, root: etree._Element) -> None:
        self.by_tag: dict[str, dict[str, str]] = {}
        self.classes: dict[str, dict[str, str]] = {}
        for block in root.iter("mj-attributes"):
            for child in block:
                if not isinstance(child.tag, str):
                    continue
                values = {k: v for k, v in child.attrib.items() if k != "name"}
                if child.tag == "mj-class":
                    self.classes.setdefault(child.get("name", ""), {}).update(values)
                else:
                    self.by_tag.setdefault(child.tag, {}).update(values)

    def get(self, element: etree._Element, name: str) -> str | None:
        if name in element.attrib:
            return element.get(name)
        for cls in reversed((element.get("mj-class") or "").split()):
            if name in self.classes.get(cls, {}):
                return self.classes[cls][name]
        for source in (self.by_tag.get(element.tag, {}), self.by_tag.get("mj-all", {})):
            if name in source:
                return source[name]
        return DEFAULTS.get(str(element.tag), {}).get(name)


def _pixels(value: str | None) -> float:
    found = _NUMBER.search(value or "")
    return float(found.group(0)) if found else 0.0


def _side(attrs: _Attributes, element: etree._Element, name: str, side: str) -> float:
    """``padding-left`` or the left of ``padding``'s 1 to 4 values, in px."""
    own = attrs.get(element, f"{name}-{side}")
    if own is not None:
        return _pixels(own)
    values = (attrs.get(element, name) or "").split()
    if not values:
        return 0.0
    index = {1: (0, 0, 0, 0), 2: (0, 1, 0, 1), 3: (0, 1, 2, 1), 4: (0, 1, 2, 3)}
    return _pixels(values[index[min(len(values), 4)][_SIDES[side]]])


def _border(attrs: _Attributes, element: etree._Element, side: str, name: str = "border") -> float:
    value = attrs.get(element, f"{name}-{side}") or attrs.get(element, name) or ""
    return 0.0 if "none" in value else _pixels(value)


def _horizontal(attrs: _Attributes, element: etree._Element, inner: bool = False) -> float:
    """Padding and borders on both sides (and inner borders, for a column)."""
    total = sum(
        _side(attrs, element, "padding", s) + _border(attrs, element, s) for s in ("left", "right")
    )
    if inner:
        total += sum(_border(attrs, element, s, "inner-border") for s in ("left", "right"))
    return total


def _share(attrs: _Attributes, element: etree._Element, parent_width: float) -> float:
    """A column's or group's width in its parent: its own, or an equal share."""
    siblings = [e for e in element.getparent() if isinstance(e.tag, str) and e.tag != "mj-raw"] or [
        element
    ]
    width = attrs.get(element, "width")
    if width and width.strip().endswith("%"):
        return parent_width * _pixels(width) / 100
    return _pixels(width) if width else parent_width / len(siblings)


def _container(attrs: _Attributes, element: etree._Element) -> float | None:
    """The width ``element``'s children get (node mjml's getChildContext), or None."""
    parent = element.getparent()
    if element.tag == "mj-body":
        return _pixels(attrs.get(element, "width"))
    outer = _container(attrs, parent) if parent is not None else None
    if outer is None:
        return None
    if element.tag in ("mj-wrapper", "mj-section"):
        return outer - _horizontal(attrs, element)
    if element.tag == "mj-group":
        return _share(attrs, element, outer) - sum(
            _side(attrs, element, "padding", s) for s in ("left", "right")
        )
    if element.tag == "mj-column":
        return _share(attrs, element, outer) - _horizontal(attrs, element, inner=True)
    return None


def image_width(attrs: _Attributes, image: etree._Element) -> int | None:
    """The width node mjml gives an ``mj-image`` without one, or None when not known."""
    parent = image.getparent()
    if parent is None or parent.tag != "mj-column":
        return None
    box = _container(attrs, parent)
    if box is None:
        return None
    width = box - _horizontal(attrs, image)
    return int(width) if width >= 1 else None


def add_image_widths(source: str) -> str:
    """``source`` with ``width="Npx"`` on each ``mj-image`` that has none, as node mjml
    computes it; unchanged where the MJML cannot be read or the width is not known."""
    if "<mj-image" not in source:
        return source
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(_BARE_AMPERSAND.sub("&amp;", source).encode("utf-8"), parser)
    except etree.XMLSyntaxError:
        return source
    if root is None:
        return source
    attrs = _Attributes(root)
    images = list(root.iter("mj-image"))
    found = [m for m in _IMAGE_OR_COMMENT.finditer(source) if m.group(0) == "<mj-image"]
    if len(found) != len(images):
        return source
    pieces, position = [], 0
    for match, image in zip(found, images, strict=True):
        if attrs.get(image, "width") is not None:
            continue
        width = image_width(attrs, image)
        if width is None:
            continue
        pieces.append(source[position : match.end()] + f' width="{width}px"')
        position = match.end()
    return "".join(pieces) + source[position:]
