"""The command line: parse options, call one library function, print.

This is the only module that imports click. Library errors (NewsletterError)
become one-paragraph messages and exit codes here, never tracebacks; so does any
other exception a command lets out (a bug, a full disk), unless -v or
NEWSLETTER_DEBUG=1 asks for the traceback too.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import functools
import json
import os
import re
import sys
import textwrap
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__, providers
from .errors import NewsletterError, os_error, redact
from .memory import limit_arenas
from .models import SubscriberStatus

if TYPE_CHECKING:  # for annotations only: each command imports what it uses when it runs
    from .models import Article
    from .plan import SendPlan, Timing
    from .project import Project
    from .report import Figures
    from .send import SendHooks, SendOutcome, SendProgress

# Terminal control characters (escape sequences, C1 controls, bidirectional overrides)
# in text that came from subscribers, pages or feeds: shown as U+FFFD, never obeyed.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def human(text: str) -> str:
    """Text for a person's terminal: control characters neutralised, URL credentials
    redacted. Data formats (JSON, CSV) are written as they are."""
    return redact(_CONTROL.sub("\ufffd", text))


def say(message: str = "", **style: Any) -> None:
    """Messages and progress go to stderr; stdout is for data scripts read."""
    click.secho(human(message), err=True, **style)


def show(text: str = "", **style: Any) -> None:
    """A line of human-readable output on stdout (tables, article listings)."""
    click.secho(human(text), **style)


_COMMAND = "newsletter.command"  # ctx.meta key: the words of the command that runs


class NewsletterCommand(click.Command):
    """Remembers which command runs, so that an unexpected failure can name it."""

    def invoke(self, ctx: click.Context) -> Any:
        names, outer = [], ctx
        while outer.parent is not None:
            names.append(outer.info_name or "")
            outer = outer.parent
        ctx.meta[_COMMAND] = " ".join(["newsletter", *reversed(names)])
        return super().invoke(ctx)


class NewsletterGroup(click.Group):
    """Turns library errors, and anything else a command lets out, into messages with
    the right exit code."""

    command_class = NewsletterCommand
    group_class = type  # sub-groups (subscribers, events) are NewsletterGroups too

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:  # a sub-group: the outermost one handles errors
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            say(f"Error: {exc.message}", fg="red")
            if exc.hint:
                say(exc.hint)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            say(
                "\nInterrupted. Run the same command again to continue; nothing confirmed "
                "will be sent twice.",
                fg="yellow",
            )
            ctx.exit(130)
        except (click.exceptions.Exit, click.Abort, click.ClickException, EOFError):
            raise  # click's own: --help, usage errors, ctx.exit(n), a declined prompt
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # stdout closed early (`| head`): click exits quietly
            _report_unexpected(ctx, exc)
        except Exception as exc:
            _report_unexpected(ctx, exc)


def _report_unexpected(ctx: click.Context, exc: Exception) -> None:
    """An exception no library code turned into a NewsletterError: one paragraph that
    says which command failed and what to do (and, when asked, the traceback); exit 1.

    A file or disk problem is the user's to fix; anything else is a bug in newsletter.
    """
    command = ctx.meta.get(_COMMAND) or "newsletter"
    again = "`newsletter -v " + command.removeprefix("newsletter").strip() + " ...`"
    details = f"run it again as {again} (or with NEWSLETTER_DEBUG=1) to see the details"
    error = os_error(exc, f"`{command}`") if isinstance(exc, OSError) else None
    if error is not None:
        say(f"Error: {error.message}", fg="red")
        say(f"{error.hint} If it persists, {details}.")
    else:
        text = " ".join(str(exc).split())
        text = text if len(text) <= 400 else text[:400] + "..."
        say(
            f"Error: `{command}` failed unexpectedly: {type(exc).__name__}"
            + (f": {text}" if text else "")
            + ("" if text.endswith(".") else "."),
            fg="red",
        )
        say(
            "This is a bug in newsletter, not something you did wrong. Please report it "
            f"with the command you ran; {details}."
        )
    if _debug(ctx):
        click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
    ctx.exit(1)


def _debug(ctx: click.Context) -> bool:
    """-v before the command, or NEWSLETTER_DEBUG set to anything but 0/false/no/off."""
    flag = os.environ.get("NEWSLETTER_DEBUG", "").strip().lower()
    verbose = ctx.find_root().params.get("verbose")
    return bool(verbose) or flag not in ("", "0", "false", "no", "off")


def guard_wsgi(app: Callable[..., Any], command: str, debug: bool = False) -> Callable[..., Any]:
    """``app`` for the servers `preview` and `serve` run: a request it fails on answers
    500 and prints one paragraph (the traceback only with ``debug``), and the server
    goes on, instead of wsgiref printing a traceback."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        try:
            return app(environ, start_response)
        except Exception as exc:
            request = f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"
            text = " ".join(str(exc).split())[:400]
            say(
                f"Error: `{command}` could not answer {request}: {type(exc).__name__}"
                + (f": {text}" if text else "")
                + ". This is a bug in newsletter; the server goes on. Run it as "
                f"`newsletter -v {command.removeprefix('newsletter ')} ...` (or with "
                "NEWSLETTER_DEBUG=1) to see the details.",
                fg="red",
            )
            if debug:
                click.echo("".join(traceback.format_exception(exc)), err=True, nl=False)
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain; charset=utf-8")],
                sys.exc_info(),
            )
            return [f"newsletter failed on this request: {type(exc).__name__}.\n".encode()]

    return guarded


