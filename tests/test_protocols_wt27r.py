"""Weightech WT27R-ETH: fields by their separators, signs, decimals option, overload."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.wt27r import PROTOCOL, decode

EXAMPLE = b"EB,kg,B: 012340,T:000000,L: 012340\r\n"


def test_the_constructed_example_reads_12340_kg_stable_gross_tare_0() -> None:
    assert decode(EXAMPLE) == Measurement(Decimal(12340), tare=Decimal(0))


def test_the_sources_negative_zero_reads_as_zero() -> None:
    m = decode(b"EB,kg,B:-000000,T:000000,L:-000000\r\n")
    assert decimal_text(m.weight) == "0"


def test_l_shows_the_net_field_and_i_is_unstable() -> None:
    m = decode(b"IL,kg,B: 012340,T:000040,L:-012300\r\n")
    assert m == Measurement(Decimal(-12300), "kg", False, "net", Decimal(40))


@pytest.mark.parametrize("sign", [b" ", b"+", b""])
def test_a_positive_sign_may_be_blank_plus_or_absent(sign: bytes) -> None:
    frame = b"EB,kg,B:" + sign + b"012340,T:000000,L:" + sign + b"012340\r\n"
    assert decode(frame).weight == Decimal(12340)


@pytest.mark.parametrize(
    ("decimals", "weight", "tare"), [(None, "12340", "0"), (0, "12340", "0"), (2, "123.40", "0.00")]
)
def test_decimals_places_the_point(decimals: int | None, weight: str, tare: str) -> None:
    m = decode(EXAMPLE, decimals)
    assert (decimal_text(m.weight), decimal_text(m.tare)) == (weight, tare)


def test_a_field_with_a_point_is_read_as_written() -> None:
    assert decimal_text(decode(b"EB,kg,B: 12.340,T:00.000,L: 12.340\r\n", 1).weight) == "12.340"


def test_the_unit_is_reported_as_sent_in_lower_case() -> None:
    assert decode(b"EB, G,B: 000500,T:000000,L: 000500\r\n").unit == "g"


def test_999999_is_overload_and_minus_999999_underload() -> None:
    over = decode(b"EB,kg,B: 999999,T:000000,L: 999999\r\n")
    under = decode(b"EB,kg,B:-999999,T:000000,L:-999999\r\n")
    assert over == Measurement(None, "kg", False, "gross", Decimal(0), "overload")
    assert (under.weight, under.status, under.stable) == (None, "underload", False)


def test_bytes_before_a_well_formed_frame_are_garbage() -> None:
    assert decode(b"IEB" + EXAMPLE).weight == Decimal(12340)


@pytest.mark.parametrize(
    "line",
    [
        b"XB,kg,B: 012340,T:000000,L: 012340\r\n",
        b"EX,kg,B: 012340,T:000000,L: 012340\r\n",
        b"EB,kg,B: 0123x0,T:000000,L: 012340\r\n",
        b"EB,kg,B: 012340,T:000000\r\n",
        b"EB,kg,B: 01.2.3,T:000000,L: 012340\r\n",
    ],
)
def test_other_lines_are_rejected_as_malformed(line: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        decode(line)
    assert e.value.reason == "malformed"


def test_it_polls_with_enq() -> None:
    assert PROTOCOL.poll == b"\x05"
