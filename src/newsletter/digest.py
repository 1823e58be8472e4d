"""The monthly digest: period -> the period's new articles -> a campaign file -> a send.

``run_digest`` is the whole of it in one call (what `newsletter digest` and a Python
cron job run): it holds the period's lock, plans, writes the campaign file, records
the articles, sends it through ``plan`` and ``send`` when asked, and adds a line to
``.newsletter/digest.log`` however the run ends.

Safe to repeat and to overlap: the campaign's identity is the period
(``digest-YYYY-MM``), so the delivery ledger sends it at most once; a lock in
the database keeps two runs from working on one period at the same time; an
article featured in an earlier sent campaign, digest or not (or in another period's
digest file), is not featured again, and the run names it with that campaign; a period that
ended more than ``max_lateness_days`` ago is refused rather than sent late.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .catalog import rehearsal_transports
from .content import article_key
from .errors import InputError, NewsletterError
from .files import write_atomic
from .models import Article
from .plan import SendContext, prepare_send
from .render.templates import literal, plain_environment, render_string
from .send import OutcomeKind, SendHooks, SendOutcome, run_send

if TYPE_CHECKING:
    from .composer import Composer
    from .config import DigestSettings, Settings
    from .project import Project
    from .render import NewsletterInfo
    from .store import Ledger

LOCK_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class DigestPlan:
    period: dt.date  # the first day of the month
    slug: str
    path: Path
    articles: tuple[Article, ...]
    late_by: int  # days past the period's end + max_lateness_days (0 = on time)
    # the period's articles left out because an earlier campaign featured them: each
    # with that campaign's slug
    skipped: tuple[tuple[Article, str], ...] = ()

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


def plan_digest(
    settings: Settings, ledger: Ledger, composer: Composer, period: dt.date, today: dt.date
) -> DigestPlan:
    """The period's articles the ledger has not featured yet (read by ``composer``)."""
    digest = settings.digest
    content = settings.content
    sources = digest.sources or [content.articles, *content.feeds]
    end = period_end(period)
    late_by = (today - end).days - digest.max_lateness_days
    label = period.strftime("%Y-%m")
    featured = ledger.featured_before(label, rehearsal_transports())
    seen: set[str] = set()
    chosen = []
    skipped: dict[str, tuple[Article, str]] = {}
    for article in composer.articles(list(sources)):
        key = article_key(article)
        if article.date is None or not period <= article.date <= end:
            continue
        if key in featured:
            skipped.setdefault(key, (article, featured[key]))
        if key in featured or key in seen:
            continue
        seen.add(key)
        chosen.append(article)
    chosen.sort(key=lambda a: (a.date, a.title), reverse=True)
    chosen = chosen[: digest.max_articles]
    slug = f"digest-{label}"
    path = settings.campaigns_dir / f"{slug}.md"
    by_date = sorted(skipped.values(), key=lambda s: (s[0].date, s[0].title), reverse=True)
    return DigestPlan(period, slug, path, tuple(chosen), max(late_by, 0), tuple(by_date))


def skipped_lines(plan: DigestPlan) -> list[str]:
    """The period's articles an earlier campaign featured, one line each, with that
    campaign: why the digest leaves them out."""
    return [
        f"  skipped {article.date} {article.title}: already featured in {slug}"
        for article, slug in plan.skipped
    ]


def campaign_text(settings: Settings, info: NewsletterInfo, plan: DigestPlan) -> str:
    """The campaign file for the plan: the same inputs always give the same bytes."""
    digest = settings.digest
    env = plain_environment()
    context = {"period": plan.period, "newsletter": info, "articles": plan.articles}
    subject = " ".join(render_string(env, digest.subject, context, "[digest] subject").split())
    # The subject holds article titles: written so that building the campaign prints
    # them as they are, never runs them as template code.
    meta: dict[str, Any] = {"subject": literal(subject)}
    if plan.articles:
        meta["preheader"] = _preheader(plan.articles)
    meta["template"] = digest.template
    if digest.audience:
        meta["audience"] = dict(digest.audience)
    meta["articles"] = [_article_item(settings.root, a) for a in plan.articles]
    intro = digest.intro or f"Here is what we published in {plan.period.strftime('%B %Y')}."
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{head}---\n{intro.strip()}\n"


def _preheader(articles: tuple[Article, ...], limit: int = 110) -> str:
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


def _article_item(root: Path, article: Article) -> Any:
    source = article.source
    if "#" in source and not Path(source).exists():  # a feed entry: "<feed>#<link>"
        feed, _, link = source.partition("#")
        return {"feed": feed, "url": link} if link else {"feed": feed}
    if source.startswith(("http://", "https://")):
        return source
    path = Path(source)
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


class FileState(StrEnum):
    """What a run did with the campaign file."""

    WRITTEN = "written"
    UNCHANGED = "unchanged"  # the same bytes were there
    KEPT = "kept"  # edited by hand: left as it is


def write_campaign(settings: Settings, info: NewsletterInfo, plan: DigestPlan) -> FileState:
    """Write the campaign file unless it exists (a project file: as the umask allows)."""
    text = campaign_text(settings, info, plan)
    if plan.path.exists():
        same = plan.path.read_text(encoding="utf-8") == text
        return FileState.UNCHANGED if same else FileState.KEPT
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(plan.path, text.encode("utf-8"))
    return FileState.WRITTEN


