"""Compiling a campaign: every expensive stage, once per campaign variant.

    context (Jinja2, sandboxed) -> MJML -> HTML (mjml-python)
    -> CSS inlined (premailer) -> plain-text part -> split at per-reader tokens

What depends on the reader is found in the templates' syntax before rendering
(``rewrite``): printed expressions over ``recipient`` become slots that run per
reader, and ``{% if %}``/``{% for %}`` over the reader choose a variant
(``variants``), compiled the first time a reader needs it. Per reader only the
slots run (``CompiledCampaign.personalize``) and ``MergeTemplate.merge`` joins:
no MJML or premailer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from ..addresses import ascii_domain
from ..content.links import UTM
from ..content.markup import render_text_markdown
from ..errors import RecipientError, TemplateError
from ..language import DEFAULT_LANGUAGE, direction_context
from ..models import Article, Campaign
from .headers import split_list_id
from .merge import MergeTemplate, Personal
from .message import display_address, format_address
from .mjml import compile_mjml, extract_inline_css, inline_css
from .placeholders import NonceCollision, Tokens, draw_tokens
from .reader import Reader, UnknownFieldError, known_fields_message
from .slots import ExpressionSlot, Slot
from .templates import (
    BODY,
    BUILTIN_TEMPLATES,
    GREETING,
    SUBJECT,
    make_environment,
    render_template,
)
from .text import html_to_text
from .variants import ReaderPlan, RenderSession, Variant

_markdown = MarkdownIt("commonmark", {"typographer": True, "breaks": True}).enable(
    ["replacements", "smartquotes"]
)
# the same for the plain-text part, where quotes stay as typed (the contract's rule)
_markdown_typed_quotes = MarkdownIt("commonmark", {"typographer": True, "breaks": True}).enable(
    ["replacements"]
)


@dataclass(frozen=True, slots=True)
class NewsletterInfo:
    """What templates know of the newsletter itself (from ``[newsletter]``)."""

    name: str
    sender: str
    public_url: str
    postal_address: str = ""
    reply_to: str | None = None
    list_id: str | None = None
    language: str = DEFAULT_LANGUAGE
    templates_dir: Path | None = None
    utm: bool = True
    utm_source: str = "newsletter"
    utm_medium: str = "email"


@dataclass(frozen=True, slots=True)
class FieldCatalog:
    """Which fields subscribers have, beyond the standard ones (their file's extra columns)."""

    has: Callable[[str], bool] = field(default=lambda name: False)
    names: Callable[[], Sequence[str]] = field(default=lambda: ())


class CompiledCampaign:
    """A campaign rendered once per variant; ``personalize`` gives a reader's parts."""

    def __init__(
        self,
        campaign: Campaign,
        info: NewsletterInfo,
        plan: ReaderPlan,
        render: Callable[[RenderSession], Variant],
    ) -> None:
        self.slug = campaign.slug
        self.preheader = campaign.preheader
        sender = campaign.sender or info.sender
        name, address = parseaddr(sender)
        self.sender = format_address(name, address)
        self.sender_display = display_address(name, address)
        self.reply_to = campaign.reply_to or info.reply_to
        self.list_id = list_id_for(info)
        self.plan = plan
        self._render = render
        self._getters: dict[int, tuple[Callable[[Reader], Any], ...]] = {}  # by variant

    @property
    def tokens(self) -> Tokens:
        return self.plan.tokens

    @property
    def variants(self) -> list[Variant]:
        """The variants compiled so far."""
        return sorted(self.plan.variants, key=lambda v: v.number)

    @property
    def depends_on_decisions(self) -> bool:
        """Whether ``{% if %}``/``{% for %}`` over the reader make several variants."""
        return self.plan.decisions > 0

    @property
    def depends_on_per_reader_code(self) -> bool:
        """Whether readers differ by more than plain fields (decisions or expressions)."""
        return self.plan.decisions > 0 or any(
            isinstance(slot, ExpressionSlot) for slot in self.plan.slots
        )

    def variant_of(self, fields: Mapping[str, Any]) -> Variant:
        """The reader's variant, compiled now if no reader needed it before."""
        return self.plan.variant_for(Reader(fields, self.plan.known), self._render)

    def personalize(self, fields: Mapping[str, Any]) -> Personal:
        """The reader's variant and slot values; RecipientError if their data breaks it."""
        plan = self.plan
        reader = Reader(fields, plan.known)
        variant = plan.variant_for(reader, self._render)
        slots = variant.slots
        getters = self._getters.get(variant.number)
        if getters is None:
            getters = self._getters[variant.number] = tuple(s.getter(plan) for s in slots)
        nonce = plan.tokens.nonce
        found = []
        for get in getters:  # _value, inline: this runs for every slot of every reader
            value = get(reader)
            if isinstance(value, str) and nonce in value:
                value = self._expand(value, fields, reader)
            found.append(value)
        values = tuple(found)
        try:
            html = [slot.html(v) for slot, v in zip(slots, values, strict=True)]
            text = [slot.text(v) for slot, v in zip(slots, values, strict=True)]
        except Exception as exc:
            raise RecipientError(
                f"{self.slug}: a value of this reader's cannot be shown ({exc})."
            ) from None
        return Personal(variant, values, html, text)

    def _value(self, slot: Slot, fields: Mapping[str, Any], reader: Reader) -> Any:
        value = slot.value(self.plan, fields, reader)
        if isinstance(value, str) and self.tokens.nonce in value:
            return self._expand(value, fields, reader)
        return value

    def _expand(self, value: str, fields: Mapping[str, Any], reader: Reader) -> Any:
        """A value that holds other slots' tokens (a captured greeting...), filled in."""
        pieces = self.tokens.pattern.split(value)
        slots = self.plan.slots
        if isinstance(value, Markup):
            return Markup("").join(
                Markup(p) if i % 2 == 0 else self._value(slots[int(p)], fields, reader)
                for i, p in enumerate(pieces)
            )
        return "".join(
            p if i % 2 == 0 else slots[int(p)].text(self._value(slots[int(p)], fields, reader))
            for i, p in enumerate(pieces)
        )

    def preview(self, fields: Mapping[str, Any]) -> tuple[str, str, str]:
        """(subject, html, text) for one set of fields, e.g. a sample reader."""
        personal = self.personalize(fields)
        variant = personal.variant
        return (
            variant.subject.merge(personal.text_values),
            variant.html.merge(personal.html_values),
            variant.text.merge(personal.text_values),
        )


def list_id_for(info: NewsletterInfo) -> str:
    """``Name <label.domain>``: stable, from ``list_id`` or the name and sender's domain.

    The ``<label.domain>`` part is ASCII (an internationalised domain in A-labels);
    the name is encoded when the header is written.
    """
    if info.list_id and "<" in info.list_id:
        name, list_id = split_list_id(info.list_id)
    elif info.list_id:
        name, list_id = info.name, info.list_id.strip().strip("<>").strip()
    else:
        domain = parseaddr(info.sender)[1].rpartition("@")[2] or "localhost"
        label = re.sub(r"[^a-z0-9]+", "-", info.name.lower()).strip("-")
        label = label[:63].rstrip("-") or "newsletter"  # like a host name: a DNS label's length
        name, list_id = info.name, f"{label}.{_ascii_namespace(domain)}"
    return f"{name} <{_ascii_namespace(list_id)}>".strip()


def _ascii_namespace(domain: str) -> str:
    """A domain (or list-id) in A-labels; what has none loses its non-ASCII characters."""
    try:
        return ascii_domain(domain)
    except ValueError:
        return re.sub(r"[^A-Za-z0-9.-]", "-", domain)


# The hint of the TemplateError raised when only the sample reader's data fails: a caller
# with more readers may try the next one (Composer.compile).
SAMPLE_FAILED = "The sample reader's message cannot be built."


def compile_campaign(
    info: NewsletterInfo,
    campaign: Campaign,
    fields: FieldCatalog | None = None,
    sample: Mapping[str, Any] | None = None,
    nonces: Iterator[str] | None = None,
    links: tuple[str, ...] = (),
    context: Mapping[str, Any] | None = None,
    more_samples: Iterable[Mapping[str, Any]] = (),
) -> CompiledCampaign:
    """Render ``campaign``: every expensive stage runs here, once per variant.

    The variant of ``sample`` (a reader's fields; an anonymous reader by default)
    is compiled at once, so a template that does not build fails here. ``links`` name
    more per-reader values the templates see as variables, like ``unsubscribe_url``
    (a confirmation email's ``confirm_url``); ``context`` more fixed variables. When
    ``sample``'s own data breaks an expression, the first of ``more_samples`` whose data
    builds is built instead: one reader's data never stops the campaign.
    """
    catalog = fields or FieldCatalog()
    inputs = list(_inputs(info, campaign))
    for _ in range(8):
        tokens = draw_tokens(inputs, nonces)
        try:
            compiled = _compile(info, campaign, catalog, tokens, links, context)
            _build_one(compiled, sample or {}, more_samples)
            return compiled
        except NonceCollision:
            continue
    raise TemplateError("Could not draw placeholders that occur in no template.")


def _build_one(
    compiled: CompiledCampaign, sample: Mapping[str, Any], more: Iterable[Mapping[str, Any]]
) -> None:
    """Build ``sample``'s message, or the first of ``more`` whose data builds; a
    TemplateError (hint SAMPLE_FAILED) with ``sample``'s reason when none does."""
    try:
        compiled.personalize(sample)
        return
    except RecipientError as exc:
        first = exc
    for fields in more:
        try:
            compiled.personalize(fields)
            return
        except RecipientError:
            continue
    raise TemplateError(f"{first.message}", SAMPLE_FAILED) from None


def _inputs(info: NewsletterInfo, campaign: Campaign) -> Iterable[str]:
    """Every text a build starts from: a token's nonce must occur in none of them."""
    for folder in (info.templates_dir, BUILTIN_TEMPLATES):
        yield from _template_sources(folder)
    yield from (campaign.subject, campaign.body, campaign.preheader, str(campaign.greeting or ""))
    yield from (info.name, info.sender, info.public_url, info.postal_address)
    yield from (info.reply_to or "", info.list_id or "", campaign.sender or "")
    for article in campaign.articles:
        yield from (article.title, article.url or "", article.author or "", article.image or "")
        yield from (article.excerpt, article.excerpt_html)


def _template_sources(folder: Path | None) -> Iterator[str]:
    """The text of every template file in ``folder`` (none when there is no such folder)."""
    if folder is None or not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".mjml", ".txt", ".html"):
            yield path.read_text(encoding="utf-8", errors="replace")


