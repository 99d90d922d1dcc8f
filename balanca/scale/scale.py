"""The scale: bytes from any transport → frames → measurements → readings for the hub.

`Scale` lives as long as the service (sequence numbers, counters, the stability filter);
`ScaleProtocol` lives as long as one connection (its framer and its poller). Commands go back
to the indicator through the connected protocol, never around it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from decimal import Decimal

from twisted.internet import defer, error
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from balanca.hub import Hub
from balanca.reading import Measurement, Reading, Reply, Source, local_time
from balanca.scale.protocols.base import DecodeError, Framer, WireProtocol
from balanca.scale.stability import StabilityFilter

COMMAND_TIMEOUT = 2.0
MIN_REPLY_WAIT = 0.25
"""Seconds a polled scale has to answer, at the least (a short frame at 9600 baud takes ~20 ms)."""
DEFAULT_STABLE_COUNT = 3
"""Readings that must agree for a flagless protocol's weight to count as stable."""
STEP_WAIT = 0.2
"""Seconds after a poll within which a scale's step (CAS's ACK) is followed up (DC1)."""
REJECTION_LOG_EVERY = 60.0
SEVEN_BIT = bytes(range(128)) * 2
CONNECTION_DONE = Failure(error.ConnectionDone())


DONE = {"tare": "tared", "zero": "zeroed", "clear-tare": "tare_cleared"}
"""The `code` of each command's success reply."""


class CommandError(Exception):
    """A command the scale cannot take now: `status` is the HTTP code that says why, `code`
    the machine key (CONTRACT.md's API codes)."""

    def __init__(self, status: int, error: str, detail: str = "", code: str = "") -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.code = status, error, detail, code


def coded(reply: Reply) -> Reply:
    """`reply` with its `code`: the command's success code, or `scale_refused` for a refusal
    the decoder gave no more precise code."""
    if reply.code:
        return reply
    return replace(reply, code=DONE.get(reply.command, "done") if reply.ok else "scale_refused")


@dataclass
class ScaleCounters:
    """What the scale path has seen since start (read by /metrics and /api/health)."""

    frames: int = 0
    readings: int = 0
    missing_replies: int = 0
    high_bit_bytes: int = 0


class Scale:
    """One scale: decodes what its connections receive and publishes readings to the hub."""

    log = Logger()

    def __init__(
        self,
        wire: WireProtocol,
        hub: Hub,
        clock: IReactorTime,
        *,
        source: Source,
        decimals: int | None = None,
        poll: float = 0.2,
        stability: StabilityFilter | None = None,
    ) -> None:
        self.wire, self.hub, self.clock = wire, hub, clock
        self.source = source
        self.decimals = decimals
        self.poll = poll
        if stability is None and not wire.flags_stability:
            stability = StabilityFilter(DEFAULT_STABLE_COUNT, Decimal(0))
        self.stability = stability
        """Decides stability instead of the frames: when asked for (`stable=N`), or by default
        for a protocol whose frames carry no stability flag."""
        self.counters = ScaleCounters()
        self.rejected: Counter[str] = Counter()
        self.garbage_bytes = 0
        self.overflows = 0
        self.connection: ScaleProtocol | None = None
        self.protocol_info: dict[str, str] = {"protocol": wire.name}
        """The wire protocol for /api/health and /metrics; with `protocol=auto`, also the
        detection's state, line settings and evidence (balanca.scale.detect)."""
        self._seq = 0
        self._warned_high_bit = False
        self._rejections_logged_at: dict[str, float] = {}

    def use(self, wire: WireProtocol) -> None:
        """Speak `wire` from the next connection on (`protocol=auto` once it is detected)."""
        self.wire = wire
        if self.stability is None and not wire.flags_stability:
            self.stability = StabilityFilter(DEFAULT_STABLE_COUNT, Decimal(0))

    def protocol(self) -> ScaleProtocol:
        """A protocol for a new connection to the indicator."""
        return ScaleProtocol(self)

    def frame(self, frame: bytes) -> None:
        """Decode one frame and act on it."""
        self.counters.frames += 1
        try:
            value = self.wire.decode(frame, self.decimals)
        except DecodeError as e:
            self._reject(e, frame)
            return
        if isinstance(value, Reply):
            if self.connection is not None:
                self.connection.replied(value)
            return
        if self.connection is not None:
            self.connection.answered()
        self.publish(value, frame)

    def publish(self, m: Measurement, frame: bytes = b"") -> None:
        """Stamp a measurement decoded from `frame` and hand the reading to the hub."""
        if self.stability is not None:
            m = self.stability.update(m)
        self._seq += 1
        self.counters.readings += 1
        reading = Reading.stamp(
            m,
            scale=self.hub.scale,
            seq=self._seq,
            time=local_time(self.clock.seconds()),
            source=self.source,
            frame=frame,
        )
        self.hub.publish(reading)

    def seven_bit(self, data: bytes) -> bytes:
        """Mask parity off a 7-bit protocol's bytes, warning once when any had it set."""
        masked = data.translate(SEVEN_BIT)
        if masked != data:
            self.counters.high_bit_bytes += sum(1 for b in data if b & 0x80)
            if not self._warned_high_bit:
                self._warned_high_bit = True
                self.log.warn(
                    "scale {scale}: bytes with bit 7 set on a 7-bit protocol ({protocol}): the port "
                    "settings look wrong (this protocol's line is usually 7E1)",
                    scale=self.hub.scale,
                    protocol=self.wire.name,
                )
        return masked

    def command(self, name: str) -> defer.Deferred[Reply]:
        """Ask the indicator to `name` (tare, zero, clear-tare); the Deferred fires with its
        reply, which carries a `code`."""
        if self.connection is None:
            return defer.fail(
                CommandError(503, "scale disconnected", self.hub.reason, "scale_disconnected")
            )
        return self.connection.command(name).addCallback(coded)

    def _reject(self, e: DecodeError, frame: bytes) -> None:
        self.rejected[e.reason] += 1
        now = self.clock.seconds()
        last = self._rejections_logged_at.get(e.reason)
        if last is None or now - last >= REJECTION_LOG_EVERY:
            self._rejections_logged_at[e.reason] = now
            self.log.warn(
                "scale {scale}: rejected a {protocol} frame ({reason}; {count} so far): {frame!r} {detail}",
                scale=self.hub.scale,
                protocol=self.wire.name,
                reason=e.reason,
                count=self.rejected[e.reason],
                frame=frame,
                detail=e.detail,
            )


