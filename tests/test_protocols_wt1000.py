"""Weightech WT1000: S,gross,tare,net lines, net when tared, the last 25 characters."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.wt1000 import PROTOCOL, decode, framer


def test_the_constructed_example_reads_1_500_kg_stable_gross_tare_0() -> None:
    m = decode(b"0,001.500,000.000,001.500\r\n")
    assert m == Measurement(Decimal("1.500"), tare=Decimal(0))
    assert (decimal_text(m.weight), decimal_text(m.tare)) == ("1.500", "0.000")


def test_a_tare_makes_it_a_net_weight_from_the_net_field() -> None:
    m = decode(b"1,002.000,000.500,001.500\r\n")
    assert m == Measurement(Decimal("1.500"), "kg", False, "net", Decimal("0.500"))


def test_negative_fields_and_blank_padding() -> None:
    assert decimal_text(decode(b"0,-00.350,000.000,-00.350\r\n").weight) == "-0.350"
    assert decimal_text(decode(b"0,  1.500,  0.000,  1.500\r\n").weight) == "1.500"


def test_the_fields_are_not_cross_checked() -> None:
    assert decode(b"0,009.000,001.000,001.500\r\n").weight == Decimal("1.500")


def test_bytes_before_the_frame_on_its_line_are_garbage() -> None:
    f = framer()
    frames = f.feed(b"xx10,001.500,000.000,001.500\r\n")
    assert [decode(x) for x in frames] == [Measurement(Decimal("1.500"), tare=Decimal(0))]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"0,001.500,000.000\r\n", "malformed"),  # a start mid-frame
        (b"0,001.500;000.000,001.500\r\n", "malformed"),
        (b"0,001.5x0,000.000,001.500\r\n", "malformed"),
        (b"2,001.500,000.000,001.500\r\n", "status"),
    ],
)
def test_other_lines_are_rejected_with_a_reason(line: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode(line)
    assert e.value.reason == reason


def test_it_polls_with_enq() -> None:
    assert PROTOCOL.poll == b"\x05"
