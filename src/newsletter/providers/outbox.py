"""The ``outbox`` transport: one RFC 5322 .eml file per message, written atomically.

A file is a message as it would be sent: headers in UTF-8 (RFC 6532) only for a
reader whose local part is not ASCII, which a file can carry.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from ..delivery.base import Transport
from ..dkim import signer_for
from ..errors import RecipientError
from ..files import private_dir, write_private
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage
from . import Option, Provider, Setup

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")
_MAX_PART = 200  # a file name is at most 255 bytes: room for the id, ".eml" and ".tmp"


def _name_part(address: str) -> str:
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
    rehearsal = True  # nothing reaches a reader: a real send may follow
    local_files = True  # the files hold readers' addresses: erasure removes them
    smtputf8 = True
    dkim_signing = True  # with [delivery] dkim_selector

    def __init__(
        self,
        folder: Path,
        batch_size: int | None = None,
        signer: Callable[[bytes], bytes] | None = None,
    ) -> None:
        super().__init__(batch_size)
        self.folder = folder
        self.signer = signer  # DKIM, as the smtp transport signs

    # -- file names: made here only -------------------------------------------
    @staticmethod
    def file_name(subscriber_id: int | None, address: str) -> str:
        """``<subscriber id>-<address>.eml``; a test copy (no subscriber) is
        ``test-<address>.eml``, named after the address as typed."""
        prefix = "test" if subscriber_id is None else f"{subscriber_id:08d}"
        return f"{prefix}-{_name_part(address)}.eml"

    def path_for(self, message: OutgoingMessage) -> Path:
        sid = None if message.factory.test else message.recipient.subscriber_id
        return self.folder / self.file_name(sid, message.recipient.email)

    @staticmethod
    def message_files(outbox: Path) -> list[Path]:
        """Every message file under ``outbox`` (a folder per campaign), with the
        temporary file of a write cut short."""
        if not outbox.is_dir():
            return []
        return sorted([*outbox.glob("*/*.eml*"), *outbox.glob("*/.*.eml.tmp")])

    @classmethod
    def reader_files(
        cls,
        outbox: Path,
        subscriber_ids: Iterable[int],
        addresses: Iterable[str],
        typed: Iterable[str] = (),
    ) -> list[Path]:
        """The message files under ``outbox`` whose names say they were made for a reader
        known by these ids and addresses: ``<id>-<address>.eml`` (and its temporary file),
        and a test copy ``test-<address>.eml`` for an address ``typed`` that survives
        whole in the name (no character replaced, not cut), the file's name in lower case."""
        addresses = list(addresses)
        names = {
            name
            for sid in subscriber_ids
            for address in addresses
            for name in (cls.file_name(sid, address), f".{cls.file_name(sid, address)}.tmp")
        }
        tests = {
            cls.file_name(None, form) for form in typed if "@" in form and _name_part(form) == form
        }
        return [
            path
            for path in cls.message_files(outbox)
            if path.name in names or path.name.lower() in tests
        ]

    def remove_readers_files(self, subscriber_ids: Iterable[int]) -> None:
        """This campaign's files for readers erased while the send ran: the id part of
        the name names one reader."""
        for sid in subscriber_ids:
            for path in self.folder.glob(f"{sid:08d}-*.eml*"):
                path.unlink()

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
            write_private(path, data if self.signer is None else self.signer(data))
            results.append(
                SendResult(
                    message.recipient.subscriber_id,
                    DeliveryStatus.SENT,
                    message_id=message.message_id,
                )
            )
        return results


def _build(setup: Setup) -> OutboxTransport:
    folder = setup.settings.outbox_dir / setup.campaign
    return OutboxTransport(
        folder, batch_size=setup.delivery.batch_size, signer=signer_for(setup.settings)
    )


# the transport of a project that names none; its folder is [delivery] outbox, a key every
# project has (`subscribers forget` reads it whatever the transport), whose default is here
PROVIDER = Provider(
    name="outbox",
    transport=OutboxTransport,
    build=_build,
    default=True,
    common=(Option("outbox", default="outbox"),),
)