def _compile(
    info: NewsletterInfo,
    campaign: Campaign,
    catalog: FieldCatalog,
    tokens: Tokens,
    links: tuple[str, ...] = (),
    context: Mapping[str, Any] | None = None,
) -> CompiledCampaign:
    plan = ReaderPlan(tokens, catalog.has)
    parts = {
        BODY: "\n" * (campaign.body_line - 1) + campaign.body,
        SUBJECT: campaign.subject,
        GREETING: "{{ (" + str(campaign.greeting) + ") }}" if campaign.greeting else "",
    }
    names = {
        BODY: campaign.path,
        SUBJECT: f"{campaign.path} (subject)",
        GREETING: f"{campaign.path} (greeting)",
    }
    env = make_environment(info.templates_dir, plan, parts, names)
    utm = (
        UTM(campaign.utm_campaign, info.utm_source.lower(), info.utm_medium.lower())
        if info.utm and campaign.utm_campaign
        else None
    )
    lang = campaign.lang or info.language
    base: dict[str, Any] = {
        **direction_context(lang),
        "newsletter": info,
        "campaign": campaign,
        "preheader": campaign.preheader,
        "articles": [_article_context(a, utm) for a in campaign.articles],
        "unsubscribe_url": plan.field_token("unsubscribe_url"),
        "web_url": f"{info.public_url.rstrip('/')}/c/{campaign.slug}",
        **{name: plan.field_token(name) for name in links},
        **(context or {}),
    }
    count = 0

    def render(session: RenderSession) -> Variant:
        nonlocal count
        context = dict(base)
        try:
            subject = " ".join(render_template(env, SUBJECT, context).split())
            context["subject"] = subject
            context["greeting"] = (
                render_template(env, GREETING, context).strip() if campaign.greeting else ""
            )
            body_html, body_text = _letter(render_template(env, BODY, context), campaign, utm)
            context["body_html"] = Markup(body_html)
            context["body_text"] = body_text
            mjml_source = render_template(env, f"{campaign.template}.mjml", context)
            mjml_source, css = extract_inline_css(mjml_source)
            html = inline_css(compile_mjml(mjml_source, f"template '{campaign.template}'"), css)
            _check_survived(tokens, mjml_source, html, plan, campaign.template)
            text = _text_part(env, campaign.template, context, html)
        except UnknownFieldError as exc:
            raise TemplateError(exc.message, known_fields_message(catalog.names())) from None
        count += 1
        return _variant(count, plan, subject, html, text, campaign.path)

    return CompiledCampaign(campaign, info, plan, render)


