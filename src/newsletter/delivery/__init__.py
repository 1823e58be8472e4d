"""Transports: the one small interface the sender needs (``base.Transport``), the
template HTTP transports share, and one retry policy (``retry``). Each provider's own
transport is in its module under ``providers``, which imports this package; the
transport a project names is made by ``catalog.make_transport``."""

from __future__ import annotations

from .base import Transport

__all__ = ["Transport"]
