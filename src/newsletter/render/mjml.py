"""MJML -> HTML (mjml-python), then CSS inlining (premailer) that keeps head styles."""

from __future__ import annotations

import logging
import re

from lxml import etree

from ..errors import TemplateError
from .image_widths import add_image_widths

_INLINE_STYLE = re.compile(
    r"<mj-style\b[^>]*\binline\s*=\s*[\"']inline[\"'][^>]*>(.*?)</mj-style>", re.S | re.I
)
_UNKNOWN_TAG = re.compile(r"<(mj-[a-z-]+)")
_STYLE_OPEN = re.compile(r"<style(?=[\s>])", re.I)
_IGNORE_MARK = ' data-premailer="ignore"'
# mj-button's cell gets vertical-align="middle", which is CSS, not an HTML attribute
_STRAY_ATTRIBUTE = re.compile(r"(<[A-Za-z][^<>]*?)\s+vertical-align=\"[^\"<>]*\"")
# mj-preview: the first element in <body>, hidden, and white like the page it assumes
_PREVIEW = re.compile(r'(<body\b[^>]*>\s*)<div style="display:none;[^"]*">(.*?)</div>', re.S)
PREHEADER_STYLE = "display:none;max-height:0;overflow:hidden;mso-hide:all;"
# after the preheader, so that inboxes do not fill the preview with the body's first words
PREHEADER_PADDING = "&#847;&zwnj;&nbsp;" * 90
# characters XML 1.0 forbids (C0 controls but tab and line ends, U+FFFE/FFFF): one in a
# campaign's text or an article's title stopped the whole email from compiling
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def extract_inline_css(mjml_source: str) -> tuple[str, str]:
    """(MJML without its ``<mj-style inline="inline">`` blocks, their CSS).

    mjml-python leaves those rules in a ``<style>`` block instead of inlining
    them, so we take them out here and hand them to the inliner ourselves.
    """
    css = "\n".join(m.group(1) for m in _INLINE_STYLE.finditer(mjml_source))
    return _INLINE_STYLE.sub("", mjml_source), css


def compile_mjml(source: str, origin: str) -> str:
    """HTML from MJML; broken markup or an unknown ``mj-`` tag is a TemplateError."""
    from mjml import mjml2html  # loaded by the first compile, not by every command

    source = _NOT_XML.sub("", source)  # invisible, and nothing a reader could see
    source = add_image_widths(source)  # as node mjml sizes them; mjml-python does not
    try:
        html = mjml2html(source)
    except (ValueError, RuntimeError) as exc:
        raise TemplateError(
            f"{origin}: the MJML does not compile: {exc}{_locate_xml_error(source)}.",
            "Check that every mj- tag is closed and nested as MJML requires "
            "(mj-body > mj-section > mj-column > mj-text).",
        ) from None
    leftover = _UNKNOWN_TAG.search(html)
    if leftover:
        raise TemplateError(
            f"{origin}: <{leftover.group(1)}> is not an MJML tag this compiler knows, "
            "so it would reach readers as raw markup.",
            "Check the tag's spelling against the MJML documentation.",
        )
    return _repair(html)


def _repair(html: str) -> str:
    """What mjml-python emits that is not HTML, and a preheader hidden without a colour.

    White text on the page is what spam filters call low-contrast text
    (SpamAssassin's HTML_FONT_LOW_CONTRAST), hidden or not.
    """
    html = _STRAY_ATTRIBUTE.sub(r"\1", html)
    return _PREVIEW.sub(
        lambda m: (
            f'{m.group(1)}<div style="{PREHEADER_STYLE}">{m.group(2)}{PREHEADER_PADDING}</div>'
        ),
        html,
        count=1,
    )


def _locate_xml_error(source: str) -> str:
    try:
        etree.fromstring(
            f"<root>{re.sub(r'&(?!#?[A-Za-z0-9]+;)', '&amp;', source)}</root>",
            etree.XMLParser(recover=False, resolve_entities=False, no_network=True),
        )
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        return f" (near line {line}, column {column}: {exc.msg})"
    return ""


def inline_css(html: str, css: str) -> str:
    """Inline ``css`` into the HTML; the compiler's own ``<style>`` blocks stay in the head.

    Those blocks hold the media queries that make the layout responsive, which
    cannot be inlined. premailer's cssutils logs a warning for every ``mso-*``
    or ``color-scheme`` property it does not know; those are expected in email
    CSS, so its logging is silenced.
    """
    if not css.strip():
        return html
    from premailer import Premailer  # with cssutils: 20 MB, for the commands that compile

    marked = _STYLE_OPEN.sub("<style" + _IGNORE_MARK, html)
    premailer = Premailer(
        marked,
        css_text=css,
        keep_style_tags=True,
        disable_leftover_css=True,
        remove_classes=False,
        strip_important=False,
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
        cssutils_logging_handler=logging.NullHandler(),
    )
    inlined = premailer.transform().replace(_IGNORE_MARK, "")
    doctype = re.match(r"\s*(<!doctype[^>]*>)", html, re.I)
    if doctype and not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = doctype.group(1) + "\n" + inlined  # lxml drops it; clients need it
    return inlined