class ScaleProtocol(Protocol):
    """One connection to the indicator: frames its bytes, polls it, carries its commands."""

    def __init__(self, scale: Scale) -> None:
        self.scale = scale
        self.framer: Framer | None = None
        """Made when the connection is, for the wire the scale speaks then."""
        self.lost: defer.Deferred[str] = defer.Deferred()
        """Fires with why the connection ended (a message, not a Failure: it is no error)."""
        self._poller: LoopingCall | None = None
        self._asked_at: float | None = None
        self._pending: list[tuple[str, defer.Deferred[Reply], IDelayedCall]] = []
        self.delivered = False
        """A frame from the scale has been decoded on this connection."""

    def connectionMade(self) -> None:
        self.framer = self.scale.wire.framer()
        self.scale.connection = self
        self.scale.hub.connected()
        if self.scale.wire.poll is not None:
            self._poller = LoopingCall(self._poll)
            self._poller.clock = self.scale.clock
            self._poller.start(self.scale.poll, now=True)

    def dataReceived(self, data: bytes) -> None:
        scale = self.scale
        assert self.framer is not None, "bytes come only after connectionMade"
        if scale.wire.seven_bit:
            data = scale.seven_bit(data)
        for frame in self.framer.feed(data):
            if frame in scale.wire.steps:
                self._step(scale.wire.steps[frame])
            else:
                scale.frame(frame)
        scale.garbage_bytes = self.framer.stats.garbage_bytes
        scale.overflows = self.framer.stats.overflows

    def connectionLost(self, reason: Failure = CONNECTION_DONE) -> None:
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        if self.scale.connection is self:
            self.scale.connection = None
        for _, d, timer in self._pending:
            timer.cancel()
            d.errback(
                CommandError(
                    503, "scale disconnected", "the connection closed", "scale_disconnected"
                )
            )
        self._pending.clear()
        self.lost.callback(reason.getErrorMessage())

    def answered(self) -> None:
        """A measurement came in: a polled request is answered."""
        self.delivered = True
        self._asked_at = None

    def replied(self, reply: Reply) -> None:
        """A command reply came in: it answers the oldest pending command of its kind; a reply
        that names no command (MT-SICS `ES`/`ET`/`EL`) answers the command sent last."""
        self.delivered = True
        if not reply.command and self._pending:
            name, d, timer = self._pending.pop()
            timer.cancel()
            d.callback(replace(reply, command=name))
            return
        for i, (name, d, timer) in enumerate(self._pending):
            if name == reply.command:
                del self._pending[i]
                timer.cancel()
                d.callback(reply)
                return
        self.scale.log.info(
            "scale {scale}: unexpected reply {text!r}", scale=self.scale.hub.scale, text=reply.text
        )

    def command(self, name: str) -> defer.Deferred[Reply]:
        """Send command `name`; fire with the scale's reply (or `sent` where none comes)."""
        wire = self.scale.wire
        request = wire.commands.get(name)
        if request is None:
            simulated = getattr(self.transport, "simulated_command", None)
            if simulated is None:
                return defer.fail(
                    CommandError(
                        501,
                        "not supported",
                        f"protocol {wire.name} has no {name} command",
                        "command_unsupported",
                    )
                )
            return defer.succeed(simulated(name))
        self.transport.write(request)  # type: ignore[union-attr]
        if not wire.replies:
            return defer.succeed(Reply(name, True, "sent"))
        d: defer.Deferred[Reply] = defer.Deferred()
        timer = self.scale.clock.callLater(COMMAND_TIMEOUT, self._timed_out, d)
        self._pending.append((name, d, timer))
        return d

    def _timed_out(self, d: defer.Deferred[Reply]) -> None:
        self._pending = [p for p in self._pending if p[1] is not d]
        d.errback(
            CommandError(
                504,
                "no reply",
                f"the scale did not answer in {COMMAND_TIMEOUT:g} s",
                "command_timeout",
            )
        )

    def _step(self, request: bytes) -> None:
        """The scale took the first step of a poll (CAS's ACK): send the next one (DC1) while
        the poll is recent; a late or unasked step waits for the next poll."""
        asked = self._asked_at
        if request and asked is not None and self.scale.clock.seconds() - asked <= STEP_WAIT:
            self.transport.write(request)  # type: ignore[union-attr]

    def _poll(self) -> None:
        """Ask a polled scale for a frame, keeping at most one request outstanding."""
        scale, now = self.scale, self.scale.clock.seconds()
        if self._asked_at is not None:
            if now - self._asked_at < max(scale.poll, MIN_REPLY_WAIT):
                return
            scale.counters.missing_replies += 1  # the hub goes stale if no frame comes at all
        self._asked_at = now
        self.transport.write(scale.wire.poll)  # type: ignore[union-attr,arg-type]
