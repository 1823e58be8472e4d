"""Errors that carry context and say how to fix the problem.

Library code raises these; only the CLI turns them into messages and exit codes.
"""

from __future__ import annotations

import errno
import re

# userinfo in a URL: scheme://user:password@host -> scheme://***@host
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")


def redact(text: str) -> str:
    """``text`` with the credentials of any URL in it (a database URL's password, a token
    in a base URL) replaced by ``***``: messages never carry secrets."""
    return _CREDENTIALS.sub(_hide, text)


def _hide(found: re.Match[str]) -> str:
    userinfo = found.group(0)[len(found.group(1)) : -1]
    if re.fullmatch(r"[A-Z_]+(:[A-Z_]+)?", userinfo):  # a placeholder in a hint: USER:PASSWORD
        return found.group(0)
    return found.group(1) + "***@"


class NewsletterError(Exception):
    """An error the user can fix. ``hint`` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        message = redact(message)
        hint = redact(hint) if hint else hint
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class ConfigError(NewsletterError):
    """newsletter.toml is missing, malformed or inconsistent."""


class InputError(NewsletterError):
    """A file the user gave us (CSV, campaign, article) cannot be used."""


class TemplateError(NewsletterError):
    """A template failed to render or compile."""


class RecipientError(NewsletterError):
    """One reader's message cannot be built or carried (an address the transport cannot
    deliver, a template expression that fails on this reader's data).

    The sender settles that reader ``invalid`` with this message and goes on with
    everyone else.
    """


class DeliveryError(NewsletterError):
    """Sending must stop: the provider refused the request or cannot be reached.

    ``partial`` holds the results of the messages of the batch that were
    already sent before the failure (for transports that send one message at
    a time); the messages without a result were not sent.
    """

    def __init__(self, message: str, hint: str | None = None, partial: list | None = None) -> None:
        super().__init__(message, hint)
        self.partial = partial or []


class CredentialsError(DeliveryError):
    """The provider refused our credentials: nothing can be sent until they are fixed."""


class SendConflict(NewsletterError):
    """Another process is sending the same campaign."""


class SendPaused(NewsletterError):
    """Too many recipients failed: the campaign was paused before it burned the list."""


class CampaignHeld(SendPaused):
    """A person paused or cancelled the campaign (`newsletter schedule`): the send
    stopped before its next batch."""


# errno -> how to fix it. These come from the machine (permissions, a full disk, a
# path that is not what the user said), not from a bug in newsletter.
_OS_FIXES = {
    errno.EACCES: "Check the permissions and owner of that path and of its folder, "
    "or choose another path.",
    errno.EPERM: "Check the permissions and owner of that path and of its folder, "
    "or choose another path.",
    errno.ENOSPC: "The disk is full: free some space, then run the command again.",
    errno.EDQUOT: "Your disk quota is used up: free some space, then run the command again.",
    errno.EROFS: "That file system is read-only: choose a path on another one.",
    errno.EISDIR: "That path is a folder: give the path of a file.",
    errno.ENOTDIR: "A part of that path is a file, not a folder: check the path.",
    errno.ENOENT: "It, or a folder on its path, does not exist: check the path, or create "
    "the folder first.",
    errno.ENAMETOOLONG: "The name is too long for the file system: choose a shorter one.",
    errno.EEXIST: "Something already exists there: move it away or choose another path.",
    errno.EMFILE: "Too many files are open: close other programs or raise the limit "
    "(ulimit -n), then run the command again.",
    errno.ENFILE: "Too many files are open: close other programs or raise the limit "
    "(ulimit -n), then run the command again.",
    errno.EIO: "The disk reported an input/output error: check the disk, then run the "
    "command again.",
}


def os_error(exc: OSError, doing: str = "newsletter") -> NewsletterError | None:
    """An OSError about a file or the disk as an error the user can fix, saying which
    path and how; None for one that is not (a network error, a bug)."""
    fix = _OS_FIXES.get(exc.errno) if exc.errno is not None else None
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None and exc.filename2 is not None:
        where = f"could not move {exc.filename} to {exc.filename2}"
    elif exc.filename is not None:
        where = f"could not read or write {exc.filename}"
    elif fix is not None:
        where = "could not read or write a file"
    else:
        return None
    return NewsletterError(
        f"{doing} {where}: {reason}.",
        (fix or "Check the path, then run the command again.")
        + " This is a problem with the file or the disk, not a bug in newsletter.",
    )


def mask_address(address: str) -> str:
    """An address as a log line may show it: its first character and domain only
    (``a***@example.org``), so a log never holds a subscriber's full address."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"