def with_project(func: Callable[..., Any]) -> Callable[..., Any]:
    """Load newsletter.toml (from --config, $NEWSLETTER_CONFIG or the folders above)."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=True),
        help="The project's newsletter.toml (default: found in this folder or above).",
    )
    @click.pass_context
    @functools.wraps(func)
    def wrapper(ctx: click.Context, config_path: str | None, **kwargs: Any) -> Any:
        from .project import Project

        project = Project.load(config_path or (ctx.obj or {}).get("config"))
        ctx.call_on_close(project.close)
        return func(project, **kwargs)

    return wrapper


def format_option(*choices: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--format, for the commands whose output scripts read (``fmt``; the first is the
    default)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help="How to print the result: a table for people, "
        + " or ".join(c for c in choices if c != "table")
        + " for scripts.",
    )


status_filter_option = click.option(
    "--status",
    type=click.Choice([s.value for s in SubscriberStatus]),
    help="Only subscribers with this status.",
)


def yes_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--yes: do not ask before ``what`` (for scripts and cron)."""
    return click.option("--yes", is_flag=True, help=f"Do not ask before {what}.")


@click.group(cls=NewsletterGroup)
@click.version_option(__version__, prog_name="newsletter")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=True),
    envvar="NEWSLETTER_CONFIG",
    help="The project's newsletter.toml (also $NEWSLETTER_CONFIG).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="When a command fails unexpectedly, show the traceback after the message "
    "(also NEWSLETTER_DEBUG=1). Goes before the command: newsletter -v send ...",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Turn a blog's articles into an email digest and send it, once, to every subscriber.

    Exit status: 0 success; 1 an error to fix (the message says what and how);
    2 a usage error; 3 a send finished (or found nothing to send) but some recipients
    failed (rejected, invalid or failed).
    """
    ctx.obj = {"config": config_path}


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
def init(directory: Path) -> None:
    """Create a working newsletter project in DIRECTORY."""
    from .project import init_project

    written = init_project(directory)
    say(f"Created a newsletter project in {directory.resolve()}:")
    for path in written:
        say(f"  {path.relative_to(directory)}")
    say(
        "\nNext: cd into it, then `newsletter subscribers import subscribers.example.csv`, "
        "`newsletter build welcome` and `newsletter send welcome`."
    )


# -- subscribers ------------------------------------------------------------
@cli.group()
def subscribers() -> None:
    """Import and list subscribers."""


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tag", "tags", multiple=True, help="Add this tag to every imported subscriber.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in SubscriberStatus]),
    default="active",
    show_default=True,
    help="Status for rows without one (e.g. bounced for a mailing tool's 'cleaned' export).",
)
@click.option(
    "--enter",
    metavar="SEQUENCE",
    help="Enter the file's active readers into this sequence now (an import enters none).",
)
@with_project
def subscribers_import(
    project: Project, file: Path, tags: tuple[str, ...], status: str, enter: str | None
) -> None:
    """Import subscribers from a CSV file (header row required; `email` column required)."""
    result = project.import_subscribers(file, tags, status, enter)
    for r in result.rejected:
        say(f"  line {r.line}: {r.value or '(empty)'}: {r.reason}", fg="yellow")
    for note in result.kept_status:
        say(f"  {note} (an import never re-subscribes anyone)")
    for address in result.forgotten:
        say(f"  {address}: erased on request earlier; not imported", fg="yellow")
    separated = "semicolon" if result.delimiter == ";" else "comma"
    say(
        f"Imported {file} ({result.encoding}, {separated}-separated): "
        f"{result.added} added, {result.updated} updated, "
        f"{result.unchanged} unchanged, {result.refused} rejected."
    )
    if enter is not None:
        say(f"{result.entered} reader(s) entered the sequence {enter}.")
    error = result.error()
    if error is not None:
        raise error


@subscribers.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@status_filter_option
@with_project
def subscribers_export(project: Project, file: Path, status: str | None) -> None:
    """Write every subscriber (or those with STATUS) to a CSV FILE that imports back.

    Cells a spreadsheet would run as a formula (=, +, -, @) are neutralised. FILE is
    readable by its owner alone (0600) and written whole or not at all.
    """
    from . import members

    count = members.export_subscribers(project.store.subscribers, file, status)
    say(f"Exported {count} subscriber(s) to {file}.")


@subscribers.command("unsubscribe")
@click.argument("email")
@with_project
def subscribers_unsubscribe(project: Project, email: str) -> None:
    """Unsubscribe EMAIL (by hand, e.g. after a reply asking for it)."""
    from . import members

    if members.unsubscribe(project.store, email):
        say(f"{email} is unsubscribed; no campaign will be sent to them again.")
    else:
        say(f"{email} was already unsubscribed.")


@subscribers.command("forget")
@click.argument("email")
@yes_option("erasing them")
@with_project
def subscribers_forget(project: Project, email: str, yes: bool) -> None:
    """Erase EMAIL's personal data for good (GDPR erasure).

    Only a keyed hash of the address is kept, so it can never be imported again.
    """

    def confirm(address: str) -> bool:
        return yes or _confirm(
            f"Erase everything about {address}? This cannot be undone.",
            "Refusing to erase without confirmation: no terminal.",
            "Add --yes.",
        )

    forgotten = project.forget(email, confirm)
    if forgotten is None:
        raise click.Abort()
    if forgotten.files_removed:
        say(
            f"Removed {forgotten.files_removed} file(s) made for {email} "
            "(outbox messages, build samples)."
        )
    for folder in forgotten.outside:
        say(
            f"Removed the sample made for {email} in {folder}, outside the project "
            "(build --out): remove any copy of it you made by hand."
        )
    if forgotten.known:
        say(f"{email} is erased; its address can never be imported again.")
    else:
        say(f"{email} was not on the list; it is now blocked from future imports.")
    if forgotten.left:
        listed = "\n".join(f"  {path} ({why})" for path, why in forgotten.left)
        raise NewsletterError(
            f"These files made for {email} could not be removed:\n{listed}",
            "Remove them by hand.",
        )


@subscribers.command("history")
@click.argument("email")
@format_option("table", "json")
@with_project
def subscribers_history(project: Project, email: str, fmt: str) -> None:
    """Which campaigns EMAIL got and what happened to each, then their membership
    (sign-up, confirmation, staff actions, unsubscribes).

    JSON: a list of records; a campaign's has campaign, status, sent_at; a membership
    record has campaign null, status "membership", sent_at its time, and action."""
    from . import members

    history = members.history(project.store, email)
    if fmt == "json":
        records = list(history.campaigns) + [
            {"campaign": None, "status": "membership", "sent_at": m["at"], **m}
            for m in history.membership
        ]
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
        return
    say(f"{history.subscriber.email}: {history.subscriber.status}")
    _emit(
        [r | {"events": ", ".join(r["events"])} for r in history.campaigns],
        "table",
        ["campaign", "status", "sent_at", "events", "error"],
    )
    if history.membership:
        say("")
        _emit(
            list(history.membership), "table", ["at", "action", "source", "form_version", "detail"]
        )


@subscribers.command("add")
@click.argument("email")
@click.option("--first-name", default="", metavar="N", help="Their first name.")
@click.option("--last-name", default="", metavar="N", help="Their last name.")
@click.option("--tag", "tags", multiple=True, help="Give them this tag (repeatable).")
@click.option(
    "--consent-source",
    default="",
    metavar="TEXT",
    help="How they gave their consent, kept as proof (e.g. 'signed up at the 2026 conference').",
)
@with_project
def subscribers_add(
    project: Project,
    email: str,
    first_name: str,
    last_name: str,
    tags: tuple[str, ...],
    consent_source: str,
) -> None:
    """Add one person, active at once (you vouch for their consent). An address already
    on the list is left as it is (exit 1, saying what to do instead)."""
    change = project.add_subscriber(email, first_name, last_name, tags, consent_source)
    say(f"Added {change.subscriber.email} (active).")


@subscribers.command("resubscribe")
@click.argument("email")
@click.option(
    "--consent-source",
    required=True,
    metavar="TEXT",
    help="How they asked to come back, kept as proof (required).",
)
@with_project
def subscribers_resubscribe(project: Project, email: str, consent_source: str) -> None:
    """Make someone who unsubscribed and asked to come back active again. Never a
    bounced, complained or erased address (exit 1)."""
    from . import members

    change = members.resubscribe(project.store, email, consent_source)
    if change.changed:
        say(f"{change.subscriber.email} is subscribed again (active).")
    else:
        say(f"{change.subscriber.email} is already active; nothing was changed.")


@subscribers.command("list")
@status_filter_option
@click.option("--tag", help="Only subscribers with this tag.")
@format_option("table", "csv", "json")
@with_project
def subscribers_list(project: Project, status: str | None, tag: str | None, fmt: str) -> None:
    """List subscribers."""
    records = (
        {
            "email": s.email,
            "first_name": s.first_name,
            "last_name": s.last_name,
            "status": str(s.status),
            "tags": list(s.tags),
            "subscribed_at": s.subscribed_at,
            "timezone": s.timezone,
        }
        for s in project.store.subscribers.stream(status=status, tag=tag)
    )
    columns = ["email", "first_name", "last_name", "status", "tags", "subscribed_at", "timezone"]
    _emit(records, fmt, columns)


# -- articles ---------------------------------------------------------------
@cli.command()
@click.argument("sources", nargs=-1)
@format_option("table", "json")
@click.option("--refresh", is_flag=True, help="Fetch URLs again instead of using the cache.")
@with_project
def articles(project: Project, sources: tuple[str, ...], fmt: str, refresh: bool) -> None:
    """Show what SOURCES yield: Markdown or HTML files, folders, feeds, article URLs.

    Without SOURCES: the [content] articles folder and feeds.
    """
    project.refresh = refresh
    found = project.composer.articles(list(sources))
    if fmt == "json":
        click.echo(json.dumps([_article_record(a) for a in found], indent=2, ensure_ascii=False))
        return
    for article in found:
        show(article.title, bold=True)
        byline = " · ".join(
            x for x in (article.author, article.date.isoformat() if article.date else None) if x
        )
        if byline:
            show(f"  {byline}")
        show(f"  url:   {article.url or '-'}")
        show(f"  image: {article.image or '-'}")
        show(f"  words: {article.word_count}  source: {article.source}")
        for number, paragraph in enumerate(article.excerpt.split("\n\n")):
            if number:
                show("  >")
            for line in textwrap.wrap(paragraph, 76):
                show(f"  > {line}")
        show()
    say(f"{len(found)} article(s).")


def _article_record(article: Article) -> dict[str, Any]:
    return {
        "title": article.title,
        "author": article.author,
        "date": article.date.isoformat() if article.date else None,
        "url": article.url,
        "image": article.image,
        "word_count": article.word_count,
        "excerpt": article.excerpt,
        "excerpt_html": article.excerpt_html,
        "source": article.source,
    }


# -- digest -----------------------------------------------------------------
@cli.command()
@click.option("--period", metavar="YYYY-MM", help="The month to cover (default: the previous one).")
@click.option("--today", metavar="YYYY-MM-DD", help="Run as if on this date (default: today).")
@click.option("--send", "send_it", is_flag=True, help="Send the digest after writing it.")
@yes_option("sending (for cron)")
@click.option("--dry-run", is_flag=True, help="Show what the digest would hold; write nothing.")
@click.option("-v", "--verbose", is_flag=True, help="Say what was done even when all went well.")
@with_project
@click.pass_context
def digest(
    ctx: click.Context,
    project: Project,
    period: str | None,
    today: str | None,
    send_it: bool,
    yes: bool,
    dry_run: bool,
    verbose: bool,
) -> None:
    """Write campaigns/digest-YYYY-MM.md from the period's new articles; --send sends it.

    Quiet on success (for cron) unless -v; every run adds a line to
    .newsletter/digest.log. Running it twice sends nothing twice.
    """
    from .digest import DigestFile, FileState, preview_digest, run_digest, skipped_lines

    try:
        day = dt.date.fromisoformat(today) if today else dt.date.today()
    except ValueError:
        raise NewsletterError(
            f"--today {today!r} is not a date.", "Write it as YYYY-MM-DD."
        ) from None
    if dry_run:
        preview = preview_digest(
            project.settings, project.store.ledger, project.composer, period, day
        )
        plan = preview.plan
        say(
            f"Digest {preview.label} (as on {day}): {len(plan.articles)} new article(s)"
            + (f"; {plan.late_by} day(s) too late to send" if plan.late_by else "")
            + "."
        )
        for line in skipped_lines(plan):
            say(line)
        if preview.text:
            say(f"It would write {plan.path}:\n")
            show(preview.text, nl=False)
        say("Dry run: nothing written or sent.")
        return

    def written(file: DigestFile) -> None:
        if verbose or not send_it:
            say(f"{file.path}: {file.state} with {len(file.articles)} article(s):")
            for article in file.articles:
                say(f"  {article.date} {article.title}")
            if file.state is FileState.KEPT:
                say("  (the file was edited by hand: it is kept as it is)")

    with _SendDisplay(yes, quiet=not verbose) as display:
        outcome = run_digest(
            project, period, day, send=send_it, hooks=display.hooks(), on_written=written
        )
    if outcome.file is None:
        say(outcome.summary.capitalize() + ".")
    if outcome.file is None or verbose or not send_it:
        for line in outcome.skipped:
            say(line)
    if outcome.send is not None:
        _show_outcome(outcome.send, quiet=not verbose)
    ctx.exit(outcome.exit_status)


# -- run and schedule ----------------------------------------------------------
def _now_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--now",
        metavar="ISO-DATETIME",
        help="Run as if at this time, e.g. 2026-12-10T09:00+01:00 (default: now; no "
        "offset means UTC).",
    )(func)


def _parse_now(text: str | None) -> dt.datetime:
    from .zones import parse_now

    try:
        return parse_now(text)
    except ValueError as exc:
        raise NewsletterError(f"--now {exc}.", "Nothing was sent.") from None


@cli.command("run")
@_now_option
@click.option("-v", "--verbose", is_flag=True, help="Say what was sent even when all went well.")
@with_project
@click.pass_context
def run_command(ctx: click.Context, project: Project, now: str | None, verbose: bool) -> None:
    """Send everything due: scheduled campaigns, sequence steps, the digest on its
    [digest] schedule. The one cron line (every 5-15 minutes).

    Quiet on success unless -v. Each piece goes through the same ledger as `send`:
    reruns, overlapping runs and a killed run never send twice nor skip anyone.
    Exit 1 when something needs a person, 3 when some recipients were not delivered."""
    from .automation import run_automation

    outcome = run_automation(project, _parse_now(now))
    for done in outcome.done:
        if verbose:
            sent = done.outcome
            counts = f": {sent.delivered} sent, {sent.failed} failed" if sent else ""
            say(f"{done.what}{counts}" + (f" ({done.note})" if done.note else ""))
    for done in outcome.failed:
        say(
            f"{done.what}: some recipients were not delivered; `newsletter report "
            f"{done.outcome.campaign if done.outcome else ''}` lists them.",
            fg="yellow",
        )
    for problem in outcome.problems:
        say(f"Error: {problem.what}: {problem.error.message}", fg="red")
        if problem.error.hint:
            say(problem.error.hint)
    ctx.exit(outcome.exit_status)


@cli.group(invoke_without_command=True)
@_now_option
@format_option("table", "json")
@click.pass_context
def schedule(ctx: click.Context, now: str | None, fmt: str) -> None:
    """What `newsletter run` sends and when: scheduled campaigns, the digest, each
    sequence step with its waiting readers. `schedule pause|resume|cancel CAMPAIGN`."""
    if ctx.invoked_subcommand is not None:
        return
    from .automation import schedule as listing
    from .project import Project

    project = Project.load((ctx.obj or {}).get("config"))
    ctx.call_on_close(project.close)
    rows = [r.as_dict() for r in listing(project, _parse_now(now))]
    if fmt == "table" and not rows:
        say("Nothing is scheduled: no campaign has a send_at, [digest] has no schedule.")
        return
    _emit(rows, fmt, ["kind", "name", "when", "state", "detail"])


@schedule.command("pause")
@click.argument("campaign")
@with_project
def schedule_pause(project: Project, campaign: str) -> None:
    """Pause CAMPAIGN before or during its send: a running send stops at its next batch."""
    from .automation import pause

    row = pause(project, campaign)
    say(f"{row.slug} is paused; `newsletter schedule resume {row.slug}` lets it go on.")


@schedule.command("resume")
@click.argument("campaign")
@with_project
def schedule_resume(project: Project, campaign: str) -> None:
    """Let the next `run` (or `send`) go on with CAMPAIGN where it stopped."""
    from .automation import resume

    row = resume(project, campaign)
    say(f"{row.slug} is {row.status}; the next `newsletter run` goes on with it.")


@schedule.command("cancel")
@click.argument("campaign")
@yes_option("cancelling")
@with_project
def schedule_cancel(project: Project, campaign: str, yes: bool) -> None:
    """Cancel CAMPAIGN for good: the readers still waiting never get it."""
    from .automation import cancel

    if not yes:
        _confirm(
            f"Cancel {campaign} for good? Readers who have not got it yet never will.",
            "Refusing to cancel without confirmation: no terminal.",
            "Add --yes.",
        )
    skipped = cancel(project, campaign)
    say(f"{campaign} is cancelled; {skipped} waiting reader(s) will not get it.")


class LazyChoice(click.Choice):
    """A choice whose values are asked of ``load`` the first time they are needed (for
    the help, a completion or a check), then kept: the providers' registry loads every
    provider's module, which a command should not pay for at each start."""

    def __init__(self, load: Callable[[], Iterable[str]], case_sensitive: bool = True) -> None:
        super().__init__((), case_sensitive)
        del self.choices  # set by Choice; the cached property below gives it instead
        self._load = load

    @functools.cached_property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._load())


