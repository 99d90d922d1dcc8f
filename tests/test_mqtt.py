"""Fleet publishing against a real Mosquitto (127.0.0.1:1883, or one of the test's own): what a
central subscriber sees, across a cut link, a broker outage, `kill -9` and clean stops, over
TLS, and with a wrong password."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from balanca.options import Options
from balanca.publish.discovery import weight_config
from balanca.publish.link import backoff
from balanca.publish.settings import parse_mqtt
from tests.base import fetch, skip_or_fail
from tests.child import Service
from tests.dbproxy import CuttableProxy
from tests.mqttbroker import (
    SHARED,
    Mosquitto,
    Subscriber,
    clear_retained,
    make_ca,
    require_shared,
)
from tests.storebase import wait_until
from tests.test_api import ApiCase


def coroutine(test: Callable[[Any], Coroutine[Any, Any, None]]) -> Callable[[Any], Any]:
    """An `async def` test method, run as a Deferred for trial."""

    @functools.wraps(test)
    def run(self: Any) -> defer.Deferred[None]:
        return defer.Deferred.fromCoroutine(test(self))

    return run


def new_site() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


class Settings(TestCase):
    def test_the_url_gives_host_port_user_and_tls_and_the_password_comes_from_a_file(
        self,
    ) -> None:
        secret = Path(tempfile.mkdtemp(prefix="balanca-mqtt-")) / "password"
        self.addCleanup(shutil.rmtree, secret.parent)
        secret.write_text("s3cret\n")
        spec = parse_mqtt("mqtts://site7@broker.example.com", password_file=str(secret))
        self.assertEqual(
            (spec.host, spec.port, spec.tls, spec.user, spec.password, spec.version),
            ("broker.example.com", 8883, True, "site7", "s3cret", "5"),
        )
        self.assertNotIn("s3cret", spec.describe() + repr(spec))
        plain = parse_mqtt("mqtt://10.0.0.5", version="3.1.1")
        self.assertEqual((plain.port, plain.tls, plain.version), (1883, False, "3.1.1"))

    def test_mistakes_are_refused_with_what_to_fix(self) -> None:
        for url, kwargs, words in [
            ("http://broker", {}, "mqtt://"),
            ("mqtt://u:pw@broker", {}, "--mqtt-password-file"),
            ("mqtt://broker", {"ca_file": "/etc/hostname"}, "mqtts://"),
            ("mqtts://broker", {"ca_file": "/nonexistent.pem"}, "no such file"),
            ("mqtt://broker", {"version": "4"}, "5 or 3.1.1"),
            ("mqtt://broker", {"prefix": "a/#"}, "wildcards"),
        ]:
            with self.assertRaises(ValueError) as caught:
                parse_mqtt(url, **kwargs)
            self.assertIn(words, str(caught.exception), url)

    def test_the_companion_options_need_mqtt(self) -> None:
        options = Options(environ={})
        with self.assertRaisesRegex(Exception, "--mqtt-discovery needs --mqtt"):
            options.parseOptions(["--mqtt-discovery"])
        options = Options(environ={"BALANCA_MQTT": "mqtt://b", "BALANCA_MQTT_VERSION": "3.1.1"})
        options.parseOptions([])
        assert options.settings is not None and options.settings.mqtt is not None
        self.assertEqual(options.settings.mqtt.version, "3.1.1")

    def test_the_configuration_file_takes_the_mqtt_keys(self) -> None:
        folder = Path(tempfile.mkdtemp(prefix="balanca-mqtt-"))
        self.addCleanup(shutil.rmtree, folder)
        (folder / "pass").write_text("pw\n")
        config = folder / "balanca.toml"
        config.write_text(
            f'mqtt = "mqtt://site9@broker"\nmqtt-password-file = "{folder / "pass"}"\n'
            'mqtt-discovery = true\nmqtt-prefix = "fleet"\n[site]\nid = "site-9"\n'
        )
        options = Options(environ={})
        options.parseOptions(["--config", str(config)])
        assert options.settings is not None and options.settings.mqtt is not None
        mqtt = options.settings.mqtt
        self.assertEqual((mqtt.user, mqtt.password, mqtt.prefix, mqtt.discovery),
                         ("site9", "pw", "fleet", True))  # fmt: skip
        self.assertEqual(options.settings.site.id, "site-9")

    def test_reconnection_waits_with_full_jitter_first_within_1_s_never_over_15_s(self) -> None:
        longest = [backoff(n, lambda: 1.0) for n in range(1, 8)]
        self.assertEqual(longest, [1, 2, 4, 8, 15, 15, 15])
        self.assertEqual(backoff(5, lambda: 0.0), 0)
        self.assertEqual(backoff(3, lambda: 0.5), 2)

    def test_home_assistant_has_no_tonne_so_tonnes_are_shown_in_kg(self) -> None:
        topic, config = weight_config("balanca", "s1", "truck", "t", 3)
        self.assertEqual(topic, "homeassistant/sensor/balanca-s1/truck_weight/config")
        self.assertEqual((config["unit_of_measurement"], config["device_class"]), ("kg", "weight"))
        self.assertIn("* 1000", config["value_template"])
        _, kg = weight_config("balanca", "s1", "floor", "kg", 3)
        self.assertNotIn("*", kg["value_template"])


class Logged:
    """Every log line of the service while a test runs."""

    def __init__(self, case: TestCase) -> None:
        self.lines: list[str] = []
        globalLogPublisher.addObserver(self)
        case.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict[str, Any]) -> None:
        self.lines.append(formatEvent(event) or "")

    def having(self, words: str) -> list[str]:
        return [line for line in self.lines if words in line]


class Publishing(ApiCase):
    timeout = 90

    def setUp(self) -> None:
        require_shared()
        self.site = new_site()
        self.log = Logged(self)
        self.addCleanup(clear_retained, f"balanca/{self.site}")

    async def publishing(self, *args: str) -> None:
        await self.start("--site-id", self.site, "--scale", "simulator:rate=20", *args)
        await wait_until(lambda: self.mqtt()["state"] == "ok", 15)

    def mqtt(self) -> dict[str, Any]:
        """`/api/health`'s `mqtt`, as the publisher gives it."""
        return dict(self.service.getServiceNamed("mqtt").health())

    async def capture(self) -> dict[str, Any]:
        for _ in range(600):
            response = await self.post("/api/weighings", {"again": True, "plate": "ABC1234"})
            if response.code == 201:
                return dict(response.json())
            await deferLater(reactor, 0.05, lambda: None)
        self.fail(f"no capture within 30 s: {response.body!r}")

    async def late_subscriber_sees_the_site(self, *args: str) -> Subscriber:
        await self.publishing(*args)
        await wait_until(lambda: self.service.parts.hub.latest is not None)
        await deferLater(reactor, 0.5, lambda: None)
        late = Subscriber(f"balanca/{self.site}/#")
        self.addCleanup(late.close)
        await wait_until(lambda: late.retained("/weight") and late.retained("/status"))
        status = [s for s in late.retained(f"{self.site}/status")]
        self.assertEqual(status, [{"state": "online", "version": status[0]["version"],
                                   "scales": ["default"]}])  # fmt: skip
        weight = late.retained("default/weight")[0]
        self.assertEqual((weight["type"], weight["scale"]), ("reading", "default"))
        self.assertEqual(late.retained("default/status")[0]["state"], "live")
        return late

    @coroutine
    async def test_a_late_subscriber_sees_the_site_online_and_the_scales_weight_and_state(
        self,
    ) -> None:
        await self.late_subscriber_sees_the_site("--mqtt", "mqtt://127.0.0.1", "--mqtt-discovery")
        discovery = Subscriber(f"homeassistant/sensor/balanca-{self.site}/#")
        self.addCleanup(discovery.close)
        self.addCleanup(clear_retained, f"homeassistant/sensor/balanca-{self.site}")
        await wait_until(lambda: len(discovery.messages) >= 2)
        weight = discovery.retained("default_weight/config")[0]
        self.assertEqual(weight["state_topic"], f"balanca/{self.site}/default/weight")
        self.assertEqual(weight["availability_topic"], f"balanca/{self.site}/status")
        self.assertEqual(weight["unit_of_measurement"], "kg")
        metrics = (await fetch(self.url("/metrics"))).body.decode()
        self.assertIn("balanca_mqtt_connected 1.0", metrics)
        self.assertIn('balanca_mqtt_published_total{topic="weight"}', metrics)

    @coroutine
    async def test_a_late_subscriber_sees_the_same_on_mqtt_3_1_1(self) -> None:
        await self.late_subscriber_sees_the_site(
            "--mqtt-version", "3.1.1", "--mqtt", "mqtt://127.0.0.1"
        )

    @coroutine
    async def test_every_record_reaches_the_broker_in_order_across_a_10_s_cut(self) -> None:
        proxy = CuttableProxy(SHARED)
        proxy.restore()
        self.addCleanup(proxy.close)
        central = Subscriber(f"balanca/{self.site}/records")
        self.addCleanup(central.close)
        await self.publishing("--mqtt", f"mqtt://127.0.0.1:{proxy.port}")
        written = [await self.capture() for _ in range(2)]
        await wait_until(lambda: len(central.payloads("records")) == 2)
        await wait_until(lambda: self.mqtt()["outbox"] == 0)  # both acknowledged
        await proxy.cut()
        cut_at = time.monotonic()
        await wait_until(lambda: self.mqtt()["state"] == "degraded")
        self.assertEqual(self.mqtt()["code"], "broker_unreachable")
        written += [await self.capture() for _ in range(3)]
        await wait_until(lambda: self.mqtt()["outbox"] == 3)
        self.assertIsNotNone(self.mqtt()["oldest"])
        dropped = self.mqtt()["readings_dropped"]
        metrics = (await fetch(self.url("/metrics"))).body.decode()
        for series in (
            "balanca_mqtt_connected 0.0",
            "balanca_mqtt_outbox 3.0",
            "balanca_mqtt_outbox_oldest_seconds ",
            "balanca_mqtt_readings_dropped_total ",
        ):
            self.assertIn(series, metrics)  # fmt: skip
        await deferLater(reactor, max(0.0, 10 - (time.monotonic() - cut_at)), lambda: None)
        self.assertGreater(self.mqtt()["readings_dropped"], dropped)
        health = await fetch(self.url("/api/health"))
        self.assertEqual(health.code, 200, "a broker away alone leaves the service healthy")
        mqtt = health.json()["mqtt"]
        self.assertEqual(
            (mqtt["state"], mqtt["code"], mqtt["outbox"]), ("degraded", "broker_unreachable", 3)
        )
        self.assertGreaterEqual(mqtt["oldest"], 5)
        proxy.restore()
        back = time.monotonic()
        await wait_until(lambda: len({r["number"] for r in central.payloads("records")}) == 5, 30)
        self.assertLess(time.monotonic() - back, 30)
        received = central.payloads("records")
        first_seen = list(dict.fromkeys(r["number"] for r in received))
        self.assertEqual(first_seen, [1, 2, 3, 4, 5])
        by_number = {r["number"]: r for r in received}
        self.assertEqual([by_number[n] for n in range(1, 6)], written)
        await wait_until(lambda: self.mqtt()["outbox"] == 0)
        self.assertEqual(self.mqtt()["state"], "ok")
        self.assertTrue(self.log.having("MQTT disconnected from"), self.log.lines[-20:])
        self.assertTrue(self.log.having("MQTT replay: 3 queued"), self.log.having("MQTT"))

    @coroutine
    async def test_a_transaction_goes_out_when_it_closes_and_again_when_it_is_voided(
        self,
    ) -> None:
        central = Subscriber(f"balanca/{self.site}/+")
        self.addCleanup(central.close)
        await self.publishing("--mqtt", "mqtt://127.0.0.1")
        typed = json.dumps({"tare": "100", "unit": "kg", "reason": "scale ticket"}).encode()
        tare = await fetch(self.url("/api/vehicles/ABC1234/tare"), b"PUT", typed,
                           {"Content-Type": "application/json"})  # fmt: skip
        self.assertEqual(tare.code, 201, tare.body)
        body = {"plate": "ABC1234", "stored_tare": True, "again": True}
        for _ in range(600):  # a stable load of the simulator above the tare
            closed = await self.post("/api/scales/default/transactions", body)
            if closed.code == 201:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(closed.code, 201, closed.body)
        number = closed.json()["id"]
        voided = await self.post(f"/api/transactions/{number}/void", {"reason": "wrong truck"})
        self.assertEqual(voided.code, 201, voided.body)
        await wait_until(lambda: len(central.payloads("/transactions")) == 2)
        sent = central.payloads("/transactions")
        self.assertEqual([t["state"] for t in sent], ["closed", "void"])
        self.assertEqual(sent[0], closed.json())
        self.assertEqual(sent[1], voided.json())
        await wait_until(lambda: len(central.payloads("/records")) == 3)
        kinds = [(r["number"], r["kind"]) for r in central.payloads("/records")]
        self.assertEqual(kinds, [(1, "tare"), (2, "out"), (3, "void")])

    @coroutine
    async def test_a_broker_that_goes_silent_is_given_up_by_keepalive_and_found_again(
        self,
    ) -> None:
        proxy = CuttableProxy(SHARED)
        proxy.restore()
        self.addCleanup(proxy.close)
        central = Subscriber(f"balanca/{self.site}/records")
        self.addCleanup(central.close)
        await self.publishing("--mqtt", f"mqtt://127.0.0.1:{proxy.port}")
        proxy.silence()  # the connection stays open, nothing passes: a dead route
        written = [await self.capture()]
        await wait_until(lambda: self.mqtt()["state"] == "degraded", 50)
        self.assertTrue(self.log.having("MQTT disconnected from"), self.log.having("MQTT"))
        proxy.restore()
        await wait_until(lambda: self.mqtt()["state"] == "ok", 30)
        await wait_until(lambda: central.payloads("records")[-1:] == written, 15)

    @coroutine
    async def test_a_broker_that_takes_the_connection_and_never_answers_is_given_up(
        self,
    ) -> None:
        proxy = CuttableProxy(SHARED)
        proxy.restore()
        proxy.silence()
        self.addCleanup(proxy.close)
        await self.start("--site-id", self.site, "--mqtt", f"mqtt://127.0.0.1:{proxy.port}")
        await wait_until(lambda: bool(self.log.having("no CONNACK within 10 s")), 20)
        self.assertEqual(self.mqtt()["code"], "broker_unreachable")
        proxy.restore()
        await wait_until(lambda: self.mqtt()["state"] == "ok", 30)

    @coroutine
    async def test_the_outbox_works_on_mariadb_too_and_carries_voids(self) -> None:
        import pymysql

        from tests.storebase import MARIADB

        try:
            pymysql.connect(**MARIADB, connect_timeout=3).close()
        except pymysql.err.Error as error:
            skip_or_fail(f"no MariaDB at 127.0.0.1:3306: {error}")
        database = f"balanca_test_mqtt_{uuid.uuid4().hex[:12]}"

        def query(sql: str) -> list[tuple[Any, ...]]:
            connection = pymysql.connect(**MARIADB, database=database)
            try:
                with connection.cursor() as cursor:
                    cursor.execute(sql)
                    return list(cursor.fetchall())
            finally:
                connection.close()

        def drop() -> None:
            connection = pymysql.connect(**MARIADB)
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {database}")
            connection.close()

        self.addCleanup(drop)
        central = Subscriber(f"balanca/{self.site}/records")
        self.addCleanup(central.close)
        await self.publishing(
            "--mqtt", "mqtt://127.0.0.1", "--db", f"mysql://root@127.0.0.1/{database}"
        )
        written = [await self.capture() for _ in range(2)]
        void = await self.post("/api/weighings/1/void", {"reason": "wrong plate"})
        self.assertEqual(void.code, 201, void.body)
        written.append(void.json())
        await wait_until(lambda: len(central.payloads("records")) == 3)
        self.assertEqual(central.payloads("records"), written)
        self.assertEqual((written[2]["kind"], written[2]["voids"]), ("void", 1))
        await wait_until(lambda: self.mqtt()["outbox"] == 0)
        self.assertEqual(query("SELECT COUNT(*) FROM outbox"), [(0,)])
        self.assertEqual(
            query("SELECT name FROM schema_version WHERE version = 4"), [("004_outbox.sql",)]
        )


