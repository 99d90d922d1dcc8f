"""`protocol=auto`: name the wire protocol of an unknown indicator, per PROTOCOLS-NEXT.md.

Watch first, probe second, decide only on strong evidence, and say what was decided:

- **Watch** (send nothing) about 2 s at each candidate line: 9600 8N1, 9600 7E1, 2400 8N1,
  4800 8N1, 19200 8N1, 1200 8N1 (only the line `--scale` names, when it names one; over TCP
  there is no line to set).
- **Probe** (only when watching found nothing), one request at a time, listening at least
  300 ms after each: ENQ at 9600 8N1 (DC1 only after a CAS scale's ACK), `SI` CR LF at
  9600 8N1 (MT-SICS immediate weight, read-only), `W` at 9600 7E1. A request that is answered
  is repeated, for several frames. Nothing else is ever sent: no zero, tare, clear-tare, print,
  reset or write request of any family (`NEVER_SEND`).
- **Decide**: every family's own framer and decoder read the same bytes. A family is chosen
  when `FRAMES_NEEDED` frames in a row decode under it without a rejection and no other family
  decoded any of the same bytes. Two families that fit give `ambiguous: A or B; set protocol=`;
  nothing within the plan gives `no protocol recognised` with the byte count and a hex sample.

Once decided, the open transport goes to the scale protocol, which behaves exactly as with
`protocol=NAME`; every reopen (a replug) detects again, and so do frames rejected for several
seconds running (no reading) after the decision. A 7-bit family (`toledo`, `mt8217`) found at
an 8N1 line whose bytes carry bit 7 (parity read as data) is switched to 7E1 at that baud rate.
A line the port refuses (some ptys refuse parity) is logged and skipped: detection goes on,
and reports, at the line in effect. On a pseudo-terminal (tests) the line settings cannot be
observed: the detector reports the settings it used.
"""

from __future__ import annotations

import termios
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from typing import Any, NoReturn

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from balanca.scale.link import OpenFailed
from balanca.scale.protocols import PROTOCOLS
from balanca.scale.protocols.base import (
    LINE_7E1,
    LineSettings,
    WireProtocol,
)
from balanca.scale.scale import CONNECTION_DONE, Scale, ScaleProtocol
from balanca.scale.sniffer import FRAMES_NEEDED, Sniffer, Verdict, line_text

WATCH_SECONDS = 2.0
PROBE_LISTEN = 0.3
PROBE_ROUNDS = 5
"""Times an answered probe is sent, at most (each answer should add a frame)."""
SAMPLE_BYTES = 16
REDETECT_AFTER = 5.0
"""Seconds of rejected frames and no reading, once detected, before detecting again."""
LINE_8N1 = LineSettings()
WATCH_LINES = (
    LINE_8N1,
    LINE_7E1,
    LineSettings(baudrate=2400),
    LineSettings(baudrate=4800),
    LineSettings(baudrate=19200),
    LineSettings(baudrate=1200),
)
PROBES = ((b"\x05", LINE_8N1), (b"SI\r\n", LINE_8N1), (b"W", LINE_7E1))
"""The safe requests, in order, each with its line: ENQ, MT-SICS `SI`, 8217 `W`."""
NEVER_SEND = (b"Z", b"T", b"C", b"@", b"<", b"P", b"L", b"E", b"\x12")
"""Bytes no probe may carry: zero, tare, clear tare and 8217 preset tare (`Z`, `T`, `C`,
`TAC`), MT-SICS reset (`@`), CAS commands (`<ZK>`, `<TK>`), print (`P`), display (`L`), 8217
echo mode (`E`), CAS prices (DC2). A Prix price write (STX, digits, ETX) needs STX: no probe
carries one either."""


