"""One retry policy for every transport: how often to try again, and how long to wait.

HTTP requests (429, 5xx, refused connections), Resend's batch still in progress (409),
SES throttling and server errors, SMTP connections and SMTP throttling replies all retry
the same way: an attempt that may succeed later raises ``TryAgain``; the policy waits
what the provider asked for (a Retry-After or rate-limit reset header, read by the
transport) or else an exponential backoff with full jitter, tells the transport (which
tells the user: "... retrying in 4 s (attempt 2 of 6)"), and tries again, at most
``max_retries`` times. Then the transport's ``give_up`` decides: an error, or the last
outcome as a result.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
MAX_BACKOFF = 60.0

# problem, seconds to wait, the attempt about to be made, attempts in all
Notify = Callable[[str, float, int, int], None]


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: 0.5-1 s, 1-2 s, 2-4 s, ... up to 60 s."""
    return min(2.0**attempt, MAX_BACKOFF) * (0.5 + random.random() / 2)


class TryAgain(Exception):
    """An attempt that may succeed if made again.

    ``delay``: the seconds the provider asked us to wait, if it said (else backoff);
    ``outcome``: what the attempt got, for ``give_up`` to use when no attempt is left.
    """

    def __init__(self, problem: str, delay: float | None = None, outcome: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.delay = delay
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``max_retries`` attempts after the first; ``sleep`` waits (tests pass a
    clock's)."""

    max_retries: int = 5
    sleep: Callable[[float], None] = time.sleep

    @property
    def attempts(self) -> int:
        return self.max_retries + 1

    def wait_before(self, attempt: int, delay: float | None = None) -> float:
        """Seconds to wait after attempt number ``attempt`` (0 for the first) failed."""
        return delay if delay is not None else backoff(attempt)

    def run(
        self,
        attempt: Callable[[int], T],
        give_up: Callable[[TryAgain, int], T],
        notify: Notify | None = None,
    ) -> T:
        """``attempt(n)`` for n = 0, 1, ... until it returns; when it raises ``TryAgain``
        with attempts left, wait and try again; else ``give_up(the last TryAgain,
        attempts made)``, which returns a result or raises."""
        number = 0
        while True:
            try:
                return attempt(number)
            except TryAgain as again:
                if number >= self.max_retries:
                    return give_up(again, number + 1)
                wait = self.wait_before(number, again.delay)
                if notify is not None:
                    notify(again.problem, wait, number + 2, self.attempts)
                self.sleep(wait)
                number += 1
