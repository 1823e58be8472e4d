"""Sequences: a welcome series and other drips, as files, sent by ``newsletter run``.

``sequences/<name>/*.md`` are the steps, in file-name order: each a campaign file whose
front matter also says ``after:`` (``0d``, ``36h``, ``3d``, ``2w``, ``90m``), the time
after a reader entered the sequence that the step is due. ``[sequences.<name>]`` in
newsletter.toml says who enters (``audience``, as a campaign's) and how overdue a step
added later may be and still reach a reader (``grace``, default ``1d``).

Who enters: readers who become active (a confirmed sign-up, ``subscribers add``,
``resubscribe``) from the moment ``run`` first saw the sequence, and those a
``subscribers import --enter NAME`` enters. A step is a campaign (slug
``<name>--<stem>``) that stays ``sending``: each run adds a delivery for every reader
it has become due for (at most once per reader, ever) and sends them as ``send``
does, through the same ledger, so a rerun, an overlapping run or a kill -9 never
sends a step twice and never skips anyone.

The grace rule: a step reaches a reader only if ``entered_at + after`` is no earlier
than ``first_seen - grace`` (``first_seen``: when ``run`` first saw the step), so a step
added to a live sequence never mails its whole backlog. A reader who is no longer
active, or no longer in the audience, gets no further step.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from .campaigns import SLUG, STEP_SEPARATOR, parse_audience, step_after
from .catalog import rehearsal_transports
from .config import DURATION_EXAMPLES, Settings
from .errors import ConfigError, InputError, NewsletterError, SendConflict
from .models import Audience, CampaignStatus
from .plan import SendContext, SendPlan, prepare_send
from .project import Project
from .send import SendHooks, SendOutcome, run_send
from .store import CampaignRow, Sequences

# a step's campaign in these states gets readers and is sent; paused (or stopped for
# good) it waits for a person
_RUNNING = (CampaignStatus.DRAFT, CampaignStatus.SENDING, CampaignStatus.SENT)


@dataclass(frozen=True, slots=True)
class Step:
    """One step file of a sequence."""

    sequence: str
    stem: str  # the file's name without .md
    after: dt.timedelta
    path: Path

    @property
    def slug(self) -> str:
        return f"{self.sequence}{STEP_SEPARATOR}{self.stem}"


@dataclass(frozen=True, slots=True)
class SequenceFiles:
    """A sequence as its folder and its ``[sequences.<name>]`` section say."""

    name: str
    audience: Audience
    grace: dt.timedelta
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class SequencesRun:
    """What ``run_sequences`` did: each step it sent (or tried), the problems that
    stopped a sequence or a step (the others went on), the readers who entered."""

    outcomes: tuple[SendOutcome, ...] = ()
    problems: tuple[NewsletterError, ...] = ()
    entered: int = 0

    @property
    def exit_status(self) -> int:
        """1 when something needs a person, 3 when some recipients were not delivered."""
        if self.problems:
            return 1
        return max((o.exit_status for o in self.outcomes), default=0)


@dataclass(frozen=True, slots=True)
class StepWaiting:
    """A step's readers still to come, for ``newsletter schedule``: those who entered
    and will get it (active, in the audience, within the grace rule), and when the
    first of them is due (None: nobody waits; a time in the past: the next run)."""

    sequence: str
    step: str
    slug: str
    after: dt.timedelta
    waiting: int
    next_due: dt.datetime | None
    status: str | None = field(default=None)  # the step campaign's; None: never sent


def format_duration(value: dt.timedelta) -> str:
    """A duration as ``after:`` writes it: ``3d``, ``36h``, ``2w``, ``90m``."""
    minutes = int(value.total_seconds() // 60)
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m" if minutes else "0d"


# -- the files ----------------------------------------------------------------------------
def load_sequences(settings: Settings) -> tuple[list[SequenceFiles], list[NewsletterError]]:
    """Every configured sequence that can be read, and what is wrong with the others (a
    section without a folder, a folder without a section, a step's ``after``)."""
    problems: list[NewsletterError] = []
    folder = settings.sequences_dir
    folders = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
    for name in sorted(folders - set(settings.sequences)):
        problems.append(
            ConfigError(
                f"{folder / name}/ is a sequence's folder, but {settings.path} has no "
                f"[sequences.{name}] section; none of its steps was sent.",
                f"Add [sequences.{name}] to newsletter.toml to send it (it may be empty), "
                "or move the folder out of sequences/.",
            )
        )
    found = []
    for name in sorted(settings.sequences):
        try:
            found.append(load_sequence(settings, name))
        except NewsletterError as exc:
            problems.append(exc)
    return found, problems


def load_sequence(settings: Settings, name: str) -> SequenceFiles:
    """Sequence ``name``: its section and its step files, checked."""
    folder = settings.sequences_dir / name
    if not SLUG.match(name) or STEP_SEPARATOR in name:
        raise ConfigError(
            f"[sequences.{name}] in {settings.path}: '{name}' is not a usable sequence name.",
            "Use lowercase letters, digits, '-' or '_' (not '--'), e.g. [sequences.welcome].",
        )
    if not folder.is_dir():
        raise ConfigError(
            f"[sequences.{name}] in {settings.path} has no folder {folder}/; nothing of "
            f"{name} was sent.",
            f"Create {folder}/ with one campaign file per step, each with `after:` in its "
            f"front matter ({DURATION_EXAMPLES}), or remove the section.",
        )
    paths = sorted(folder.glob("*.md"))
    if not paths:
        raise ConfigError(
            f"{folder}/ has no step files (*.md); nothing of {name} was sent.",
            "Add one campaign file per step, e.g. 01-welcome.md with `after: 0d`.",
        )
    steps = [Step(name, p.stem, step_after(settings, p), p) for p in paths]
    for before, step in itertools.pairwise(steps):
        if step.after < before.after:
            raise InputError(
                f"{step.path}: `after: {format_duration(step.after)}` is earlier than "
                f"{before.path.name}'s `after: {format_duration(before.after)}`; steps go "
                "out in file-name order, so their `after` must not decrease. Nothing of "
                f"{name} was sent.",
                "Rename the files so they sort in the order they are sent (01-..., "
                "02-...), or correct `after:`.",
            )
    config = settings.sequences[name]
    audience = parse_audience(
        dict(config.audience) or None, f"[sequences.{name}] in {settings.path}"
    )
    return SequenceFiles(name, audience, config.grace, tuple(steps))


# -- a run ------------------------------------------------------------------------------
def run_sequences(
    project: Project, now: dt.datetime, hooks: SendHooks | None = None
) -> SequencesRun:
    """Send every sequence step that has become due by ``now`` to its readers, each at
    most once: enter the readers who became active since the last run, add each step's
    newly due readers, send them. A problem with one sequence or step (a missing
    folder, a step that fails `check`) stops only that one; the run says it at the end."""
    now = _utc(now)
    ctx = SendContext.of(project)
    entries = project.store.sequences
    found, problems = load_sequences(project.settings)
    outcomes = []
    entered = 0
    for sequence in found:
        since = entries.first_seen(sequence.name, iso(now))
        entered += entries.sync(sequence.name, sequence.audience, since, iso(now))
        for step in sequence.steps:
            try:
                outcome = _run_step(ctx, entries, sequence, step, now, hooks)
            except SendConflict:
                continue  # another run is at work on the step: its claims keep it once
            except NewsletterError as exc:
                problems.append(exc)
                continue
            if outcome is not None:
                outcomes.append(outcome)
    return SequencesRun(tuple(outcomes), tuple(problems), entered)


def _run_step(
    ctx: SendContext,
    entries: Sequences,
    sequence: SequenceFiles,
    step: Step,
    now: dt.datetime,
    hooks: SendHooks | None,
) -> SendOutcome | None:
    """One step: its newly due readers added, its pending ones sent (None: nobody to send)."""
    seen = entries.step_first_seen(step.slug, iso(now))
    window = (iso(parse_iso(seen) - sequence.grace - step.after), iso(now - step.after))
    row = ctx.ledger.campaign(step.slug)
    if row is not None and row.status not in _RUNNING:
        return None  # paused: `newsletter schedule` shows it, a person resumes it
    if not _anything_to_do(ctx, entries, sequence, row, window):
        return None  # a quiet run: nothing compiled, nothing sent
    plan = prepare_send(ctx, step.slug, sequence_run=True)  # a step failing `check` stops here
    row = _step_row(ctx, plan)
    audiences = (sequence.audience, plan.campaign.audience)
    entries.enqueue_step(row.id, sequence.name, audiences, window, plan.transport, iso(now))
    counts = ctx.ledger.delivery_counts(row.id)
    pending = counts.get("pending", 0) + counts.get("sending", 0)
    if not pending:
        return None
    return run_send(ctx, dataclasses.replace(plan, recipients=pending), hooks, auto_submitted=True)


def _anything_to_do(
    ctx: SendContext,
    entries: Sequences,
    sequence: SequenceFiles,
    row: CampaignRow | None,
    window: tuple[str, str],
) -> bool:
    """Whether the step may have a reader to send to: one newly due (in the sequence's
    audience; the step's own is applied once it is read), one pending, or a rehearsal
    to start over from."""
    newly_due, _ = entries.waiting(
        row.id if row else None, sequence.name, (sequence.audience,), *window
    )
    if newly_due or row is None:
        return bool(newly_due)
    counts = ctx.ledger.delivery_counts(row.id)
    if counts.get("pending", 0) or counts.get("sending", 0):
        return True
    return ctx.ledger.only_rehearsed(row, ctx.settings.transport, rehearsal_transports())


def _step_row(ctx: SendContext, plan: SendPlan) -> CampaignRow:
    """The step's campaign row; a step so far only rehearsed (the outbox) starts over for
    its first real send: its due readers are found again and get the real email."""
    ledger = ctx.ledger
    row = ledger.ensure_campaign(plan.slug, plan.campaign.subject)
    if ledger.only_rehearsed(row, plan.transport, rehearsal_transports()):
        ledger.archive_rehearsal(row)
        row = ledger.campaign(plan.slug) or row
    return row


# -- what waits ---------------------------------------------------------------------------
def waiting(project: Project, now: dt.datetime) -> list[StepWaiting]:
    """Each step of each sequence with its readers still to come (as of the last run's
    entries); a NewsletterError when a sequence cannot be read."""
    now = _utc(now)
    found, problems = load_sequences(project.settings)
    if problems:
        raise problems[0]
    entries, ledger = project.store.sequences, project.store.ledger
    rows = []
    for sequence in found:
        for step in sequence.steps:
            seen = entries.step_seen(step.slug)
            since = (parse_iso(seen) if seen else now) - sequence.grace - step.after
            row = ledger.campaign(step.slug)
            audiences = (sequence.audience, _step_audience(project, step))
            count, first = entries.waiting(
                row.id if row else None, sequence.name, audiences, iso(since)
            )
            rows.append(
                StepWaiting(
                    sequence.name,
                    step.stem,
                    step.slug,
                    step.after,
                    count,
                    parse_iso(first) + step.after if first else None,
                    str(row.status) if row else None,
                )
            )
    return rows


def _step_audience(project: Project, step: Step) -> Audience:
    """The step's own audience (a step that cannot be read has none here: `run` says why)."""
    try:
        return project.composer.campaign(step.slug).audience
    except NewsletterError:
        return Audience()


# -- times ---------------------------------------------------------------------------------
def iso(moment: dt.datetime) -> str:
    """A time as the database keeps it: ISO 8601 in UTC, to the second, ``...Z``."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> dt.datetime:
    return _utc(dt.datetime.fromisoformat(text))


def _utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC (a naive time is taken to be UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)
