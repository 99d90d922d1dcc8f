"""A&D-style ASCII: headers, token-read values and units, line endings, encoding, framing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.ad import PROTOCOL, decode, encode, framer
from balanca.scale.protocols.base import DecodeError


def test_the_manuals_gross_example_reads_123_45_kg_stable_gross() -> None:
    assert decode(b"ST,GS,+0123.45kg\r\n") == Measurement(Decimal("123.45"), "kg", True, "gross")


def test_the_manuals_net_example_reads_10000_kg_net() -> None:
    m = decode(b"ST,NT,+0010000kg\r\n")
    assert m == Measurement(Decimal(10000), "kg", True, "net")
    assert decimal_text(m.weight) == "10000"


def test_an_unstable_header_gives_an_unstable_weight() -> None:
    assert decode(b"US,GS,+0001.50kg\r\n") == Measurement(Decimal("1.50"), "kg", False)


@pytest.mark.parametrize(
    ("data", "weight", "unit"),
    [
        ("+0123.45kg", "123.45", "kg"),
        ("-0123.45kg", "-123.45", "kg"),
        ("+00123.4 g", "123.4", "g"),
        ("+0001.234 t", "1.234", "t"),
        ("+0012.34lb", "12.34", "lb"),
        ("+  123.45kg", "123.45", "kg"),
        ("-   12.34 kg", "-12.34", "kg"),
        ("+   0.000kg", "0.000", "kg"),
        ("+12.3kg", "12.3", "kg"),
        ("+001234.567kg", "1234.567", "kg"),
        ("+0123.45  ", "123.45", "kg"),
        ("+0123.45", "123.45", "kg"),
        (" 0123.45kg", "123.45", "kg"),
        ("  +123.45 kg ", "123.45", "kg"),
        ("-0000.00kg", "0.00", "kg"),
        ("+.5kg", "0.5", "kg"),
    ],
)
def test_sign_number_and_unit_are_read_as_tokens(data: str, weight: str, unit: str) -> None:
    m = decode(f"ST,GS,{data}\r\n".encode())
    assert (decimal_text(m.weight), m.unit) == (weight, unit)


@pytest.mark.parametrize("ending", [b"\r\n", b"\r", b"\n", b""])
def test_any_line_ending_decodes(ending: bytes) -> None:
    assert decode(b"ST,GS,+0123.45kg" + ending).weight == Decimal("123.45")


def test_out_of_range_with_plus_is_overload() -> None:
    assert decode(b"OL,GS,+       kg\r\n") == Measurement(None, "kg", False, status="overload")


def test_out_of_range_with_minus_is_underload() -> None:
    assert decode(b"OL,NT,-       kg\r\n") == Measurement(
        None, "kg", False, "net", None, "underload"
    )


def test_out_of_range_ignores_digits_in_place_of_blanks() -> None:
    assert decode(b"OL,GS,+9999999kg\r\n").status == "overload"


def test_a_tare_header_reads_as_a_tare_without_a_weight() -> None:
    assert decode(b"ST,TR,+0001.25kg\r\n") == Measurement(None, "kg", False, "net", Decimal("1.25"))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"QT,GS,+0000123PC\r\n", "unknown-status"),
        (b"ST,XX,+0123.45kg\r\n", "unknown-status"),
        (b"st,gs,+0123.45kg\r\n", "unknown-status"),
        (b"ST,GS\r\n", "malformed"),
        (b"ST,GS,+0123.45kg,1\r\n", "malformed"),
        (b"ST,GS,+01 23.45kg\r\n", "malformed"),
        (b"ST,GS,+0123.4.5kg\r\n", "malformed"),
        (b"ST,GS,+kg\r\n", "malformed"),
        (b"ST,GS,+0123.45k2\r\n", "malformed"),
        (b"ST,GS,++0123.45kg\r\n", "malformed"),
        (b"T,GS,+0123.45kg\r\n", "unknown-status"),
        (b"ST,GS,+0123.45\xb0g\r\n", "malformed"),
    ],
)
def test_lines_that_are_not_a_d_frames_are_rejected(line: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode(line)
    assert e.value.reason == reason


def test_encode_writes_the_manuals_layout() -> None:
    assert encode(Measurement(Decimal("123.45"))) == b"ST,GS,+0123.45kg\r\n"
    assert encode(Measurement(Decimal("-1.5"), "g", False, "net")) == b"US,NT,-00001.5 g\r\n"
    assert encode(Measurement(None, "kg", False, status="overload")) == b"OL,GS,+       kg\r\n"


@pytest.mark.parametrize(
    "m",
    [
        Measurement(Decimal("123.45")),
        Measurement(Decimal(10000), mode="net"),
        Measurement(Decimal("-0.005"), "t", False),
        Measurement(Decimal("123456789.12"), "lb"),
        Measurement(None, "kg", False, "gross", None, "overload"),
        Measurement(None, "g", False, "net", None, "underload"),
        Measurement(None, "kg", False, "net", Decimal("2.50")),
    ],
)
def test_an_encoded_measurement_decodes_back(m: Measurement) -> None:
    assert decode(encode(m)) == m


@pytest.mark.parametrize(
    "m",
    [
        Measurement(None),
        Measurement(Decimal(1), status="error"),
        Measurement(Decimal(1), status="overload"),
        Measurement(Decimal(1), "kgs"),
    ],
)
def test_encode_refuses_what_a_line_cannot_carry(m: Measurement) -> None:
    with pytest.raises(ValueError):
        encode(m)


def test_the_protocol_reads_a_continuous_8n1_line() -> None:
    assert (PROTOCOL.line.bytesize, PROTOCOL.line.parity, PROTOCOL.line.baudrate) == (8, "N", 9600)
    assert PROTOCOL.poll is None and PROTOCOL.flags_stability and not PROTOCOL.seven_bit


def test_lines_are_framed_at_cr_lf_cr_or_lf() -> None:
    f = framer()
    stream = b"ST,GS,+0001.00kg\r\nST,GS,+0002.00kg\rUS,GS,+0003.00kg\n"
    assert f.feed(stream) == [
        b"ST,GS,+0001.00kg\r\n",
        b"ST,GS,+0002.00kg\r",
        b"US,GS,+0003.00kg\n",
    ]
    assert f.stats.garbage_bytes == 0


def test_a_line_that_starts_mid_frame_is_skipped_up_to_a_header_letter() -> None:
    f = framer()
    frames = f.feed(b",+0123.45kg\r\nST,GS,+0123.45kg\r\n")
    assert frames == [b"ST,GS,+0123.45kg\r\n"]
    assert f.stats.garbage_bytes == len(b",+0123.45kg")