class OwnBroker(ApiCase):
    """A mosquitto of the test's own: TLS with a test-made CA, a password file."""

    timeout = 60

    def setUp(self) -> None:
        self.site = new_site()
        self.log = Logged(self)
        self.folder = Path(tempfile.mkdtemp(prefix="balanca-mqtt-"))
        self.addCleanup(shutil.rmtree, self.folder, True)

    def broker(self, config: str) -> Mosquitto:
        broker = Mosquitto(config, plain_port=True)
        self.addCleanup(broker.close)
        return broker.start()

    mqtt = Publishing.mqtt
    capture = Publishing.capture

    @coroutine
    async def test_a_record_the_broker_refuses_is_logged_and_kept_in_the_outbox(self) -> None:
        acl = self.folder / "acl"  # the site may say its status and weights, not its records
        acl.write_text(f"topic write balanca/{self.site}/status\n"
                       f"topic write balanca/{self.site}/default/#\n")  # fmt: skip
        broker = self.broker(f"acl_file {acl}")
        await self.start(
            "--site-id", self.site, "--scale", "simulator:rate=20",
            "--mqtt", f"mqtt://127.0.0.1:{broker.port}",
        )  # fmt: skip
        await wait_until(lambda: self.mqtt()["state"] == "ok")
        await self.capture()
        await wait_until(
            lambda: bool(self.log.having("MQTT broker refused records 1: Not authorized"))
        )
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual((self.mqtt()["outbox"], self.mqtt()["state"]), (1, "ok"))

    def tls_broker(self) -> tuple[Mosquitto, dict[str, Path]]:
        pem = make_ca(self.folder)
        return self.broker(f"cafile {pem['ca']}\ncertfile {pem['cert']}\nkeyfile {pem['key']}"), pem

    @coroutine
    async def test_tls_to_a_broker_whose_certificate_the_ca_file_vouches_for(self) -> None:
        broker, pem = self.tls_broker()
        central = Subscriber(f"balanca/{self.site}/#", ("127.0.0.1", broker.plain or 0))
        self.addCleanup(central.close)
        await self.start(
            "--site-id", self.site,
            "--mqtt", f"mqtts://localhost:{broker.port}", "--mqtt-ca-file", str(pem["ca"]),
        )  # fmt: skip
        await wait_until(lambda: self.mqtt()["state"] == "ok")
        await wait_until(
            lambda: "online" in [p["state"] for p in central.payloads(f"{self.site}/status")]
        )

    @coroutine
    async def test_tls_checks_the_brokers_name(self) -> None:
        broker, pem = self.tls_broker()  # a certificate for localhost, reached as 127.0.0.1
        await self.start(
            "--site-id", self.site,
            "--mqtt", f"mqtts://127.0.0.1:{broker.port}", "--mqtt-ca-file", str(pem["ca"]),
        )  # fmt: skip
        await wait_until(lambda: self.log.having("MQTT broker mqtts://127.0.0.1"))
        await deferLater(reactor, 1.5, lambda: None)
        self.assertEqual(self.mqtt()["state"], "degraded")
        self.assertEqual(self.mqtt()["code"], "broker_unreachable")
        self.assertFalse(self.log.having("MQTT connected"))

    @coroutine
    async def test_a_wrong_password_is_one_clear_log_line_and_a_degraded_link_not_a_crash_loop(
        self,
    ) -> None:
        passwords = self.folder / "passwd"
        passwords.write_text("")
        import subprocess

        subprocess.run(["mosquitto_passwd", "-b", str(passwords), "site1", "right"], check=True)
        broker = self.broker(f"password_file {passwords}")
        wrong = self.folder / "wrong"
        wrong.write_text("wrong\n")
        await self.start(
            "--site-id", self.site,
            "--mqtt", f"mqtt://site1@127.0.0.1:{broker.port}", "--mqtt-password-file", str(wrong),
        )  # fmt: skip
        await wait_until(lambda: self.log.having("refused the connection"))
        await deferLater(reactor, 4, lambda: None)
        self.assertEqual(
            (self.mqtt()["state"], self.mqtt()["code"]), ("degraded", "not_authorized")
        )
        lines = self.log.having("refused the connection")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("site1@127.0.0.1", lines[0])
        self.assertNotIn("wrong", lines[0])
        attempts = self.service.getServiceNamed("mqtt").link.attempts
        self.assertLess(attempts, 10, "retries back off")
        health = await fetch(self.url("/api/health"))
        self.assertEqual(health.code, 200)

    @coroutine
    async def test_the_right_password_connects(self) -> None:
        passwords = self.folder / "passwd"
        passwords.write_text("")
        import subprocess

        subprocess.run(["mosquitto_passwd", "-b", str(passwords), "site1", "right"], check=True)
        broker = self.broker(f"password_file {passwords}")
        right = self.folder / "right"
        right.write_text("right\n")
        await self.start(
            "--site-id", self.site,
            "--mqtt", f"mqtt://site1@127.0.0.1:{broker.port}", "--mqtt-password-file", str(right),
        )  # fmt: skip
        await wait_until(lambda: self.mqtt()["state"] == "ok")


