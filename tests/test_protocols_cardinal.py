"""Cardinal 738 stream: CR starts, ETX ends, polarity, units, modes, every status byte."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.cardinal import decode, encode, framer

EXAMPLE = b"\r+001234.  lb g  \x03"


def test_the_constructed_example_reads_1234_lb_stable_gross() -> None:
    m = decode(EXAMPLE)
    assert m == Measurement(Decimal(1234), "lb") and decimal_text(m.weight) == "1234"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (b"\r+0012.50  kg g  \x03", Measurement(Decimal("12.50"))),
        (b"\r-0012.50m kg n  \x03", Measurement(Decimal("-12.50"), "kg", False, "net")),
        (b"\r+0012.50M KG N  \x03", Measurement(Decimal("12.50"), "kg", False, "net")),
        (b"\r+001234.  g  g  \x03", Measurement(Decimal(1234), "g")),
        (b"\r+001234.  t  g  \x03", Measurement(Decimal(1234), "t")),
        (b"\r+001234.  tn g  \x03", Measurement(Decimal(1234), "tn")),
        (b"\r+001234.  oz g  \x03", Measurement(Decimal(1234), "oz")),
        (b"\r+001234.     g  \x03", Measurement(Decimal(1234))),
        (b"\r+0001234.  lb g  \x03", Measurement(Decimal(1234), "lb")),  # 7 digits (880)
        (b"\r+000000.o lb g  \x03", Measurement(None, "lb", False, status="overload")),
        (b"\r-000000.O lb g  \x03", Measurement(None, "lb", False, status="underload")),
    ],
)
def test_every_status_the_layout_allows(frame: bytes, expected: Measurement) -> None:
    m = decode(frame)
    assert m == expected and repr(m.weight) == repr(expected.weight)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\r+001234.x lb g  \x03", "status"),
        (b"\r 001234.  lb g  \x03", "malformed"),
        (b"\r+001234.  xx g  \x03", "malformed"),
        (b"\r+001234.  lb x  \x03", "malformed"),
        (b"\r+0012x4.  lb g  \x03", "malformed"),
        (b"\r+1234.  lb g  \x03", "malformed"),
    ],
)
def test_other_frames_are_rejected_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode(frame)
    assert e.value.reason == reason


def test_a_stray_cr_in_garbage_is_settled_by_the_next_cr() -> None:
    f = framer()
    assert f.feed(b"\rnoise" + EXAMPLE) == [EXAMPLE]
    assert f.stats.garbage_bytes == 6


def test_encode_writes_six_digits_and_the_point() -> None:
    assert encode(Measurement(Decimal("12.5"), "kg", False, "net")) == b"\r+00012.5m kg n  \x03"
