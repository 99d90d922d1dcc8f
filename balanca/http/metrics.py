"""`GET /metrics`: Prometheus series read from the service's own counters at scrape time.

Nothing on the hot path touches prometheus_client: the scale, hub, WebSocket factory, store and
site keep plain counters, and this collector turns them into `balanca_*` series when scraped.
Counters are exposed with the `_total` suffix, durations in seconds; a value that does not
exist yet (the age of a reading before the first one) has no sample rather than a sentinel.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twisted.web.resource import Resource
from twisted.web.server import Request

from balanca.http.live import LiveFactory
from balanca.http.site import BalancaSite
from balanca.publish.mqtt import Publisher
from balanca.scales import ScaleParts
from balanca.store.recordbook import RecordBook

SCALE_STATES = ("waiting", "live", "stale", "disconnected")
PER_SCALE: list[tuple[str, type[CounterMetricFamily] | type[GaugeMetricFamily], str]] = [
    ("readings", CounterMetricFamily, "Readings decoded from the scale"),
    ("framer_garbage_bytes", CounterMetricFamily, "Bytes outside any frame"),
    ("framer_overflows", CounterMetricFamily, "Framer buffers dropped for holding no frame"),
    ("scale_missing_replies", CounterMetricFamily, "Poll requests the scale did not answer"),
    ("scale_reconnects", CounterMetricFamily, "Times the scale link was reopened"),
    ("scale_connected", GaugeMetricFamily, "1 while the scale's transport is open"),
    ("last_reading_age_seconds", GaugeMetricFamily, "Seconds since the latest reading"),
]
"""The per-scale series with one sample per scale: name, type and help."""


class BalancaCollector:
    """Reads every counter of a running service into Prometheus metric families; every
    per-scale series carries a `scale` label."""

    def __init__(self, scales: Sequence[ScaleParts], live: LiveFactory, store: Any) -> None:
        self.scales, self.live, self.store = scales, live, store
        self.site: BalancaSite | None = None
        self.book: RecordBook | None = None
        self.publisher: Publisher | None = None

    def collect(self) -> Iterator[Metric]:
        yield from self._scales()
        yield from self._websocket()
        yield from self._database()
        yield from self._records()
        yield from self._mqtt()
        yield from self._http()

    def _mqtt(self) -> Iterator[Metric]:
        if self.publisher is None:
            return
        p, health = self.publisher, self.publisher.health()
        yield _gauge("mqtt_connected", "1 while the MQTT session with the broker is up", p.link.up)
        yield _counter("mqtt_connects", "MQTT sessions the broker accepted", p.link.connects)
        yield _gauge("mqtt_outbox", "Records and transactions waiting for the broker", p.outbox)
        yield _gauge(
            "mqtt_outbox_oldest_seconds",
            "Age of the oldest record or transaction waiting for the broker",
            health["oldest"],
        )
        published = CounterMetricFamily(
            "balanca_mqtt_published",
            "MQTT messages sent (records and transactions: acknowledged), by topic",
            labels=["topic"],
        )
        for topic in ("weight", "status", "records", "transactions"):
            published.add_metric([topic], p.published[topic])
        yield published
        yield _counter(
            "mqtt_readings_dropped",
            "Readings not published because the broker was away (live data is not queued)",
            p.readings_dropped,
        )

    def _records(self) -> Iterator[Metric]:
        if self.book is None:
            return
        verdict = self.book.verdict
        yield _gauge(
            "records_ok",
            "1 while every sealed record checks (0: the chain is broken; see the log)",
            self.book.state != "broken",
        )
        yield _gauge(
            "records_checked",
            "Records covered by the last check of the chain",
            None if verdict is None else verdict.records,
        )

    def _scales(self) -> Iterator[Metric]:
        series = {
            name: family(f"balanca_{name}", words, labels=["scale"])
            for name, family, words in PER_SCALE
        }
        rejected = CounterMetricFamily(
            "balanca_frames_rejected",
            "Frames the decoder rejected, by scale and reason",
            labels=["scale", "reason"],
        )
        state = GaugeMetricFamily(
            "balanca_scale_state",
            "The scale's state (1 for the current one)",
            labels=["scale", "state"],
        )
        info = GaugeMetricFamily(
            "balanca_scale_protocol_info",
            "The scale's wire protocol; with protocol=auto, as detected (state, line settings)",
            labels=["scale", "protocol", "state", "line"],
        )
        failures = CounterMetricFamily(
            "balanca_subscriber_failures",
            "Calls into a hub subscriber that raised (isolated: others still get every reading)",
            labels=["scale", "subscriber"],
        )
        for parts in self.scales:
            hub, scale, label = parts.hub, parts.scale, [parts.id]
            values = {
                "readings": scale.counters.readings,
                "framer_garbage_bytes": scale.garbage_bytes,
                "framer_overflows": scale.overflows,
                "scale_missing_replies": scale.counters.missing_replies,
                "scale_reconnects": parts.link.reconnects,
                "scale_connected": float(hub.link == "connected"),
                "last_reading_age_seconds": hub.age(),
            }
            for name, value in values.items():
                if value is not None:  # no sample for a value that does not exist yet
                    series[name].add_metric(label, value)
            for reason, count in sorted(scale.rejected.items()):
                rejected.add_metric([parts.id, reason], count)
            for name in SCALE_STATES:
                state.add_metric([parts.id, name], float(hub.state == name))
            protocol = scale.protocol_info
            detection = [protocol.get("state", "configured"), protocol.get("line", "")]
            info.add_metric([parts.id, protocol["protocol"], *detection], 1)
            for name, count in sorted(hub.subscriber_failures.items()):
                failures.add_metric([parts.id, name], count)
        yield from series.values()
        yield from (rejected, state, info, failures)

    def _websocket(self) -> Iterator[Metric]:
        live = self.live
        yield _gauge("websocket_clients", "WebSocket clients connected now", len(live.clients))
        yield _counter("websocket_connections", "WebSocket connections opened", live.connections)
        yield _counter("websocket_messages_sent", "Messages sent to WebSocket clients", live.sent)
        yield _counter(
            "websocket_messages_skipped",
            "Messages skipped for slow WebSocket clients",
            live.skipped,
        )
        yield _counter(
            "websocket_keepalive_drops",
            "Clients dropped for not answering pings",
            live.keepalive_drops,
        )

    def _database(self) -> Iterator[Metric]:
        h = self.store.health()
        yield _gauge("db_up", "1 while the database takes writes", h["db"] == "ok")
        yield _gauge("db_backlog", "Rows waiting to be written", h["backlog"])
        yield _gauge(
            "db_write_latency_seconds",
            "Duration of the latest batch write",
            h["last_batch_seconds"],
        )
        yield _counter("db_rows_written", "Rows written to the database", h["rows_written"])
        yield _counter(
            "db_rows_failed", "Rows that will never be written (refused or lost)", h["rows_failed"]
        )
        yield _counter("db_write_failures", "Batch writes that failed", h["failures"])
        yield _gauge(
            "db_dead_letters",
            "Rows the database refused, set aside in the journal for an operator",
            h["dead_letters"],
        )
        yield _gauge("db_oldest_pending_seconds", "Age of the oldest write waiting", h["oldest"])

    def _http(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "balanca_http_requests",
            "HTTP requests by route and status code",
            labels=["path", "code"],
        )
        if self.site is not None:
            for (path, code), count in sorted(self.site.requests.items()):
                requests.add_metric([path, str(code)], count)
        yield requests


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"balanca_{name}", documentation, value=value)


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    """A gauge with one sample, or none while `value` is None."""
    return GaugeMetricFamily(
        f"balanca_{name}", documentation, value=None if value is None else float(value)
    )


class MetricsResource(Resource):
    """Serves a registry in Prometheus text format."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)
