"""The hub: keeps the latest reading and the scale's state, and fans both out to subscribers.

It knows subscribers, not sockets: the WebSocket broadcaster, the store and the HTTP API all
read from here. Every reading is encoded to JSON once, here, and shared as bytes.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from balanca.reading import Reading, json_bytes

Link = Literal["connecting", "connected", "disconnected"]
State = Literal["waiting", "live", "stale", "disconnected"]


class Subscriber(Protocol):
    """Something that wants every reading and every change of the scale's state."""

    def reading(self, reading: Reading, payload: bytes) -> None:
        """A new reading, with its JSON encoding."""

    def status(self, payload: bytes) -> None:
        """The scale's state changed; `payload` is the JSON status message."""


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
        self.state: State = "waiting"
        self.readings = 0
        self._subscribers: list[Subscriber] = []
        self._stale_timer: IDelayedCall | None = None

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
            self._set_state("live", "readings arriving")
        for subscriber in list(self._subscribers):
            subscriber.reading(reading, payload)

    def connected(self) -> None:
        """The transport to the scale is up; readings are expected within `stale_after`."""
        self.link = "connected"
        self._restart_stale_timer()
        self._set_state("waiting", "connected, waiting for the first frame")

    def disconnected(self, reason: str) -> None:
        """The transport to the scale is gone: the latest reading is never live again."""
        self.link = "disconnected"
        self._cancel_stale_timer()
        self._set_state("disconnected", reason)

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
        self._set_state("stale", f"no frame from the scale for {self.stale_after:g} s")

    def _set_state(self, state: State, reason: str) -> None:
        changed = state != self.state
        self.state, self.reason = state, reason
        if not changed:
            return
        self.log.info("scale {state}: {reason}", state=state, reason=reason)
        payload = json_bytes(self.status())
        for subscriber in list(self._subscribers):
            subscriber.status(payload)
