"""The publisher: the site on the broker, under `PREFIX/SITE/` (DESIGN.md, docs/fleet.md).

A hub subscriber like the store: every reading goes out as `SCALE/weight` (QoS 0, retained,
expiring after stale-after on MQTT 5) and every change of a scale's state as `SCALE/status`
(QoS 1, retained) while the broker is there; readings that come while it is away are dropped
and counted, never queued (live data). The site's `status` is retained: `online` once
connected, `offline` from the Last Will or a clean stop.

Sealed records (and transactions) are not taken from the hub: the record book queues each one
in the database's outbox in the transaction that writes it (store/outbox.py), and the
publisher drains the outbox in order, at most WINDOW messages in flight, and removes a
message only once the broker has acknowledged it. Messages in flight when the link drops are
sent again by paho on the resumed session, before anything newer; after a restart, the whole
outbox is sent again from its oldest message. A consumer drops the duplicates this can make
by their `number`.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from balanca import __version__
from balanca.hub import Hub
from balanca.publish.discovery import state_config, weight_config
from balanca.publish.link import Link
from balanca.publish.settings import MqttSpec
from balanca.reading import Reading, json_bytes
from balanca.store import outbox
from balanca.store.outbox import Message
from balanca.store.schema import Dialect

DRAIN_INTERVAL = 0.2
"""Seconds between looks at the outbox."""
OUTBOX_WINDOW = 40
"""Outbox messages in flight at most: with DRAIN_INTERVAL, the replay's bound (at most 200
messages a second, fewer when the broker answers slower)."""
BEHIND = 60.0
"""Seconds: an outbox message older than this while connected makes the link `degraded`."""
STOP_TIMEOUT = 2.0
"""Seconds a clean stop waits for the broker to acknowledge `offline`."""
OFFLINE = json_bytes({"state": "offline"})

Interact = Callable[..., Deferred[Any]]


class Publisher(Service):
    """Publishes the site's scales, records and transactions to the broker."""

    name = "mqtt"
    log = Logger(namespace="balanca.mqtt")

    def __init__(
        self,
        spec: MqttSpec,
        site: str,
        hubs: Sequence[Hub],
        interact: Interact,
        dialect: Dialect,
        reactor: Any,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.spec, self.site, self.reactor = spec, site, reactor
        self.interact, self.dialect = interact, dialect
        self.base = f"{spec.prefix}/{site}"
        self.hubs = {hub.scale: hub for hub in hubs}
        for hub in hubs:
            hub.subscribe(self)
        self.link = Link(
            spec,
            f"balanca-{site}",
            (f"{self.base}/status", OFFLINE),
            reactor,
            connected=self._connected,
            acknowledged=self._acknowledged,
            down=self._down,
            rand=rand,
        )
        self.published: Counter[str] = Counter()
        """Messages the broker took, by topic kind (weight, status, records, transactions)."""
        self.readings_dropped = 0
        """Readings that came while the broker was away."""
        self.outbox = 0
        self.oldest_utc: str | None = None
        self.code, self.reason = "connecting", "connecting to the broker"
        self._units: dict[str, str] = {}
        self._cursor = 0
        """The newest outbox message handed to the session."""
        self._inflight: dict[int, Message] = {}
        self._acked: list[int] = []
        self._fresh = False
        """Connected since the last look at the outbox."""
        self._replaying = 0
        self._closing: tuple[int, Deferred[None]] | None = None
        self._loop = LoopingCall(self._drain)
        self._loop.clock = reactor

    def startService(self) -> None:
        super().startService()
        self.log.info(
            "MQTT publishing site {site} to {broker} under {base}/",
            site=self.site, broker=self.spec.describe(), base=self.base,
        )  # fmt: skip
        self.link.start()
        self._loop.start(DRAIN_INTERVAL, now=False)

    def stopService(self) -> Deferred[None]:
        """Say `offline` (retained) and disconnect, waiting at most STOP_TIMEOUT seconds for
        the broker to take it."""
        super().stopService()
        for hub in self.hubs.values():
            hub.unsubscribe(self)
        if self._loop.running:
            self._loop.stop()
        mid = self.link.publish(f"{self.base}/status", OFFLINE, 1, True)
        if mid is None:
            self.link.stop()
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._closing = (mid, done)
        done.addTimeout(STOP_TIMEOUT, self.reactor, onTimeoutCancel=lambda *_: None)
        return done.addBoth(lambda _: self.link.stop())

    def health(self) -> dict[str, Any]:
        """`/api/health`'s `mqtt`: `ok` while connected and the outbox keeps up."""
        oldest = None
        if self.oldest_utc is not None:
            queued = datetime.fromisoformat(self.oldest_utc).replace(tzinfo=UTC).timestamp()
            oldest = round(max(0.0, self.reactor.seconds() - queued), 3)
        behind = oldest is not None and oldest > BEHIND
        ok = self.link.up and not behind
        code = self.code if not self.link.up else "outbox_behind" if behind else "ok"
        reason = self.reason if not self.link.up else f"outbox waiting {oldest} s" if behind else ""
        return {
            "state": "ok" if ok else "degraded",
            "code": code,
            "reason": reason,
            "broker": self.spec.describe(),
            "outbox": self.outbox,
            "oldest": oldest,
            "readings_dropped": self.readings_dropped,
        }

    # Hub subscriber: live data, never queued.

    def reading(self, reading: Reading, payload: bytes) -> None:
        scale = reading.scale
        if self._units.get(scale) != reading.unit:
            self._units[scale] = reading.unit
            self._discover(scale)
        expiry = math.ceil(self.hubs[scale].stale_after)
        if self.link.publish(f"{self.base}/{scale}/weight", payload, 0, True, expiry) is None:
            self.readings_dropped += 1
        else:
            self.published["weight"] += 1

    def status(self, payload: bytes) -> None:
        scale = json.loads(payload)["scale"]
        if self.link.publish(f"{self.base}/{scale}/status", payload, 1, True) is not None:
            self.published["status"] += 1

    # The session.

    def _connected(self, session_present: bool) -> None:
        self.code, self.reason = "ok", ""
        online = {"state": "online", "version": __version__, "scales": list(self.hubs)}
        self.link.publish(f"{self.base}/status", json_bytes(online), 1, True)
        for scale, hub in self.hubs.items():
            self.status(json_bytes(hub.status()))
            self._discover(scale)
        self._fresh = True

    def _down(self, code: str, reason: str) -> None:
        self.code, self.reason = code, reason

    def _discover(self, scale: str) -> None:
        if not self.spec.discovery:
            return
        configs = [state_config(self.spec.prefix, self.site, scale)]
        if (unit := self._units.get(scale)) is not None:
            stale_after = self.hubs[scale].stale_after
            configs.append(weight_config(self.spec.prefix, self.site, scale, unit, stale_after))
        for topic, config in configs:
            self.link.publish(topic, json_bytes(config), 1, True)

    def _acknowledged(self, mid: int, refusal: str | None) -> None:
        if self._closing is not None and mid == self._closing[0]:
            self._closing[1].callback(None)
            return
        message = self._inflight.pop(mid, None)
        if message is None:
            return  # a reading, a state, the site's status
        if refusal is None:
            self._acked.append(message.id)
            self.published[message.topic] += 1
        else:  # kept in the outbox, sent again after the next start
            self.log.error(
                "MQTT broker refused {topic} {number}: {refusal} (may this site publish under"
                " {base}/?); kept in the outbox until the next start",
                topic=message.topic, number=message.number, refusal=refusal, base=self.base,
            )  # fmt: skip

    # The outbox.

    def _drain(self) -> Deferred[None]:
        """One look at the outbox (the loop waits for it before the next); a failure is
        logged, and the loop goes on."""
        return Deferred.fromCoroutine(self._tick()).addErrback(
            lambda failure: self.log.failure("MQTT outbox: look failed", failure)
        )

    async def _tick(self) -> None:
        acked, self._acked = self._acked, []
        room = OUTBOX_WINDOW - len(self._inflight) if self.link.up else 0
        try:
            count, oldest, batch = await self.interact(
                _step, self.dialect, acked, self._cursor, room
            )
        except Exception:  # the database is away (the store says so): next tick
            self._acked[:0] = acked
            return
        self.outbox, self.oldest_utc = count, oldest
        if self._fresh and room and count:
            self._replaying = count
            self.log.info(
                "MQTT replay: {count} queued records/transactions to deliver, in order",
                count=count,
            )
        self._fresh = self._fresh and not room
        for message in batch:
            mid = self.link.publish(
                f"{self.base}/{message.topic}", message.payload.encode("utf-8"), 1, False
            )
            if mid is None:
                break
            self._inflight[mid], self._cursor = message, message.id
        if self._replaying and count == 0 and not self._inflight:
            self.log.info("MQTT replay done: {count} delivered", count=self._replaying)
            self._replaying = 0


def _step(
    txn: Any, dialect: Dialect, acked: list[int], after: int, room: int
) -> tuple[int, str | None, list[Message]]:
    """Remove what the broker acknowledged; the outbox's depth, oldest time and next batch."""
    if acked:
        outbox.delivered(txn, dialect, acked)
    count, oldest = outbox.depth(txn)
    batch = outbox.pending(txn, dialect, after, room) if room > 0 and count else []
    return count, oldest, batch