def capture(origin: str) -> dict[str, Any]:
    """A capture on a child service's simulator (asked again until its load is stable)."""
    body = json.dumps({"again": True}).encode()
    for _ in range(300):
        request = urllib.request.Request(
            f"{origin}/api/weighings", body, {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return dict(json.load(answer))
        except urllib.error.HTTPError as refused:
            refused.close()
            time.sleep(0.1)
    raise AssertionError("no capture within 30 s")


def health(origin: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{origin}/api/health", timeout=5) as answer:
            return dict(json.load(answer))
    except urllib.error.HTTPError as error:
        return dict(json.load(error))


def until(condition: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout} s")
        time.sleep(0.05)


class KilledService(TestCase):
    """The real service as a child process, killed with SIGKILL."""

    timeout = 120

    def child(self, site: str, broker: str) -> Service:
        service = Service("--site-id", site, "--mqtt", broker, "--scale", "simulator:rate=20")
        self.addCleanup(service.close)
        return service

    def test_records_captured_while_the_broker_is_away_arrive_after_kill_9_and_a_restart(
        self,
    ) -> None:
        site = new_site()
        broker = Mosquitto(persist=True)
        self.addCleanup(broker.close)
        broker.start()
        service = self.child(site, f"mqtt://127.0.0.1:{broker.port}")
        service.start()
        until(lambda: health(service.origin)["mqtt"]["state"] == "ok")
        broker.stop()
        until(lambda: health(service.origin)["mqtt"]["state"] == "degraded")
        written = [capture(service.origin) for _ in range(3)]
        until(lambda: health(service.origin)["mqtt"]["outbox"] == 3)
        assert service.process is not None
        service.process.kill()
        service.process.wait()
        broker.start()
        central = Subscriber(f"balanca/{site}/records", ("127.0.0.1", broker.port))
        self.addCleanup(central.close)
        service.start()
        until(lambda: len({r["number"] for r in central.payloads("records")}) == 3, 30)
        by_number = {r["number"]: r for r in central.payloads("records")}
        self.assertEqual([by_number[n] for n in (1, 2, 3)], written)
        until(lambda: health(service.origin)["mqtt"]["outbox"] == 0)
        self.assertIn("MQTT replay: 3 queued", service.log())

    def test_a_weight_left_retained_expires_after_stale_after(self) -> None:
        require_shared()
        site = new_site()
        self.addCleanup(clear_retained, f"balanca/{site}")
        service = Service("--site-id", site, "--mqtt", "mqtt://127.0.0.1", "--stale-after", "1")
        self.addCleanup(service.close)
        service.start()
        until(lambda: health(service.origin)["mqtt"]["state"] == "ok")
        early = Subscriber(f"balanca/{site}/#")
        self.addCleanup(early.close)
        until(lambda: bool(early.payloads("default/weight")))
        service.stop()
        time.sleep(2.5)
        late = Subscriber(f"balanca/{site}/#")
        self.addCleanup(late.close)
        until(lambda: late.retained(f"{site}/status") == [{"state": "offline"}])
        time.sleep(0.5)
        self.assertEqual(late.retained("default/weight"), [], "the weight expired with MQTT 5")
        self.assertEqual(late.retained("default/status")[0]["scale"], "default")

    def test_the_last_will_says_offline_after_kill_9_and_a_clean_stop_says_it_too(self) -> None:
        require_shared()
        site = new_site()
        self.addCleanup(clear_retained, f"balanca/{site}")
        service = self.child(site, "mqtt://127.0.0.1")
        watcher = Subscriber(f"balanca/{site}/status")
        self.addCleanup(watcher.close)
        states = lambda: [s["state"] for s in watcher.payloads(f"{site}/status")]  # noqa: E731
        service.start()
        until(lambda: states()[-1:] == ["online"])
        assert service.process is not None
        service.process.kill()
        until(lambda: states()[-1:] == ["offline"], 10)
        late = Subscriber(f"balanca/{site}/status")
        self.addCleanup(late.close)
        until(lambda: late.retained("status") == [{"state": "offline"}])
        service.start()
        until(lambda: states()[-1:] == ["online"])
        started = time.monotonic()
        service.stop()
        assert service.process is not None
        # twistd exits with the signal it stopped for, once stopped; Service.stop kills at 10 s
        self.assertIn(service.process.returncode, (0, -15))
        self.assertLess(time.monotonic() - started, 8, "it stopped by itself, not killed")
        until(lambda: states()[-1:] == ["offline"], 10)
        self.assertIn("MQTT disconnecting", service.log())