def _letter(source: str, campaign: Campaign, utm: UTM | None) -> tuple[str, str]:
    """(HTML, text) of the campaign's letter, its Markdown ``source`` already rendered
    by Jinja2. The HTML has typographic quotes; the text part keeps them as typed."""
    parts = []
    for markdown in (_markdown, _markdown_typed_quotes):
        html = render_text_markdown(markdown, source, campaign.path)
        parts.append(utm.tag_html(html) if utm else html)
    return parts[0], html_to_text(parts[1]).strip()


def _variant(
    number: int, plan: ReaderPlan, subject: str, html: str, text: str, origin: str
) -> Variant:
    local: dict[int, int] = {}
    for output in (subject, html, text):
        for found in plan.tokens.pattern.finditer(output):
            slot = int(found.group(1))
            if slot < len(plan.slots):
                local.setdefault(slot, len(local))
    return Variant(
        number,
        MergeTemplate.split(subject, plan.tokens, local, f"{origin} (subject)"),
        MergeTemplate.split(html, plan.tokens, local, f"{origin} (HTML)"),
        MergeTemplate.split(text, plan.tokens, local, f"{origin} (text part)"),
        tuple(plan.slots[slot] for slot in local),
    )


def _check_survived(
    tokens: Tokens, mjml_source: str, html: str, plan: ReaderPlan, template: str
) -> None:
    """Every reader value placed in the MJML must still be in the HTML MJML made of it."""
    before = {m.group(1) for m in tokens.pattern.finditer(mjml_source)}
    after = {m.group(1) for m in tokens.pattern.finditer(html)}
    lost = sorted(before - after, key=int)
    if lost:
        slot = plan.slots[int(lost[0])]
        what = getattr(slot, "name", None) or str(
            plan.expressions[getattr(slot, "expression", 0)].where
        )
        raise TemplateError(
            f"template '{template}': a reader's value ({what}) is used where MJML computes "
            "with it (an attribute such as a width or a colour), so it cannot differ per reader.",
            "A reader's data can be text and link targets; to choose between fixed values, "
            "use {% if recipient... %} around them.",
        )


