"""The ``outbox`` transport: one RFC 5322 .eml file per message, written atomically.

A file is a message as it would be sent: headers in UTF-8 (RFC 6532) only for a
reader whose local part is not ASCII, which a file can carry.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..errors import RecipientError
from ..files import private_dir, write_private
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from .base import Transport

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")
_MAX_PART = 200  # a file name is at most 255 bytes: room for the id, ".eml" and ".tmp"


def file_name_part(address: str) -> str:
    """The address as part of a file name: safe characters only, and short enough.

    A long address (up to 254 characters) is cut and ends in a hash of the whole
    address, lowercased, so that ``subscribers forget`` finds its files.
    """
    safe = _UNSAFE.sub("_", address)
    if len(safe) <= _MAX_PART:
        return safe
    digest = hashlib.sha256(address.lower().encode("utf-8")).hexdigest()[:16]
    return f"{safe[: _MAX_PART - 17]}-{digest}"


class OutboxTransport(Transport):
    """Writes ``<folder>/<subscriber id>-<address>.eml``; a rewrite replaces, never duplicates."""

    name = "outbox"
    provider = "The outbox"
    max_batch = 500
    resend_safe = True
    smtputf8 = True

    def __init__(self, folder: Path, batch_size: int | None = None) -> None:
        super().__init__(batch_size)
        self.folder = folder

    def path_for(self, message: OutgoingMessage) -> Path:
        prefix = "test" if message.factory.test else f"{message.recipient.subscriber_id:08d}"
        return self.folder / f"{prefix}-{file_name_part(message.recipient.email)}.eml"

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        private_dir(self.folder)
        results = []  # one file per message: a crash leaves whole files or none (rename)
        for message in messages:
            path = self.path_for(message)
            try:
                data = message.as_bytes()
            except RecipientError as exc:
                results.append(
                    SendResult(
                        message.recipient.subscriber_id, DeliveryStatus.INVALID, error=exc.message
                    )
                )
                continue
            write_private(path, data)
            results.append(
                SendResult(
                    message.recipient.subscriber_id,
                    DeliveryStatus.SENT,
                    message_id=message.message_id,
                )
            )
        return results
