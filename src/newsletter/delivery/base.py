"""The one interface the sender needs from a transport, and what HTTP transports share.

A transport takes a batch of messages and answers one ``SendResult`` per
message. It raises ``DeliveryError`` only for what stops the whole send
(credentials refused, provider down after retries), and then says which
messages of the batch were already sent; an outcome it cannot know (the
connection dropped after the request went out) is a result, ``unknown``.

HTTP transports follow one template (after django-anymail's backends):
``build_request`` -> ``post`` (with retries) -> ``parse_response``.
"""

from __future__ import annotations

import email.utils
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from .. import __version__
from ..addresses import Carrier
from ..errors import CredentialsError, DeliveryError, NewsletterError
from ..models import DeliveryStatus, SendResult
from .retry import RetryPolicy, TryAgain

if TYPE_CHECKING:  # the messages' interface only: delivery never renders
    import socket

    from ..render import OutgoingMessage

USER_AGENT = f"newsletter/{__version__}"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_WAIT = 600.0


class Transport(ABC):
    """Sends batches of messages; subclasses set ``name`` and ``max_batch``."""

    name: str = ""
    provider: str = ""  # how messages to the user name it
    max_batch: int = 1
    # True when sending a message again after a crash cannot reach the reader twice.
    resend_safe: bool = False
    # True when its sends are rehearsals: nothing reaches a reader, and a real send of
    # the same campaign may follow (the ledger keeps a summary, then starts over).
    rehearsal: bool = False
    # True when it writes readers' messages to local files, which erasing a reader
    # (``subscribers forget``) must remove.
    local_files: bool = False
    # True when a request carries one body for all its messages (with per-reader
    # substitutions): the sender then gives it batches of a single campaign variant.
    shared_body: bool = False
    # True when it signs messages itself, with the [delivery] dkim_selector key (DKIM);
    # the API providers sign with the domain verified with them.
    dkim_signing: bool = False
    # Can it carry a non-ASCII local part (RFC 6531 SMTPUTF8, RFC 6532 UTF-8 headers)?
    # True, False, or None when only the connection can tell (SMTP: the server's EHLO).
    smtputf8: bool | None = False

    @classmethod
    def carrier(cls) -> Carrier:
        """What this transport can carry: the check every reader's address goes through."""
        return Carrier(cls.provider or cls.name, cls.smtputf8)

    def __init__(self, batch_size: int | None = None) -> None:
        self._batch_size = min(batch_size or self.max_batch, self.max_batch)
        # told of each retry ("Postmark answered 503; retrying in 4 s (attempt 2 of 6)"),
        # from the worker thread that waits: the CLI prints it
        self.on_retry: Callable[[str], None] | None = None

    def notify_retry(self, problem: str, wait: float, attempt: int, attempts: int) -> None:
        if self.on_retry is not None:
            self.on_retry(f"{problem}; retrying in {wait:.0f} s (attempt {attempt} of {attempts})")

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @abstractmethod
    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        """Send ``messages``; one result per message, in the same order."""

    # -- what a ``local_files`` transport wrote, for erasure (the others wrote nothing) ----
    @staticmethod
    def message_files(folder: Path) -> list[Path]:
        """Every message file it wrote under ``folder`` (a folder per campaign)."""
        return []

    @classmethod
    def reader_files(
        cls,
        folder: Path,
        subscriber_ids: Iterable[int],
        addresses: Iterable[str],
        typed: Iterable[str] = (),
    ) -> list[Path]:
        """The message files under ``folder`` its names say were made for these readers."""
        return []

    def remove_readers_files(self, subscriber_ids: Iterable[int]) -> None:  # noqa: B027
        """Remove what this send wrote for readers erased while it ran (optional hook)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class OneAtATime(Transport):
    """A transport that sends a batch message by message (SMTP, SES).

    When sending must stop part-way, the error carries the results of the
    messages already sent; the rest of the batch was not sent.
    """

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        done: list[SendResult] = []
        for message in messages:
            try:
                done.append(self.send_one(message))
            except DeliveryError as exc:
                exc.partial = done
                raise
            except NewsletterError as exc:  # e.g. a server that would take a password in clear
                raise DeliveryError(exc.message, exc.hint, partial=done) from exc
        return done

    @abstractmethod
    def send_one(self, message: OutgoingMessage) -> SendResult: ...


def results(
    messages: list[OutgoingMessage],
    status: DeliveryStatus,
    error: str | None = None,
    message_id: str | None = None,
    raw: Any = None,
) -> list[SendResult]:
    """The same outcome for every message of a batch."""
    return [
        SendResult(m.recipient.subscriber_id, status, message_id=message_id, error=error, raw=raw)
        for m in messages
    ]


class Unknowable(Exception):
    """The request may or may not have reached the provider."""


class Body:
    """A request body kept as the byte pieces it was written in (shared pieces of the
    campaign among them): its length is known (Content-Length, not chunked), and it is
    sent in chunks joined as it goes, so a batch is never held whole in memory. It can
    be sent again (a retry) and read whole with ``bytes()``."""

    __slots__ = ("pieces", "size")
    chunk = 256 * 1024  # bytes joined for each write

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.size = sum(map(len, pieces))

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces)

    def __iter__(self) -> Iterator[bytes]:
        chunk: list[bytes] = []
        size = 0
        for piece in self.pieces:
            chunk.append(piece)
            size += len(piece)
            if size >= self.chunk:
                yield b"".join(chunk)
                chunk, size = [], 0
        if chunk:
            yield b"".join(chunk)


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    path: str
    body: bytes | Body | None = None
    headers: dict[str, str] = field(default_factory=dict)
    data: Any = None  # form fields (Mailgun)
    files: Any = None
    auth: tuple[str, str] | None = None


class HTTPTransport(Transport):
    """Posts with retries: 429, 5xx and refused connections are retried with
    exponential backoff and jitter, honouring Retry-After and rate-limit reset
    headers, and every worker waits out a 429 together. A timeout or a drop
    after the request was sent is not retried (the provider may have taken it)
    unless the transport's requests are idempotent."""

    default_base_url = ""
    credentials_hint = ""
    # True when the provider recognises a repeated request (an idempotency key),
    # so an unknowable outcome can be retried without a second copy.
    idempotent_requests = False
    # Messages a request, when a batch (what is claimed and settled at once, up to
    # ``max_batch``) may hold more: the batch is then posted as several requests in
    # turn by its worker. A claim and a settle serve several requests, and the bytes in
    # flight stay those of ``concurrency`` requests. None: one request a batch.
    per_request: int | None = None

    def __init__(
        self,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        batch_size: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(batch_size)
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries, sleep)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._pause_lock = threading.Lock()
        self._pause_until = 0.0

    @property
    def session(self) -> requests.Session:
        """One session (and connection pool) per worker thread."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            # the environment read once for base_url (its proxy, a CA bundle), not at each
            # request; never ~/.netrc: a provider gets only the credentials it is given
            session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                session.verify = bundle
            session.trust_env = False
            self._local.session = session
            with self._pause_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._pause_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    # -- the template ---------------------------------------------------------
    @abstractmethod
    def build_request(self, messages: list[OutgoingMessage]) -> HTTPRequest: ...

    @abstractmethod
    def parse_response(
        self, response: requests.Response, messages: list[OutgoingMessage]
    ) -> list[SendResult]: ...

    def send_batch(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        """The batch as requests of ``per_request`` messages, posted in turn.

        A request that fails ends the batch: its error carries the results of the
        requests before it. After a request whose outcome is lost (all ``unknown``) the
        rest of the batch is not posted: those messages get no result and go back to be
        sent later, as when the batch had been several."""
        size = self.per_request or len(messages)
        if len(messages) <= size:
            return self.send_request(messages)
        done: list[SendResult] = []
        for start in range(0, len(messages), size):
            try:
                found = self.send_request(messages[start : start + size])
            except DeliveryError as exc:
                exc.partial = done + exc.partial
                raise
            done += found
            if found and all(r.status is DeliveryStatus.UNKNOWN for r in found):
                break
        return done

    def send_request(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        """One request for ``messages``: one result per message, in the same order."""
        try:
            request = self.build_request(messages)
        except Exception as exc:  # nothing was sent: the batch goes back to the queue
            raise DeliveryError(
                f"Could not prepare the {self.provider} request "
                f"({exc.__class__.__name__}: {exc}); nothing in that batch was sent.",
                "Please report this problem with the output of the same command run with "
                "NEWSLETTER_DEBUG=1.",
            ) from exc
        try:
            response = self.post(request)
        except Unknowable as exc:
            return results(messages, DeliveryStatus.UNKNOWN, str(exc))
        if response.status_code in (401, 403):
            raise self.credentials_error(response)
        return self.parse_response(response, messages)

    def credentials_error(self, response: requests.Response) -> CredentialsError:
        return CredentialsError(
            f"{self.provider} refused the credentials (HTTP {response.status_code}: "
            f"{_short(response.text)}).",
            f"{self.credentials_hint} Nothing in this batch was sent.",
        )

    # -- HTTP with retries ----------------------------------------------------
    def post(self, request: HTTPRequest) -> requests.Response:
        """POST, retrying what is safe to retry. Raises ``Unknowable`` or DeliveryError."""
        url = self.base_url + request.path
        maybe_sent = False  # an earlier attempt may have reached the provider

        def attempt(number: int) -> requests.Response:
            nonlocal maybe_sent
            self._wait_for_pause()
            try:
                response = self.session.post(
                    url,
                    data=request.body if request.body is not None else request.data,
                    files=request.files,
                    headers=request.headers,
                    auth=request.auth,
                    timeout=self.timeout,
                    allow_redirects=False,  # never send a message (or a key) on elsewhere
                )
            except (requests.ConnectTimeout, requests.exceptions.SSLError) as exc:
                raise TryAgain(
                    f"cannot connect to {self.base_url} ({exc.__class__.__name__})"
                ) from exc
            except requests.ConnectionError as exc:
                if not _never_connected(exc) and not self.idempotent_requests:
                    raise Unknowable(
                        f"the connection to {self.base_url} dropped after the request was sent"
                    ) from exc
                maybe_sent = maybe_sent or not _never_connected(exc)
                raise TryAgain(f"cannot connect to {self.base_url}") from exc
            except requests.Timeout as exc:
                problem = f"{self.base_url} did not answer within {self.timeout:g} s"
                if not self.idempotent_requests:
                    raise Unknowable(problem) from exc
                maybe_sent = True
                raise TryAgain(problem) from exc
            if 300 <= response.status_code < 400:
                raise self.redirect_error(response)
            if response.status_code not in RETRY_STATUSES:
                busy = self.still_working(response)
                if busy is not None:  # asked again within the same budget of attempts
                    raise TryAgain(busy, outcome=response)
                return response
            delay = retry_delay(response)
            if response.status_code == 429:  # every worker waits it out
                delay = self.retry.wait_before(number, delay)
                self._pause_all(delay)
            raise TryAgain(f"{self.provider} answered HTTP {response.status_code}", delay)

        def give_up(last: TryAgain, attempts: int) -> requests.Response:
            if isinstance(last.outcome, requests.Response):  # still working: its answer
                return last.outcome
            if maybe_sent:
                raise Unknowable(f"{last.problem}, after {attempts} attempts")
            raise DeliveryError(
                f"{last.problem}; gave up after {attempts} attempts and stopped sending.",
                "Nothing in the failed batch was sent. Check [delivery] base_url, the "
                "provider's status and the network, then run the same `newsletter send` "
                "again: it continues where it stopped.",
            )

        return self.retry.run(attempt, give_up, self.notify_retry)

    def still_working(self, response: requests.Response) -> str | None:
        """Why an answer says the provider is still working on this very request (then it
        is asked again, as a 5xx would be, within the one ``RetryPolicy``), or None."""
        return None

    def redirect_error(self, response: requests.Response) -> DeliveryError:
        """An API that answers with a redirect did not take the request: nothing was sent,
        and the request (with its key) is not sent on to wherever the redirect points."""
        target = response.headers.get("Location") or "an address it did not give"
        return DeliveryError(
            f"{self.provider} answered HTTP {response.status_code}, a redirect to {target}; "
            "nothing in the batch was sent, and it was not sent on there.",
            f"Check [delivery] base_url ({self.base_url}): it must be the provider's API "
            "address itself. A redirect usually means a wrong scheme or host, or a proxy.",
        )

    def _pause_all(self, seconds: float) -> None:
        with self._pause_lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def _wait_for_pause(self) -> None:
        with self._pause_lock:
            wait = self._pause_until - time.monotonic()
        if wait > 0:
            self.retry.sleep(wait)


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


def retry_delay(response: requests.Response) -> float | None:
    """Seconds to wait, from Retry-After or a rate-limit reset header, if any can be read.

    Garbage (``soon-ish``, ``nan``) is ignored, so backoff applies; several values (a
    header sent twice arrives as ``1, 1``) take the largest; a date counts from now.
    """
    found = _seconds(response.headers.get("Retry-After"), reset=False)
    for name in ("X-RateLimit-Reset", "RateLimit-Reset", "X-Sib-RateLimit-Reset"):
        if found is None:
            found = _seconds(response.headers.get(name), reset=True)
    return found


def _seconds(value: str | None, reset: bool) -> float | None:
    """The largest wait ``value`` gives: seconds, an HTTP date, or (``reset``) an epoch."""
    if not value or not value.strip():
        return None
    waits = []
    whole = _http_date(value)
    parts = [value] if whole is not None else value.split(",")
    for part in parts:
        wait = _http_date(part)
        if wait is None:
            try:
                number = float(part.strip())
            except ValueError:
                continue
            if not math.isfinite(number) or number < 0:
                continue
            if reset:
                # an epoch in seconds (SendGrid) or milliseconds, or seconds from now
                # (Resend, Brevo)
                if number > 100_000_000_000:
                    number /= 1000
                if number > 1_000_000_000:
                    number -= time.time()
            wait = number
        waits.append(_clamp(wait))
    return max(waits) if waits else None


def _http_date(text: str) -> float | None:
    """Seconds from now until an HTTP date, or None if ``text`` is not one."""
    try:
        when = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    try:
        return when.timestamp() - time.time()
    except (OverflowError, OSError, ValueError):
        return None


def _clamp(seconds: float) -> float:
    return min(max(seconds, 0.0), MAX_WAIT)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "") if text else "no message"


def json_array(items: Iterable[bytes]) -> bytes:
    """A JSON array from already-serialised items, written in one pass (one copy)."""
    out = [b"["]
    for item in items:
        out += (item, b",")
    if len(out) > 1:
        out.pop()  # the last comma
    out.append(b"]")
    return b"".join(out)


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


_IOV_MAX = 1024  # buffers one sendmsg takes (POSIX's least IOV_MAX)


def send_gathered(sock: socket.socket, pieces: list[bytes]) -> None:
    """``sock.sendall(b"".join(pieces))`` without the join: ``sendmsg`` until all went."""
    left: list[bytes | memoryview] = list(pieces)
    while left:
        sent = sock.sendmsg(left[:_IOV_MAX])
        done = 0
        while done < len(left) and sent >= len(left[done]):
            sent -= len(left[done])
            done += 1
        del left[:done]
        if sent:  # part of the first one went
            left[0] = memoryview(left[0])[sent:]
