"""Rendering, each stage once per campaign.

    context (Jinja2, StrictUndefined) -> MJML -> HTML (mjml-python)
    -> CSS inlined (premailer) -> plain-text part -> split at merge tokens

Per recipient only ``MergeTemplate.merge`` runs: no Jinja2, MJML or premailer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from ..addresses import ascii_domain
from ..content.links import UTM
from ..models import Article, Campaign
from .headers import split_list_id
from .merge import MergeTemplate, RecipientFields, SlotRegistry
from .message import MessageFactory, OutgoingMessage, display_address, format_address
from .mjml import compile_mjml, extract_inline_css, inline_css
from .templates import make_environment, render_string, render_template
from .text import html_to_text

__all__ = [
    "CompiledCampaign",
    "MessageFactory",
    "NewsletterInfo",
    "OutgoingMessage",
    "compile_campaign",
]

_markdown = MarkdownIt("commonmark", {"typographer": True, "breaks": True}).enable(
    ["replacements", "smartquotes"]
)


@dataclass(frozen=True)
class NewsletterInfo:
    """What templates know of the newsletter itself (from ``[newsletter]``)."""

    name: str
    sender: str
    public_url: str
    postal_address: str = ""
    reply_to: str | None = None
    list_id: str | None = None
    templates_dir: Path | None = None
    utm: bool = True
    utm_source: str = "newsletter"
    utm_medium: str = "email"


@dataclass
class CompiledCampaign:
    """A campaign rendered once; ``registry`` maps merge tokens to recipient fields."""

    slug: str
    subject: MergeTemplate
    html: MergeTemplate
    text: MergeTemplate
    registry: SlotRegistry
    sender: str
    sender_display: str
    reply_to: str | None
    list_id: str
    preheader: str

    def preview(self, fields: dict[str, Any]) -> tuple[str, str, str]:
        """(subject, html, text) for one set of fields, e.g. a sample reader."""
        from .merge import escape_html

        values = self.registry.values(fields)
        return (
            self.subject.merge(values),
            self.html.merge(values, escape_html),
            self.text.merge(values),
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


def compile_campaign(info: NewsletterInfo, campaign: Campaign) -> CompiledCampaign:
    """Render ``campaign`` once: every expensive stage of the pipeline runs here."""
    env = make_environment(info.templates_dir)
    registry = SlotRegistry()
    context = build_context(env, info, campaign, registry)
    subject = render_string(env, campaign.subject, context, f"{campaign.path} (subject)")
    context["subject"] = subject
    mjml_source = render_template(env, f"{campaign.template}.mjml", context)
    mjml_source, css = extract_inline_css(mjml_source)
    html = inline_css(compile_mjml(mjml_source, f"template '{campaign.template}'"), css)
    text = _text_part(env, campaign.template, context, html)
    sender = campaign.sender or info.sender
    name, address = parseaddr(sender)
    return CompiledCampaign(
        slug=campaign.slug,
        subject=MergeTemplate.split(" ".join(subject.split())),
        html=MergeTemplate.split(html),
        text=MergeTemplate.split(text),
        registry=registry,
        sender=format_address(name, address),
        sender_display=display_address(name, address),
        reply_to=campaign.reply_to or info.reply_to,
        list_id=list_id_for(info),
        preheader=campaign.preheader,
    )


def build_context(
    env: jinja2.Environment, info: NewsletterInfo, campaign: Campaign, registry: SlotRegistry
) -> dict[str, Any]:
    recipient = RecipientFields(registry)
    utm = (
        UTM(campaign.utm_campaign, info.utm_source.lower(), info.utm_medium.lower())
        if info.utm and campaign.utm_campaign
        else None
    )
    context: dict[str, Any] = {
        "newsletter": info,
        "campaign": campaign,
        "preheader": campaign.preheader,
        "articles": [_article_context(a, utm) for a in campaign.articles],
        "recipient": recipient,
        "unsubscribe_url": registry.token("unsubscribe_url"),
        "web_url": registry.token("web_url"),
    }
    body_md = render_string(env, campaign.body, context, campaign.path)
    context["body_text"] = body_md.strip()
    body_html = _markdown.render(body_md)
    context["body_html"] = Markup(utm.tag_html(body_html) if utm else body_html)
    return context


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


def _text_part(env: jinja2.Environment, template: str, context: dict[str, Any], html: str) -> str:
    try:
        env.get_template(f"{template}.txt")
    except jinja2.TemplateNotFound:
        return html_to_text(html)
    text = render_template(env, f"{template}.txt", context)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
