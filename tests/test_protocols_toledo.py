"""Toledo continuous output: decoding from the status-word tables, encoding, and framing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.toledo import PROTOCOL, ToledoFramer, decode, encode

EXAMPLE = b"\x0220 012340000000\r%"
"""PROTOCOLS.md's frame: 12340 kg, stable, gross, tare 0."""


def chk(body: bytes) -> int:
    """The checksum as PROTOCOLS.md defines it, written independently of the module."""
    return (-sum(b & 0x7F for b in body)) & 0x7F


def frame(
    swa: int = 0x32,
    swb: int = 0x30,
    swc: int = 0x20,
    weight: bytes = b"012340",
    tare: bytes | None = b"000000",
    with_chk: bool = True,
) -> bytes:
    """A Toledo frame from its fields: SWA 0x32 (no decimals, ×2), SWB 0x30 (kg, gross)."""
    body = bytes([2, swa, swb, swc]) + weight + (tare if tare is not None else b"") + b"\r"
    return body + bytes([chk(body)]) if with_chk else body


def body_with_chk(value: int) -> bytes:
    """A 17-byte frame whose checksum is `value`."""
    for tare in (b"000000", b"999999"):
        for units in range(0, 10**6, 997):
            body = frame(weight=b"%06d" % units, tare=tare, with_chk=False)
            if chk(body) == value:
                return body
    raise AssertionError(value)


def decode_all(frames: list[bytes]) -> list[Measurement | str]:
    """Decoded measurements, or the DecodeError reason."""
    out: list[Measurement | str] = []
    for f in frames:
        try:
            out.append(decode(f))
        except DecodeError as e:
            out.append(e.reason)
    return out


# Decoding


def test_the_manuals_example_frame_has_a_valid_checksum_and_reads_12340_kg_stable_gross() -> None:
    assert EXAMPLE == frame()
    assert decode(EXAMPLE) == Measurement(Decimal(12340), "kg", True, "gross", Decimal(0))


@pytest.mark.parametrize(
    ("code", "weight", "tare"),
    [
        (0b000, "123400", "500"),
        (0b001, "12340", "50"),
        (0b010, "1234", "5"),
        (0b011, "123.4", "0.5"),
        (0b100, "12.34", "0.05"),
        (0b101, "1.234", "0.005"),
        (0b110, "0.1234", "0.0005"),
        (0b111, "0.01234", "0.00005"),
    ],
)
def test_each_decimal_point_code_places_the_point_in_weight_and_tare(
    code: int, weight: str, tare: str
) -> None:
    m = decode(frame(swa=0x20 | 0b01000 | code, weight=b"001234", tare=b"000005"))
    assert (decimal_text(m.weight), decimal_text(m.tare)) == (weight, tare)


def test_a_x100_weight_prints_as_plain_digits_not_exponent() -> None:
    m = decode(frame(swa=0x28, weight=b"001234"))
    assert m.weight is not None and str(m.weight) == "123400"


@pytest.mark.parametrize("increment", [0b01, 0b10, 0b11, 0b00])
def test_the_increment_bits_do_not_change_the_value(increment: int) -> None:
    m = decode(frame(swa=0x24 | increment << 3, weight=b"001234"))
    assert decimal_text(m.weight) == "12.34"


def test_a_zero_weight_keeps_its_decimals() -> None:
    assert decimal_text(decode(frame(swa=0x2C, weight=b"000000")).weight) == "0.00"


def test_the_sign_bit_makes_the_weight_negative() -> None:
    m = decode(frame(swa=0x2C, swb=0x32, weight=b"001234"))
    assert m.weight == Decimal("-12.34") and m.status == "ok"


def test_a_negative_zero_reads_as_zero() -> None:
    assert decimal_text(decode(frame(swa=0x2C, swb=0x32, weight=b"000000")).weight) == "0.00"


def test_the_net_bit_gives_a_net_weight_with_its_tare() -> None:
    m = decode(frame(swa=0x2D, swb=0x31, weight=b"012345", tare=b"000500"))
    assert m == Measurement(Decimal("12.345"), "kg", True, "net", Decimal("0.500"))