class DetectionFailed(OpenFailed):
    """No single family fits: ambiguous, or nothing recognised (the reason says which); the
    link shows that reason and tries again, as for a port it cannot open."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "open_failed")


Step = tuple[LineSettings | None, bytes | None, float]
"""One step of the plan: the line to set (None: leave it), a probe to send, seconds to wait."""


def plan(line: LineSettings | None, serial: bool) -> list[Step]:
    """The watch and probe steps: every candidate line, or only `line` when the operator named
    one (or over TCP, where there is no line to set)."""
    if not serial or line is not None:
        return [(line, None, WATCH_SECONDS), *((line, probe, PROBE_LISTEN) for probe, _ in PROBES)]
    return [(w, None, WATCH_SECONDS) for w in WATCH_LINES] + [
        (probe_line, probe, PROBE_LISTEN) for probe, probe_line in PROBES
    ]


class Detector(Protocol):
    """Runs the plan on an open transport; `done` fires with the verdict (never fails, except
    when the connection is lost or the detector is stopped)."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        steps: list[Step],
        set_line: Callable[[Any, LineSettings], None],
        opened_at: LineSettings | None,
        wires: Iterable[WireProtocol] = PROTOCOLS.values(),
    ) -> None:
        self.clock, self.set_line, self.wires = clock, set_line, list(wires)
        self.done: defer.Deferred[Verdict] = defer.Deferred()
        self.replay = b""
        """The bytes read at the current step, for the scale protocol once it is decided."""
        self._steps = list(steps)
        self._step: Step | None = None
        self._line = opened_at
        self._sniffer = Sniffer(self.wires)
        self._seen = 0
        self._sample = b""
        self._rounds = 0
        self._answered = 0
        self._timer: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self._next()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.replay += data
        self._seen += len(data)
        self._sample = (self._sample + data)[:SAMPLE_BYTES]
        for wire, prompt in self._sniffer.feed(data):
            request = self._step[1] if self._step else None
            follow = wire.steps[prompt]
            if follow and request == wire.poll:  # DC1 only after ACK, and only to our ENQ
                self.transport.write(follow)  # type: ignore[union-attr]
                self._wait(PROBE_LISTEN)
        verdict = self._sniffer.verdict(final=False)
        if verdict is not None:
            self._finish(verdict)

    def connectionLost(self, reason: Failure = CONNECTION_DONE) -> None:
        self._cancel()
        if not self.done.called:
            self.done.errback(reason)

    def stop(self) -> None:
        """Give up (the service stops): cancel the timer and close the transport."""
        self._cancel()
        if self.transport is not None:
            self.transport.loseConnection()

    def _next(self) -> None:
        """Go on to the next step of the plan, or give the final verdict."""
        if not self._steps:
            sample = self._sample.hex(" ") or "nothing"
            self._finish(
                Verdict(None, f"no protocol recognised ({self._seen} bytes seen: {sample})")
            )
            return
        self._step = line, probe, seconds = self._steps.pop(0)
        if line is not None and line != self._line:
            self._set(line)
        self._sniffer = Sniffer(self.wires)
        self.replay = b""
        self._rounds = 0
        self._send(probe)
        self._wait(seconds)

    def _set(self, line: LineSettings) -> bool:
        """Set the port's line; whether it took it (a refusal is logged, the line kept)."""
        try:
            self.set_line(self.transport, line)
        except (OSError, ValueError, termios.error) as e:
            self.log.warn(
                "scale: the port refuses {line} ({error}); detection goes on at {current}",
                line=line_text(line),
                error=e,
                current=line_text(self._line),
            )
            return False
        self._line = line
        return True

    def _send(self, probe: bytes | None) -> None:
        if probe is not None:
            assert not any(b in probe for b in NEVER_SEND), probe
            self._rounds += 1
            self._answered = self._sniffer.decoded()
            self.transport.write(probe)  # type: ignore[union-attr]

    def _wait(self, seconds: float) -> None:
        self._cancel()
        self._timer = self.clock.callLater(seconds, self._waited)

    def _waited(self) -> None:
        """A step's time is up: repeat an answered probe, else go on."""
        self._timer = None
        probe = self._step[1] if self._step else None
        answered = self._sniffer.decoded() > self._answered
        if probe is not None and answered and self._rounds < PROBE_ROUNDS:
            self._send(probe)
            self._wait(PROBE_LISTEN)
            return
        verdict = self._sniffer.verdict(final=True)
        if verdict is not None:
            self._finish(verdict)
        else:
            self._next()

    def _finish(self, verdict: Verdict) -> None:
        self._cancel()
        if self.done.called:
            return
        text, line = verdict.text, self._line
        high = sum(1 for b in self.replay if b & 0x80)
        if verdict.family and PROTOCOLS[verdict.family].seven_bit and high and line:
            if line.bytesize == 8 and self._set(replace(line, bytesize=7, parity="E")):
                text += f", bit 7 set on {high} of {len(self.replay)} bytes: parity"
        self.done.callback(Verdict(verdict.family, text, self._line))

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def set_serial_line(port: Any, line: LineSettings) -> None:
    """Change an open `SerialPort`'s line settings (pyserial applies them at once)."""
    port._serial.apply_settings(asdict(line))  # noqa: SLF001 - Twisted keeps pyserial's port there


