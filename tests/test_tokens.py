"""Unsubscribe tokens cannot be forged or altered."""

from __future__ import annotations

from newsletter.tokens import LinkSigner


def test_round_trip_and_tampering() -> None:
    signer = LinkSigner("s3cret")
    token = signer.unsubscribe_token(12345, 7)
    assert signer.verify_unsubscribe(token) == (12345, 7)
    sub, camp, sig = token.split(".")
    assert signer.verify_unsubscribe(f"{int(sub, 36) + 1:x}.{camp}.{sig}") is None
    assert signer.verify_unsubscribe(f"{sub}.{camp}.{sig[:-1]}A") is None
    assert signer.verify_unsubscribe(f"{sub}.{camp}") is None
    assert signer.verify_unsubscribe("") is None
    assert LinkSigner("other").verify_unsubscribe(token) is None
    assert "12345" not in token
