"""Toledo Protocol A: both status bytes, the decimals bit, both checksum widths, framing by
length when status bytes or the checksum equal STX or CR."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.base import MASK7, DecodeError
from balanca.scale.protocols.toledo_a import PROTOCOL, checksum, decode, encode, framer

EXAMPLE = b"\x02@001250\x00000625000500\r7"


def frame(s1: int, weight: bytes, s2: int) -> bytes:
    body = bytes([2, s1]) + weight + bytes([s2]) + b"000625000500\r"
    return body + bytes([checksum(body)])


def test_the_constructed_example_reads_1_250_kg_stable_gross() -> None:
    m = decode(EXAMPLE)
    assert m == Measurement(Decimal("1.250")) and decimal_text(m.weight) == "1.250"


@pytest.mark.parametrize(
    ("s1", "s2", "expected"),
    [
        (0x41, 0x00, Measurement(Decimal("1.250"), stable=False)),
        (0x42, 0x00, Measurement(Decimal("1.250"))),  # print pressed
        (0x50, 0x00, Measurement(Decimal("1.250"))),  # Prix I
        (0x60, 0x00, Measurement(Decimal("1.250"))),  # prices without decimals
        (0x40, 0x08, Measurement(Decimal("12.50"))),
        (0x40, 0x40, Measurement(Decimal("1.250"), mode="net")),
        (0x40, 0x37, Measurement(Decimal("1.250"))),  # reserved bits and the 7th price digit
        (0x48, 0x40, Measurement(None, stable=False, mode="net", status="overload")),
    ],
)
def test_every_status_bit(s1: int, s2: int, expected: Measurement) -> None:
    m = decode(frame(s1, b"001250", s2))
    assert m == expected and repr(m.weight) == repr(expected.weight)


def test_an_out_of_range_weight_field_is_not_parsed() -> None:
    assert decode(frame(0x48, b"------", 0)).status == "overload"


def test_a_date_frame_is_not_a_weight() -> None:
    with pytest.raises(DecodeError) as e:
        decode(frame(0x44, b"011226", 0))
    assert e.value.reason == "not-weight"


def test_a_wrong_checksum_is_rejected() -> None:
    with pytest.raises(DecodeError) as e:
        decode(EXAMPLE[:-1] + b"8")
    assert e.value.reason == "checksum"


def test_the_7_bit_checksum_of_toledo_is_accepted_too() -> None:
    body = EXAMPLE[:-1]
    seven = -sum(body.translate(MASK7)) & 0x7F
    assert sum(body) & 0xFF != seven  # the two rules differ here
    assert decode(body + bytes([seven])) == decode(EXAMPLE)


@pytest.mark.parametrize(
    "bad",
    [EXAMPLE[:-2] + b"\n7", EXAMPLE[:-1], b"\x02@0012x0\x00000625000500\r" + b"\x00"],
)
def test_other_frames_are_rejected(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(bad)


def test_a_status_byte_equal_to_stx_does_not_restart_the_frame() -> None:
    printed = frame(0x02, b"001250", 0x00)  # S1 = 0x02: print pressed, no totalisation
    f = framer()
    assert f.feed(printed[:5]) == [] and f.feed(printed[5:]) == [printed]
    assert f.stats.garbage_bytes == 0


def test_a_checksum_equal_to_stx_or_cr_is_data() -> None:
    for target in (0x02, 0x0D):
        s2 = next(s2 for s2 in range(256) if checksum(frame(0x40, b"001250", s2)[:22]) == target)
        f = frame(0x40, b"001250", s2)
        assert f[-1] == target
        assert framer().feed(f + EXAMPLE) == [f, EXAMPLE]


def test_an_stx_without_cr_22_bytes_on_is_garbage() -> None:
    f = framer()
    assert f.feed(b"\x02\x02junk" + EXAMPLE) == [EXAMPLE]
    assert f.stats.garbage_bytes == 6


def test_encode_sends_negative_as_out_of_range_and_polls_with_enq() -> None:
    assert decode(encode(Measurement(Decimal("-0.005")))).status == "overload"
    assert PROTOCOL.poll == b"\x05"