def _event_providers() -> list[str]:
    """The providers whose events can be read."""
    return [p.name for p in providers.with_events()]


# -- events and serve -------------------------------------------------------
@cli.group()
def events() -> None:
    """Provider events (bounces, complaints, unsubscribes) from files."""


@events.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--provider",
    required=True,
    type=LazyChoice(_event_providers),
    help="The provider whose export FILE is (its own event format).",
)
@with_project
def events_import(project: Project, file: Path, provider: str) -> None:
    """Apply a provider's events from FILE (a JSON array, or JSON lines).

    A record that cannot be read (a timestamp that is no time, a field of the wrong
    type) is skipped and listed; the others are applied."""
    from . import members

    result = members.import_events(
        project.store.events, file, provider, project.settings.delivery.soft_bounce_limit
    )
    for record in result.skipped:
        say(f"  {record.where}: {record.problem}; skipped", fg="yellow")
    outcomes = result.outcomes
    say(
        f"{sum(outcomes.values())} event(s) from {file}: "
        + (", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())) or "none")
        + (f"; {len(result.skipped)} skipped" if result.skipped else "")
    )
    error = result.error()
    if error is not None:
        raise error


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (behind an HTTPS proxy: 127.0.0.1).",
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0: any free one).",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """Serve the public endpoints: unsubscribe, web version, archive, provider webhooks.

    Runs on waitress with [serve] threads, timeouts and size limits; put an HTTPS
    proxy in front (see the README).
    """
    from .web.serve import create_app
    from .web.server import Limits

    app = create_app((ctx.obj or {}).get("config"), warn=False)
    try:
        limits = Limits.from_settings(app.settings.serve)
        server = _listen(guard_wsgi(app, "newsletter serve", _debug(ctx)), host, port, limits)
        say(
            f"Serving {app.name} at http://{host}:{server.port}/ ({limits.threads} threads; "
            "Ctrl-C stops it)"
        )
        for error in app.startup_errors():
            say(f"Error: {error}", fg="red")
        for note in app.startup_notes():
            say(f"Warning: {note}", fg="yellow")
        server.run()
    finally:
        app.close()  # the confirmation sender finishes its email and stops
    say("Stopped.")


def _listen(app: Callable[..., Any], host: str, port: int, limits: Any) -> Any:
    """A bound server for `serve` and `preview`, or an error a person can act on."""
    from .web.server import Server

    try:
        return Server(app, host, port, limits)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        in_use = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
        raise NewsletterError(
            f"Cannot listen on {host}:{port} ({reason.rstrip('.')}).",
            "Another program may be using the port: pass --port with another number, or 0."
            if in_use
            else "Pass --host an address of this machine (127.0.0.1, or 0.0.0.0 for all).",
        ) from None


# -- archive ----------------------------------------------------------------
@cli.command("archive")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write the archive in (created if missing); other files in it are left alone.",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="Where the folder is published (https://...): the feed's links point there. "
    "Default: the web versions under [newsletter] public_url.",
)
@with_project
def archive_command(project: Project, out: Path, base_url: str | None) -> None:
    """Write the public archive as static files: index.html, feed.xml, c/<campaign>.html.

    The sent campaigns' web versions as stored when they were sent, newest first; a
    campaign with `archive: false` or only rehearsed to the outbox is not listed.
    Files are replaced atomically; only files an earlier run wrote are ever removed.
    """
    from .archive import write_archive

    done = write_archive(project.settings, project.store.ledger, out, base_url)
    say(
        f"Archive of {done.entries} campaign(s) in {done.out}: {len(done.written)} file(s) "
        f"written, {len(done.unchanged)} unchanged, {len(done.removed)} removed."
    )
    for path in done.written:
        say(f"  wrote   {path}")
    for path in done.removed:
        say(f"  removed {path}  (its campaign is no longer archived)")
    for path in done.kept:
        say(
            f"  kept    {path}  (no longer archived, but changed since it was written)",
            fg="yellow",
        )


# -- build ------------------------------------------------------------------
@cli.command()
@click.argument("campaign")
@click.option("--to", "to", metavar="EMAIL", help="Render the sample for this subscriber.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default: build/<campaign>/).",
)
@click.option("--refresh", is_flag=True, help="Fetch article URLs and feeds again.")
@with_project
def build(project: Project, campaign: str, to: str | None, out: Path | None, refresh: bool) -> None:
    """Write CAMPAIGN's HTML, plain text and one sample .eml."""
    from .checks import GMAIL_CLIP_SIZE, clipped, format_size

    project.refresh = refresh
    started = time.perf_counter()
    built = project.composer.build(campaign, out, to)
    say(f"Built in {time.perf_counter() - started:.2f} s:")
    say(f"  {built.html}  ({format_size(built.html_bytes)})")
    say(f"  {built.text}")
    say(f"  {built.eml}")
    if clipped(built.html_bytes):
        say(
            f"Warning: the HTML is over {GMAIL_CLIP_SIZE}, where Gmail clips messages.", fg="yellow"
        )


