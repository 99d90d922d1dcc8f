"""The shared helpers in `balanca.scale.protocols.base`: exact decimals and the delimited framer."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.scale.protocols.base import (
    DecodeError,
    DelimitedFramer,
    fixed_point,
    frame_text,
    parse_decimal,
    scaled_units,
)


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [
        (1234, 2, "12.34"),
        (1234, 0, "1234"),
        (1234, -2, "123400"),
        (0, 3, "0.000"),
        (0, -2, "0"),
        (-5, 3, "-0.005"),
        (1, 7, "0.0000001"),
    ],
)
def test_fixed_point_writes_the_value_with_its_decimals_never_an_exponent(
    units: int, decimals: int, text: str
) -> None:
    assert format(fixed_point(units, decimals), "f") == text


def test_a_multiplied_value_has_no_exponent_even_in_str() -> None:
    assert str(fixed_point(1234, -2)) == "123400"


def test_scaled_units_refuses_a_value_with_more_decimals() -> None:
    assert scaled_units(Decimal("12.30"), 2) == 1230
    assert scaled_units(Decimal("1234E2"), -2) == 1234
    with pytest.raises(ValueError):
        scaled_units(Decimal("1.234"), 2)


@pytest.mark.parametrize(
    ("text", "value"),
    [("12.50", "12.50"), ("-012.5", "-12.5"), ("+7", "7"), ("-0.00", "0.00"), (".5", "0.5")],
)
def test_parse_decimal_reads_signed_numbers_exactly(text: str, value: str) -> None:
    assert format(parse_decimal(text), "f") == value


@pytest.mark.parametrize("text", ["", "+", "1e5", "NaN", "Infinity", "1,5", "1.2.3", " 1", "--1"])
def test_parse_decimal_rejects_anything_but_plain_numbers(text: str) -> None:
    with pytest.raises(DecodeError) as e:
        parse_decimal(text)
    assert e.value.reason == "malformed"


def test_frame_text_strips_line_ends_and_rejects_non_ascii() -> None:
    assert frame_text(b" S S 1 g\r\n") == "S S 1 g"
    with pytest.raises(DecodeError):
        frame_text(b"\xff\r\n")


def test_decode_error_carries_reason_and_detail() -> None:
    e = DecodeError("checksum", "CHK 0x25 != 0x26")
    assert (e.reason, e.detail, str(e)) == (
        "checksum",
        "CHK 0x25 != 0x26",
        "checksum: CHK 0x25 != 0x26",
    )


def test_a_resyncing_framer_restarts_at_a_start_byte_inside_a_frame() -> None:
    framer = DelimitedFramer(b"\x02", b"\x03", resync=True)
    assert framer.feed(b"\x02ab") == []
    assert framer.feed(b"c\x02de\x03") == [b"\x02de\x03"]
    assert framer.stats.garbage_bytes == 4


def test_a_line_framer_keeps_start_letters_inside_a_line() -> None:
    framer = DelimitedFramer(b"AB", b"\n", resync=False)
    assert framer.feed(b"xxAxBxA\nB") == [b"AxBxA\n"]
    assert framer.feed(b"A\n") == [b"BA\n"]
    assert framer.stats.garbage_bytes == 2


def test_end_bytes_between_frames_are_not_garbage() -> None:
    framer = DelimitedFramer(b"\x02", b"\x03\r", resync=True)
    assert framer.feed(b"\r\r\x03\x021\x03\r") == [b"\x021\x03"]
    assert framer.stats.garbage_bytes == 0


def test_a_long_run_of_garbage_counts_one_overflow_per_4_kib() -> None:
    framer = DelimitedFramer(b"\x02", b"\x03", resync=True)
    framer.feed(b"x" * (3 * 4097))
    assert framer.stats.overflows == 3 and framer.stats.garbage_bytes == 3 * 4097


def test_a_frame_resets_the_count_of_bytes_without_a_frame() -> None:
    framer = DelimitedFramer(b"\x02", b"\x03", resync=True)
    framer.feed(b"x" * 4000 + b"\x021\x03" + b"x" * 4000)
    assert framer.stats.overflows == 0
