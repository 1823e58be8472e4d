"""The project's own images: the files in ``[content] images`` (default ``images/``).

An article or a campaign writes ``image: images/clay.jpg`` (a path from the project
folder); the email shows it from ``<public_url>/images/clay.jpg``, which `newsletter
serve` answers from the folder, and `newsletter preview` shows it from its own address.
Only plain image files inside the folder are published: no ``..``, no link out of it, no
SVG (it can carry script), nothing over ``MAX_BYTES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from .config import Settings

PREFIX = "/images/"  # where serve and preview answer them
MAX_BYTES = 5 * 1024 * 1024
TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


@dataclass(frozen=True, slots=True)
class ProjectImages:
    """The images folder of a project whose root is ``root``, published under
    ``public_url`` (None: not published, so an email cannot show them)."""

    root: Path
    folder: Path
    public_url: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> ProjectImages:
        """The project's images folder, published under its ``public_url``."""
        return cls(settings.root, settings.images_dir, settings.newsletter.public_url)

    def file(self, name: str) -> Path | None:
        """The file ``name`` (a path inside the folder, ``/``-separated) names, or None
        when it is not an image file this folder may publish."""
        if not name or "\\" in name or "\x00" in name or len(name) > 255:
            return None
        parts = PurePosixPath(name).parts
        if not parts or any(p in ("..", ".") or p.startswith(".") for p in parts):
            return None
        if PurePosixPath(name).suffix.lower() not in TYPES:
            return None
        try:
            folder = self.folder.resolve()
            path = (folder / Path(*parts)).resolve()
            if not path.is_relative_to(folder) or not path.is_file():
                return None
            if path.stat().st_size > MAX_BYTES:
                return None
        except (OSError, ValueError):
            return None
        return path

    def name_of(self, written: str) -> str | None:
        """The name inside the folder that an article's relative ``image:`` means (a path
        from the project folder, e.g. ``images/clay.jpg``), or None."""
        if "://" in written or written.startswith("//") or "\x00" in written:
            return None
        path = written.split("?", 1)[0].split("#", 1)[0].lstrip("/")
        try:
            relative = (self.root / path).resolve().relative_to(self.folder.resolve())
        except (OSError, ValueError):
            return None
        name = relative.as_posix()
        return name if self.file(name) is not None else None

    def published(self, written: str | None) -> str | None:
        """``written`` with a project image turned into its address under ``public_url``;
        anything else (an absolute address, a missing file) as written."""
        if not written or self.public_url is None:
            return written
        name = self.name_of(written)
        if name is None:
            return written
        return self.public_url.rstrip("/") + PREFIX + quote(name)

    def answer(self, path: str) -> tuple[str, bytes] | None:
        """(content type, bytes) for a request path under ``PREFIX``, or None: not found."""
        if not path.startswith(PREFIX):
            return None
        file = self.file(unquote(path[len(PREFIX) :]))
        if file is None:
            return None
        try:
            return TYPES[file.suffix.lower()], file.read_bytes()
        except OSError:
            return None
