"""The providers' side of webhooks, for the tests: how each one signs a request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def noncanonical(text: str) -> str:
    """The same bytes in a base64 a lenient decoder accepts and a strict one refuses: the
    unused low bits of the last character set."""
    stripped = text.rstrip("=")
    assert len(stripped) % 4, "needs padding bits to play with"
    last = B64_ALPHABET.index(stripped[-1])
    return stripped[:-1] + B64_ALPHABET[last | 1] + text[len(stripped) :]


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class SendGrid:
    """SendGrid's side of the signed event webhook: an ECDSA P-256 key pair."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = base64.b64encode(
            self.key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode()

    def der(self, payload: bytes, timestamp: str, high_s: bool | None = None) -> bytes:
        """A signature as `cryptography` makes it (high S about half the time), or in
        the low-S or high-S form of the same signature."""
        der = self.key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        if high_s is None:
            return der
        r, s = decode_dss_signature(der)
        low = min(s, P256_ORDER - s)
        return encode_dss_signature(r, P256_ORDER - low if high_s else low)

    @staticmethod
    def headers(signature: str | bytes, timestamp: str) -> dict:
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }

    def signed(self, payload: bytes, timestamp: str | None = None) -> dict:
        """``requests.post`` arguments: the body and its signature headers."""
        timestamp = timestamp or str(int(time.time()))
        signature = base64.b64encode(self.der(payload, timestamp)).decode()
        return {"data": payload, "headers": self.headers(signature, timestamp)}


def mailgun_signature(key: str, token: str, timestamp: str | None = None) -> dict:
    """The ``signature`` object Mailgun puts in the body."""
    timestamp = timestamp or str(int(time.time()))
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"token": token, "timestamp": timestamp, "signature": digest}


def svix_headers(key: bytes, msg_id: str, raw: bytes, timestamp: int | None = None) -> dict:
    ts = str(timestamp or int(time.time()))
    signature = base64.b64encode(
        hmac.new(key, f"{msg_id}.{ts}.".encode() + raw, hashlib.sha256).digest()
    ).decode()
    return {
        "svix-id": msg_id,
        "svix-timestamp": ts,
        "svix-signature": f"v1,{signature}",
        "Content-Type": "application/json",
    }
