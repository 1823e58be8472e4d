"""`newsletter run` and `newsletter schedule`: what is due, sent through the one ledger.

``run_automation(project, now)`` is one run of the cron line, in order: the digest when
``[digest] schedule`` says so, the scheduled campaigns whose time has come (``send_at``;
with ``local_time`` from its earliest reader's time on, each run sending the readers due
by then), then the sequences' steps (``sequences.run_sequences``). Every piece goes
through ``plan.prepare_send`` and ``send.run_send`` like `newsletter send`, so a rerun,
an overlapping run or a run killed halfway never sends anything twice nor skips anyone:
the ledger's claims decide, not this module. ``now`` is the caller's (``--now``).

Then the sign-ups: the queued confirmation emails that `newsletter serve` has not sent
yet (a server without its own sender, or stopped), and the expired sign-ups deleted.

``schedule(project, now)`` lists what is due and when; ``pause``, ``resume`` and
``cancel`` are a person's hand on one campaign (a running send stops at its next batch).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .campaigns import campaign_path, describe_time, scheduled_heads
from .content import split_front_matter
from .digest import parse_period, period_end, run_digest
from .errors import CampaignHeld, InputError, NewsletterError, SendConflict
from .models import Campaign, CampaignStatus
from .plan import SendContext, first_due, prepare_send
from .send import EXIT_FAILED_RECIPIENTS, SendHooks, SendOutcome, run_send
from .sequences import format_duration, run_sequences, waiting
from .signup import SignupDesk, deliver_confirmations, expire_signups
from .zones import iso

if TYPE_CHECKING:
    from .project import Project
    from .store import CampaignRow

# A scheduled campaign that never began is sent late by at most this much (a missed
# cron, a server back from maintenance); later, it needs a person.
LATE_LIMIT = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Done:
    """One piece a run sent (or tried): what, and the send's outcome."""

    what: str  # "digest 2026-11", "campaign winter-workshop", "sequence step welcome--01"
    outcome: SendOutcome | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something a run could not do that needs a person."""

    what: str
    error: NewsletterError


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one `newsletter run` did."""

    now: dt.datetime
    done: tuple[Done, ...]
    problems: tuple[Problem, ...]

    @property
    def failed(self) -> tuple[Done, ...]:
        """The pieces some of whose recipients were not delivered."""
        return tuple(d for d in self.done if d.outcome and d.outcome.exit_status)

    @property
    def exit_status(self) -> int:
        if self.problems:
            return 1
        return EXIT_FAILED_RECIPIENTS if self.failed else 0


class _Run:
    """A run as it goes (mutable on purpose): the pieces done and the problems met."""

    __slots__ = ("ctx", "done", "now", "problems", "project")

    def __init__(self, project: Project, now: dt.datetime) -> None:
        self.project = project
        self.ctx = SendContext.of(project)
        self.now = now
        self.done: list[Done] = []
        self.problems: list[Problem] = []

    def attempt(self, what: str, action: Any) -> None:
        """Run one piece; a problem is kept (the other pieces still run), a person's pause
        or another process at work on the same piece is no problem."""
        try:
            result = action()
        except CampaignHeld:
            return
        except SendConflict:
            return  # another run works on it: its claims and leases keep it once
        except NewsletterError as exc:
            self.problems.append(Problem(what, exc))
            return
        if result is not None:
            self.done.append(result)


def run_automation(project: Project, now: dt.datetime) -> RunOutcome:
    """Send everything due by ``now``: the digest, scheduled campaigns, sequence steps."""
    run = _Run(project, now)
    _digest(run)
    _campaigns(run)
    _sequences(run)
    _signups(run)
    return RunOutcome(now, tuple(run.done), tuple(run.problems))


# -- the digest ---------------------------------------------------------------------------
def digest_due(project: Project, now: dt.datetime) -> tuple[str, dt.date] | None:
    """(the period, the day to run it as) when the digest's schedule has come this month
    and the period's digest is neither sent nor stopped; None otherwise."""
    monthly = project.settings.digest.monthly
    if monthly is None or monthly.last_due(now) is None:
        return None
    today = now.astimezone(monthly.tz).date()
    label = parse_period(None, today).strftime("%Y-%m")
    row = project.store.ledger.campaign(f"digest-{label}")
    if row is not None and row.status in _FINISHED:
        return None
    if project.store.ledger.is_done(f"digest:{label}"):
        return None
    return label, today


_FINISHED = (CampaignStatus.SENT, CampaignStatus.CANCELLED, CampaignStatus.PAUSED)