def test_the_motion_bit_makes_the_weight_unstable() -> None:
    m = decode(frame(swb=0x38))
    assert m.weight == Decimal(12340) and not m.stable


def test_out_of_range_reads_as_overload_without_a_weight() -> None:
    m = decode(frame(swb=0x34))
    assert (m.weight, m.status, m.stable) == (None, "overload", False)


def test_out_of_range_and_negative_reads_as_underload() -> None:
    m = decode(frame(swb=0x36))
    assert (m.weight, m.status) == (None, "underload")


def test_out_of_range_keeps_the_tare() -> None:
    assert decode(frame(swb=0x35, tare=b"000100")).tare == Decimal(100)


def test_power_up_not_zeroed_reads_as_an_error_without_a_weight() -> None:
    m = decode(frame(swb=0x70))
    assert (m.weight, m.status, m.stable) == (None, "error", False)


def test_a_clear_kg_bit_means_pounds() -> None:
    assert decode(frame(swb=0x20)).unit == "lb"


@pytest.mark.parametrize(("code", "unit"), [(0b001, "g"), (0b010, "t"), (0b011, "oz")])
def test_the_swc_unit_code_names_the_unit(code: int, unit: str) -> None:
    assert decode(frame(swc=0x20 | code)).unit == unit


def test_the_grams_bit_wins_over_the_kg_bit() -> None:
    assert decode(frame(swb=0x30, swc=0x21)).unit == "g"


@pytest.mark.parametrize("code", [0b100, 0b101, 0b110, 0b111])
def test_an_unknown_swc_unit_code_is_rejected(code: int) -> None:
    with pytest.raises(DecodeError) as e:
        decode(frame(swc=0x20 | code))
    assert e.value.reason == "unknown-unit"


def test_print_request_and_expanded_bits_are_ignored() -> None:
    assert decode(frame(swc=0x38)) == decode(frame(swc=0x20)) == decode(frame(swc=0x30))


@pytest.mark.parametrize(
    ("swa", "swb", "swc"), [(0x12, 0x10, 0x00), (0x72, 0x30, 0x60), (0x32, 0x10, 0x40)]
)
def test_bits_documented_as_always_0_or_1_are_not_checked(swa: int, swb: int, swc: int) -> None:
    assert decode(frame(swa, swb, swc)) == decode(EXAMPLE)


def test_parity_in_bit_7_is_ignored() -> None:
    parity = bytes(b | 0x80 if i in (1, 2, 3, 17) else b for i, b in enumerate(EXAMPLE))
    assert decode(parity) == decode(EXAMPLE)


def test_a_wrong_checksum_is_rejected() -> None:
    bad = EXAMPLE[:-1] + bytes([EXAMPLE[-1] ^ 0x01])
    with pytest.raises(DecodeError) as e:
        decode(bad)
    assert e.value.reason == "checksum"


def test_a_corrupted_digit_fails_the_checksum() -> None:
    with pytest.raises(DecodeError) as e:
        decode(EXAMPLE.replace(b"01234", b"01235"))
    assert e.value.reason == "checksum"


def test_a_frame_without_checksum_decodes() -> None:
    assert decode(frame(with_chk=False)) == decode(EXAMPLE)


def test_the_short_form_without_tare_has_no_tare() -> None:
    short = frame(swa=0x2C, weight=b"001250", tare=None, with_chk=False)
    assert len(short) == 11
    assert decode(short) == Measurement(Decimal("12.50"), "kg", True, "gross", None)


def test_the_short_form_with_checksum_is_checked() -> None:
    short = frame(weight=b"001250", tare=None)
    assert len(short) == 12 and decode(short).weight == Decimal(1250)
    with pytest.raises(DecodeError):
        decode(short[:-1] + bytes([(short[-1] + 1) & 0x7F]))


def test_the_brazilian_variant_with_a_space_and_five_digits_decodes() -> None:
    m = decode(frame(swa=0x31, weight=b" 61234", tare=b" 00000", with_chk=False))
    assert decimal_text(m.weight) == "612340" and m.tare == 0


