"""Mettler-Toledo 8217: kg and lb weights, net marker, status answers, encoding, framing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.mt8217 import PROTOCOL, decode, encode, framer


def test_the_manuals_example_reads_1_234_kg_gross() -> None:
    m = decode(b"\x0201.234\r")
    assert m == Measurement(Decimal("1.234"), "kg", True, "gross")
    assert decimal_text(m.weight) == "1.234"


@pytest.mark.parametrize(
    ("body", "weight"), [(b"12.34", "12.34"), (b"012.34", "12.34"), (b"00.05", "0.05")]
)
def test_two_decimals_mean_pounds(body: bytes, weight: str) -> None:
    m = decode(b"\x02" + body + b"\r")
    assert (decimal_text(m.weight), m.unit) == (weight, "lb")


def test_an_n_before_cr_marks_a_net_weight() -> None:
    assert decode(b"\x0201.234N\r") == Measurement(Decimal("1.234"), "kg", True, "net")
    assert decode(b"\x0212.34N\r").mode == "net"


def test_a_zero_weight_keeps_its_decimals() -> None:
    assert decimal_text(decode(b"\x0200.000\r").weight) == "0.000"


def test_parity_in_bit_7_is_ignored() -> None:
    assert decode(bytes(b | 0x80 for b in b"\x0201.234\r")) == decode(b"\x0201.234\r")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0x41, Measurement(None, stable=False)),
        (0x42, Measurement(None, stable=False, status="overload")),
        (0x43, Measurement(None, stable=False, status="overload")),
        (0x44, Measurement(None, stable=False, status="underload")),
        (0x45, Measurement(None, stable=False, status="underload")),
        (0x48, Measurement(None, stable=False, status="error")),
        (0x50, Measurement(None, stable=False)),
        (0x61, Measurement(None, stable=False, mode="net")),
        (0x64, Measurement(None, stable=False, mode="net", status="underload")),
        (0x40, Measurement(None, stable=False)),
        (0xC2, Measurement(None, stable=False, status="overload")),
        (0x21, Measurement(None, stable=False, mode="net")),
    ],
)
def test_a_status_answer_reads_its_bits(status: int, expected: Measurement) -> None:
    assert decode(b"\x02?" + bytes([status]) + b"\r") == expected


@pytest.mark.parametrize(
    "bad",
    [
        b"01.234\r",
        b"\x0201.234",
        b"\x02\r",
        b"\x021.2\r",
        b"\x0201.2345\r",
        b"\x0201,234\r",
        b"\x02-01.234\r",
        b"\x0201.234G\r",
        b"\x02?\r",
        b"\x02?AB\r",
        b"\x02 1.234\r",
    ],
)
def test_answers_that_are_no_8217_frame_are_rejected(bad: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        decode(bad)
    assert e.value.reason == "malformed"


@pytest.mark.parametrize(
    ("m", "frame"),
    [
        (Measurement(Decimal("1.234")), b"\x0201.234\r"),
        (Measurement(Decimal("12.34"), "lb", mode="net"), b"\x0212.34N\r"),
        (Measurement(Decimal("1.2"), "lb"), b"\x0201.20\r"),
        (Measurement(Decimal("1.234"), stable=False), b"\x02?A\r"),
        (Measurement(Decimal("-0.010")), b"\x02?D\r"),
        (Measurement(None, stable=False, status="overload"), b"\x02?C\r"),
        (Measurement(None, stable=False, mode="net", status="error"), b"\x02?i\r"),
    ],
)
def test_encode_answers_as_an_8217_would(m: Measurement, frame: bytes) -> None:
    assert encode(m) == frame


@pytest.mark.parametrize(
    "m",
    [
        Measurement(Decimal("1.234")),
        Measurement(Decimal("99.999"), mode="net"),
        Measurement(Decimal("12.34"), "lb"),
        Measurement(None, stable=False, mode="net", status="underload"),
        Measurement(None, stable=False),
    ],
)
def test_an_encoded_measurement_decodes_back(m: Measurement) -> None:
    assert decode(encode(m)) == m


@pytest.mark.parametrize(
    "m", [Measurement(Decimal("100.000")), Measurement(Decimal("1.2345")), Measurement(None, "g")]
)
def test_encode_refuses_what_an_8217_cannot_answer(m: Measurement) -> None:
    with pytest.raises(ValueError):
        encode(m)


def test_the_protocol_polls_with_w_on_a_7e1_line_and_has_tare_zero_and_clear() -> None:
    assert PROTOCOL.poll == b"W" and PROTOCOL.seven_bit
    assert (PROTOCOL.line.bytesize, PROTOCOL.line.parity, PROTOCOL.line.baudrate) == (7, "E", 9600)
    assert dict(PROTOCOL.commands) == {"tare": b"T", "zero": b"Z", "clear-tare": b"C"}


def test_answers_are_framed_from_stx_to_cr() -> None:
    f = framer()
    assert f.feed(b"\x0201.234\r\x02?A\r\x0212.34N\r") == [
        b"\x0201.234\r",
        b"\x02?A\r",
        b"\x0212.34N\r",
    ]
