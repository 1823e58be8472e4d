"""Amazon SNS messages posted to an HTTPS endpoint: the signature checked against the
signing certificate, which is fetched over HTTPS from SNS's own host only and cached,
and subscriptions confirmed.

What is signed, and how (AWS, "Verifying the signatures of Amazon SNS messages", SNS
developer guide): the string to sign is each signed field's name and value, each
followed by a newline, in byte order of the names; ``Subject`` only when present.
``SignatureVersion`` 1 is SHA1withRSA, 2 is SHA256withRSA. A signature proves that SNS
sent a message, not that it comes from *our* topic: SNS signs every topic's messages
with the same certificates, so which topics are ours is the caller's to check.

``fetch`` is the one place that goes to the network, and it is only ever given a URL
that passed ``sns_region`` (https, exactly ``sns.<region>.amazonaws.com``, no user, no
port). Tests, which cannot reach AWS, point it at a local server; the host check stays
in front of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from . import __version__
from .files import write_private

log = logging.getLogger(__name__)

# The fields signed in each message type, in the order they are signed.
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNATURE_HASHES = {"1": "sha1", "2": "sha256"}  # SignatureVersion -> hash
MAX_CERTIFICATE = 64 * 1024  # an SNS signing certificate is about 2 KB
MEMORY = 64  # certificates kept in memory (SNS uses a handful)
TIMEOUT = 10.0

_URL = re.compile(r"[\x21-\x7e]{1,2048}")  # printable ASCII, no spaces
_CERTIFICATE_PATH = re.compile(r"/[A-Za-z0-9._-]{1,200}\.pem")
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"  # eu-west-1, us-gov-west-1, ap-southeast-2
_HOST = re.compile(rf"sns\.({_REGION})\.amazonaws\.com")
_TOPIC_ARN = re.compile(rf"arn:aws(?:-us-gov)?:sns:({_REGION}):[0-9]{{12}}:[A-Za-z0-9_-]{{1,256}}")


class NotGenuine(Exception):
    """A message that cannot be shown to come from SNS (``status`` 401), or whose
    certificate could not be fetched for now (503: SNS retries)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class FetchFailed(Exception):
    """A GET that did not give a 200; ``temporary`` when worth trying again later."""

    def __init__(self, reason: str, temporary: bool) -> None:
        super().__init__(reason)
        self.temporary = temporary


def topic_region(arn: str) -> str | None:
    """The region of an SNS topic ARN (``arn:aws:sns:REGION:ACCOUNT:NAME``), or None."""
    match = _TOPIC_ARN.fullmatch(arn)
    return match.group(1) if match else None


def sns_region(url: str) -> str:
    """The region of a URL on SNS's own host, ``https://sns.<region>.amazonaws.com/...``;
    ``NotGenuine`` for any other scheme or host, a user, a port or a fragment."""
    parts = urlsplit(url) if _URL.fullmatch(url) else None
    match = _HOST.fullmatch(parts.netloc) if parts else None
    if parts is None or parts.scheme != "https" or match is None or parts.fragment:
        raise NotGenuine("not an https://sns.<region>.amazonaws.com URL")
    return match.group(1)


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signed for ``message`` (its fields already checked to be strings)."""
    lines = []
    for name in SIGNED_FIELDS[message["Type"]]:
        if name == "Subject" and message.get(name) is None:
            continue
        lines += [name, message[name]]
    return ("\n".join(lines) + "\n").encode("utf-8")


def verify(message: Mapping[str, Any], signature: bytes, certificates: Certificates) -> None:
    """Check ``signature`` over ``message`` with the certificate at its SigningCertURL;
    ``NotGenuine`` when it does not verify or the URL is not SNS's."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    url = message["SigningCertURL"]
    region = sns_region(url)
    path = urlsplit(url)
    if not _CERTIFICATE_PATH.fullmatch(path.path) or path.query:
        raise NotGenuine("SigningCertURL is not a certificate of SNS")
    if region != topic_region(message["TopicArn"]):
        raise NotGenuine("SigningCertURL is not in the topic's region")
    algorithm = SIGNATURE_HASHES.get(message["SignatureVersion"])
    if algorithm is None:
        raise NotGenuine("unknown SignatureVersion")
    key = certificates.public_key(url)
    if not isinstance(key, rsa.RSAPublicKey):
        raise NotGenuine("the signing certificate has no RSA key")
    hash_ = hashes.SHA1() if algorithm == "sha1" else hashes.SHA256()
    try:
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(), hash_)
    except InvalidSignature:
        raise NotGenuine("bad signature") from None


