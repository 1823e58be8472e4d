"""The monthly digest: period -> the period's new articles -> a campaign file -> a send.

Safe to repeat and to overlap: the campaign's identity is the period
(``digest-YYYY-MM``), so the delivery ledger sends it at most once; a lock in
the database keeps two runs from working on one period at the same time; an
article featured in an earlier digest is not featured again; a period that
ended more than ``max_lateness_days`` ago is refused rather than sent late.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .content import article_key
from .errors import InputError, NewsletterError
from .models import Article
from .project import Project
from .render.templates import literal, plain_environment, render_string


@dataclass
class DigestPlan:
    period: dt.date  # the first day of the month
    slug: str
    path: Path
    articles: list[Article]
    late_by: int  # days past the period's end + max_lateness_days (0 = on time)

    @property
    def label(self) -> str:
        return self.period.strftime("%Y-%m")


def parse_period(text: str | None, today: dt.date) -> dt.date:
    """``YYYY-MM`` as its first day; by default the month before ``today``."""
    if text is None:
        if today <= dt.date(1, 1, 31):
            raise InputError(f"There is no month before {today}.", "Give --today a later date.")
        last_month = today.replace(day=1) - dt.timedelta(days=1)
        return last_month.replace(day=1)
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
        raise InputError(f"--period {text!r} is not a month.", "Write it as YYYY-MM, e.g. 2026-10.")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def period_end(period: dt.date) -> dt.date:
    return period.replace(day=calendar.monthrange(period.year, period.month)[1])


def plan_digest(project: Project, period: dt.date, today: dt.date) -> DigestPlan:
    settings = project.settings
    digest = settings.values["digest"]
    content = settings.values["content"]
    sources = digest["sources"] or [content["articles"], *content["feeds"]]
    end = period_end(period)
    late_by = (today - end).days - digest["max_lateness_days"]
    label = period.strftime("%Y-%m")
    featured = project.store.featured_before(label)
    seen: set[str] = set()
    chosen = []
    for article in project.articles(list(sources)):
        key = article_key(article)
        if article.date is None or not period <= article.date <= end:
            continue
        if key in featured or key in seen:
            continue
        seen.add(key)
        chosen.append(article)
    chosen.sort(key=lambda a: (a.date, a.title), reverse=True)
    chosen = chosen[: digest["max_articles"]]
    slug = f"digest-{label}"
    return DigestPlan(period, slug, settings.campaigns_dir / f"{slug}.md", chosen, max(late_by, 0))


def campaign_text(project: Project, plan: DigestPlan) -> str:
    """The campaign file for the plan: the same inputs always give the same bytes."""
    digest = project.settings.values["digest"]
    env = plain_environment()
    context = {"period": plan.period, "newsletter": project.info(), "articles": plan.articles}
    subject = " ".join(render_string(env, digest["subject"], context, "[digest] subject").split())
    # The subject holds article titles: written so that building the campaign prints
    # them as they are, never runs them as template code.
    meta: dict[str, Any] = {"subject": literal(subject)}
    if plan.articles:
        meta["preheader"] = _preheader(plan.articles)
    meta["template"] = digest["template"]
    if digest["audience"]:
        meta["audience"] = digest["audience"]
    meta["articles"] = [_article_item(project, a) for a in plan.articles]
    intro = digest["intro"] or f"Here is what we published in {plan.period.strftime('%B %Y')}."
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{head}---\n{intro.strip()}\n"


def _preheader(articles: list[Article], limit: int = 110) -> str:
    """ "3 new reads: A; B; and more", cut at a title, never mid-word."""
    text = f"{len(articles)} new read{'s' if len(articles) != 1 else ''}: "
    for number, article in enumerate(articles):
        piece = ("; " if number else "") + article.title
        if len(text) + len(piece) > limit:
            return text + (
                "; and more"
                if number
                else article.title[: limit - len(text)].rsplit(" ", 1)[0] + "…"
            )
        text += piece
    return text


def _article_item(project: Project, article: Article) -> Any:
    source = article.source
    if "#" in source and not Path(source).exists():  # a feed entry: "<feed>#<link>"
        feed, _, link = source.partition("#")
        return {"feed": feed, "url": link} if link else {"feed": feed}
    if source.startswith(("http://", "https://")):
        return source
    path = Path(source)
    try:
        return str(path.resolve().relative_to(project.settings.root))
    except ValueError:
        return str(path)


def write_campaign(project: Project, plan: DigestPlan) -> str:
    """Write the campaign file unless it exists; 'written', 'unchanged' or 'kept'."""
    text = campaign_text(project, plan)
    if plan.path.exists():
        return "unchanged" if plan.path.read_text(encoding="utf-8") == text else "kept"
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan.path.with_name(plan.path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(plan.path)
    return "written"


def refuse_if_late(plan: DigestPlan, project: Project) -> None:
    if plan.late_by > 0:
        days = project.settings.get("digest", "max_lateness_days")
        raise NewsletterError(
            f"The {plan.label} digest is {plan.late_by} day(s) past its deadline "
            f"({days} days after the month ended); it was not sent.",
            "A digest that arrives late (say, after a server came back from a backup) reads "
            "as stale. Send it by hand with `newsletter send " + plan.slug + "` if you still "
            "want it, or raise [digest] max_lateness_days.",
        )