class AutoOpener:
    """Opens a `protocol=auto` scale: detection on the open transport first, then the transport
    goes to the scale protocol with the bytes read at the chosen step replayed to it.

    `open_transport` opens the port at the line of the plan's first step (9600 8N1, or the
    line `--scale` names)."""

    log = Logger()

    def __init__(
        self,
        scale: Scale,
        open_transport: Callable[[Any], object],
        clock: IReactorTime,
        *,
        serial: bool,
        line: LineSettings | None = None,
    ) -> None:
        self.scale, self.open_transport, self.clock = scale, open_transport, clock
        self.serial, self.line = serial, line
        self._failed: str | None = None
        """The last kind of failure logged (`ambiguous: ...`, `no protocol recognised`)."""

    def __call__(self, protocol: ScaleProtocol) -> defer.Deferred[None]:
        steps = plan(self.line, self.serial)
        detector = Detector(self.clock, steps, set_serial_line, steps[0][0] or LINE_8N1)
        last = self.scale.protocol_info.get("detail")
        self.scale.protocol_info = {"protocol": "auto", "state": "detecting"}
        if last is not None:
            self.scale.protocol_info["detail"] = f"last time: {last}"
        d: defer.Deferred[None] = defer.Deferred(lambda _: detector.stop())
        opened = defer.maybeDeferred(self.open_transport, detector)
        opened.addCallback(lambda _: detector.done.addCallback(self._decided, detector, protocol))
        opened.addBoth(self._settle, d)
        return d

    @staticmethod
    def _settle(result: object, d: defer.Deferred[None]) -> None:
        """Pass the outcome on, unless `d` was cancelled meanwhile (the service stopped)."""
        if d.called:
            return
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(None)

    def _decided(self, verdict: Verdict, detector: Detector, protocol: ScaleProtocol) -> None:
        where = line_text(verdict.line if self.serial else None)
        if verdict.family is None:
            self.scale.protocol_info = {
                "protocol": "auto",
                "state": "failed",
                "detail": verdict.text,
            }
            kind = verdict.text.split(" (")[0]
            if kind != self._failed:  # once per kind of failure, not at every retry
                self._failed = kind
                self.log.warn("scale: {text}", text=verdict.text)
            detector.stop()
            raise DetectionFailed(verdict.text)
        wire = PROTOCOLS[verdict.family]
        self.log.info(
            "scale: detected protocol {name} at {line} ({evidence})",
            name=wire.name,
            line=where,
            evidence=verdict.text,
        )
        self._failed = None
        self.scale.use(wire)
        self.scale.protocol_info = {
            "protocol": wire.name,
            "state": "detected",
            "line": where,
            "detail": verdict.text,
        }
        transport = detector.transport
        assert transport is not None
        transport.protocol = protocol  # type: ignore[attr-defined]
        protocol.makeConnection(transport)
        if wire.poll is None:  # a polled scale is asked at once; its replies are not replayed
            protocol.dataReceived(detector.replay)
        Watchdog(self.scale, protocol, self.clock).start()


class Watchdog:
    """After detection: when the chosen family's frames are rejected for `REDETECT_AFTER`
    seconds running (no reading, several rejections), say so and close the connection, so
    that the link opens it again and detects again rather than serve guesses."""

    log = Logger()

    def __init__(self, scale: Scale, protocol: ScaleProtocol, clock: IReactorTime) -> None:
        self.scale, self.protocol = scale, protocol
        self._check = LoopingCall(self._look)
        self._check.clock = clock
        self._counts = self._now()
        protocol.lost.addBoth(self._stop)

    def start(self) -> None:
        """Look every `REDETECT_AFTER` seconds while the connection lasts."""
        self._check.start(REDETECT_AFTER, now=False)

    def _now(self) -> tuple[int, int]:
        return self.scale.counters.readings, sum(self.scale.rejected.values())

    def _look(self) -> None:
        (readings, rejected), (then_readings, then_rejected) = self._now(), self._counts
        self._counts = readings, rejected
        if readings == then_readings and rejected - then_rejected >= FRAMES_NEEDED:
            self.log.warn(
                "scale: {name} frames rejected for {seconds:g} s running: detecting again",
                name=self.scale.wire.name,
                seconds=REDETECT_AFTER,
            )
            self._stop(None)
            if self.protocol.transport is not None:
                self.protocol.transport.loseConnection()

    def _stop(self, result: object) -> object:
        if self._check.running:
            self._check.stop()
        return result


def undecided(*args: object) -> NoReturn:
    """The wire of a `protocol=auto` scale before detection: never used for bytes."""
    raise RuntimeError("protocol=auto: no protocol detected yet")


AUTO = WireProtocol(name="auto", framer=undecided, decode=undecided, encode=undecided)
"""Stands in for the wire protocol of a `protocol=auto` scale until detection chooses one."""
