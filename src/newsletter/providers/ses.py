"""Amazon SES v2: one SendEmail per message, with our own MIME, signed with SigV4.

SES's bulk API needs stored templates, so each message goes as ``Raw`` content
(the same RFC 5322 bytes the outbox writes), in parallel across workers.
Credentials come from the standard AWS environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, an AWS profile or role), never from newsletter.toml:
botocore finds them and the region's endpoint (an optional extra:
``pip install 'newsletter[ses]'``). The request itself is written here, its
campaign's pieces encoded once, signed (AWS Signature Version 4) and posted on a
connection kept per worker: botocore's client spends milliseconds a message on
what is the same for every message of a campaign.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import os
import re
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests

from .. import sns
from ..delivery.base import USER_AGENT, OneAtATime, send_gathered
from ..delivery.encode import PerCampaign, dumps
from ..delivery.retry import RetryPolicy, TryAgain
from ..errors import ConfigError, CredentialsError, DeliveryError
from ..events import (
    Malformed,
    Read,
    iso_time,
    json_kind,
    load_json,
    mapping,
    our_subscriber,
    ours,
    string,
    unknown_event,
)
from ..models import DeliveryStatus, Event, EventKind, SendResult
from ..render import OutgoingMessage
from ..render.pieces import Base64Pieces
from ..webhooks import (
    TOLERANCE,
    Answered,
    Rejected,
    Request,
    Verifier,
    WebhookAnswer,
    log,
    strict_b64decode,
)
from . import Option, Provider, Secret, Setup

if TYPE_CHECKING:
    from ..render import MessageFactory

SEND_PATH = "/v2/email/outbound-emails"  # SESv2 SendEmail
SERVICE = "ses"  # the signing name of SES v2 (its endpoints are email.<region>...)
_CREDENTIALS = {
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AccessDeniedException",
    "AccessDenied",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
}
_STOP = {
    "AccountSuspendedException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "ConfigurationSetDoesNotExistException",
    "NotFoundException",
}
_THROTTLED = {
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "LimitExceededException",
}


class SESTransport(OneAtATime):
    name = "ses"
    provider = "Amazon SES"  # its API takes ASCII local parts only (SMTPUTF8 is not offered)
    max_batch = 50  # messages a worker sends one by one before the batch is settled

    def __init__(
        self,
        region: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        batch_size: int | None = None,
        configuration_set: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(batch_size)
        try:
            import botocore.session
        except ImportError:
            raise ConfigError(
                "The ses transport needs botocore, which is not installed.",
                "Install it with: pip install 'newsletter[ses]'",
            ) from None
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise ConfigError(
                "The SES region is not set.",
                'Set region = "eu-west-1" (your SES region) under [delivery] in newsletter.toml.',
            )
        session = botocore.session.get_session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigError(
                "No AWS credentials were found for SES.",
                "Export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for an IAM "
                "identity allowed to call ses:SendEmail.",
            )
        self.signer = SigV4(credentials, region, _endpoint(session, region, base_url) + SEND_PATH)
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries, sleep)
        self.configuration_set = configuration_set
        self._pieces = PerCampaign()
        self._base64 = Base64Pieces()
        self._local = threading.local()
        self._wires: list[Wire] = []
        self._lock = threading.Lock()

    @property
    def wire(self) -> Wire:
        """One kept connection per worker thread."""
        wire = getattr(self._local, "wire", None)
        if wire is None:
            wire = self._local.wire = Wire(self.signer.url, self.timeout)
            with self._lock:
                self._wires.append(wire)
        return wire

    # -- the request ------------------------------------------------------------------
    def _campaign_pieces(self, factory: MessageFactory) -> tuple[bytes, bytes, bytes]:
        """What every request of the campaign holds, encoded once: before the reader's
        address, between it and the message, and from the message to the end."""
        start = b'{"FromEmailAddress":' + dumps(factory.envelope_sender)
        campaign = dumps({"Name": "campaign", "Value": _tag(factory.compiled.slug)})
        end = b'"}]'
        if self.configuration_set:
            end += b',"ConfigurationSetName":' + dumps(self.configuration_set)
        return (
            start + b',"Destination":{"ToAddresses":[',
            b']},"Content":{"Raw":{"Data":"',
            b'"}},"EmailTags":[' + campaign + b',{"Name":"subscriber","Value":"',
        ), end + b"}"

    def body(self, message: OutgoingMessage, raw: list[bytes]) -> list[bytes]:
        """SendEmail's JSON for the message whose RFC 5322 bytes are the pieces ``raw``
        (``raw_pieces()``; base64 in the body), as pieces, never joined: the campaign's
        around the reader's own fields, and the message's base64 made from its pieces
        (the campaign's own encoded once)."""
        factory = message.factory
        (start, content, tags), end = self._pieces.get(
            factory, None, lambda: self._campaign_pieces(factory)
        )
        sid = str(message.recipient.subscriber_id).encode("ascii")
        address = dumps(message.to_address)
        return [start, address, content, *self._base64.encode(raw), tags, sid, end]

    # -- sending ----------------------------------------------------------------------
    def send_one(self, message: OutgoingMessage) -> SendResult:
        sid = message.recipient.subscriber_id
        body = self.body(message, message.raw_pieces())

        def attempt(_number: int) -> SendResult:
            wire = self.wire
            try:
                wire.connect()
            except (OSError, http.client.HTTPException) as exc:  # nothing was sent
                raise _cannot_connect(exc) from None
            try:  # signed again for each attempt
                status, headers, content = wire.post(body, self.signer.headers(body))
            except TimeoutError:
                return _unknown(sid, "ReadTimeoutError")
            except (OSError, http.client.HTTPException):  # after the request went out
                return _unknown(sid, "ConnectionClosedError")
            if 200 <= status < 300:
                return _answered(sid, content)
            return self._refused(sid, aws_error(status, headers, content))

        def give_up(last: TryAgain, attempts: int) -> SendResult:
            code, text = last.outcome
            raise DeliveryError(
                f"SES kept failing ({code}: {text}); stopped after {attempts} attempts.",
                "Messages without a result were not sent. Run the same send again later; "
                "SES advises waiting up to 10 minutes after throttling.",
            )

        return self.retry.run(attempt, give_up, self.notify_retry)

    @staticmethod
    def _refused(sid: int, response: dict[str, Any]) -> SendResult:
        """SES's refusal as a result; ``TryAgain`` for throttling and its own errors."""
        error = response.get("Error", {})
        code = str(error.get("Code", ""))
        text = str(error.get("Message", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in _CREDENTIALS or status == 403:
            raise CredentialsError(
                f"SES refused the credentials ({code}: {text}).",
                "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and that the identity "
                "may call ses:SendEmail in this region.",
            )
        if code in _STOP:
            raise DeliveryError(
                f"SES cannot send for this account ({code}: {text}).",
                "Fix it in the SES console, then run the same send again.",
            )
        if code == "MessageRejected" or (status == 400 and code not in _THROTTLED):
            bad = "address" in text.lower() or "identit" in text.lower()
            return SendResult(
                sid,
                DeliveryStatus.REJECTED if code == "MessageRejected" else DeliveryStatus.FAILED,
                error=f"SES {code}: {text}",
                suppress=bad and "not verified" not in text.lower(),
                raw=response.get("Error"),
            )
        if code not in _THROTTLED and status < 500:
            return SendResult(sid, DeliveryStatus.FAILED, error=f"SES {code}: {text}")
        raise TryAgain(f"SES answered {code}", outcome=(code, text))

    def close(self) -> None:
        with self._lock:
            for wire in self._wires:
                wire.close()
            self._wires.clear()


class Wire:
    """A kept connection to one URL, through the proxy the environment names for it, if
    any. http.client makes the connection (TLS, a proxy's tunnel); each request is then
    written in one ``sendall`` (head and body) and its answer read from the connection's
    own buffer: http.client gives up the GIL several times a request and parses the
    answer's headers with the email package, and with several workers each hand-off of
    the GIL costs more than the work around it.

    ``connect`` before each request: a connection the server closed while it was idle
    is made again, and a failure there means nothing was sent. Any failure after it
    leaves the outcome unknown.
    """

    idle = 1.0  # seconds unused after which a kept connection is also polled (select)

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.url = url
        self.path = parts.path or "/"
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.timeout = timeout
        self.proxy = _proxy_for(url)
        self.context = _tls_context() if self.https else None
        self.connection: http.client.HTTPConnection | None = None
        self.reader: Answers | None = None
        target = self.url if self.proxy is not None and not self.https else self.path
        if _UNSAFE_TARGET.search(target):
            raise http.client.InvalidURL(f"URL can't contain control characters. {target!r}")
        self.request_line = f"POST {target} HTTP/1.1\r\nAccept-Encoding: identity\r\n"
        self.used = 0.0  # time.monotonic() when the last answer was read

    def connect(self) -> None:
        if self.connection is not None and not self._dropped():
            return
        self.close()
        connection = self._new()
        try:
            connection.connect()
        except BaseException:
            connection.close()
            raise
        self.connection = connection
        self.reader = Answers(connection.sock)

    def _dropped(self) -> bool:
        """Has the server closed the kept connection (or sent what nobody asked for)?

        Asked of the kernel without giving up the GIL, where Linux's TCP_INFO tells:
        the connection's state (a FIN or a reset ends ESTABLISHED) and, without TLS,
        whether it received more bytes than were read. With TLS, after a second unused,
        and where TCP_INFO is not offered, ``select`` says whether there is anything
        to read."""
        connection, reader = self.connection, self.reader
        sock = connection.sock if connection is not None else None
        if sock is None or reader is None or reader.buffer:
            return True
        if _TCP_INFO is not None:
            try:
                info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _INFO_SIZE)
            except OSError:
                return True
            if info[0] != _ESTABLISHED:
                return True
            if not self.https and len(info) >= _INFO_SIZE:
                return int.from_bytes(info[_RECEIVED:_INFO_SIZE], sys.byteorder) != reader.read
            if time.monotonic() - self.used < self.idle:
                return False
        return _readable(sock)

    def _new(self) -> http.client.HTTPConnection:
        host, port, tunnel = self.host, self.port, None
        if self.proxy is not None:
            proxy = urlsplit(self.proxy)
            host, port = proxy.hostname or "", proxy.port or 80
            tunnel = {"Proxy-Authorization": _basic(proxy)} if proxy.username else {}
        if self.https:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self.context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        if tunnel is not None and self.https:
            connection.set_tunnel(self.host, self.port, tunnel)
        return connection

    def head(self, size: int, headers: dict[str, str]) -> bytes:
        """The request's head, byte for byte as http.client writes it for these headers
        (a Host among them) and a body of ``size`` bytes."""
        lines = [self.request_line, f"Content-Length: {size}\r\n"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value:
                raise ValueError(f"Invalid header value {value!r}")
            lines.append(f"{name}: {value}\r\n")
        lines.append(_AGENT)
        return "".join(lines).encode("latin-1")

    def post(
        self, body: bytes | list[bytes], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body) of the answer; the connection
        is kept if it may be. A body in pieces is written as it is, gathered by the
        kernel (``sendmsg``), on a plain socket; joined once over TLS."""
        connection, reader = self.connection, self.reader
        assert connection is not None and reader is not None, "connect() first"
        pieces = [body] if isinstance(body, bytes) else body
        sock = connection.sock
        try:
            head = self.head(sum(map(len, pieces)), headers)
            if isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "sendmsg"):
                sock.sendall(b"".join((head, *pieces)))
            else:
                send_gathered(sock, [head, *pieces])
            status, found, content, will_close = reader.answer()
        except BaseException:
            self.close()
            raise
        self.used = time.monotonic()
        if will_close:
            self.close()
        return status, found, content

    def close(self) -> None:
        self.reader = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None


_UNSAFE_TARGET = re.compile("[\x00-\x20\x7f]")  # as http.client refuses them
_AGENT = f"User-Agent: {USER_AGENT}\r\n\r\n"
_TCP_INFO = getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None
_ESTABLISHED = 1  # tcpi_state, the first byte of struct tcp_info
_RECEIVED, _INFO_SIZE = 128, 136  # tcpi_bytes_received (u64, Linux 4.1+), where it ends
_MAX_LINE = 65536  # as http.client
_MAX_HEADERS = 100


class Answers:
    """HTTP/1.1 answers read from one connection, into one buffer kept between them:
    the status line, the headers (names in lower case) and the body by Content-Length,
    chunked, or up to the end of the connection, as http.client reads them, with its
    exceptions for what it would refuse."""

    __slots__ = ("buffer", "read", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.read = 0  # bytes received on the connection

    def _more(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        self.read += len(chunk)
        return bool(chunk)

    def line(self, what: str) -> bytes:
        """The next line with its end (b"" at the end of the connection)."""
        buffer = self.buffer
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end >= 0:
                if end >= _MAX_LINE:
                    raise http.client.LineTooLong(what)
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                return line
            if len(buffer) > _MAX_LINE:
                raise http.client.LineTooLong(what)
            start = len(buffer)
            if not self._more():
                line = bytes(buffer)
                buffer.clear()
                return line

    def exactly(self, size: int) -> bytes:
        buffer = self.buffer
        while len(buffer) < size:
            if not self._more():
                raise http.client.IncompleteRead(bytes(buffer), size - len(buffer))
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def rest(self) -> bytes:
        while self._more():
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def status(self) -> tuple[int, int]:
        """(HTTP version as 10 or 11, status) of the next status line."""
        line = str(self.line("status line"), "iso-8859-1")
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        try:
            version, code = line.split(None, 2)[:2]
        except ValueError:
            version = code = ""
        if not version.startswith("HTTP/"):
            raise http.client.BadStatusLine(line)
        try:
            status = int(code)
        except ValueError:
            raise http.client.BadStatusLine(line) from None
        if not 100 <= status <= 999:
            raise http.client.BadStatusLine(line)
        if version in ("HTTP/1.0", "HTTP/0.9"):
            return 10, status
        if not version.startswith("HTTP/1."):
            raise http.client.UnknownProtocol(version)
        return 11, status

    def headers(self) -> dict[str, str]:
        found: dict[str, str] = {}
        current = None  # the header a folded line goes on with (the first of its name)
        for _ in range(_MAX_HEADERS + 1):
            line = self.line("header line")
            if line in (b"\r\n", b"\n", b""):
                return found
            text = str(line, "iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t"):
                if current is not None:
                    found[current] += " " + text.strip()
                continue
            name, _, value = text.partition(":")
            name = name.strip().lower()
            current = None if name in found else name
            found.setdefault(name, value.strip())
        raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")

    def chunked(self) -> bytes:
        parts = []
        while True:
            size_line = self.line("chunk size").split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                size = -1
            if size < 0:
                raise http.client.IncompleteRead(b"".join(parts))
            if size == 0:
                break
            parts.append(self.exactly(size))
            self.exactly(2)  # the chunk's CRLF
        while self.line("trailer line") not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)

    def answer(self) -> tuple[int, dict[str, str], bytes, bool]:
        """(status, headers, body, whether the connection closes after it)."""
        while True:
            version, status = self.status()
            headers = self.headers()
            if status != 100:
                break
        connection = headers.get("connection", "").lower()
        if version == 11:
            will_close = "close" in connection
        else:
            will_close = not (
                "keep-alive" in headers
                or "keep-alive" in connection
                or "keep-alive" in headers.get("proxy-connection", "").lower()
            )
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        length: int | None = None
        if not chunked and headers.get("content-length", "").strip().isdigit():
            length = int(headers["content-length"])
        if status in (204, 304) or 100 <= status < 200:
            return status, headers, b"", will_close
        if chunked:
            return status, headers, self.chunked(), will_close
        if length is None:
            return status, headers, self.rest(), True
        return status, headers, self.exactly(length), will_close


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY, NO_PROXY...), if any."""
    proxies = requests.utils.get_environ_proxies(url)
    proxy = proxies.get(urlsplit(url).scheme) or proxies.get("all")
    if proxy and urlsplit(proxy).scheme not in ("http", ""):
        raise ConfigError(
            f"The proxy for SES, {proxy}, is not an http:// proxy.",
            "Point HTTPS_PROXY at an http:// proxy (it tunnels the TLS connection), or set "
            "NO_PROXY for the SES endpoint.",
        )
    return proxy if proxy and "://" in proxy else (f"http://{proxy}" if proxy else None)


def _basic(proxy: Any) -> str:
    from urllib.parse import unquote

    pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _tls_context() -> ssl.SSLContext:
    """Certificates checked against REQUESTS_CA_BUNDLE, else certifi's (as requests)."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not bundle:
        import certifi

        bundle = certifi.where()
    return ssl.create_default_context(cafile=bundle)


def _readable(sock: Any) -> bool:
    """Has the server closed the idle connection (or sent what nobody asked for)?"""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _endpoint(session: Any, region: str, base_url: str | None) -> str:
    """The region's SES v2 endpoint (as botocore resolves it), or ``base_url``."""
    if base_url:
        return base_url.rstrip("/")
    client = session.create_client("sesv2", region_name=region)
    try:
        return str(client.meta.endpoint_url).rstrip("/")
    finally:
        client.close()


def _cannot_connect(exc: Exception) -> TryAgain:
    code = "EndpointConnectionError"
    return TryAgain(f"SES answered {code}", outcome=(code, str(exc)))


def _unknown(sid: int, why: str) -> SendResult:
    return SendResult(sid, DeliveryStatus.UNKNOWN, error=f"SES: the outcome is unknown ({why})")


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def _answered(sid: int, content: bytes) -> SendResult:
    data = _json(content)
    message_id = data.get("MessageId") if isinstance(data, dict) else None
    if not message_id or not isinstance(message_id, str):  # e.g. a body that is not JSON
        return SendResult(
            sid,
            DeliveryStatus.UNKNOWN,
            error="SES: the outcome is unknown (an answer without a MessageId)",
        )
    return SendResult(sid, DeliveryStatus.SENT, message_id=message_id)


def aws_error(status: int, headers: dict[str, str], content: bytes) -> dict[str, Any]:
    """An error answer as botocore reads one of a REST-JSON API (``headers`` named in
    lower case): the code from the ``X-Amzn-ErrorType`` header, else the body's ``code``
    or ``__type``, else the HTTP status; the message from the body's ``message``."""
    data = _json(content)
    body = data if isinstance(data, dict) else {}
    code = (
        headers.get("x-amzn-errortype")
        or body.get("code")
        or body.get("Code")
        or body.get("__type")
        or str(status)
    )
    message = body.get("message", body.get("Message", ""))
    if not body and status >= 500:  # an HTML page or nothing: the status says it
        message = http.client.responses.get(status, "")
    code = str(code).split(":", 1)[0].rsplit("#", 1)[-1]
    return {
        "Error": {"Code": code, "Message": str(message)},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


class SigV4:
    """AWS Signature Version 4 of a POST to one URL (the headers it needs, signed)."""

    def __init__(self, credentials: Any, region: str, url: str) -> None:
        self.credentials = credentials  # botocore's: refreshed when they are temporary
        self.region = region
        self.url = url
        parts = urlsplit(url)
        self.host = parts.netloc  # as the Host header says it: no default port
        if parts.port is not None and parts.port == {"https": 443, "http": 80}.get(parts.scheme):
            self.host = self.host.rsplit(":", 1)[0]
        self.path = quote(parts.path or "/", safe="/~")
        self._keys: dict[tuple[str, str], bytes] = {}
        self._last = (0, "")  # (second, its X-Amz-Date)
        host = " ".join(self.host.split())
        self._canonical = f"POST\n{self.path}\n\ncontent-type:application/json\nhost:{host}\n"

    def _key(self, secret: str, day: str) -> bytes:
        found = self._keys.get((secret, day))
        if found is None:
            key = ("AWS4" + secret).encode("utf-8")
            for part in (day, self.region, SERVICE, "aws4_request"):
                key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
            self._keys = {(secret, day): key}  # one day's key at a time
            found = key
        return found

    def _stamp(self, now: dt.datetime | None) -> str:
        """X-Amz-Date of ``now``, or of this second (made once a second)."""
        if now is not None:
            return now.strftime("%Y%m%dT%H%M%SZ")
        second = int(time.time())
        last, stamp = self._last
        if second != last:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            self._last = (second, stamp)
        return stamp

    def headers(self, body: bytes | list[bytes], now: dt.datetime | None = None) -> dict[str, str]:
        """The signed headers of a POST of ``body`` (bytes, or the pieces it is joined
        from). What is the same for every request (the canonical request's path, content
        type and host, the signed header names) is made once; per request: the body's
        hash, the date and the signature."""
        frozen = self.credentials.get_frozen_credentials()
        stamp = self._stamp(now)
        day = stamp[:8]
        payload = _sha256(body)
        headers = {
            "Content-Type": "application/json",
            "Host": self.host,
            "X-Amz-Content-SHA256": payload,
            "X-Amz-Date": stamp,
        }
        token = frozen.token
        if token:
            headers["X-Amz-Security-Token"] = token
            signed = _SIGNED_WITH_TOKEN
            extra = f"x-amz-security-token:{' '.join(token.split())}\n"
        else:
            signed, extra = _SIGNED, ""
        canonical = (
            f"{self._canonical}x-amz-content-sha256:{payload}\nx-amz-date:{stamp}\n{extra}"
            f"\n{signed}\n{payload}"
        )
        scope = f"{day}/{self.region}/{SERVICE}/aws4_request"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        key = self._key(frozen.secret_key, day)
        signature = hmac.digest(key, to_sign.encode("utf-8"), "sha256").hex()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return headers


def _sha256(body: bytes | list[bytes]) -> str:
    if isinstance(body, bytes):
        return hashlib.sha256(body).hexdigest()
    digest = hashlib.sha256()
    for piece in body:
        digest.update(piece)
    return digest.hexdigest()


# The signed headers, by name in lower case (sorted, as SigV4 lists them).
_SIGNED = "content-type;host;x-amz-content-sha256;x-amz-date"
_SIGNED_WITH_TOKEN = _SIGNED + ";x-amz-security-token"


def _tag(value: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "_-") else "_" for c in value)[:256]


K = EventKind


# -- events -------------------------------------------------------------------------------
# `eventType` (configuration-set event publishing) or `notificationType` (identity
# notifications) -> kind (SES developer guide, "Contents of event data that Amazon SES
# publishes to Amazon SNS" and "Amazon SNS notification contents for Amazon SES").
SES_EVENTS: dict[str, EventKind | None] = {
    "Bounce": None,  # by bounceType and bounceSubType: SES_BOUNCES
    "Complaint": None,  # by complaintSubType and complaintFeedbackType: SES_COMPLAINTS
    "Delivery": K.DELIVERED,
    "Send": K.SENT,  # the request succeeded and SES will try to deliver
    "Reject": K.FAILED,  # SES found a virus in our message and did not send it
    "Open": K.OPENED,
    "Click": K.CLICKED,
    "Rendering Failure": K.FAILED,  # a template did not render: not sent
    "DeliveryDelay": K.DEFERRED,  # a temporary issue (its delayType): SES keeps trying
    "Subscription": None,  # SES list management: by newTopicPreferences.unsubscribeAll
    "AmazonSnsSubscriptionSucceeded": K.UNKNOWN,  # SES's test message for a new topic
}
# A bounce's (bounceType, bounceSubType), "Bounce types". SES publishes only hard bounces
# and soft bounces it no longer retries.
SES_BOUNCES: dict[tuple[str, str], EventKind] = {
    ("Permanent", "General"): K.BOUNCED,  # "remove the recipient's address from your list"
    ("Permanent", "NoEmail"): K.BOUNCED,  # the address does not exist
    ("Permanent", "Suppressed"): K.DROPPED,  # on SES's suppression list: not sent
    ("Permanent", "OnAccountSuppressionList"): K.DROPPED,  # on the account's list: not sent
    ("Transient", "General"): K.SOFT_BOUNCED,  # "you may be able to send ... in the future"
    ("Transient", "MailboxFull"): K.SOFT_BOUNCED,
    ("Transient", "MessageTooLarge"): K.FAILED,  # about our message, not the address
    ("Transient", "ContentRejected"): K.FILTERED,  # our content
    ("Transient", "AttachmentRejected"): K.FILTERED,  # our attachment
    ("Undetermined", "Undetermined"): K.SOFT_BOUNCED,  # SES could not tell why: counted
}
SES_OTHER_BOUNCES: dict[str, EventKind] = {  # by bounceType, for a subtype not listed
    "Permanent": K.BOUNCED,
    "Transient": K.SOFT_BOUNCED,
    "Undetermined": K.SOFT_BOUNCED,
}
SES_OTHER_BOUNCE = K.SOFT_BOUNCED  # a bounceType not listed: counted, never at once
# A complaint's complaintFeedbackType, "Complaint types" (the IANA feedback types).
SES_COMPLAINTS: dict[str, EventKind] = {
    "abuse": K.COMPLAINED,  # unsolicited email
    "fraud": K.COMPLAINED,  # reported as fraud or phishing
    "other": K.COMPLAINED,  # any other complaint
    "virus": K.FILTERED,  # a virus report on the message, not the reader's wish
    "auth-failure": K.FILTERED,  # a report that our authentication failed
    "not-spam": K.UNKNOWN,  # a correction: "not spam"; recorded, nobody resubscribed by it
}
SES_UNTYPED_COMPLAINT = K.COMPLAINED  # no feedback report, as most ISPs send: a complaint
SES_SUPPRESSED_COMPLAINT = K.COMPLAINED  # complaintSubType OnAccountSuppressionList
SES_UNSUBSCRIBED_ALL = K.UNSUBSCRIBED  # Subscription with unsubscribeAll: out of every topic
SES_TOPICS_CHANGED = K.UNKNOWN  # other topic preferences: newsletter uses no SES topics
# Where each event type keeps its own object (with its timestamp) and its recipients.
_SES_OBJECTS = {
    "Bounce": ("bounce", "bouncedRecipients"),
    "Complaint": ("complaint", "complainedRecipients"),
    "Delivery": ("delivery", "recipients"),
    "Send": ("send", None),
    "Reject": ("reject", None),
    "Open": ("open", None),
    "Click": ("click", None),
    "Rendering Failure": ("failure", None),
    "DeliveryDelay": ("deliveryDelay", "delayedRecipients"),
    "Subscription": ("subscription", None),
}


def _ses_kind(name: str, data: dict[str, Any]) -> EventKind | None:
    if name == "Bounce":
        bounce = mapping(data, "bounce")
        bounce_type = string(bounce, "bounceType") or ""
        found = SES_BOUNCES.get((bounce_type, string(bounce, "bounceSubType") or ""))
        return found or SES_OTHER_BOUNCES.get(bounce_type, SES_OTHER_BOUNCE)
    if name == "Complaint":
        complaint = mapping(data, "complaint")
        if string(complaint, "complaintSubType") == "OnAccountSuppressionList":
            return SES_SUPPRESSED_COMPLAINT
        feedback = string(complaint, "complaintFeedbackType")
        return (
            SES_UNTYPED_COMPLAINT if feedback is None else SES_COMPLAINTS.get(feedback, K.UNKNOWN)
        )
    if name == "Subscription":
        topics = mapping(mapping(data, "subscription"), "newTopicPreferences")
        return SES_UNSUBSCRIBED_ALL if topics.get("unsubscribeAll") is True else SES_TOPICS_CHANGED
    return SES_EVENTS.get(name)


def _ses_message(item: dict[str, Any]) -> dict[str, Any]:
    """The SES event of an SNS envelope (as posted, or as saved from a queue), or the SES
    event itself (as exported from a Firehose stream)."""
    if item.get("Type") != "Notification":
        return item
    text = string(item, "Message")
    if text is None:
        raise Malformed("Message is empty")
    data = load_json(text.encode("utf-8"))
    if not isinstance(data, dict):
        raise Malformed("Message is not a JSON object")
    return data


def _ses_recipients(data: dict[str, Any], name: str, mail: dict[str, Any]) -> list[Any]:
    """Each recipient the event is about: an object with emailAddress, or an address."""
    holder, field_name = _SES_OBJECTS[name]
    where = f"{holder}.{field_name}" if field_name else "mail.destination"
    found = mapping(data, holder).get(field_name) if field_name else mail.get("destination")
    if found is None:
        return [None]
    if not isinstance(found, list):
        raise Malformed(f"{where} is {json_kind(found)}, not a list")
    for recipient in found:
        if not isinstance(recipient, str | dict):
            raise Malformed(f"{where} holds {json_kind(recipient)}")
    return found or [None]


def _ses_tag(tags: dict[str, Any], name: str) -> Any:
    """The first value of an SES message tag (tags are lists of values)."""
    values = tags.get(name)
    return values[0] if isinstance(values, list) and values else None


def _read_event(item: dict[str, Any]) -> Read:
    """An SES event; a webhook's replay key is the SNS ``MessageId`` (``webhooks.py``)."""
    data = _ses_message(item)
    name = string(data, "eventType") or string(data, "notificationType") or ""
    kind = _ses_kind(name, data)
    if kind is None or name not in _SES_OBJECTS:
        what = f"eventType {name}" if name else None
        events, _ = unknown_event("ses", data, what)
        return events, ()
    mail = mapping(data, "mail")
    tags = mapping(mail, "tags")
    own = mapping(data, _SES_OBJECTS[name][0])
    occurred_at = iso_time(own, "timestamp") or iso_time(mail, "timestamp")
    feedback_id = string(own, "feedbackId")
    summary = _ses_summary(name, own)
    engagement = _ses_engagement(name, own)
    events = []
    for recipient in _ses_recipients(data, name, mail):
        email = recipient if isinstance(recipient, str) else None
        detail = summary
        if isinstance(recipient, dict):
            email = string(recipient, "emailAddress")
            detail = string(recipient, "diagnosticCode") or summary
        events.append(
            Event(
                provider="ses",
                kind=kind,
                email=email or None,
                provider_message_id=string(mail, "messageId"),
                provider_event_id=f"{feedback_id}:{email or ''}" if feedback_id else None,
                occurred_at=occurred_at,
                campaign=ours(_ses_tag(tags, "campaign")),
                subscriber_id=our_subscriber(_ses_tag(tags, "subscriber")),
                detail=detail,
                raw=data,
                **engagement,
            )
        )
    return events, ()


def _ses_engagement(name: str, own: dict[str, Any]) -> dict[str, str | None]:
    """A Click's ``click.link``, and a Click's or an Open's ``userAgent``."""
    if name not in ("Click", "Open"):
        return {}
    link = string(own, "link") if name == "Click" else None
    return {"url": link, "user_agent": string(own, "userAgent")}


def _ses_summary(name: str, own: dict[str, Any]) -> str | None:
    """What the event's own object says, in a few words."""
    if name == "Bounce":
        parts = (string(own, "bounceType"), string(own, "bounceSubType"))
    elif name == "Complaint":
        parts = (string(own, "complaintFeedbackType"), string(own, "complaintSubType"))
    elif name == "DeliveryDelay":
        parts = (string(own, "delayType"),)
    elif name == "Reject":
        parts = (string(own, "reason"),)
    elif name == "Rendering Failure":
        parts = (string(own, "errorMessage"),)
    elif name == "Click":
        parts = (string(own, "link"),)
    elif name == "Delivery":
        parts = (string(own, "smtpResponse"),)
    elif name == "Subscription":
        parts = (string(own, "contactList"),)
    else:
        parts = ()
    return " ".join(p for p in parts if p) or None


# -- webhooks: SNS messages of our topic --------------------------------------------------
SNS_MAX_AGE = 7 * 24 * 3600  # SNS retries keep a message's Timestamp: past those, well
# within the 30 days replay keys are kept
_SNS_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,100}")
_SNS_AUTH_FIELDS = ("Signature", "SignatureVersion", "SigningCertURL")


def _webhook_key(secret: str) -> frozenset[str]:
    topics = frozenset(part.strip() for part in secret.split(",") if part.strip())
    if not topics or not all(sns.topic_region(topic) for topic in topics):
        raise ValueError(
            "it must be the ARN of the SNS topic SES publishes events to "
            "(arn:aws:sns:REGION:ACCOUNT:TOPIC), or several separated by commas"
        )
    return topics


def _sns_message(request: Request) -> tuple[dict[str, Any], str]:
    """The request's SNS message and its Type, every field the signature covers a string
    (the Subject may be null)."""
    message = request.json()
    if not isinstance(message, dict):
        raise Rejected(400, "expected a JSON object")
    kind = message.get("Type")
    if not isinstance(kind, str) or kind not in sns.SIGNED_FIELDS:
        raise Rejected(400, "not an SNS message")
    for name in _SNS_AUTH_FIELDS:
        if not isinstance(message.get(name), str):
            raise Rejected(401, f"no {name}")
    for name in sns.SIGNED_FIELDS[kind]:
        value = message.get(name)
        if not (isinstance(value, str) or (name == "Subject" and value is None)):
            raise Rejected(400, f"{name} is not a string")
    return message, kind


def _check_webhook(topics: frozenset[str], request: Request) -> tuple[str, ...]:
    message, kind = _sns_message(request)
    if not _SNS_MESSAGE_ID.fullmatch(message["MessageId"]):
        raise Rejected(400, "malformed MessageId")
    if message["TopicArn"] not in topics:
        raise Rejected(401, "not a topic of NEWSLETTER_WEBHOOK_SECRET_SES")
    signature = strict_b64decode(message["Signature"])
    if signature is None:
        raise Rejected(401, "malformed signature")
    try:
        sns.verify(message, signature, sns.Certificates(request.cache_dir))
    except sns.NotGenuine as exc:
        raise Rejected(exc.status, exc.reason) from None
    _fresh_sns(message["Timestamp"], request.now)
    if kind == "SubscriptionConfirmation":
        raise Answered(_confirm(message))
    if kind == "UnsubscribeConfirmation":
        log.warning("Warning: SNS unsubscribed /webhooks/ses from %s.", message["TopicArn"])
        raise Answered(WebhookAnswer(200, "unsubscribe confirmation noted"))
    return (f"sns:{message['MessageId']}",)


def _fresh_sns(timestamp: str, now: float) -> None:
    try:
        signed_at = dt.datetime.fromisoformat(timestamp) if len(timestamp) <= 64 else None
    except ValueError:
        signed_at = None
    if signed_at is None or signed_at.tzinfo is None:
        raise Rejected(400, "malformed Timestamp")
    age = now - signed_at.timestamp()
    if age > SNS_MAX_AGE or age < -TOLERANCE:
        raise Rejected(400, "stale Timestamp (a replay, or the clocks disagree)")


def _confirm(message: dict[str, Any]) -> WebhookAnswer:
    """Confirm a verified subscription of our topic by following its SubscribeURL."""
    try:
        sns.confirm_subscription(message)
    except sns.NotGenuine as exc:
        raise Rejected(exc.status, exc.reason) from None
    except sns.FetchFailed as exc:
        log.warning(
            "Warning: the SNS subscription to %s was not confirmed: %s", message["TopicArn"], exc
        )
        return WebhookAnswer(502, f"the subscription could not be confirmed ({exc})")
    log.warning("Confirmed the SNS subscription of /webhooks/ses to %s.", message["TopicArn"])
    return WebhookAnswer(200, "subscription confirmed")


# -- the provider -------------------------------------------------------------------------
def _build(setup: Setup) -> SESTransport:
    http = setup.http()
    return SESTransport(
        region=setup.option("region"),
        configuration_set=configuration_set(setup),
        **http,
    )


def configuration_set(setup: Setup) -> str | None:
    """The configuration set every message names. SES has no per-message tracking
    option: it follows clicks and opens when the message's configuration set publishes
    Click and Open events. So with ``[tracking]`` on, messages name
    ``tracking_configuration_set`` (a ConfigError when unset); with it off, they name
    ``configuration_set``, which names a set explicitly, so that no default
    configuration set of the sending identity applies."""
    tracking = setup.tracking
    if not tracking.any:
        return setup.option("configuration_set")
    chosen = setup.option("tracking_configuration_set")
    if not chosen:
        on = " and ".join(k for k in ("clicks", "opens") if getattr(tracking, k))
        raise ConfigError(
            f"[tracking] {on} is on, but [delivery] tracking_configuration_set is not set in "
            f"{setup.settings.path}; SES tracks clicks and opens only through a "
            "configuration set.",
            'Set tracking_configuration_set = "newsletter-tracking" under [delivery]: an SES '
            "configuration set whose event destination publishes Open and Click events "
            "(besides those of configuration_set), or turn [tracking] off.",
        )
    return str(chosen)


PROVIDER = Provider(
    name="ses",
    transport=SESTransport,
    build=_build,
    # configuration_set: the set messages name with [tracking] off (its destinations
    # publish no Open or Click); tracking_configuration_set: with [tracking] on
    options=(
        Option("region"),
        Option("configuration_set"),
        Option("tracking_configuration_set"),
    ),
    # read by botocore, as the AWS tools do (or AWS_PROFILE, or the machine's role)
    secrets=(
        Secret("AWS_ACCESS_KEY_ID", "to send through Amazon SES"),
        Secret("AWS_SECRET_ACCESS_KEY", "to send through Amazon SES"),
    ),
    webhook=Verifier(_webhook_key, _check_webhook, legacy=False),  # came after the old variable
    read_event=_read_event,
)