# -- dkim -------------------------------------------------------------------
@cli.group()
def dkim() -> None:
    """DKIM: the key that signs the smtp and outbox transports' messages."""


def _selector(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from .dkim import SELECTOR

    if not SELECTOR.fullmatch(value):
        raise click.BadParameter(
            f"{value!r} is not a DNS label: use letters, digits and inner hyphens, e.g. news2026."
        )
    return value


@dkim.command("keygen")
@click.option(
    "--selector",
    required=True,
    callback=_selector,
    help="The DNS label the key is published under.",
)
@click.option(
    "--bits",
    type=click.Choice(["1024", "2048", "3072", "4096"]),
    default="2048",
    show_default=True,
    help="The RSA key's size (2048 fits every DNS host; 1024 is the least receivers take).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the private key (default: dkim/<selector>.pem in the project).",
)
@click.option("--force", is_flag=True, help="Replace an existing key (its record stops matching).")
@with_project
def dkim_keygen(project: Project, selector: str, bits: str, out: Path | None, force: bool) -> None:
    """Write a new private key (owner-only) and print the DNS TXT record to publish."""
    from .config import dkim_key_default
    from .dkim import txt_record, write_key

    settings = project.settings
    path = out or settings.resolve(dkim_key_default(selector))
    pem = write_key(path, int(bits), force)
    domain = settings.sender[1].rpartition("@")[2]
    say(f"Wrote the private key {path} (readable by you only; never share it).")
    say(f"Publish this TXT record in the DNS of {domain}:")
    click.echo(txt_record(selector, domain, pem))
    key_line = "" if out is None else f'\ndkim_key_file = "{path}"'
    say(
        "Then sign the smtp and outbox transports' mail with, under [delivery]:\n"
        f'dkim_selector = "{selector}"{key_line}\n'
        "and run `newsletter check CAMPAIGN` to see that the record is found."
    )


# -- check ------------------------------------------------------------------
@cli.command()
@click.argument("campaign")
@click.option(
    "--links",
    is_flag=True,
    hidden=True,
    help="Links are requested unless --offline (kept for scripts).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Ask nothing of the network: no link is requested, no DNS record looked up.",
)
@format_option("table", "json")
@with_project
@click.pass_context
def check(
    ctx: click.Context, project: Project, campaign: str, links: bool, offline: bool, fmt: str
) -> None:
    """Everything that would make CAMPAIGN wrong or non-compliant; exit 1 on errors."""
    from .checks import Level, signup_notes

    problems = project.composer.check(campaign, links=not offline)
    if not offline:
        from .sending_domain import domain_problems

        problems += domain_problems(project.settings)
    errors = [p for p in problems if p.level is Level.ERROR]
    if fmt == "json":
        click.echo(json.dumps([p.as_dict() for p in problems], indent=2, ensure_ascii=False))
    else:
        for p in problems:
            color = "red" if p.level is Level.ERROR else "yellow"
            say(f"{p.level}: {p.message}", fg=color)
            if p.where:
                say(f"    where: {p.where}")
        signup = project.settings.signup
        for note in signup_notes(
            signup.block_disposable, signup.proof_of_work, signup.proof_of_work_max_number
        ):
            say(note)
        warnings = len(problems) - len(errors)
        say(
            f"{campaign}: {len(errors)} error(s), {warnings} warning(s).",
            fg="red" if errors else "green",
        )
    if errors:
        ctx.exit(1)


# -- preview ----------------------------------------------------------------
@cli.command()
@click.argument("campaign")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8025,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0: any free one).",
)
@click.option("--no-open", is_flag=True, help="Do not open a browser.")
@with_project
def preview(project: Project, campaign: str, host: str, port: int, no_open: bool) -> None:
    """Show CAMPAIGN in the browser as a subscriber gets it; reloads when files change."""
    import webbrowser

    from .campaigns import campaign_path
    from .web.preview import PREVIEW_LIMITS, PreviewApp, Watcher, watched_paths

    campaign_path(project.settings, campaign)  # a missing campaign is an error now, not a page
    watcher = Watcher(watched_paths(project.settings)).start()
    app = PreviewApp(project, campaign, watcher)
    guarded = guard_wsgi(app, "newsletter preview", _debug(click.get_current_context()))
    try:
        server = _listen(guarded, host, port, PREVIEW_LIMITS)
    except NewsletterError:
        watcher.stop()
        app.close()
        raise
    app.listening_on(host, server.port)
    url = f"http://{host}:{server.port}/"
    say(
        f"Preview of {campaign} at {url} (it reloads when a file changes; Ctrl-C stops it); "
        f"the campaigns' reports at {url}reports/"
    )
    if not no_open:
        webbrowser.open(url)
    try:
        server.run()
        say("Stopped.")
    finally:
        watcher.stop()
        app.close()


# -- send -------------------------------------------------------------------
@cli.command()
@click.argument("campaign")
@click.option("--dry-run", is_flag=True, help="Show what would be sent, and send nothing.")
@click.option(
    "--test",
    "tests",
    multiple=True,
    metavar="EMAIL",
    help="Send a marked test copy to EMAIL instead (not recorded as a delivery).",
)
@yes_option("sending (for scripts)")
@click.option("--limit", type=click.IntRange(min=1), help="Send to at most N recipients this run.")
@click.option("--retry-failed", is_flag=True, help="Send again to recipients that failed.")
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Send again to recipients whose outcome is unknown (they may get it twice).",
)
@with_project
@click.pass_context
def send(
    ctx: click.Context,
    project: Project,
    campaign: str,
    dry_run: bool,
    tests: tuple[str, ...],
    yes: bool,
    limit: int | None,
    retry_failed: bool,
    retry_unknown: bool,
) -> None:
    """Send CAMPAIGN to its subscribers, each at most once.

    A campaign with a send_at still to come is sent by `newsletter run` at that time;
    sending it now asks first (--yes sends it now)."""
    from .plan import SendContext, prepare_send, retry_statuses, scheduled_timing
    from .send import run_send, send_test_copies

    retry = retry_statuses(failed=retry_failed, unknown=retry_unknown)
    sending = SendContext.of(project)
    plan = prepare_send(sending, campaign, retry=retry, limit=limit)
    timing = None if tests else scheduled_timing(sending, plan, dt.datetime.now(dt.UTC))
    if timing is not None:
        _show_timing(plan, timing)
    if tests:
        _show_warnings(plan)
        for copy in send_test_copies(sending, plan, tests, on_retry=_warn):
            say(
                f"Test copy to {copy.address}: {copy.status}"
                + (f" ({copy.error})" if copy.error else "")
            )
        return
    if dry_run:
        _show_plan(plan, say)
        if plan.already_sent is None:
            if plan.sample:
                more = ", ..." if plan.recipients > len(plan.sample) else ""
                say("For example: " + ", ".join(plan.sample) + more)
            say("Dry run: nothing was sent.")
        return
    with _SendDisplay(yes, quiet=False) as display:
        outcome = run_send(sending, plan, display.hooks())
    ctx.exit(_show_outcome(outcome, quiet=False))


