"""The providers' side of webhooks, for the tests: how each one signs a request."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID

from newsletter.files import write_private
from newsletter.sns import certificate_file

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


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class SNS:
    """Amazon SNS's side, made locally: a CA, the signing certificate it issued at an
    ``https://sns.<region>.amazonaws.com/SimpleNotificationService-<id>.pem`` URL (which
    the tests cannot fetch: they put it in the project's cache), and signed messages."""

    REGION = "eu-west-1"
    TOPIC = "arn:aws:sns:eu-west-1:123456789012:newsletter-events"

    def __init__(self, valid_days: int = 30) -> None:
        now = dt.datetime.now(dt.UTC)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name("Test Amazon RSA CA"))
            .issuer_name(_name("Test Amazon RSA CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("sns.amazonaws.com"))
            .issuer_name(ca.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=valid_days))
            .sign(ca_key, hashes.SHA256())
        )
        self.pem = certificate.public_bytes(serialization.Encoding.PEM)
        self.cert_url = (
            f"https://sns.{self.REGION}.amazonaws.com/"
            f"SimpleNotificationService-{uuid.uuid4().hex}.pem"
        )

    def cache_in(self, cache_dir: Path, url: str | None = None) -> None:
        """Put the certificate where newsletter keeps the one of ``url``."""
        write_private(certificate_file(cache_dir, url or self.cert_url), self.pem)

    def sign(self, message: dict, version: str = "2", url: str | None = None) -> dict:
        """``message`` with the Signature SNS computes (AWS, "Verifying the signatures of
        Amazon SNS messages": each signed field's name and value, a newline after each)."""
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        if message["Type"] != "Notification":
            names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token"]
            names += ["TopicArn", "Type"]
        text = "".join(f"{n}\n{message[n]}\n" for n in names if message.get(n) is not None)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), digest)
        return message | {
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": url or self.cert_url,
        }

    def notification(
        self,
        event: dict | str,
        topic: str = TOPIC,
        message_id: str | None = None,
        timestamp: str | None = None,
        version: str = "2",
        **changes,
    ) -> dict:
        message = {
            "Type": "Notification",
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": event if isinstance(event, str) else json.dumps(event),
            "Timestamp": timestamp or _now(),
            "UnsubscribeURL": f"https://sns.{self.REGION}.amazonaws.com/?Action=Unsubscribe"
            f"&SubscriptionArn={topic}:c9135db0-26c4-47ec-8998-413945fb5a96",
        } | changes
        return self.sign(message, version)

    def confirmation(
        self, topic: str = TOPIC, kind: str = "SubscriptionConfirmation", **changes
    ) -> dict:
        token = "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a"
        message = {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic,
            "Message": f"You have chosen to subscribe to the topic {topic}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": f"https://sns.{self.REGION}.amazonaws.com/"
            f"?Action=ConfirmSubscription&TopicArn={topic}&Token={token}",
            "Timestamp": _now(),
        } | changes
        return self.sign(message)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ses_event(
    event_type: str,
    email: str,
    subscriber: int | str | None = None,
    message_id: str | None = None,
    **objects,
) -> dict:
    """An SES event record as configuration-set event publishing sends it to SNS."""
    tags = {"campaign": ["2026-10-digest"]}
    if subscriber is not None:
        tags["subscriber"] = [str(subscriber)]
    return {
        "eventType": event_type,
        "mail": {
            "timestamp": "2026-11-02T16:30:00.000Z",
            "source": "news@riverbend-clinicians.example",
            "sendingAccountId": "123456789012",
            "messageId": message_id or f"0100018{uuid.uuid4().hex}-000000",
            "destination": [email],
            "tags": tags,
        },
        **objects,
    }
