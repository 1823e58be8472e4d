"""Errors that carry context and say how to fix the problem.

Library code raises these; only the CLI turns them into messages and exit codes.
"""

from __future__ import annotations


class NewsletterError(Exception):
    """An error the user can fix. ``hint`` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
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
