"""Files written whole or not at all: the one place that does it.

Files that hold readers' data (the database, the outbox's messages, the fetch cache,
built samples, a subscribers export) are readable by their owner only: another user of
the machine has no business reading them. Other files of the project (a campaign file a
digest writes) are written whole too, with the permissions the umask gives.
Pages to publish (the static archive) are written as a set, all or none, readable by
the web server.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
PROJECT_FILE = 0o666  # a file of the project (a campaign file): as the umask allows


def private_dir(path: Path) -> Path:
    """``path`` as a folder, created (with its parents) readable by the owner only.

    A folder that exists keeps its permissions: the owner may have chosen them.
    """
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes, shared: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file renamed over it), 0600,
    in a folder made private if it is new."""
    private_dir(path.parent)
    write_atomic(path, data, PRIVATE_FILE, shared)


def write_atomic(path: Path, data: bytes, mode: int = PROJECT_FILE, shared: bool = False) -> None:
    """Write ``data`` to ``path`` whole or not at all, with permissions ``mode`` (less the
    umask); the folder must exist."""
    with atomic_file(path, mode, shared) as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_file(path: Path, mode: int = PROJECT_FILE, shared: bool = False) -> Iterator[BinaryIO]:
    """A binary file to write that becomes ``path`` when the block ends without error
    (renamed over it), and is removed when it does not; ``mode`` less the umask.

    The temporary file has a fixed name, so a write cut short is taken over by the next
    one; ``shared`` paths (several processes may write them at once, like the fetch
    cache) get one per process instead.
    """
    suffix = f".{os.getpid()}.tmp" if shared else ".tmp"
    tmp = path.with_name(f".{path.name}{suffix}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode == PRIVATE_FILE:  # a temporary file left by a cut-short write keeps its mode
                os.fchmod(fh.fileno(), PRIVATE_FILE)
            yield fh
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


def publish_files(out: Path, files: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """Write ``files`` (names under ``out``) all or none, readable by everyone (pages to
    publish): each to a temporary file beside it, then renamed into place;
    on any failure the temporary files go and nothing is replaced. Files whose content
    is already the same are left as they are. (written, unchanged) names."""
    changed = {}
    unchanged = []
    for name, data in files.items():
        path = out / name
        try:
            same = path.is_file() and not path.is_symlink() and path.read_bytes() == data
        except OSError:
            same = False
        if same:
            unchanged.append(name)
        else:
            changed[name] = data
    temporary: dict[str, str] = {}
    try:
        for name, data in changed.items():
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temporary[name] = tmp
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)  # published files: readable by the web server
        for name, tmp in temporary.items():
            os.replace(tmp, out / name)
    except BaseException:
        for tmp in temporary.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    return list(changed), unchanged


# -- where files with readers' data were written outside the project's own folders --------
def record_folder(record: Path, folder: Path) -> None:
    """Note ``folder`` (absolute) in ``record``, one JSON string a line, 0600: ``build
    --out`` samples name a reader, and ``forget`` must find them again."""
    folder = folder.resolve()
    if folder in recorded_folders(record):
        return
    private_dir(record.parent)
    line = json.dumps(str(folder), ensure_ascii=False) + "\n"
    fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(line)  # one small append: concurrent builds do not mix their lines


def recorded_folders(record: Path) -> list[Path]:
    """The folders ``record`` names, in order, each once; none without a record."""
    try:
        lines = record.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found: dict[Path, None] = {}
    for line in lines:
        with contextlib.suppress(ValueError, TypeError):
            found[Path(json.loads(line))] = None
    return list(found)


def rewrite_record(record: Path, folders: list[Path]) -> None:
    """``record`` naming ``folders`` alone (removed when there are none)."""
    if not folders:
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        return
    lines = "".join(json.dumps(str(f), ensure_ascii=False) + "\n" for f in folders)
    write_private(record, lines.encode("utf-8"))
