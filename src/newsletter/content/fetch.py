"""Fetching pages and feeds over HTTP, with an on-disk cache.

A URL fetched once is read from the cache afterwards, so rebuilding a
campaign is fast, gives the same email, and works offline. ``refresh=True``
asks the server again with the cached ETag / Last-Modified; a 304 keeps the
cached copy.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from .. import __version__
from ..errors import InputError
from ..files import write_private

USER_AGENT = (
    f"newsletter/{__version__} (article excerpts for an email digest; "
    "+https://pypi.org/project/newsletter/)"
)
MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    body: bytes
    content_type: str
    charset: str | None
    from_cache: bool = False


class Fetcher:
    """GET with a timeout, a clear User-Agent, redirects, and a cache folder."""

    def __init__(
        self, cache_dir: Path | None, refresh: bool = False, timeout: float = 15.0
    ) -> None:
        self.cache_dir = cache_dir
        self.refresh = refresh
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"})

    def _paths(self, url: str) -> tuple[Path, Path] | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]
        return self.cache_dir / f"{key}.body", self.cache_dir / f"{key}.json"

    def _cached(self, url: str) -> tuple[Fetched, dict] | None:
        paths = self._paths(url)
        if paths is None or not paths[0].is_file() or not paths[1].is_file():
            return None
        try:
            meta = json.loads(paths[1].read_text(encoding="utf-8"))
            body = paths[0].read_bytes()
        except (OSError, ValueError):
            return None
        fetched = Fetched(
            meta["final_url"],
            body,
            meta.get("content_type", ""),
            meta.get("charset"),
            from_cache=True,
        )
        return fetched, meta

    def _store(self, url: str, fetched: Fetched, response: requests.Response) -> None:
        paths = self._paths(url)
        if paths is None:
            return
        meta = {
            "url": url,
            "final_url": fetched.url,
            "content_type": fetched.content_type,
            "charset": fetched.charset,
            "etag": response.headers.get("ETag"),
            "last_modified": response.headers.get("Last-Modified"),
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        for path, data in (
            (paths[0], fetched.body),
            (paths[1], json.dumps(meta, indent=1).encode("utf-8")),
        ):
            write_private(path, data, shared=True)

    def status(self, url: str) -> int | str:
        """A link's HTTP status (HEAD, else GET), or the reason it gave none; never cached."""
        try:
            response = self.session.head(url, timeout=self.timeout, allow_redirects=True)
            if response.status_code in (405, 501):
                response = self.session.get(url, timeout=self.timeout, stream=True)
                response.close()
            return response.status_code
        except requests.Timeout:
            return f"no answer within {self.timeout:g} s"
        except requests.RequestException as exc:
            return _reason(exc)

    def get(self, url: str) -> Fetched:
        """The page or feed at ``url``; InputError naming the URL when it cannot be had."""
        cached = self._cached(url)
        if cached is not None and not self.refresh:
            return cached[0]
        headers = {}
        if cached is not None:
            meta = cached[1]
            if meta.get("etag"):
                headers["If-None-Match"] = meta["etag"]
            if meta.get("last_modified"):
                headers["If-Modified-Since"] = meta["last_modified"]
        try:
            response = self.session.get(
                url, headers=headers, timeout=self.timeout, allow_redirects=True, stream=True
            )
            body = response.raw.read(MAX_BYTES + 1, decode_content=True)
        except requests.Timeout:
            raise InputError(
                f"{url} did not answer within {self.timeout:g} s.",
                "Check the address, or try again later; a page fetched before is used from "
                "the cache unless --refresh is given.",
            ) from None
        except requests.RequestException as exc:
            raise InputError(
                f"{url} cannot be reached ({_reason(exc)}).",
                "Check the address and the network connection.",
            ) from None
        if response.status_code == 304 and cached is not None:
            return cached[0]
        if response.status_code >= 400:
            raise InputError(
                f"{url} answered HTTP {response.status_code} {response.reason or ''}".rstrip()
                + ".",
                "Check the address: the article may have moved or been unpublished.",
            )
        if len(body) > MAX_BYTES:
            raise InputError(f"{url} is larger than {MAX_BYTES // 1024 // 1024} MB; is it a page?")
        content_type = response.headers.get("Content-Type", "")
        charset = requests.utils.get_encoding_from_headers(response.headers)
        if charset == "ISO-8859-1" and "charset" not in content_type.lower():
            charset = None  # requests' default for text/*, not the server's word
        fetched = Fetched(response.url, body, content_type.split(";")[0].strip().lower(), charset)
        self._store(url, fetched, response)
        return fetched


def _reason(exc: requests.RequestException) -> str:
    text = str(exc)
    for marker in (
        "Name or service not known",
        "Connection refused",
        "No route to host",
        "Temporary failure in name resolution",
        "certificate verify failed",
    ):
        if marker in text:
            return marker.lower()
    return exc.__class__.__name__
