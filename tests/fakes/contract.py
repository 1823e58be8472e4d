"""What the shared contract tests (``test_transports.py``) need of each provider's fake.

Each fake module ends in a ``Contract`` subclass: the fake, the ``[delivery]`` keys and
environment that point `newsletter send` at it, how it answers a rate limit and an
outage, and what it delivered, in one shape (``Delivered``). The contract tests run
every story against every one of them (``contracts()``): a new provider joins them by
having its fake, ``fakes/<name>.py``, end in its ``Contract``.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, ClassVar

from .base import FakeProvider, Fault


@dataclass
class Delivered:
    """One message as the provider would deliver it to one mailbox."""

    to: list[str]  # bare addresses in To
    copies: list[str]  # cc and bcc
    text: str
    html: str
    list_unsubscribe: str
    list_unsubscribe_post: str
    message_id: str


def from_record(m: dict[str, Any], to: list[str], copies: list[str]) -> Delivered:
    """A message as a JSON-speaking fake recorded it (SendGrid, Mailgun, Resend, Brevo)."""
    return Delivered(
        to=to,
        copies=copies,
        text=m["text"],
        html=m["html"],
        list_unsubscribe=m["headers"]["List-Unsubscribe"],
        list_unsubscribe_post=m["headers"]["List-Unsubscribe-Post"],
        message_id=m["id"],
    )


class Contract:
    """A provider fake plus what `newsletter send` needs to talk to it."""

    transport: ClassVar[str]
    label: ClassVar[str]  # how error messages name the provider
    status: ClassVar[str]  # a delivered recipient's status: "queued" or "sent"
    batch_limit: ClassVar[int]  # recipients per request at most
    env: ClassVar[dict[str, str]]  # the right credentials
    wrong_env: ClassVar[dict[str, str]]  # credentials the provider refuses
    wrong_secret: ClassVar[str]  # the secret in wrong_env, never to be printed
    missing_names: ClassVar[str]  # what the missing-credentials message names
    # subscribers for the batching story, and the sizes of the requests that send them
    batching: ClassVar[tuple[int, list[int]]]
    # a 429 says how long to wait (Retry-After or a rate-limit reset header)
    says_when: ClassVar[bool] = True
    # a repeated request is recognised (an idempotency key): no outcome stays unknown
    idempotent: ClassVar[bool] = False
    # how it answers an address it refuses (TYPO in test_transports): the reader's
    # status, the start of their error, the sizes of the requests; None: it takes it
    refuses_typo: ClassVar[tuple[str, str, list[int]] | None] = None
    fake: FakeProvider

    def delivery(self) -> dict[str, Any]:
        """The [delivery] keys that point `newsletter send` at the fake."""
        return {"transport": self.transport, "base_url": self.fake.url}

    def requests_for(self, recipients: int) -> int:
        """Send requests needed for ``recipients`` when every request succeeds."""
        return -(-recipients // self.batch_limit)

    def delivered(self) -> list[Delivered]:
        raise NotImplementedError

    def request_sizes(self) -> list[int]:
        """Recipients in each request that reached the send endpoint."""
        raise NotImplementedError

    def rate_limited(self) -> Fault:
        """A 429 as the provider sends it, its rate-limit headers (if any) saying "go now"."""
        raise NotImplementedError

    def server_error(self) -> Fault:
        """A 500 as the provider sends it."""
        raise NotImplementedError


def contracts() -> dict[str, type[Contract]]:
    """Each provider's ``Contract``, by transport name: the one its fake module,
    ``fakes/<name>.py``, declares (providers without an HTTP fake, such as smtp and
    outbox, have none)."""
    from newsletter import providers

    found: dict[str, type[Contract]] = {}
    for name in providers.names():
        module_name = f"{__package__}.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        declared = [
            c
            for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, Contract) and c.__module__ == module_name
        ]
        if len(declared) != 1:
            raise TypeError(f"fakes/{name}.py must declare one Contract, not {len(declared)}")
        if declared[0].transport != name:
            raise TypeError(f"fakes/{name}.py declares the transport {declared[0].transport!r}")
        found[name] = declared[0]
    return found