def _article_context(article: Article, utm: UTM | None) -> dict[str, Any]:
    """An article as templates see it: links tagged, the excerpt's safe markup as Markup."""
    excerpt_html = article.excerpt_html or f"<p>{escape(article.excerpt)}</p>"
    return {
        "title": article.title,
        "url": utm.tag(article.url) if utm and article.url else article.url,
        "author": article.author,
        "date": article.date,
        "image": article.image,
        "excerpt": article.excerpt,
        "excerpt_html": Markup(utm.tag_html(excerpt_html) if utm else excerpt_html),
    }


def _text_part(env: Any, template: str, context: dict[str, Any], html: str) -> str:
    import jinja2

    try:
        env.get_template(f"{template}.txt")
    except jinja2.TemplateNotFound:
        return _quotes_as_typed(html_to_text(html), context)
    text = render_template(env, f"{template}.txt", context)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _quotes_as_typed(text: str, context: dict[str, Any]) -> str:
    """The text of the whole HTML with the letter's paragraphs as ``body_text`` has them:
    quotes as typed. The typographer swaps one character for one, so both texts wrap
    alike and each paragraph of the letter is found whole."""
    typographic = html_to_text(str(context.get("body_html", ""))).strip().split("\n\n")
    typed = str(context.get("body_text", "")).split("\n\n")
    for before, after in zip(typographic, typed, strict=False):
        if before != after and before:
            text = text.replace(before, after)
    return text