def test_a_blank_padded_weight_reads_its_digits() -> None:
    assert decode(frame(weight=b"  1234")).weight == Decimal(1234)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x02",
        EXAMPLE[1:],
        EXAMPLE[:-2],
        EXAMPLE + b"x",
        frame(weight=b"01A340"),
        frame(weight=b"  12 4"),
        frame(weight=b"      "),
        frame(tare=b"00-000"),
    ],
)
def test_a_malformed_frame_is_rejected(bad: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        decode(bad)
    assert e.value.reason == "malformed"


def test_the_decimals_option_does_not_override_the_frames_own() -> None:
    assert decode(EXAMPLE, 3) == decode(EXAMPLE)


# Encoding


@pytest.mark.parametrize(
    "m",
    [
        Measurement(Decimal(12340), tare=Decimal(0)),
        Measurement(Decimal("12.34"), "lb", False, "net", Decimal("1.00")),
        Measurement(Decimal("-0.005"), "g"),
        Measurement(Decimal("1.23456"), "oz"),
        Measurement(Decimal(999999), "t"),
        Measurement(None, "kg", False, "gross", Decimal("0.0"), "overload"),
        Measurement(None, "kg", False, "net", None, "underload"),
        Measurement(None, "kg", False, "gross", None, "error"),
    ],
)
def test_an_encoded_measurement_decodes_back(m: Measurement) -> None:
    assert decode(encode(m)) == m


def test_encode_writes_the_checksum_the_manual_defines() -> None:
    encoded = encode(Measurement(Decimal("12.34"), tare=Decimal("0.00")))
    assert encoded[-1] == chk(encoded[:-1]) and len(encoded) == 18


def test_encode_keeps_a_x100_weight_as_a_x100_frame() -> None:
    encoded = encode(Measurement(Decimal("1234E2")))
    assert encoded[1] & 0b111 == 0b000 and encoded[4:10] == b"001234"


@pytest.mark.parametrize(
    "m",
    [
        Measurement(Decimal("1.234567")),
        Measurement(Decimal(1234567)),
        Measurement(Decimal(1), "ct"),
        Measurement(None),
        Measurement(Decimal(1), status="overload"),
        Measurement(Decimal("1.0"), tare=Decimal("0.05")),
    ],
)
def test_encode_refuses_what_a_frame_cannot_carry(m: Measurement) -> None:
    with pytest.raises(ValueError):
        encode(m)


def test_the_protocol_reads_a_7e1_line_and_masks_parity() -> None:
    assert (PROTOCOL.line.bytesize, PROTOCOL.line.parity, PROTOCOL.line.baudrate) == (7, "E", 9600)
    assert PROTOCOL.seven_bit and PROTOCOL.flags_stability and PROTOCOL.poll is None


# Framing


def test_a_checksum_stream_is_framed_whole_at_every_split() -> None:
    stream = EXAMPLE + frame(weight=b"000010") + EXAMPLE
    for cut in range(len(stream) + 1):
        framer = ToledoFramer()
        frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert frames == [EXAMPLE, frame(weight=b"000010"), EXAMPLE], cut
        assert framer.stats.garbage_bytes == 0


def test_a_stream_fed_byte_by_byte_gives_each_frame_when_its_checksum_arrives() -> None:
    framer = ToledoFramer()
    for i, byte in enumerate(EXAMPLE * 2):
        frames = framer.feed(bytes([byte]))
        assert frames == ([EXAMPLE] if i % 18 == 17 else []), i


def test_a_stream_without_checksum_gets_frames_at_cr_once_learned() -> None:
    plain = frame(with_chk=False)
    framer = ToledoFramer()
    assert framer.feed(plain) == []  # undecided: is a CHK coming?
    assert framer.feed(plain) == [plain, plain]  # the STX said no, so no waiting any more
    for _ in range(3):
        assert framer.feed(plain) == [plain]


def test_a_stream_without_checksum_split_at_every_byte_gives_every_frame() -> None:
    frames = [frame(weight=b"%06d" % i, with_chk=False) for i in range(3)]
    stream = b"".join(frames) + b"\x02"
    for cut in range(len(stream) + 1):
        framer = ToledoFramer()
        assert framer.feed(stream[:cut]) + framer.feed(stream[cut:]) == frames, cut


def test_a_checksum_of_stx_or_cr_does_not_break_framing() -> None:
    for value in (0x02, 0x0D):
        body = body_with_chk(value)
        full = body + bytes([value])
        stream = full * 3 + EXAMPLE + full
        for cut in range(len(stream) + 1):
            framer = ToledoFramer()
            frames = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
            assert decode_all(frames) == [decode(full)] * 3 + [decode(EXAMPLE), decode(full)]


def test_a_stream_without_checksum_whose_checksum_would_be_stx_is_framed() -> None:
    body = body_with_chk(0x02)
    framer = ToledoFramer()
    frames = framer.feed(body * 4 + b"\x02")
    assert decode_all(frames) == [decode(body)] * 4


def test_a_bad_checksum_in_a_checksum_stream_is_rejected_and_framing_goes_on() -> None:
    bad = EXAMPLE[:-1] + b"&"
    framer = ToledoFramer()
    frames = framer.feed(EXAMPLE + bad + EXAMPLE)
    assert decode_all(frames) == [decode(EXAMPLE), "checksum", decode(EXAMPLE)]


def test_a_lone_frame_with_a_bad_checksum_is_rejected() -> None:
    framer = ToledoFramer()
    assert decode_all(framer.feed(EXAMPLE[:-1] + b"&")) == ["checksum"]


def test_a_bad_checksum_that_reads_stx_is_rejected_and_the_next_frame_kept() -> None:
    bad = EXAMPLE[:-1] + b"\x02"
    framer = ToledoFramer()
    frames = framer.feed(EXAMPLE + bad + EXAMPLE + EXAMPLE)
    assert decode_all(frames) == [decode(EXAMPLE), "checksum"] + [decode(EXAMPLE)] * 2


def test_a_learned_stream_without_checksum_tolerates_garbage_after_a_frame() -> None:
    plain = frame(with_chk=False)
    framer = ToledoFramer()
    frames = framer.feed(plain + plain + b"junk" + plain + b"\xff" + plain + b"\x02")
    assert decode_all(frames) == [decode(plain)] * 4
    assert framer.stats.garbage_bytes == 5


def test_a_stream_that_stops_sending_checksums_is_followed_after_two_frames() -> None:
    plain = frame(with_chk=False)
    framer = ToledoFramer()
    frames = framer.feed(EXAMPLE * 2 + plain * 4 + b"\x02")
    assert decode_all(frames) == [decode(EXAMPLE)] * 2 + ["checksum"] + [decode(plain)] * 3


def test_a_stream_that_starts_mid_frame_resyncs_on_the_next_stx() -> None:
    for skip in range(1, len(EXAMPLE)):
        framer = ToledoFramer()
        frames = framer.feed(EXAMPLE[skip:] + EXAMPLE * 2)
        assert frames == [EXAMPLE, EXAMPLE], skip
        assert framer.stats.garbage_bytes == len(EXAMPLE) - skip


def test_garbage_between_frames_is_counted_and_skipped() -> None:
    framer = ToledoFramer()
    frames = framer.feed(b"abc" + EXAMPLE + b"\r\n\x0212" + EXAMPLE + b"\x7f")
    assert frames == [EXAMPLE, EXAMPLE]
    assert framer.stats.garbage_bytes == 3 + 5 + 1


def test_an_stx_inside_a_partial_frame_restarts_the_frame() -> None:
    framer = ToledoFramer()
    assert framer.feed(EXAMPLE[:9] + EXAMPLE) == [EXAMPLE]
    assert framer.stats.garbage_bytes == 9


def test_more_than_4_kib_without_a_frame_counts_an_overflow() -> None:
    framer = ToledoFramer()
    assert framer.feed(b"\x02" + b"0" * 5000) == []
    assert framer.stats.overflows == 1
    assert framer.feed(EXAMPLE) == [EXAMPLE]
