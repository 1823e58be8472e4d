"""The one interface the sender needs from a transport, and the HTTP plumbing they share.

A transport takes a batch of messages and answers one ``SendResult`` per
message. It raises only when nothing in the batch can have been sent
(credentials refused, provider down after retries); an outcome it cannot know
(the connection dropped after the request went out) is a result, ``unknown``.
"""

from __future__ import annotations

import email.utils
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import requests

from .. import __version__
from ..errors import DeliveryError
from ..models import DeliveryStatus, SendResult
from ..render import OutgoingMessage

USER_AGENT = f"newsletter/{__version__} (+python-requests)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class Transport(ABC):
    """Sends batches of messages; subclasses set ``name`` and ``max_batch``."""

    name: str = ""
    max_batch: int = 1
    # True when sending a message again after a crash cannot reach the reader twice.
    resend_safe: bool = False

    @property
    def batch_size(self) -> int:
        return self.max_batch

    @abstractmethod
    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        """Send ``messages``; one result per message, in the same order."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def unknown_results(messages: list[OutgoingMessage], error: str) -> list[SendResult]:
    return [
        SendResult(m.recipient.subscriber_id, DeliveryStatus.UNKNOWN, error=error) for m in messages
    ]


class HTTPTransport(Transport):
    """Posts JSON with retries: 429, 5xx and refused connections are retried with
    exponential backoff and jitter (honouring Retry-After); a timeout or a drop
    after the request was sent is not retried, since the provider may have
    accepted it."""

    default_base_url = ""

    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        max_retries: int = 5,
        batch_size: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._batch_size = min(batch_size or self.max_batch, self.max_batch)
        self._sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def close(self) -> None:
        self.session.close()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        """POST, retrying what is safe to retry. Raises ``_Unknowable`` or DeliveryError."""
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                response = self.session.post(url, data=body, headers=headers, timeout=self.timeout)
            except (requests.ConnectTimeout, requests.exceptions.SSLError) as exc:
                problem = f"cannot connect to {self.base_url}: {exc.__class__.__name__}"
            except requests.ConnectionError as exc:
                if _never_connected(exc):
                    problem = f"cannot connect to {self.base_url}"
                else:
                    raise Unknowable(
                        f"the connection to {self.base_url} dropped after the request was sent"
                    ) from exc
            except requests.Timeout as exc:
                raise Unknowable(
                    f"{self.base_url} did not answer within {self.timeout:g} s"
                ) from exc
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                problem = f"{self.base_url} answered HTTP {response.status_code}"
                delay = _retry_after(response)
                if attempt < self.max_retries:
                    self._sleep(delay if delay is not None else _backoff(attempt))
                    attempt += 1
                    continue
                raise DeliveryError(
                    f"{problem} {attempt + 1} times in a row; stopped sending.",
                    "Nothing in the failed batch was sent. Run the same `newsletter send` "
                    "again later to continue where it stopped.",
                )
            if attempt >= self.max_retries:
                raise DeliveryError(
                    f"{problem} (tried {attempt + 1} times); stopped sending.",
                    "Check [delivery] base_url and the network, then run the same "
                    "`newsletter send` again to continue where it stopped.",
                )
            self._sleep(_backoff(attempt))
            attempt += 1


class Unknowable(Exception):
    """The request may or may not have reached the provider."""


def _never_connected(exc: requests.ConnectionError) -> bool:
    text = repr(exc)
    return any(
        s in text
        for s in (
            "NewConnectionError",
            "Connection refused",
            "NameResolution",
            "Failed to establish",
        )
    )


def _backoff(attempt: int) -> float:
    return min(2.0**attempt, 60.0) * (0.5 + random.random() / 2)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 600.0)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return min(max(when.timestamp() - time.time(), 0.0), 600.0) if when else None


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
