"""Condec continuous string: polarity, 7 or 8 characters, units, modes, every status byte."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.condec import decode, encode, framer


def test_the_constructed_example_reads_1234_kg_stable_gross() -> None:
    assert decode(b"\x02    1234KG \r\n") == Measurement(Decimal(1234))


def test_a_lone_cr_ends_it_too_rice_lake() -> None:
    assert framer().feed(b"\x02    1234KG \r\x02   0.50LNM\r") == [
        b"\x02    1234KG \r",
        b"\x02   0.50LNM\r",
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"    0.50LG ", Measurement(Decimal("0.50"), "lb")),
        (b"-   0.50LG ", Measurement(Decimal("-0.50"), "lb")),
        (b"+   0.50LG ", Measurement(Decimal("0.50"), "lb")),
        (b"    1234GNZ", Measurement(Decimal(1234), "g", mode="net")),
        (b"    12.5OGM", Measurement(Decimal("12.5"), "oz", False)),
        (b"    12.5TG ", Measurement(Decimal("12.5"), "t")),
        (b"    12.5kgm", Measurement(Decimal("12.5"), "kg", False)),
        (b" 12345.67KG ", Measurement(Decimal("12345.67"))),  # Transcell's 8 characters
        (b"        KGO", Measurement(None, "kg", False, status="overload")),
        (b"-       KNO", Measurement(None, "kg", False, "net", status="underload")),
        (b"        KGI", Measurement(None, "kg", False, status="error")),
    ],
)
def test_every_status_the_layout_allows(body: bytes, expected: Measurement) -> None:
    m = decode(b"\x02" + body[:-3] + body[-3:] + b"\r\n")
    assert m == expected and repr(m.weight) == repr(expected.weight)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"    1234KGP", "not-weight"),
        (b"    1234KGC", "not-weight"),
        (b"    1234KGX", "status"),
        (b"    1234XG ", "malformed"),
        (b"    1234KX ", "malformed"),
        (b"*   1234KG ", "malformed"),
        (b"   1234KG ", "malformed"),
        (b"    12x4KG ", "malformed"),
    ],
)
def test_other_strings_are_rejected_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode(b"\x02" + body + b"\r\n")
    assert e.value.reason == reason


def test_encode_sends_leading_zeros_as_blanks() -> None:
    assert encode(Measurement(Decimal("0.50"), "lb")) == b"\x02    0.50LG \r\n"