def _warn(text: str) -> None:
    say(text, fg="yellow")


def _show_timing(plan: SendPlan, timing: Timing) -> None:
    say(
        f"{plan.slug} is scheduled for {timing.text}: `newsletter run` sends it then. "
        "Sending it now sends it to every recipient at once, instead.",
        fg="yellow",
    )


def _show_warnings(plan: SendPlan) -> None:
    for problem in plan.outbox_errors:
        say(f"warning (outbox only): {problem.message}", fg="yellow")
    for problem in plan.warnings:
        say(f"warning: {problem.message} ({problem.where})", fg="yellow")


def _show_plan(plan: SendPlan, note: Callable[[str], None]) -> None:
    """The plan's warnings (always) and what it will do (``note``: quiet or not)."""
    _show_warnings(plan)
    done = plan.already_sent
    if done is not None:
        note(
            f"Campaign {plan.slug} was already sent (finished {done.finished_at}); "
            f"nothing to send. {_counts_text(done.totals)}."
        )
        if done.failed:
            say(_failed_text(done.failed, plan.slug), fg="yellow")
        if done.failed or done.unknown:
            note(
                "Use --retry-failed or --retry-unknown to try those recipients again; "
                "`newsletter report` lists them."
            )
        return
    if plan.rehearsed is not None:
        note(
            f"{plan.slug} went only to the outbox so far (a rehearsal: {plan.rehearsed} "
            f"message file(s)); this is its first send through {plan.transport}. The "
            "rehearsal stays in `newsletter report`."
        )
    note(
        f"Campaign {plan.slug}: {plan.recipients} recipient(s) via {plan.transport}, in "
        f"{plan.batches} batch(es) of up to {plan.batch_size}, {plan.concurrency} at a time"
        + (f"; {plan.already_settled} already settled" if plan.already_settled else "")
        + "."
    )
    if plan.estimated_seconds is not None:
        estimate = _duration(plan.estimated_seconds)
        note(f"At {plan.rate_limit:g} messages/s this takes about {estimate}.")