def confirm_subscription(message: Mapping[str, Any]) -> None:
    """Follow a verified SubscriptionConfirmation's SubscribeURL, which must be SNS's
    ConfirmSubscription for the message's own topic; ``NotGenuine`` if it is not, and
    ``FetchFailed`` when SNS does not answer 200."""
    url = message["SubscribeURL"]
    region = sns_region(url)
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    if (
        parts.path != "/"
        or region != topic_region(message["TopicArn"])
        or query.get("Action") != ["ConfirmSubscription"]
        or query.get("TopicArn") != [message["TopicArn"]]
        or len(query.get("Token", ())) != 1
    ):
        raise NotGenuine("SubscribeURL is not SNS's ConfirmSubscription for this topic")
    fetch(url)


# -- the network ------------------------------------------------------------------------------
def https_get(url: str) -> bytes:
    """GET ``url`` over verified HTTPS, no redirects, at most MAX_CERTIFICATE bytes."""
    headers = {"User-Agent": f"newsletter/{__version__}"}
    try:
        with requests.get(
            url, headers=headers, timeout=TIMEOUT, allow_redirects=False, stream=True
        ) as answer:
            if answer.status_code != 200:
                raise FetchFailed(f"HTTP {answer.status_code}", answer.status_code >= 500)
            body = answer.raw.read(MAX_CERTIFICATE + 1, decode_content=True)
    except requests.RequestException as exc:
        raise FetchFailed(exc.__class__.__name__, temporary=True) from None
    if len(body) > MAX_CERTIFICATE:
        raise FetchFailed("the answer is too large", temporary=False)
    return body


# The seam: every request to SNS goes through this function, and only with a URL that
# passed sns_region. Tests point it at a local server.
fetch: Callable[[str], bytes] = https_get


# -- certificates -----------------------------------------------------------------------------
_memory: dict[str, Any] = {}  # URL -> x509.Certificate, oldest first
_memory_lock = threading.Lock()


def certificate_file(folder: Path, url: str) -> Path:
    """Where the certificate of ``url`` is kept in the cache ``folder``."""
    return folder / "sns" / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}.pem"


class Certificates:
    """SNS signing certificates by URL: kept in memory and, with a cache ``folder``, in
    files only their owner can read; fetched (through ``fetch``) when neither has one
    still valid."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def public_key(self, url: str) -> Any:
        now = dt.datetime.now(dt.UTC)
        with _memory_lock:
            known = _memory.get(url)
        if known is not None and _valid(known, now):
            return known.public_key()
        certificate = self._from_file(url, now)
        if certificate is None:
            certificate = self._fetched(url, now)
        with _memory_lock:
            _memory.pop(url, None)
            _memory[url] = certificate
            while len(_memory) > MEMORY:
                del _memory[next(iter(_memory))]
        return certificate.public_key()

    def _from_file(self, url: str, now: dt.datetime) -> Any:
        if self.folder is None:
            return None
        try:
            certificate = _parse(certificate_file(self.folder, url).read_bytes())
        except (OSError, ValueError):
            return None
        return certificate if _valid(certificate, now) else None

    def _fetched(self, url: str, now: dt.datetime) -> Any:
        try:
            pem = fetch(url)
        except FetchFailed as exc:
            status = 503 if exc.temporary else 401
            reason = f"the signing certificate could not be fetched ({exc})"
            raise NotGenuine(reason, status) from None
        try:
            certificate = _parse(pem)
        except ValueError:
            raise NotGenuine("SigningCertURL does not hold a certificate") from None
        if not _valid(certificate, now):
            raise NotGenuine("the signing certificate is not valid now")
        if self.folder is not None:
            try:
                write_private(certificate_file(self.folder, url), pem, shared=True)
            except OSError as exc:  # a cache that cannot be written costs a fetch, no more
                log.warning("Warning: the SNS certificate cache is not writable: %s", exc)
        return certificate


def _parse(pem: bytes) -> Any:
    from cryptography import x509

    if len(pem) > MAX_CERTIFICATE:
        raise ValueError("too large")
    return x509.load_pem_x509_certificate(pem)


def _valid(certificate: Any, now: dt.datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc
