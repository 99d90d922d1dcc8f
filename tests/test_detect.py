"""Detection logic (`protocol=auto`): the sniffer's verdicts on every family's frames, on an
ambiguous and an unknown stream, and the detector's plan driven by a clock: watch, then the
safe probes only, CAS's DC1 only after its ACK."""

from __future__ import annotations

from decimal import Decimal

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from balanca.config import parse_scale
from balanca.reading import Measurement
from balanca.scale.detect import (
    NEVER_SEND,
    PROBE_LISTEN,
    PROBES,
    WATCH_LINES,
    WATCH_SECONDS,
    Detector,
    LineSettings,
    plan,
)
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.sniffer import Sniffer, Verdict, line_text
from tests.test_scale_serial import SAMPLES


def frames(name: str, count: int = 3) -> bytes:
    return PROTOCOLS[name].encode(SAMPLES[name]) * count


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_three_frames_of_every_family_name_it_and_no_other(name: str) -> None:
    sniffer = Sniffer(PROTOCOLS.values())
    sniffer.feed(frames(name, 2))
    assert sniffer.verdict(final=False) is None  # two frames are not enough
    sniffer.feed(frames(name, 1))
    verdict = sniffer.verdict(final=True)
    assert verdict is not None and verdict.family == name, verdict


def test_the_evidence_names_a_verified_checksum() -> None:
    sniffer = Sniffer(PROTOCOLS.values())
    sniffer.feed(frames("cas"))
    assert sniffer.verdict(final=True) == Verdict("cas", "3 frames, BCC ok")


def test_two_families_in_one_stream_are_ambiguous() -> None:
    sniffer = Sniffer(PROTOCOLS.values())
    for _ in range(3):
        sniffer.feed(frames("lider", 1) + frames("cardinal", 1))
    verdict = sniffer.verdict(final=False)
    assert verdict == Verdict(None, "ambiguous: cardinal or lider; set protocol=")


def test_a_family_that_fits_while_another_decoded_some_bytes_is_ambiguous_at_the_end() -> None:
    sniffer = Sniffer(PROTOCOLS.values())
    sniffer.feed(frames("epelsa", 3) + frames("condec", 1))
    assert sniffer.verdict(final=False) is None
    assert sniffer.verdict(final=True) == Verdict(
        None, "ambiguous: epelsa or condec; set protocol="
    )


def test_a_rejected_frame_starts_the_count_again() -> None:
    sniffer = Sniffer(PROTOCOLS.values())
    good = frames("cas", 1)
    bad = good[:12] + bytes([good[12] ^ 1]) + good[13:]
    sniffer.feed(good * 2 + bad + good * 2)
    assert sniffer.verdict(final=True) is None


def test_text_that_is_no_protocol_fits_none() -> None:
    sniffer = Sniffer(PROTOCOLS.values())
    sniffer.feed(b"hello, world: no scale here\r\n" * 20)
    assert sniffer.verdict(final=True) is None


def test_the_plan_watches_every_line_then_probes_safely() -> None:
    steps = plan(None, serial=True)
    assert [line for line, probe, _ in steps if probe is None] == list(WATCH_LINES)
    assert [(probe, line) for line, probe, _ in steps if probe] == list(PROBES)
    assert line_text(WATCH_LINES[1]) == "9600 7E1" and line_text(None) == "TCP"
    for probe, _ in PROBES:
        assert not any(b in probe for b in b"".join(NEVER_SEND))


def test_a_named_line_restricts_the_plan_to_it() -> None:
    line = LineSettings(baudrate=4800)
    assert {step[0] for step in plan(line, serial=True)} == {line}