class _SendDisplay:
    """The terminal side of a send: the plan, the question, the progress bar."""

    def __init__(self, yes: bool, quiet: bool) -> None:
        self.yes, self.quiet = yes, quiet
        self.bar: Any = None

    def __enter__(self) -> _SendDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def hooks(self) -> SendHooks:
        from .send import SendHooks

        note = (lambda text: None) if self.quiet else say
        return SendHooks(
            on_plan=lambda plan: _show_plan(plan, note),
            confirm=self.confirm,
            progress=self.progress,
            on_retry=None if self.quiet else _warn,
        )

    def confirm(self, plan: SendPlan) -> bool:
        return self.yes or _confirm(
            f"Send {plan.slug!r} to {plan.recipients} recipient(s) now?",
            "Refusing to send without confirmation: no terminal to ask on.",
            "Add --yes to send from a script or cron.",
        )

    def progress(self, progress: SendProgress) -> None:
        if self.bar is None:
            self.bar = click.progressbar(
                length=progress.total,
                label="Sending",
                file=sys.stderr,
                show_pos=True,
                show_eta=True,
                item_show_func=lambda text: text,
                hidden=self.quiet,
            ).__enter__()
        line = (
            f"{progress.delivered} sent · {progress.not_delivered} not sent · "
            f"{progress.rate:,.0f}/s"
        )
        self.bar.update(progress.batch, line)


def _show_outcome(outcome: SendOutcome, quiet: bool) -> int:
    """What a run did, worded; its exit status."""
    from .send import OutcomeKind

    note = (lambda text: None) if quiet else say
    if outcome.kind is OutcomeKind.DECLINED:
        raise click.Abort()
    if outcome.kind is OutcomeKind.NOTHING_TO_SEND:
        note("Nothing to send.")
        if outcome.campaign_failed:
            say(_failed_text(outcome.campaign_failed, outcome.campaign), fg="yellow")
    if outcome.kind is not OutcomeKind.SENT:  # already sent: the plan said so
        return outcome.exit_status
    note(
        f"Done: {outcome.delivered} sent, {outcome.failed} failed, {outcome.unknown} unknown"
        f" in this run. {_counts_text(outcome.totals)}."
    )
    if outcome.pending:
        say("Some recipients are still pending: run the same command again to continue.")
    if outcome.campaign_unknown:
        say(
            f"The outcome for {outcome.campaign_unknown} recipient(s) is unknown (the "
            "connection dropped after the request went out): they most likely got it. "
            f"`newsletter report {outcome.campaign}` lists them; --retry-unknown would send "
            "to them again, possibly twice.",
            fg="yellow",
        )
    if outcome.campaign_failed:
        say(_failed_text(outcome.campaign_failed, outcome.campaign), fg="yellow")
    return outcome.exit_status


def _failed_text(failed: int, campaign: str) -> str:
    """The campaign's failed recipients, in the words of its totals."""
    return (
        f"{failed} recipient(s) of {campaign} failed: not delivered (`failed` counts every "
        "recipient the totals call rejected, invalid or failed). `newsletter report "
        f"{campaign}` lists them; --retry-failed sends to them again once the cause is fixed."
    )


def _confirm(question: str, refusal: str, hint: str) -> bool:
    """Ask on the terminal (no answers abort); without one, refuse: no one can answer."""
    if not sys.stdin.isatty():
        raise NewsletterError(refusal, hint)
    return click.confirm(question, abort=True, err=True)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _counts_text(counts: dict[str, int]) -> str:
    return "Campaign totals: " + (
        ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    )


