"""Epelsa "Auto" mode: STX status weight CR ETX, the source's examples, rejections."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.epelsa import decode, encode, framer


@pytest.mark.parametrize(
    ("frame", "weight", "stable"),
    [
        (b"\x02A -0.450\r\x03", "-0.450", True),
        (b"\x02! -0.250\r\x03", "-0.250", False),
        (b"\x02I  0.000\r\x03", "0.000", False),
    ],
)
def test_the_sources_examples(frame: bytes, weight: str, stable: bool) -> None:
    m = decode(frame)
    assert (decimal_text(m.weight), m.stable, m.unit, m.mode, m.tare) == (
        weight,
        stable,
        "kg",
        "gross",
        None,
    )


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x02X  0.000\r\x03", "status"),
        (b"\x02A  0.0.0\r\x03", "malformed"),
        (b"\x02A  0.000\x03", "malformed"),
        (b"\x02A\r\x03", "malformed"),
    ],
)
def test_other_frames_are_rejected_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode(frame)
    assert e.value.reason == reason


def test_the_cr_inside_a_frame_does_not_end_it() -> None:
    assert framer().feed(b"\x02A 12.345\r") == []


def test_encode_right_justifies_seven_characters() -> None:
    assert encode(Measurement(Decimal("1.5"), stable=False)) == b"\x02!    1.5\r\x03"
