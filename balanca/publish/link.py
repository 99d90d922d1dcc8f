"""The connection to the broker: paho-mqtt's MQTT state machine on a Twisted transport.

Twisted makes the connection (DNS through its resolver, TCP, TLS with the broker's name
checked), so nothing here blocks the reactor; paho gets that connection as the non-blocking
socket it reads and writes in its external-event-loop mode (`loop_read`, `loop_write`,
`loop_misc`), and never opens a socket of its own. paho does not reconnect in that mode: the
link does, with full jitter (a wait drawn from 0 to min(15, 2^n) s, so the first retry comes
within 1 s), and starts each session with clean start off, so the broker keeps the session.
docs/architecture.md says why paho and why this way round.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.interfaces import IDelayedCall, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from balanca.publish.settings import MqttSpec

FIRST_WAIT = 1.0
"""Seconds: the first retry's wait is drawn from 0 to this."""
MAX_WAIT = 15.0
"""Seconds: no wait between attempts is longer (so the outbox goes within 30 s of the
broker's return: a wait, a connection, a round of acknowledgements)."""
KEEPALIVE = 20
"""Seconds of MQTT keepalive: a broker that stops answering is given up after about twice it
(a ping after that long without a byte from it, then as long again for its answer)."""
CONNECT_TIMEOUT = 10.0
"""Seconds for TCP, TLS and the broker's CONNACK together."""
SESSION_EXPIRY = 86400
"""Seconds the broker keeps the session (MQTT 5) after the connection goes."""
WINDOW = 50
"""QoS 1 messages in flight at most (paho's own limit is set to it)."""