class Run:
    """A detector on a string transport, driven by a clock; lines set are recorded."""

    def __init__(self, line: LineSettings | None = None) -> None:
        self.clock = Clock()
        self.lines: list[LineSettings] = []
        self.detector = Detector(
            self.clock,
            plan(line, serial=True),
            lambda _, line: self.lines.append(line),
            line or WATCH_LINES[0],
        )
        self.transport = StringTransport()
        self.detector.makeConnection(self.transport)
        self.verdicts: list[Verdict] = []
        self.detector.done.addCallback(self.verdicts.append)

    def written(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data


def test_a_silent_line_gets_only_the_safe_probes_and_no_protocol_recognised() -> None:
    run = Run()
    run.clock.pump([0.1] * (int(WATCH_SECONDS * 10) * len(WATCH_LINES) - 1))
    assert run.written() == b""  # listen before probing
    assert run.lines == list(WATCH_LINES[1:])
    run.clock.pump([0.1] * 20)
    assert run.written() == b"\x05SI\r\nW"
    assert run.verdicts == [
        Verdict(None, "no protocol recognised (0 bytes seen: nothing)", WATCH_LINES[1])
    ]


def test_a_continuous_stream_is_named_without_sending_a_byte() -> None:
    run = Run()
    run.clock.advance(WATCH_SECONDS)  # on to 9600 7E1
    run.detector.dataReceived(frames("toledo"))
    assert run.verdicts == [Verdict("toledo", "3 frames", WATCH_LINES[1])]
    assert run.written() == b""


def test_cas_gets_dc1_only_after_its_ack_to_enq() -> None:
    run = Run(WATCH_LINES[0])
    run.detector.dataReceived(b"\x06")  # an ACK nobody asked for
    run.clock.advance(WATCH_SECONDS)
    assert run.written() == b"\x05"
    frame = frames("cas", 1)
    for _ in range(3):
        run.detector.dataReceived(b"\x06")
        assert run.written() == b"\x11"
        run.detector.dataReceived(frame)
        run.clock.advance(PROBE_LISTEN)
        if not run.verdicts:
            assert run.written() == b"\x05"  # answered: asked again
    assert run.verdicts == [Verdict("cas", "3 frames, BCC ok", WATCH_LINES[0])]


def test_a_polled_answer_is_asked_for_again_until_three_frames() -> None:
    run = Run(WATCH_LINES[0])
    run.clock.advance(WATCH_SECONDS)
    sent = run.written()
    answer = PROTOCOLS["prix"].encode(Measurement(Decimal("1.250")))
    while not run.verdicts:
        assert sent == b"\x05"
        run.detector.dataReceived(answer)
        run.clock.advance(PROBE_LISTEN)
        sent = run.written()
    assert run.verdicts[0].family == "prix"


def test_a_7e1_stream_read_at_8n1_is_switched_to_7e1_at_that_baud_rate() -> None:
    run = Run()
    frame = frames("toledo", 3)
    with_parity = bytes(b | 0x80 if bin(b).count("1") % 2 else b for b in frame)  # even parity
    run.detector.dataReceived(with_parity)
    (verdict,) = run.verdicts
    assert (verdict.family, verdict.line) == ("toledo", LineSettings(bytesize=7, parity="E"))
    assert verdict.text.startswith("3 frames, bit 7 set on ")
    assert run.lines == [LineSettings(bytesize=7, parity="E")]


def test_a_port_that_refuses_a_line_keeps_the_one_in_effect() -> None:
    def refuse(_: object, line: LineSettings) -> None:
        raise OSError(22, "Invalid argument")

    clock = Clock()
    detector = Detector(clock, plan(None, serial=True), refuse, WATCH_LINES[0])
    verdicts: list[Verdict] = []
    detector.done.addCallback(verdicts.append)
    detector.makeConnection(StringTransport())
    clock.advance(WATCH_SECONDS)  # on to 9600 7E1, which the port refuses
    detector.dataReceived(frames("mt8217"))
    assert verdicts[0].line == WATCH_LINES[0]


def test_protocol_auto_is_taken_for_serial_and_tcp_scales_not_the_simulator() -> None:
    serial = parse_scale("serial:/dev/ttyUSB0:protocol=auto")
    assert (serial.protocol, serial.line_named) == ("auto", False)
    assert parse_scale("serial:/dev/ttyUSB0:protocol=auto:baudrate=4800").line_named
    assert parse_scale("tcp:10.0.0.5:4001:protocol=auto").protocol == "auto"
    with pytest.raises(ValueError, match="protocol=auto needs a real scale"):
        parse_scale("simulator:protocol=auto")
