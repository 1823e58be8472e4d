"""The ``outbox`` transport: one RFC 5322 .eml file per message, written atomically."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import RecipientError
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from .base import Transport


class OutboxTransport(Transport):
    """Writes ``<folder>/<subscriber id>-<address>.eml``; a rewrite replaces, never duplicates."""

    name = "outbox"
    max_batch = 500
    resend_safe = True

    def __init__(self, folder: Path, batch_size: int | None = None) -> None:
        super().__init__(batch_size)
        self.folder = folder

    def path_for(self, message: OutgoingMessage) -> Path:
        safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", message.recipient.email)
        prefix = "test" if message.factory.test else f"{message.recipient.subscriber_id:08d}"
        return self.folder / f"{prefix}-{safe}.eml"

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        self.folder.mkdir(parents=True, exist_ok=True)
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
            tmp = path.with_suffix(".eml.tmp")
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
            results.append(
                SendResult(
                    message.recipient.subscriber_id,
                    DeliveryStatus.SENT,
                    message_id=message.message_id,
                )
            )
        return results
