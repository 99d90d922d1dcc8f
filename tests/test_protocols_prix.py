"""Toledo Prix / Filizola: 5-digit and self-checkout answers, special answers, framing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.prix import PROTOCOL, decode, encode, framer


def test_the_manuals_example_reads_1_250_kg() -> None:
    m = decode(b"\x0201250\x03")
    assert m == Measurement(Decimal("1.250")) and decimal_text(m.weight) == "1.250"


def test_an_answer_ended_by_cr_reads_the_same() -> None:
    assert decode(b"\x0201250\r") == decode(b"\x0201250\x03")


@pytest.mark.parametrize(
    ("decimals", "weight"), [(None, "1.250"), (3, "1.250"), (2, "12.50"), (1, "125.0"), (0, "1250")]
)
def test_the_decimals_option_places_the_point(decimals: int | None, weight: str) -> None:
    assert decimal_text(decode(b"\x0201250\x03", decimals).weight) == weight


@pytest.mark.parametrize(("body", "weight"), [(b"00000", "0.000"), (b"99999", "99.999")])
def test_five_digit_limits(body: bytes, weight: str) -> None:
    assert decimal_text(decode(b"\x02" + body + b"\x03").weight) == weight


def test_iiiii_is_unstable_without_a_weight() -> None:
    assert decode(b"\x02IIIII\x03") == Measurement(None, stable=False, status="ok")


def test_nnnnn_is_negative_so_underload() -> None:
    assert decode(b"\x02NNNNN\x03") == Measurement(None, stable=False, status="underload")


def test_sssss_is_overload() -> None:
    assert decode(b"\x02SSSSS\r") == Measurement(None, stable=False, status="overload")


@pytest.mark.parametrize(
    ("body", "weight"), [(b"+123,456", "123.456"), (b"+001,250", "1.250"), (b"-000,500", "-0.500")]
)
def test_self_checkout_answers_use_a_decimal_comma(body: bytes, weight: str) -> None:
    assert decimal_text(decode(b"\x02" + body + b"\x03").weight) == weight


def test_a_self_checkout_weight_keeps_its_own_decimals_whatever_the_option() -> None:
    assert decimal_text(decode(b"\x02+123,456\x03", 1).weight) == "123.456"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"+III,III", Measurement(None, stable=False)),
        (b"-III,III", Measurement(None, stable=False, status="underload")),
        (b"+SSS,SSS", Measurement(None, stable=False, status="overload")),
    ],
)
def test_self_checkout_special_answers(body: bytes, expected: Measurement) -> None:
    assert decode(b"\x02" + body + b"\x03") == expected


@pytest.mark.parametrize(
    "bad",
    [
        b"01250\x03",
        b"\x0201250",
        b"\x02\x03",
        b"\x021250\x03",
        b"\x02012500\x03",
        b"\x0201.25\x03",
        b"\x02 1250\x03",
        b"\x02IIII\x03",
        b"\x02+123.456\x03",
        b"\x02123,456\x03",
        b"\x02+12,3456\x03",
        b"\x02\xd9\xd9\xd9\xd9\xd9\x03",
    ],
)
def test_answers_that_are_no_prix_frame_are_rejected(bad: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        decode(bad)
    assert e.value.reason == "malformed"


@pytest.mark.parametrize(
    ("m", "frame"),
    [
        (Measurement(Decimal("1.250")), b"\x0201250\x03"),
        (Measurement(Decimal("1.25")), b"\x0201250\x03"),
        (Measurement(Decimal("99.999")), b"\x0299999\x03"),
        (Measurement(Decimal("123.456")), b"\x02+123,456\x03"),
        (Measurement(Decimal("2.000"), stable=False), b"\x02IIIII\x03"),
        (Measurement(None, stable=False), b"\x02IIIII\x03"),
        (Measurement(Decimal("-0.010")), b"\x02NNNNN\x03"),
        (Measurement(None, stable=False, status="underload"), b"\x02NNNNN\x03"),
        (Measurement(None, stable=False, status="overload"), b"\x02SSSSS\x03"),
    ],
)
def test_encode_answers_as_a_prix_scale_would(m: Measurement, frame: bytes) -> None:
    assert encode(m) == frame


@pytest.mark.parametrize(
    "m",
    [
        Measurement(Decimal("1.2345")),
        Measurement(Decimal("1000.000")),
        Measurement(Decimal(1), "lb"),
        Measurement(None, stable=False, status="error"),
    ],
)
def test_encode_refuses_what_a_prix_cannot_answer(m: Measurement) -> None:
    with pytest.raises(ValueError):
        encode(m)


def test_the_protocol_polls_with_enq_on_an_8n1_line() -> None:
    assert PROTOCOL.poll == b"\x05"
    assert (PROTOCOL.line.bytesize, PROTOCOL.line.parity, PROTOCOL.line.baudrate) == (8, "N", 9600)
    assert not PROTOCOL.commands and not PROTOCOL.replies


def test_answers_ending_in_etx_or_cr_are_framed() -> None:
    f = framer()
    assert f.feed(b"\x0201250\x03\x02IIIII\r") == [b"\x0201250\x03", b"\x02IIIII\r"]


def test_an_answer_cut_short_by_a_new_stx_is_dropped_as_garbage() -> None:
    f = framer()
    assert f.feed(b"\x02012\x0201250\x03") == [b"\x0201250\x03"]
    assert f.stats.garbage_bytes == 4