def _digest(run: _Run) -> None:
    due = digest_due(run.project, run.now)
    if due is None:
        return
    label, today = due

    def send() -> Done:
        late = _digest_late(run.project, label, today)
        if late:  # said once: no later run tries it again
            run.project.store.ledger.mark_done(f"digest:{label}")
        try:
            outcome = run_digest(run.project, label, today, send=True, hooks=SendHooks())
        except NewsletterError as exc:
            if late:
                raise NewsletterError(
                    exc.message, f"{exc.hint} `newsletter run` does not try it again."
                ) from None
            raise
        if outcome.file is None:  # nothing new that month: not looked at again
            run.project.store.ledger.mark_done(f"digest:{label}")
        return Done(f"digest {label}", outcome.send, outcome.summary)

    run.attempt(f"digest {label}", send)


def _digest_late(project: Project, label: str, today: dt.date) -> bool:
    """Whether the period's digest is past ``max_lateness_days`` (run_digest refuses it)."""
    end = period_end(parse_period(label, today))
    return (today - end).days > project.settings.digest.max_lateness_days


# -- scheduled campaigns --------------------------------------------------------------------
def _campaigns(run: _Run) -> None:
    heads, errors = scheduled_heads(run.project.settings)
    for error in errors:
        run.problems.append(Problem("a scheduled campaign", error))
    for head in heads:
        if _campaign_due(run, head):
            run.attempt(f"campaign {head.slug}", lambda slug=head.slug: _send(run, slug))


def _campaign_due(run: _Run, head: Campaign) -> bool:
    """Whether ``head`` has deliveries to make now (a never-started one missed by more
    than LATE_LIMIT is a problem instead)."""
    ledger = run.ctx.ledger
    row = ledger.campaign(head.slug)
    if row is not None and row.status in _FINISHED:
        return row.status is CampaignStatus.SENT and _only_rehearsed(run, row)
    if row is not None and row.status is CampaignStatus.SENDING:
        return ledger.due_pending(row.id, run.now) > 0
    due = first_due(run.ctx.subscribers, head)
    if due is None or due > run.now:
        return False
    if run.now - due > LATE_LIMIT:
        run.problems.append(
            Problem(
                f"campaign {head.slug}",
                NewsletterError(
                    f"{head.slug} was due at {describe_time(due, head.send_zone)} and was not "
                    "sent; it is more than a day late, so `newsletter run` does not send it.",
                    f"Set a new send_at in {head.path}, or remove send_at and send it with "
                    f"`newsletter send {head.slug}`.",
                ),
            )
        )
        return False
    return True


def _only_rehearsed(run: _Run, row: CampaignRow) -> bool:
    """A campaign sent only to the outbox (a rehearsal) is still to send for real."""
    from .catalog import rehearsal_transports

    transport = run.project.settings.transport
    return row.transport != transport and transport not in rehearsal_transports()


def _send(run: _Run, slug: str) -> Done:
    """The campaign's deliveries due by the run's ``now``, as `send` would make them."""
    plan = prepare_send(run.ctx, slug, now=run.now, on_schedule=True)
    outcome = run_send(run.ctx, plan, SendHooks())
    return Done(f"campaign {slug}", outcome)


# -- sequences ----------------------------------------------------------------------------
def _sequences(run: _Run) -> None:
    """The sequences' due steps (``sequences.run_sequences``)."""

    def steps() -> None:
        result = run_sequences(run.project, run.now, SendHooks())
        for outcome in result.outcomes:
            run.done.append(Done(f"sequence step {outcome.campaign}", outcome))
        for problem in result.problems:
            run.problems.append(Problem("sequences", problem))

    run.attempt("sequences", steps)


# -- sign-ups ------------------------------------------------------------------------------
def _signups(run: _Run) -> None:
    """Queued confirmation emails sent, expired sign-ups deleted; nothing said when there
    was nothing to do."""
    project = run.project
    desk = SignupDesk.of(project.settings, project.store, project.composer)

    def confirmations() -> Done | None:
        sent = deliver_confirmations(desk, run.now)
        return Done("sign-up confirmations", note=f"{sent} sent") if sent else None

    def expiry() -> Done | None:
        requests, people = expire_signups(desk, run.now)
        if not (requests or people):
            return None
        return Done(
            "expired sign-ups", note=f"{requests} requests and {people} pending people deleted"
        )

    run.attempt("sign-up confirmations", confirmations)
    run.attempt("expired sign-ups", expiry)


# -- `newsletter schedule` --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One line of `newsletter schedule`: what, when, and where it stands."""

    kind: str  # campaign, digest, sequence
    name: str
    when: str  # as people read it ("" when not known)
    state: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "when": self.when,
            "state": self.state,
            "detail": self.detail,
        }


def schedule(project: Project, now: dt.datetime) -> list[ScheduleRow]:
    """The scheduled campaigns, the digest's next time, each sequence step's waiting
    readers: what `newsletter run` sends and when."""
    heads, errors = scheduled_heads(project.settings)
    rows = [ScheduleRow("campaign", "?", "", "error", e.message) for e in errors]
    rows += [_campaign_row(project, head, now) for head in heads]
    digest = _digest_row(project, now)
    if digest is not None:
        rows.append(digest)
    rows += _sequence_rows(project, now)
    return rows