def refuse_if_late(plan: DigestPlan, digest: DigestSettings) -> None:
    if plan.late_by > 0:
        days = digest.max_lateness_days
        raise NewsletterError(
            f"The {plan.label} digest is {plan.late_by} day(s) past its deadline "
            f"({days} days after the month ended); it was not sent.",
            "A digest that arrives late (say, after a server came back from a backup) reads "
            "as stale. Send it by hand with `newsletter send " + plan.slug + "` if you still "
            "want it, or raise [digest] max_lateness_days.",
        )


# -- the whole run ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DigestFile:
    """The campaign file a run wrote (or found), and what the run did with it."""

    path: Path
    slug: str
    articles: tuple[Article, ...]
    state: FileState


@dataclass(frozen=True, slots=True)
class DigestOutcome:
    """What one run did; ``summary`` is its line in ``.newsletter/digest.log``."""

    period: str  # YYYY-MM
    today: dt.date
    file: DigestFile | None  # None: the period had no new articles; nothing was written
    send: SendOutcome | None  # None: not asked to send (or nothing to send it with)
    summary: str
    skipped: tuple[str, ...] = ()  # ``skipped_lines`` of the plan

    @property
    def exit_status(self) -> int:
        return self.send.exit_status if self.send else 0


@dataclass(frozen=True, slots=True)
class DigestPreview:
    """What a run would do (``--dry-run``): the plan and the campaign file it would write."""

    plan: DigestPlan
    text: str  # "" when the period has no new articles

    @property
    def label(self) -> str:
        return self.plan.label


def preview_digest(
    settings: Settings,
    ledger: Ledger,
    composer: Composer,
    period: str | None = None,
    today: dt.date | None = None,
) -> DigestPreview:
    """The digest a run would write for ``period`` (default: the month before ``today``)."""
    day = today or dt.date.today()
    plan = plan_digest(settings, ledger, composer, parse_period(period, day), day)
    text = campaign_text(settings, composer.info(), plan) if plan.articles else ""
    return DigestPreview(plan, text)


def run_digest(
    project: Project,
    period: str | None = None,
    today: dt.date | None = None,
    *,
    send: bool = False,
    hooks: SendHooks | None = None,
    on_written: Callable[[DigestFile], None] | None = None,
) -> DigestOutcome:
    """Write the digest of ``period`` (default: the month before ``today``) and, with
    ``send``, send it; one line in ``.newsletter/digest.log`` however it ends.

    ``on_written`` hears of the file before anything is sent; ``hooks`` are the send's
    (see ``send.run_send``). Errors are raised after the log line is written. It takes
    the ``Project`` for the send; the rest uses its settings, ledger and composer.
    """
    day = today or dt.date.today()
    start = parse_period(period, day)
    label = start.strftime("%Y-%m")
    settings, store, composer = project.settings, project.store, project.composer
    with store.leases.lease(f"digest:{label}", LOCK_SECONDS):  # a second run at once is refused
        summary, code = "", 0
        try:
            plan = plan_digest(settings, store.ledger, composer, start, day)
            if not plan.articles:
                summary = f"no new articles for {label}; nothing written or sent"
                if plan.skipped:
                    summary += f" ({len(plan.skipped)} featured in an earlier campaign)"
                return DigestOutcome(label, day, None, None, summary, tuple(skipped_lines(plan)))
            if send:
                refuse_if_late(plan, settings.digest)
            state = write_campaign(settings, composer.info(), plan)
            file = DigestFile(plan.path, plan.slug, plan.articles, state)
            store.ledger.record_digest(label, [article_key(a) for a in plan.articles])
            summary = f"{len(plan.articles)} article(s), {plan.path.name} {file.state}"
            if on_written is not None:
                on_written(file)
            sent = None
            if send:
                sent = _send(project, plan.slug, hooks)
                summary += f"; campaign {sent.status or 'not sent'}, " + (
                    ", ".join(f"{n} {k}" for k, n in sorted(sent.totals.items())) or "no deliveries"
                )
                if sent.kind is OutcomeKind.DECLINED:
                    summary += "; the send was declined"
                code = sent.exit_status
            return DigestOutcome(label, day, file, sent, summary, tuple(skipped_lines(plan)))
        except NewsletterError as exc:
            summary, code = f"error: {exc.message}", exc.exit_code
            raise
        except KeyboardInterrupt:
            summary, code = "interrupted", 130
            raise
        except Exception as exc:  # the log must not say exit=0 for a run that crashed
            detail = " ".join(str(exc).split())
            summary, code = f"failed unexpectedly: {type(exc).__name__}: {detail}", 1
            raise
        finally:
            log_digest_run(settings.root, label, day, summary, code)


def _send(project: Project, slug: str, hooks: SendHooks | None) -> SendOutcome:
    """The digest's campaign sent as any campaign is, marked as sent by a machine."""
    sending = SendContext.of(project)
    return run_send(sending, prepare_send(sending, slug), hooks, auto_submitted=True)


def log_digest_run(root: Path, label: str, day: dt.date, summary: str, code: int) -> None:
    """One line per run in .newsletter/digest.log: what was selected and sent."""
    log = root / ".newsletter" / "digest.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"{stamp} period={label} today={day} exit={code} {summary}\n")
