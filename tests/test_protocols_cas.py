"""CAS ECR (ENQ/ACK/DC1): the frame, SIGN and STA, overload and error, BCC and its variants,
16-byte frames, framing by length with ACK and NAK between frames."""

from __future__ import annotations

from decimal import Decimal

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from balanca.hub import Hub
from balanca.reading import Measurement, decimal_text
from balanca.scale.protocols.base import DecodeError
from balanca.scale.protocols.cas import ACK, DC1, ENQ, NAK, PROTOCOL, bcc, decode, framer
from balanca.scale.scale import Scale

EXAMPLE = b"\x01\x02S 01.234kge\x03\x04"


def frame(data: bytes, soh: bytes = b"\x01") -> bytes:
    return soh + b"\x02" + data + bytes([bcc(data)]) + b"\x03\x04"


def test_the_constructed_example_reads_1_234_kg_stable_gross() -> None:
    m = decode(EXAMPLE)
    assert m == Measurement(Decimal("1.234")) and decimal_text(m.weight) == "1.234"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"U 01.234kg", Measurement(Decimal("1.234"), stable=False)),
        (b"S-01.234kg", Measurement(Decimal("-1.234"))),
        (b"S+01.234kg", Measurement(Decimal("1.234"))),
        (b"S 99.999Kg", Measurement(Decimal("99.999"))),
        (b"S 001.50LB", Measurement(Decimal("1.50"), "lb")),
        (b"S 01.234Lb", Measurement(Decimal("1.234"), "lb")),
        (b"SFFFFFFFkg", Measurement(None, stable=False, status="overload")),
        (b"UF01.234kg", Measurement(None, stable=False, status="overload")),
        (b"S FFFFFFkg", Measurement(None, stable=False, status="overload")),
        (b"F 01.234kg", Measurement(None, stable=False, status="error")),
        (b"S 001.234kg", Measurement(Decimal("1.234"))),  # r_keeper's 7 characters
    ],
)
def test_every_status_the_layout_allows(data: bytes, expected: Measurement) -> None:
    m = decode(frame(data))
    assert m == expected and repr(m.weight) == repr(expected.weight)


def test_soh_0x81_is_accepted() -> None:
    assert decode(frame(b"S 01.234kg", b"\x81")) == decode(EXAMPLE)


def test_a_wrong_bcc_is_rejected() -> None:
    with pytest.raises(DecodeError) as e:
        decode(EXAMPLE.replace(b"e", b"f"))
    assert e.value.reason == "checksum" and "variant" not in e.value.detail


@pytest.mark.parametrize(("covered", "name"), [(slice(0, 12), "Pinnacle"), (None, "Ohaus")])
def test_a_bcc_under_a_documented_variant_is_rejected_and_named(
    covered: slice | None, name: str
) -> None:
    good = frame(b"S 01.234kg")
    data = good[:12] if covered else good[:1] + good[2:12]
    bad = good[:12] + bytes([bcc(data)]) + good[13:]
    with pytest.raises(DecodeError) as e:
        decode(bad)
    assert e.value.reason == "checksum" and name in e.value.detail


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"X 01.234kg", "status"), (b"S*01.234kg", "malformed"), (b"S 01.2x4kg", "malformed")],
)
def test_other_frames_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        decode(frame(data))
    assert e.value.reason == reason


def test_ack_and_nak_come_out_of_the_framer_in_order_and_are_not_garbage() -> None:
    f = framer()
    assert f.feed(ACK + EXAMPLE[:7]) == [ACK]
    assert f.feed(EXAMPLE[7:] + NAK) == [EXAMPLE, NAK]
    assert f.stats.garbage_bytes == 0


@pytest.mark.parametrize("byte", [0x01, 0x02, 0x03, 0x04, 0x06, 0x81])
def test_a_bcc_byte_equal_to_a_control_byte_is_data(byte: int) -> None:
    odd = EXAMPLE[:12] + bytes([byte]) + EXAMPLE[13:]  # framing does not look at the BCC
    assert framer().feed(odd + EXAMPLE) == [odd, EXAMPLE]


def test_a_soh_without_etx_eot_at_the_end_is_dropped() -> None:
    f = framer()
    assert f.feed(b"\x01\x02S 01" + EXAMPLE) == [EXAMPLE]
    assert f.stats.garbage_bytes == 6


def test_the_poll_is_enq_then_dc1_after_an_ack_and_commands_carry_a_tab() -> None:
    assert (PROTOCOL.poll, PROTOCOL.steps) == (ENQ, {ACK: DC1, NAK: b""})
    assert PROTOCOL.commands == {"zero": b"<ZK>\t", "tare": b"<TK>\t"}


class Polled:
    """A CAS scale protocol on a string transport, driven by a clock."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.scale = Scale(PROTOCOL, Hub(self.clock, 5), self.clock, source="serial", poll=0.5)
        self.transport = StringTransport()
        self.protocol = self.scale.protocol()
        self.protocol.makeConnection(self.transport)

    def sent(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data


def test_dc1_follows_an_ack_to_a_recent_enq_only() -> None:
    run = Polled()
    assert run.sent() == ENQ
    run.protocol.dataReceived(ACK)
    assert run.sent() == DC1
    run.protocol.dataReceived(EXAMPLE)
    assert run.scale.counters.readings == 1
    run.clock.advance(0.5)
    assert run.sent() == ENQ
    run.clock.advance(0.25)  # the ACK comes too late: no DC1, ask again at the next poll
    run.protocol.dataReceived(ACK)
    assert run.sent() == b""
    run.protocol.dataReceived(NAK)
    assert run.sent() == b"" and not run.scale.rejected