def _campaign_row(project: Project, head: Campaign, now: dt.datetime) -> ScheduleRow:
    ledger = project.store.ledger
    row = ledger.campaign(head.slug)
    assert head.send_at is not None
    when = describe_time(head.send_at, head.send_zone) + (" local" if head.local_time else "")
    if row is None or row.status is CampaignStatus.DRAFT:
        due = first_due(project.store.subscribers, head) or head.send_at
        state = "waiting" if due > now else ("due" if now - due <= LATE_LIMIT else "missed")
        detail = f"first reader at {iso(due)}" if head.local_time else ""
        return ScheduleRow("campaign", head.slug, when, state, detail)
    state = str(row.status)
    if row.status is CampaignStatus.PAUSED:
        state = "paused" if row.paused_by else "paused (too many failed)"
    detail = ""
    if row.status in (CampaignStatus.SENDING, CampaignStatus.PAUSED):
        next_at, waiting = ledger.next_due(row.id)
        if waiting:
            detail = f"{waiting} reader(s) wait, the next at {next_at}"
    elif row.finished_at:
        detail = f"finished {row.finished_at}"
    return ScheduleRow("campaign", head.slug, when, state, detail)


def _digest_row(project: Project, now: dt.datetime) -> ScheduleRow | None:
    monthly = project.settings.digest.monthly
    if monthly is None:
        return None
    due = digest_due(project, now)
    if due is not None:
        return ScheduleRow("digest", f"digest-{due[0]}", "now", "due", "the next `run` sends it")
    moment = monthly.next_after(now)
    local = moment.astimezone(monthly.tz)
    label = parse_period(None, local.date()).strftime("%Y-%m")
    return ScheduleRow(
        "digest", f"digest-{label}", describe_time(moment, monthly.zone_label), "waiting"
    )


def _sequence_rows(project: Project, now: dt.datetime) -> list[ScheduleRow]:
    """Each sequence step and its waiting readers (``sequences.waiting``)."""
    try:
        steps = waiting(project, now)
    except NewsletterError as exc:
        return [ScheduleRow("sequence", "?", "", "error", exc.message)]
    return [
        ScheduleRow(
            "sequence",
            step.slug,
            f"after {format_duration(step.after)}",
            f"{step.waiting} waiting" + (f" ({step.status})" if step.status == "paused" else ""),
            f"the next at {iso(step.next_due)}" if step.next_due else "",
        )
        for step in steps
    ]


# -- pause, resume, cancel --------------------------------------------------------------------
def _named(project: Project, name: str) -> tuple[str, str]:
    """(slug, subject) of the campaign ``name``: its file's, or the ledger's once the
    file is gone."""
    row = project.store.ledger.campaign(name)
    try:
        path = campaign_path(project.settings, name)
    except InputError:
        if row is None:
            raise
        return row.slug, row.subject
    meta, _ = split_front_matter(path.read_text(encoding="utf-8").lstrip("\ufeff"), str(path))
    return path.stem, str(meta.get("subject") or path.stem)


def pause(project: Project, name: str) -> CampaignRow:
    """Pause the campaign, before or during its send; `run` and `send` leave it alone."""
    slug, subject = _named(project, name)
    _refuse_if_over(project.store.ledger.campaign(slug), slug, "pause")
    return project.store.ledger.pause(slug, subject)


def resume(project: Project, name: str) -> CampaignRow:
    """Let the next `run` (or `send`) go on with a paused campaign, where it stopped."""
    slug, _ = _named(project, name)
    ledger = project.store.ledger
    row = ledger.campaign(slug)
    if row is None or row.status is not CampaignStatus.PAUSED:
        state = row.status if row is not None else "never sent"
        raise InputError(
            f"{slug} is not paused (it is {state}); there is nothing to resume.",
            "`newsletter schedule` lists each campaign's state.",
        )
    ledger.resume(row.id)
    return ledger.campaign(slug) or row


def cancel(project: Project, name: str) -> int:
    """Cancel the campaign for good: its readers still waiting are settled as skipped
    ("cancelled"); how many."""
    slug, subject = _named(project, name)
    _refuse_if_over(project.store.ledger.campaign(slug), slug, "cancel")
    return project.store.ledger.cancel(slug, subject)


def _refuse_if_over(row: CampaignRow | None, slug: str, verb: str) -> None:
    """A campaign already sent or cancelled has nothing left to ``verb``."""
    if row is not None and row.status in (CampaignStatus.SENT, CampaignStatus.CANCELLED):
        raise InputError(
            f"{slug} was already {row.status}; there is nothing to {verb}.",
            f"`newsletter report {slug}` shows who got it.",
        )
