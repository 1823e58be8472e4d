"""The C allocator's settings for a long-running command (glibc; elsewhere nothing).

glibc gives each thread that contends for the heap an arena of its own, up to eight per
core, and keeps the blocks freed in each: a send whose worker threads build and drop
13 MB request bodies held twice what it used. Two arenas, and giving freed memory back
after each batch, keep a send's peak near what it really holds.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any

ARENAS = 2  # the main thread's, and one the workers share
_M_ARENA_MAX = -8  # mallopt's parameter (malloc.h)


@functools.cache
def _glibc() -> Any:
    """The process's C library when it is glibc (it has mallopt and malloc_trim)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("mallopt", "malloc_trim", "gnu_get_libc_version")):
        return None
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most ``arenas`` malloc arenas, unless MALLOC_ARENA_MAX says otherwise. Call it
    before any thread starts; whether it was set."""
    libc = _glibc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))


def give_back() -> None:
    """Return the free memory at the top of the heap and in whole free pages to the system."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


class GiveBack:
    """Gives freed memory back once every ``every`` messages sent: a trim walks the heap
    (about a millisecond), too often for a transport whose batches are small."""

    __slots__ = ("count", "every")

    def __init__(self, every: int = 500) -> None:
        self.every = every
        self.count = 0

    def sent(self, messages: int) -> None:
        self.count += messages
        if self.count >= self.every:
            self.count = 0
            give_back()
