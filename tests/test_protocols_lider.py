"""Líder LD2052: SOH weight SP E/I STX, the frame's own decimals, rejections."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.lider import PROTOCOL, decode, encode, framer


def test_the_constructed_example_reads_12_50_kg_stable_gross() -> None:
    m = decode(b"\x01012.50 E\x02")
    assert m == Measurement(Decimal("12.50")) and decimal_text(m.weight) == "12.50"


@pytest.mark.parametrize(
    ("field", "weight"),
    [(b"012.50", "12.50"), (b"12340.", "12340"), (b"00000.", "0"), (b"0.0005", "0.0005")],
)
def test_the_weight_keeps_the_frames_own_decimals(field: bytes, weight: str) -> None:
    assert decimal_text(decode(b"\x01" + field + b" E\x02").weight) == weight


def test_i_is_unstable() -> None:
    assert decode(b"\x01012.50 I\x02") == Measurement(Decimal("12.50"), stable=False)


def test_a_leading_minus_reads_as_negative() -> None:
    assert decimal_text(decode(b"\x01-12.50 E\x02").weight) == "-12.50"


def test_blanks_are_padding_not_zeros() -> None:
    assert decimal_text(decode(b"\x01  12.5 E\x02").weight) == "12.5"
    assert decimal_text(decode(b"\x01012.50E\x02").weight) == "12.50"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x01012.50 X\x02", "status"),
        (b"\x01ABCDEF E\x02", "malformed"),
        (b"\x0112.5.0 E\x02", "malformed"),
        (b"\x01\x02", "malformed"),
        (b"\x02012.50 E\x01", "malformed"),
    ],
)
def test_frames_that_are_not_weights_are_rejected_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode(frame)
    assert e.value.reason == reason


def test_stx_ends_a_frame_and_never_starts_one() -> None:
    f = framer()
    assert f.feed(b"\x02\x02012.50 E\x02\x01012.50 E\x02") == [b"\x01012.50 E\x02"]


def test_line_defaults_are_2400_8n1_continuous() -> None:
    assert (PROTOCOL.line.baudrate, PROTOCOL.line.bytesize, PROTOCOL.line.parity) == (2400, 8, "N")
    assert PROTOCOL.poll is None and PROTOCOL.commands == {}


def test_encode_writes_the_point_last_for_whole_weights() -> None:
    assert encode(Measurement(Decimal(1234))) == b"\x0101234. E\x02"
    with pytest.raises(ValueError):
        encode(Measurement(None, stable=False, status="overload"))
