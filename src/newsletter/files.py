"""Files that hold readers' data: written whole or not at all, readable by their owner only.

The database, the outbox's messages, the fetch cache and built samples carry names
and addresses; another user of the machine has no business reading them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """``path`` as a folder, created (with its parents) readable by the owner only.

    A folder that exists keeps its permissions: the owner may have chosen them.
    """
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes, shared: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file renamed over it), 0600.

    The temporary file has a fixed name, so a write cut short is taken over by the next
    one; ``shared`` paths (several processes may write them at once, like the fetch
    cache) get one per process instead.
    """
    private_dir(path.parent)
    suffix = f".{os.getpid()}.tmp" if shared else ".tmp"
    tmp = path.with_name(f".{path.name}{suffix}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def create_private(path: Path) -> None:
    """Create ``path`` empty and 0600 unless it exists (e.g. before SQLite opens it)."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
