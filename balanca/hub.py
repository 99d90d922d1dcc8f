"""The hub: keeps the latest reading and the scale's state, and fans both out to subscribers.

It knows subscribers, not sockets: the WebSocket broadcaster, the store and the HTTP API all
read from here. Every reading is encoded to JSON once, here, and shared as bytes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from balanca.reading import Reading, json_bytes

Link = Literal["connecting", "connected", "disconnected"]
State = Literal["waiting", "live", "stale", "disconnected"]
Code = str
"""A machine key for the state, beside the English reason (CONTRACT.md's scale state codes):
connecting, waiting, live, no_frames, device_removed, device_not_found, device_busy,
connection_lost, connection_refused, open_failed."""


class Subscriber(Protocol):
    """Something that wants every reading and every change of the scale's state."""

    def reading(self, reading: Reading, payload: bytes) -> None:
        """A new reading, with its JSON encoding."""

    def status(self, payload: bytes) -> None:
        """The scale's state changed; `payload` is the JSON status message."""


def subscriber_name(subscriber: object) -> str:
    """How logs and metrics name a subscriber: its `name`, else its class."""
    return str(getattr(subscriber, "name", type(subscriber).__name__))


class Hub:
    """Latest reading, scale state and the fan-out of both."""

    log = Logger()

    def __init__(self, clock: IReactorTime, stale_after: float, scale: str = "default") -> None:
        self.clock = clock
        self.stale_after = stale_after
        self.scale = scale
        self.latest: Reading | None = None
        self.latest_json: bytes | None = None
        self.latest_at: float | None = None
        self.link: Link = "connecting"
        self.reason = "connecting to the scale"
        self.code: Code = "connecting"
        self.state: State = "waiting"
        self.readings = 0
        self.subscriber_failures: Counter[str] = Counter()
        """Calls into each subscriber (by name) that raised; read by /metrics."""
        self._subscribers: list[Subscriber] = []
        self._stale_timer: IDelayedCall | None = None
        self._failures_logged: set[tuple[str, str, type[BaseException]]] = set()
        self._down_logged: Code | None = None
        """The code of the last disconnection logged, until a reading comes: a link that
        reconnects and drops again without a frame is not logged again (the link logs such a
        flapping connection once per backoff step)."""

    def subscribe(self, subscriber: Subscriber) -> None:
        """Send `subscriber` every reading and state change from now on."""
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop sending to `subscriber`."""
        self._subscribers.remove(subscriber)

    def publish(self, reading: Reading) -> None:
        """A reading decoded from the scale: keep it as the latest and fan it out."""
        payload = reading.to_json()
        self.latest, self.latest_json = reading, payload
        self.latest_at = self.clock.seconds()
        self.readings += 1
        if self._stale_timer is not None and self._stale_timer.active():
            self._stale_timer.reset(self.stale_after)
        else:
            self._stale_timer = self.clock.callLater(self.stale_after, self._went_stale)
        if self.state != "live":
            self._down_logged = None
            self._set_state("live", "readings arriving", "live")
        for subscriber in list(self._subscribers):
            self._deliver(subscriber, "reading", reading, payload)

    def connected(self) -> None:
        """The transport to the scale is up; readings are expected within `stale_after`."""
        self.link = "connected"
        self._restart_stale_timer()
        self._set_state("waiting", "connected, waiting for the first frame", "waiting")

    def disconnected(self, reason: str, code: Code = "connection_lost") -> None:
        """The transport to the scale is gone (or cannot be opened; `code` says which way): the
        latest reading is never live again."""
        self.link = "disconnected"
        self._cancel_stale_timer()
        self._set_state("disconnected", reason, code)

    def is_live(self) -> bool:
        """The latest reading is fresh and from a connected scale."""
        return self.state == "live"

    def age(self) -> float | None:
        """Seconds since the latest reading, or None before the first."""
        return None if self.latest_at is None else self.clock.seconds() - self.latest_at

    def status(self) -> dict[str, Any]:
        """The scale's state as the `status` message and `/api/health` give it."""
        age = self.age()
        return {
            "type": "status",
            "scale": self.scale,
            "state": self.state,
            "link": self.link,
            "reason": self.reason,
            "code": self.code,
            "age": None if age is None else round(age, 3),
            "stale_after": self.stale_after,
        }

    def stop(self) -> None:
        """Cancel timers (at service stop)."""
        self._cancel_stale_timer()

    def _restart_stale_timer(self) -> None:
        self._cancel_stale_timer()
        self._stale_timer = self.clock.callLater(self.stale_after, self._went_stale)

    def _cancel_stale_timer(self) -> None:
        if self._stale_timer is not None and self._stale_timer.active():
            self._stale_timer.cancel()
        self._stale_timer = None

    def _went_stale(self) -> None:
        self._stale_timer = None
        self._set_state("stale", f"no frame from the scale for {self.stale_after:g} s", "no_frames")

    def _set_state(self, state: State, reason: str, code: Code) -> None:
        """Change state; subscribers hear of every change of state or code, the log of each
        one except a flapping link's repeats."""
        changed = (state, code) != (self.state, self.code)
        self.state, self.reason, self.code = state, reason, code
        if not changed:
            return
        repeat = state == "waiting" or (state == "disconnected" and code == self._down_logged)
        if self._down_logged is None or not repeat:
            self.log.info(
                "scale state: {scale} {state} ({reason}) [{code}]",
                scale=self.scale,
                state=state,
                reason=reason,
                code=code,
            )
            if state == "disconnected":
                self._down_logged = code
        payload = json_bytes(self.status())
        for subscriber in list(self._subscribers):
            self._deliver(subscriber, "status", payload)

    def _deliver(self, subscriber: Subscriber, method: str, *args: Any) -> None:
        """Call one subscriber, keeping its failure its own: counted, logged once per kind
        (subscriber, method, exception type), never raised into the scale's connection."""
        try:
            getattr(subscriber, method)(*args)
        except Exception as e:
            name = subscriber_name(subscriber)
            self.subscriber_failures[name] += 1
            kind = (name, method, type(e))
            if kind not in self._failures_logged:
                self._failures_logged.add(kind)
                self.log.failure(
                    "hub: subscriber {subscriber} failed on a {method} ({error}); further "
                    "failures of this kind are only counted",
                    Failure(),
                    subscriber=name,
                    method=method,
                    error=type(e).__name__,
                )