# -- report -----------------------------------------------------------------
def _report_all(project: Project, fmt: str) -> None:
    """`report` without CAMPAIGN: every campaign in one line each."""
    from .report import campaign_reports

    summaries = [s.as_dict() for s in campaign_reports(project.store.ledger)]
    if fmt == "json":
        click.echo(json.dumps(summaries, indent=2))
        return
    for r in summaries:
        r["counts"] = ", ".join(f"{n} {s}" for s, n in sorted(r["counts"].items()))
    _emit(summaries, fmt, ["campaign", "status", "started_at", "finished_at", "counts"])


def _report_page(project: Project, campaign: str | None, out: Path | None, no_open: bool) -> None:
    """`report --html`: the page written, opened unless --no-open, its path printed last."""
    ctx = click.get_current_context()
    if ctx.get_parameter_source("fmt") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError(
            "--html and --out write an HTML page; --format is for the table, CSV "
            "and JSON printed to stdout. Give one or the other."
        )
    path = _report_html(project, campaign, out)
    if not no_open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    click.echo(str(path))


def _report_html(project: Project, campaign: str | None, out: Path | None) -> Path:
    """Write CAMPAIGN's report page (the overview without one); where it went."""
    from .report import campaign_report, overview
    from .report_page import campaign_page, default_path, overview_page, write_report

    if campaign is None:
        page = overview_page(overview(project.store), project.settings)
    else:
        found = campaign_report(project.store.ledger, project.store.events, campaign)
        page = campaign_page(found, project.settings)
    path = out if out is not None else default_path(project.settings.root, campaign)
    try:
        return write_report(page, path)
    except OSError as exc:
        raise NewsletterError(
            f"Could not write the report to {path}: {exc.strerror or exc}.",
            "Give --out a file in a folder you can write to.",
        ) from exc


@cli.command()
@click.argument("campaign", required=False)
@format_option("table", "csv", "json")
@click.option(
    "--html",
    "html_page",
    is_flag=True,
    help="Write the report as one HTML page with charts (reports/<slug>.html, or "
    "reports/overview.html without CAMPAIGN) and open it in the browser.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML page to this file instead (implies --html).",
)
@click.option("--no-open", is_flag=True, help="Write the HTML page without opening a browser.")
@with_project
def report(
    project: Project,
    campaign: str | None,
    fmt: str,
    html_page: bool,
    out: Path | None,
    no_open: bool,
) -> None:
    """Who got CAMPAIGN, who did not and why (all campaigns without CAMPAIGN); with
    --html, a page with charts (without CAMPAIGN: every campaign and the list)."""
    from .campaigns import campaign_slug
    from .report import campaign_report

    if html_page or out is not None:
        _report_page(project, campaign, out, no_open)
        return
    if campaign is None:
        _report_all(project, fmt)
        return
    slug = campaign_slug(project.settings, campaign)  # a step's file: <sequence>--<stem>
    found = campaign_report(project.store.ledger, project.store.events, slug)
    if fmt == "json":
        click.echo(json.dumps(found.as_dict(), indent=2, ensure_ascii=False))
        return
    if fmt == "table":
        via = f" via {found.transport}" if found.transport else ""
        say(
            f"{found.campaign}: {found.status}{via}. "
            + ", ".join(f"{n} {s}" for s, n in sorted(found.counts.items()))
        )
        for r in found.rehearsals:
            say(
                f"Rehearsed to the outbox first: {r.messages} message file(s), "
                f"{r.started_at or '?'} to {r.finished_at or '?'}."
            )
        say("Events: " + ", ".join(f"{n} {kind}" for kind, n in found.events.items()))
        say("Figures: " + _figures_line(found.figures))
    _emit(
        (asdict(r) for r in found.recipients),
        fmt,
        ["email", "status", "transport", "provider_message_id", "error", "sent_at"],
    )


def _figures_line(f: Figures) -> str:
    """A campaign's headline figures in one line (readers; clicks only when tracked)."""
    parts = [
        f"audience {f.audience}",
        f"sent {f.sent}",
        f"queued {f.queued}",
        f"delivered {f.delivered}",
        f"bounced {f.bounced_hard} hard, {f.bounced_soft} soft",
        f"complained {f.complained}",
        f"unsubscribed {f.unsubscribed}",
        f"failed {f.failed}",
        f"unknown {f.unknown}",
        f"skipped {f.skipped}",
    ]
    if f.opened is not None:
        parts.append(f"opened {f.opened}")
    if f.clicked is not None:
        parts.append(f"clicked {f.clicked} (and {f.bot_clicked} probable bots)")
    return "; ".join(parts)


# -- output helpers ---------------------------------------------------------
def _emit(records: Any, fmt: str, columns: list[str]) -> None:
    if fmt == "json":
        click.echo(json.dumps(list(records), indent=2, ensure_ascii=False))
        return
    if fmt == "csv":
        from .audience import csv_cell  # formula cells neutralised, as the export does

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for r in records:
            writer.writerow([csv_cell(r.get(c)) for c in columns])
        return
    click.echo(_table(records, columns))


TABLE_CELL = 80  # characters of a cell a table shows; the rest is cut (JSON and CSV have it)


def _table(records: Iterable[dict[str, Any]], columns: list[str]) -> str:
    """Records as a table for people: each column as wide as its widest cell, two spaces
    apart, no rules; cells cut at ``TABLE_CELL`` and made safe for a terminal first.

    The column names go in as the first row rather than as tabulate's headers, which
    tabulate pads with two more spaces than this table has always had."""
    from tabulate import tabulate  # imported when a table is drawn, not at each start

    rows = [[human(_plain(r.get(c))[:TABLE_CELL]) for c in columns] for r in records]
    text = tabulate(
        [columns, *rows], tablefmt="plain", disable_numparse=True, preserve_whitespace=True
    )
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(lines + [""] * (len(rows) + 1 - len(lines)))  # blank last rows stay


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ";".join(map(str, value))
    return str(value)


def main() -> None:
    limit_arenas()  # before any thread starts (a send's workers, the web server's)
    cli(prog_name="newsletter")
