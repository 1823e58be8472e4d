"""A reader's value in the quoted-printable body: the short cut for values that
quoted-printable leaves as they are gives exactly what the encoder gives."""

from __future__ import annotations

import random
import string

import pytest

from newsletter.render.message import _qp, _qp_value

EDGES = [
    "Ana",
    ".Dot",
    "..",
    ".",
    "a b",
    "a b ",
    " ab",
    "\tab",
    "ab\t",
    "a=b",
    "=",
    "Zoë",
    "Олег",
    "https://news.example/u/0.1.pi7NOQByKfCxUPKBGbvJHA",
    "https://news.example/u/?a=1&b=2",
    "x" * 74,
    "x" * 75,
    "x" * 76,
    "x" * 77,
    "x" * 200,
    "a" + " " * 73 + "b",
    "a" + " " * 74 + "b",
    "~}|{`_^]\\[@?>;:/.-,+*)('&%$#\"!",
    "<",
    ">",
    "\x7f",
    "",
]


@pytest.mark.parametrize("value", EDGES)
def test_a_value_is_encoded_as_the_encoder_does(value: str) -> None:
    assert _qp_value(value) == _qp(value)


def test_random_values_are_encoded_as_the_encoder_does() -> None:
    chars = string.printable.replace("\r", "").replace("\n", "") + "éЖ\x00\x7f "
    rng = random.Random(24)
    for _ in range(5000):
        value = "".join(rng.choice(chars) for _ in range(rng.randrange(1, 90)))
        assert _qp_value(value) == _qp(value), value