class Wire(Protocol):
    """One connection to the broker, as paho sees its socket: `recv` and `send` that never
    block, over a Twisted transport."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.inbox = bytearray()
        self.closed = False
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.inbox += data
        self.link.readable(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed, self.reason = True, self.reason or reason  # a timeout keeps its words
        self.link.readable(self)

    # The socket paho reads and writes.

    def recv(self, size: int) -> bytes:
        if self.inbox:
            chunk = bytes(self.inbox[:size])
            del self.inbox[:size]
            return chunk
        if self.closed:
            return b""  # paho reads an empty recv as the connection lost
        raise BlockingIOError

    def send(self, data: bytes | bytearray) -> int:
        if self.closed:
            raise ConnectionResetError("connection to the broker closed")
        self.transport.write(bytes(data))  # type: ignore[union-attr]
        return len(data)

    def setblocking(self, flag: bool) -> None:
        """Always non-blocking."""

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.loseConnection()


class _Client(paho.Client):
    """paho, given the connection the link made instead of opening one."""

    wire: Wire | None = None

    def _create_socket(self) -> Any:
        assert self.wire is not None, "the link connects before paho's reconnect()"
        return self.wire


class Link:
    """Keeps an MQTT session with the broker: connects, reconnects with full jitter, drives
    paho's reads, writes and keepalive, and says when the session is up or down."""

    log = Logger(namespace="balanca.mqtt")

    def __init__(
        self,
        spec: MqttSpec,
        client_id: str,
        will: tuple[str, bytes],
        reactor: Any,
        *,
        connected: Callable[[bool], None],
        acknowledged: Callable[[int, str | None], None],
        down: Callable[[str, str], None],
        rand: Callable[[], float] = random.random,
    ) -> None:
        """`will` is the Last Will's topic and payload (retained, QoS 1, no delay);
        `connected(session_present)` runs once the broker accepts the session,
        `acknowledged(mid, refusal)` for each QoS 1 message the broker answers (the refusal's
        words, or None when it took the message), `down(code, why)`
        whenever the session is not up (an attempt failed, or the link went)."""
        self.spec, self.reactor, self.rand = spec, reactor, rand
        self._connected, self._acknowledged, self._down = connected, acknowledged, down
        self.v5 = spec.version == "5"
        self.client = _Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if self.v5 else paho.MQTTv311,
            clean_session=None if self.v5 else False,
            reconnect_on_failure=False,
        )
        if spec.user is not None:
            self.client.username_pw_set(spec.user, spec.password)
        will_properties = None
        if self.v5:
            will_properties = Properties(PacketTypes.WILLMESSAGE)
            will_properties.WillDelayInterval = 0
        self.client.will_set(will[0], will[1], qos=1, retain=True, properties=will_properties)
        self.client.max_inflight_messages_set(WINDOW)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_socket_register_write = lambda *_: self._want_write()
        connect_properties = None
        if self.v5:
            connect_properties = Properties(PacketTypes.CONNECT)
            connect_properties.SessionExpiryInterval = SESSION_EXPIRY
        self.client.connect_async(
            spec.host, spec.port, KEEPALIVE, clean_start=False, properties=connect_properties
        )
        self.endpoint = endpoint(spec, reactor)
        self.up = False
        self.attempts = 0
        """Attempts since the session was last up (the backoff's exponent)."""
        self.connects = 0
        self.running = False
        self._wire: Wire | None = None
        self._retry: IDelayedCall | None = None
        self._timeout: IDelayedCall | None = None
        self._writing: IDelayedCall | None = None
        self._last_trouble: str | None = None
        self._sent: dict[int, paho.MQTTMessageInfo] = {}
        """QoS 1 messages sent and not yet acknowledged, by mid."""
        self._refusal: tuple[str, str] | None = None
        """The broker's refusal of the session being closed now: (code, words)."""
        self._keepalive = LoopingCall(self._misc)
        self._keepalive.clock = reactor

    def start(self) -> None:
        """Connect now, and keep connecting until stopped."""
        self.running = True
        self._keepalive.start(1.0, now=False)
        self._attempt()

    def stop(self) -> None:
        """Disconnect cleanly (no Last Will) and stop reconnecting."""
        if not self.running:
            return
        self.running = False
        for call in (self._retry, self._timeout, self._writing):
            if call is not None and call.active():
                call.cancel()
        if self._keepalive.running:
            self._keepalive.stop()
        if self.up:
            self.log.info(
                "MQTT disconnecting from {broker} (stopping)", broker=self.spec.describe()
            )
            self.client.disconnect()
            self._flush()
        elif self._wire is not None:
            self._wire.close()

    def publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, expiry: int | None = None
    ) -> int | None:
        """Send a message on the session; its mid, or None when the session is not up."""
        if not self.up:
            return None
        properties = None
        if expiry is not None and self.v5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = expiry
        info = self.client.publish(topic, payload, qos, retain, properties)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        if qos:
            self._sent[info.mid] = info
        return info.mid

    # Connecting.

    def _attempt(self) -> None:
        self._retry = None
        if not self.running:
            return
        self.attempts += 1
        wire = Wire(self)
        self._wire = wire
        self._timeout = self.reactor.callLater(CONNECT_TIMEOUT, self._timed_out, wire)
        connectProtocol(self.endpoint, wire).addCallbacks(self._opened, self._failed)

    def _opened(self, wire: Wire) -> None:
        if not self.running or wire is not self._wire:
            wire.close()
            return
        self.client.wire = wire
        try:
            self.client.reconnect()  # paho takes the wire as its socket and sends CONNECT
        except (OSError, ValueError) as error:
            self.client.wire = self._wire = None
            wire.close()
            self._cancel_timeout()
            self._trouble("broker_unreachable", f"cannot start the session: {error}")

    def _failed(self, failure: Failure) -> None:
        self._wire = None
        self._cancel_timeout()
        self._trouble("broker_unreachable", f"cannot connect: {failure.getErrorMessage()}")

    def _timed_out(self, wire: Wire) -> None:
        self._timeout = None
        if wire.transport is not None:
            wire.reason = Failure(TimeoutError(f"no CONNACK within {CONNECT_TIMEOUT:g} s"))
            wire.transport.abortConnection()  # type: ignore[attr-defined]

    def _cancel_timeout(self) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self._timeout = None

    def _schedule(self) -> None:
        """The next attempt, after a wait with full jitter."""
        if not self.running or self._retry is not None:
            return
        self._retry = self.reactor.callLater(backoff(self.attempts, self.rand), self._attempt)

    def _trouble(self, code: str, why: str) -> None:
        """The session is not up: say so once per kind of trouble, and try again."""
        if why != self._last_trouble:
            self._last_trouble = why
            self.log.warn(
                "MQTT broker {broker}: {why}; retrying (waits up to {cap:g} s)",
                broker=self.spec.describe(), why=why, cap=MAX_WAIT,
            )  # fmt: skip
        self._down(code, why)
        self._schedule()

    # paho's side.

    def readable(self, wire: Wire) -> None:
        """Bytes (or the end) arrived on `wire`: let paho read all of it."""
        if wire is not self.client.wire:
            return
        while self.client.socket() is wire and (wire.inbox or wire.closed):
            self.client.loop_read()

    def _want_write(self) -> None:
        if self._writing is None or not self._writing.active():
            self._writing = self.reactor.callLater(0, self._flush)

    def _flush(self) -> None:
        self._writing = None
        if self.client.socket() is not None and self.client.want_write():
            self.client.loop_write()

    def _misc(self) -> None:
        if self.client.socket() is not None:
            self.client.loop_misc()

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        self._cancel_timeout()
        if reason.is_failure:  # paho closes the connection next: _on_disconnect says it
            self._refusal = (_refusal_code(reason), f"refused the connection: {reason}")
            return
        self.up, self.attempts, self._last_trouble = True, 0, None
        self.connects += 1
        self.log.info(
            "MQTT connected to {broker} (session {session})",
            broker=self.spec.describe(),
            session="resumed" if flags.session_present else "new",
        )
        # paho holds a lock while its callbacks run; what the owner does with the session
        # (publish, disconnect) runs after it, in the reactor's next turn.
        self.reactor.callLater(0, self._connected, bool(flags.session_present))

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        self._cancel_timeout()
        wire, self.client.wire, self._wire = self.client.wire, None, None
        was_up, self.up = self.up, False
        if not self.running:
            return
        cause = wire.reason.getErrorMessage() if wire is not None and wire.reason else ""
        cause = cause or str(reason)  # a TLS or TCP error, else paho's words
        lost = ("broker_unreachable", f"connection closed before the session began: {cause}")
        if was_up:
            lost = ("broker_unreachable", f"connection lost: {cause}")
            self.log.warn(
                "MQTT disconnected from {broker}: {why}; reconnecting (waits up to {cap:g} s)",
                broker=self.spec.describe(), why=cause, cap=MAX_WAIT,
            )  # fmt: skip
            self._last_trouble = lost[1]  # said: the next line is for another trouble
        refusal, self._refusal = self._refusal, None
        self._trouble(*(refusal or lost))

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        if mid in self._sent:
            self.reactor.callLater(0, self._acked, mid, str(reason) if reason.is_failure else None)

    def _acked(self, mid: int, refusal: str | None) -> None:
        """The broker answered QoS 1 message `mid`: paho marks the very message it sent as
        published (a QoS 0 message given the same mid after 65,535 more is not it)."""
        info = self._sent.get(mid)
        if info is not None and info.is_published():
            del self._sent[mid]
            self._acknowledged(mid, refusal)


def backoff(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after `attempts` failed attempts in a row: full jitter, a draw from 0
    to min(MAX_WAIT, FIRST_WAIT * 2^(attempts - 1))."""
    return rand() * min(MAX_WAIT, FIRST_WAIT * 2 ** max(0, attempts - 1))


def _refusal_code(reason: ReasonCode) -> str:
    """The health `code` for a CONNACK that refuses the session."""
    words = str(reason).lower()
    if "password" in words or "authori" in words:
        return "not_authorized"
    return "broker_refused"


def endpoint(spec: MqttSpec, reactor: Any) -> IStreamClientEndpoint:
    """Where the broker is: TCP, or TLS checked against `--mqtt-ca-file` (else the system's
    trust store) and the broker's host name."""
    tcp = HostnameEndpoint(reactor, spec.host, spec.port, timeout=CONNECT_TIMEOUT)
    if not spec.tls:
        return tcp
    trust: Any = None
    if spec.ca_file is not None:
        trust = Certificate.loadPEM(Path(spec.ca_file).read_bytes())
    options = optionsForClientTLS(spec.host, trustRoot=trust)
    return wrapClientTLS(options, tcp)
