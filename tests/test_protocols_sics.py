"""MT-SICS: weight answers, command replies, error replies, encoding and line framing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from balanca.reading import Measurement, Reply, decimal_text
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.sics import PROTOCOL, decode, encode, encode_reply, framer


def test_the_manuals_stable_weight_reads_100_00_g() -> None:
    m = decode(b"S S     100.00 g\r\n")
    assert m == Measurement(Decimal("100.00"), "g", True)
    assert isinstance(m, Measurement) and decimal_text(m.weight) == "100.00"


def test_a_dynamic_weight_is_not_stable() -> None:
    assert decode(b"S D      12.5 kg\r\n") == Measurement(Decimal("12.5"), "kg", False)


@pytest.mark.parametrize(
    ("line", "weight"),
    [
        (b"S S    -0.0042 g\r\n", "-0.0042"),
        (b"S S +12.00 lb\r\n", "12.00"),
        (b"S S 0 g\r\n", "0"),
        (b"S S -0.00 g\r\n", "0.00"),
        (b"S S\t1.5\tkg\r\n", "1.5"),
        (b"S S 1234.5678 ct", "1234.5678"),
    ],
)
def test_weights_are_read_as_tokens_with_their_decimals(line: bytes, weight: str) -> None:
    m = decode(line)
    assert isinstance(m, Measurement) and decimal_text(m.weight) == weight


@pytest.mark.parametrize("unit", ["mg", "oz", "ozt", "lb"])
def test_the_unit_is_the_one_the_balance_names(unit: str) -> None:
    assert decode(f"S S 1.0 {unit}\r\n".encode()) == Measurement(Decimal("1.0"), unit)


def test_a_busy_answer_is_an_error_reading_without_a_weight() -> None:
    assert decode(b"S I\r\n") == Measurement(None, stable=False, status="error")


def test_s_plus_is_overload_and_s_minus_underload() -> None:
    assert decode(b"S +\r\n") == Measurement(None, stable=False, status="overload")
    assert decode(b"S -\r\n") == Measurement(None, stable=False, status="underload")


def test_zero_replies_say_whether_the_balance_zeroed_and_why_not() -> None:
    assert decode(b"Z A\r\n") == Reply("zero", True, "Z A")
    assert decode(b"Z I\r\n") == Reply(
        "zero", False, "Z I (not executable now)", code="scale_refused"
    )
    for line, words in ((b"Z +", "above"), (b"Z -", "below")):
        assert decode(line + b"\r\n") == Reply(
            "zero",
            False,
            f"{line.decode()} ({words} the permitted range)",
            code="zero_out_of_range",
        )


def test_a_tare_reply_carries_the_tare() -> None:
    assert decode(b"T S     100.00 g\r\n") == Reply(
        "tare", True, "T S     100.00 g", Decimal("100.00")
    )


@pytest.mark.parametrize("line", [b"T I", b"T +", b"T -"])
def test_a_refused_tare_reply_is_not_ok(line: bytes) -> None:
    reply = decode(line + b"\r\n")
    assert isinstance(reply, Reply)
    assert (reply.command, reply.ok, reply.code) == ("tare", False, "scale_refused")
    assert reply.text.startswith(line.decode() + " (")


@pytest.mark.parametrize(("line", "ok"), [(b"TAC A", True), (b"TAC I", False)])
def test_clear_tare_replies_say_whether_the_tare_was_cleared(line: bytes, ok: bool) -> None:
    reply = decode(line + b"\r\n")
    assert isinstance(reply, Reply)
    assert (reply.command, reply.ok) == ("clear-tare", ok)


@pytest.mark.parametrize("line", [b"ES", b"ET", b"EL"])
def test_error_replies_are_refusals_of_an_unnamed_command_with_words(line: bytes) -> None:
    reply = decode(line + b"\r\n")
    assert isinstance(reply, Reply)
    assert (reply.command, reply.ok, reply.code) == ("", False, "scale_refused")
    assert reply.text.startswith(line.decode() + " (") and "error" in reply.text


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"S X\r\n", "unknown-status"),
        (b"S S\r\n", "malformed"),
        (b"Z Q\r\n", "unknown-status"),
        (b"TAC S 1.0 g\r\n", "unknown-status"),
        (b"T A\r\n", "unknown-status"),
        (b"T S 1.0\r\n", "malformed"),
        (b"Z A 1\r\n", "malformed"),
        (b"\r\n", "malformed"),
        (b"S\r\n", "malformed"),
        (b"S S 100.00\r\n", "malformed"),
        (b"S S 1e5 g\r\n", "malformed"),
        (b"S S NaN g\r\n", "malformed"),
        (b"S S 1,5 g\r\n", "malformed"),
        (b"S I extra\r\n", "malformed"),
        (b"ES 1\r\n", "malformed"),
        (b'I4 A "123"\r\n', "malformed"),
        (b"S S 1.0 \xb5g\r\n", "malformed"),
    ],
)
def test_lines_that_are_no_known_answer_are_rejected(line: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode(line)
    assert e.value.reason == reason


def test_encode_writes_the_manuals_column_layout() -> None:
    assert encode(Measurement(Decimal("100.00"), "g")) == b"S S     100.00 g\r\n"
    assert encode(Measurement(Decimal("-1.5"), "kg", False)) == b"S D       -1.5 kg\r\n"


@pytest.mark.parametrize(
    "m",
    [
        Measurement(Decimal("100.00"), "g"),
        Measurement(Decimal("-0.0001"), "g", False),
        Measurement(Decimal("123456789.5"), "mg"),
        Measurement(None, stable=False, status="overload"),
        Measurement(None, stable=False, status="underload"),
        Measurement(None, stable=False, status="error"),
    ],
)
def test_an_encoded_measurement_decodes_back(m: Measurement) -> None:
    assert decode(encode(m)) == m


@pytest.mark.parametrize(
    "m",
    [
        Measurement(None),
        Measurement(Decimal(1), status="overload"),
        Measurement(Decimal(1), "k g"),
        Measurement(Decimal(1), ""),
    ],
)
def test_encode_refuses_what_an_answer_cannot_carry(m: Measurement) -> None:
    with pytest.raises(ValueError):
        encode(m)


@pytest.mark.parametrize(
    ("reply", "line"),
    [
        (Reply("zero", True, ""), b"Z A\r\n"),
        (Reply("zero", False, ""), b"Z I\r\n"),
        (Reply("zero", False, "", code="zero_out_of_range"), b"Z +\r\n"),
        (Reply("tare", True, "", Decimal("1.25")), b"T S       1.25 kg\r\n"),
        (Reply("tare", False, ""), b"T I\r\n"),
        (Reply("clear-tare", True, ""), b"TAC A\r\n"),
        (Reply("clear-tare", False, ""), b"TAC I\r\n"),
    ],
)
def test_encoded_replies_are_what_a_balance_answers_and_decode_back(
    reply: Reply, line: bytes
) -> None:
    assert encode_reply(reply) == line
    decoded = decode(line)
    assert isinstance(decoded, Reply)
    assert (decoded.command, decoded.ok, decoded.tare) == (reply.command, reply.ok, reply.tare)


@pytest.mark.parametrize("reply", [Reply("print", True, ""), Reply("tare", True, "")])
def test_encode_reply_refuses_replies_sics_has_not(reply: Reply) -> None:
    with pytest.raises(ValueError):
        encode_reply(reply)


def test_the_protocol_polls_with_si_and_has_tare_zero_and_clear_tare() -> None:
    assert PROTOCOL.poll == b"SI\r\n" and PROTOCOL.replies
    assert dict(PROTOCOL.commands) == {"tare": b"T\r\n", "zero": b"Z\r\n", "clear-tare": b"TAC\r\n"}
    assert (PROTOCOL.line.bytesize, PROTOCOL.line.parity) == (8, "N") and not PROTOCOL.seven_bit
    assert PROTOCOL.encode_reply is encode_reply


def test_a_line_is_framed_with_its_cr_lf() -> None:
    f = framer()
    assert f.feed(b"S S     100.00 g\r\nZ A\r\n") == [b"S S     100.00 g\r\n", b"Z A\r\n"]
    assert f.stats.garbage_bytes == 0


def test_a_line_whose_lf_is_late_is_framed_at_cr_and_the_lf_is_not_garbage() -> None:
    f = framer()
    assert f.feed(b"S S 1 g\r") == [b"S S 1 g\r"]
    assert f.feed(b"\nS S 2 g\r\n") == [b"S S 2 g\r\n"]
    assert f.stats.garbage_bytes == 0


def test_lines_ending_in_lf_or_cr_alone_are_framed_too() -> None:
    assert framer().feed(b"S S 1 g\nS S 2 g\rS S 3 g\r\n") == [
        b"S S 1 g\n",
        b"S S 2 g\r",
        b"S S 3 g\r\n",
    ]


def test_bytes_before_a_capital_letter_are_garbage() -> None:
    f = framer()
    assert f.feed(b"\x00\xff12 S S 1 g\r\n") == [b"S S 1 g\r\n"]
    assert f.stats.garbage_bytes == 5
