"""`GET /metrics` scraped from a running service and parsed as Prometheus does: the series move
with readings, WebSocket clients, the serial line and a database outage, and the alert rules in
contrib/prometheus/ name series that a real scrape has."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest

from balanca.reading import Measurement
from tests.base import ServiceTestCase, fetch
from tests.dbproxy import ProxiedMariaDBCase
from tests.test_scale_serial import SerialCase
from tests.wsclient import connect

PROMETHEUS = Path(__file__).resolve().parent.parent / "contrib" / "prometheus"

SERIES = {
    "balanca_readings_total": "counter",
    "balanca_frames_rejected_total": "counter",
    "balanca_scale_connected": "gauge",
    "balanca_scale_state": "gauge",
    "balanca_scale_reconnects_total": "counter",
    "balanca_last_reading_age_seconds": "gauge",
    "balanca_websocket_clients": "gauge",
    "balanca_websocket_messages_sent_total": "counter",
    "balanca_websocket_messages_skipped_total": "counter",
    "balanca_db_up": "gauge",
    "balanca_db_backlog": "gauge",
    "balanca_db_write_latency_seconds": "gauge",
    "balanca_http_requests_total": "counter",
}
"""The series the operations issue asked for, by the name a query uses, and their types."""


class Scrape:
    """One `/metrics` answer, parsed with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples: list[Sample] = [s for f in self.families for s in f.samples]

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the first sample `name` with these labels, None if there is none."""
        for sample in self.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
        return None

    def declared_type(self, name: str) -> str | None:
        """The TYPE line of `name`, as the exposition names it (a counter with `_total`)."""
        match = re.search(rf"^# TYPE {re.escape(name)} (\w+)$", self.text, re.MULTILINE)
        return match.group(1) if match else None


class Scraping(ServiceTestCase):
    """A service under test whose `/metrics` the test scrapes."""

    async def scrape(self) -> Scrape:
        response = await fetch(self.url("/metrics"))
        self.assertEqual(response.code, 200)
        self.assertTrue(response.header("Content-Type").startswith("text/plain; version="))
        return Scrape(response.body.decode())

    async def scrape_until(self, check: Callable[[Scrape], bool], timeout: float = 15) -> Scrape:
        """Scrape every 0.1 s until `check` holds; fail after `timeout` seconds."""
        deadline = reactor.seconds() + timeout
        while True:
            scrape = await self.scrape()
            if check(scrape):
                return scrape
            if reactor.seconds() > deadline:
                self.fail(f"still waiting after {timeout} s; the last scrape:\n{scrape.text}")
            await deferLater(reactor, 0.1, lambda: None)


class Series(Scraping):
    async def test_a_scrape_has_every_series_asked_for_named_and_typed_by_convention(
        self,
    ) -> None:
        await self.start()
        await self.scrape()  # so that requests have been counted
        scrape = await self.scrape_until(lambda s: bool(s.value("balanca_readings_total")))
        for family in scrape.families:
            self.assertTrue(family.name.startswith("balanca_"), family.name)
            if family.type == "counter":
                for sample in family.samples:
                    self.assertTrue(sample.name.endswith("_total"), sample.name)
        for name, kind in SERIES.items():
            self.assertEqual(scrape.declared_type(name), kind, name)

    async def test_readings_websocket_clients_and_requests_move_their_series(self) -> None:
        await self.start()
        first = await self.scrape_until(lambda s: bool(s.value("balanca_readings_total")))
        readings = first.value("balanca_readings_total") or 0
        await self.scrape_until(lambda s: (s.value("balanca_readings_total") or 0) > readings)
        client = await connect(f"ws://127.0.0.1:{self.port()}/ws")
        await client.until(3)
        scrape = await self.scrape()
        self.assertEqual(scrape.value("balanca_websocket_clients"), 1)
        self.assertEqual(scrape.value("balanca_websocket_connections_total"), 1)
        self.assertGreaterEqual(scrape.value("balanca_websocket_messages_sent_total") or 0, 3)
        age = scrape.value("balanca_last_reading_age_seconds")
        self.assertTrue(age is not None and 0 <= age < 3, age)
        self.assertEqual(scrape.value("balanca_scale_state", state="live"), 1)
        client.sendClose()
        await client.closed
        await self.scrape_until(lambda s: s.value("balanca_websocket_clients") == 0)
        weight = await fetch(self.url("/api/weight"))
        requests = await self.scrape()
        self.assertEqual(
            requests.value(
                "balanca_http_requests_total", path="/api/weight", code=str(weight.code)
            ),
            1,
        )
        self.assertGreaterEqual(
            requests.value("balanca_http_requests_total", path="/metrics", code="200") or 0, 4
        )


class SerialLine(SerialCase, Scraping):
    async def test_rejected_frames_an_unplug_and_a_replug_show_in_the_scale_series(
        self,
    ) -> None:
        scale = self.pty("toledo")
        await self.start("--scale", scale.spec())
        silent = await self.scrape()
        self.assertIsNone(silent.value("balanca_last_reading_age_seconds"))  # no reading yet
        sample = Measurement(Decimal("4560"), "kg", True, "gross", Decimal("0"))
        await self.feed(scale, sample, 1)
        live = await self.scrape_until(lambda s: s.value("balanca_scale_state", state="live") == 1)
        self.assertEqual(live.value("balanca_scale_connected"), 1)
        self.assertEqual(live.value("balanca_scale_reconnects_total"), 0)
        good = scale.wire.encode(sample)
        scale.write(good[:-1] + bytes([(good[-1] + 1) & 0x7F]))  # a bad checksum
        await self.scrape_until(
            lambda s: s.value("balanca_frames_rejected_total", reason="checksum") == 1
        )
        scale.unplug()
        gone = await self.scrape_until(lambda s: s.value("balanca_scale_connected") == 0)
        self.assertEqual(gone.value("balanca_scale_state", state="disconnected"), 1)
        scale.plug()
        feeding = self.feed(scale, sample, 12)
        back = await self.scrape_until(
            lambda s: s.value("balanca_scale_state", state="live") == 1, timeout=12
        )
        self.assertEqual(back.value("balanca_scale_connected"), 1)
        self.assertGreaterEqual(back.value("balanca_scale_reconnects_total") or 0, 1)
        scale.unplug()
        await feeding


class DatabaseOutage(Scraping, ProxiedMariaDBCase):
    """MariaDB behind a proxy that the test cuts."""

    async def test_an_outage_shows_as_db_down_with_a_growing_backlog_until_it_recovers(
        self,
    ) -> None:
        url = f"mysql://root@127.0.0.1:{self.proxy.port}/{self.database}"
        await self.start("--db", url, "--record", "all")
        up = await self.scrape_until(lambda s: bool(s.value("balanca_db_rows_written_total")))
        self.assertEqual(up.value("balanca_db_up"), 1)
        self.assertGreater(up.value("balanca_db_write_latency_seconds") or 0, 0)
        await self.proxy.cut()
        down = await self.scrape_until(lambda s: s.value("balanca_db_up") == 0)
        backlog = down.value("balanca_db_backlog") or 0
        growing = await self.scrape_until(
            lambda s: (s.value("balanca_db_backlog") or 0) >= backlog + 10
        )
        self.assertGreaterEqual(growing.value("balanca_db_write_failures_total") or 0, 1)
        self.proxy.restore()
        outage = growing.value("balanca_db_backlog") or 0
        # Back to a second's worth of readings waiting for their batch (10 a second here).
        back = await self.scrape_until(
            lambda s: s.value("balanca_db_up") == 1 and (s.value("balanca_db_backlog") or 0) <= 12
        )
        self.assertGreater(outage, 12)
        written = up.value("balanca_db_rows_written_total") or 0
        self.assertGreater(back.value("balanca_db_rows_written_total") or 0, written + 10)
        self.assertEqual(back.value("balanca_db_rows_failed_total"), 0)


SERIES_IN_RULES = re.compile(r"\b(balanca_\w+)(?:\{([^}]*)\})?")
LABEL_MATCHER = re.compile(r'(\w+)\s*=~?\s*"([^"]*)"')


class AlertRules(Scraping):
    def rules(self) -> list[dict[str, Any]]:
        groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def test_the_alerts_the_old_system_wanted_are_there(self) -> None:
        wanted = {
            "BalancaNoWebSocketClients": "5m",
            "BalancaScaleDisconnected": "1m",
            "BalancaReadingStale": "1m",
            "BalancaDatabaseDegraded": "2m",
            "BalancaRecordsBroken": "0s",  # not the old system's: a broken chain is news at once
            "BalancaMqttOutboxBehind": "5m",
            "BalancaMqttDisconnected": "10m",
        }
        self.assertEqual({r["alert"]: r["for"] for r in self.rules()}, wanted)

    async def test_every_series_and_label_in_the_rules_is_in_a_real_scrape(self) -> None:
        await self.start()
        scrape = await self.scrape_until(lambda s: bool(s.value("balanca_readings_total")))
        for rule in self.rules():
            text = " ".join([rule["expr"], *rule["annotations"].values()])
            for name, matchers in SERIES_IN_RULES.findall(text):
                if name.startswith("balanca_mqtt_"):
                    continue  # only with --mqtt: tests/test_mqtt.py scrapes them
                self.assertIsNotNone(scrape.value(name), f"{rule['alert']}: {name}")
                labels = dict(LABEL_MATCHER.findall(matchers))
                self.assertIsNotNone(scrape.value(name, **labels), f"{rule['alert']}: {labels}")

    async def test_promtool_accepts_the_rules_their_unit_tests_and_a_real_scrape(self) -> None:
        promtool = shutil.which("promtool")
        if promtool is None:
            raise SkipTest("promtool is not installed (Debian: apt-get install prometheus)")
        await self.start()
        scrape = await self.scrape_until(lambda s: bool(s.value("balanca_readings_total")))
        for args, stdin in (
            (["check", "rules", "alerts.yml"], None),
            (["test", "rules", "alerts_test.yml"], None),
            (["check", "metrics"], scrape.text),
        ):
            run = subprocess.run(
                [promtool, *args],
                cwd=PROMETHEUS,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=60,
            )
            self.assertEqual(
                run.returncode, 0, f"promtool {' '.join(args)}: {run.stdout}{run.stderr}"
            )
