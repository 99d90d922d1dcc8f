"""The HTTP API over real sockets: weighings, recorded readings, paging and validation."""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock

from balanca.reading import Measurement, Reading
from tests.base import ServiceTestCase, fetch
from tests.hostile import Target, open_websocket

NOW = datetime.now().astimezone()


def closed_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


class ApiCase(ServiceTestCase):
    """A running service and the requests the API tests make of it."""

    @defer.inlineCallbacks
    def post(self, path: str, body: Any) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = yield fetch(self.url(path), b"POST", raw, {"Content-Type": "application/json"})
        return response

    @defer.inlineCallbacks
    def until_stable_load(self, path: str = "/api/weight") -> Any:
        """Wait for the simulator's next stable, non-zero load (at `path`)."""
        for _ in range(300):
            reading = (yield fetch(self.url(path))).json()
            if reading.get("stable") and reading.get("weight") not in (None, "0"):
                return reading
            yield sleep(0.05)
        self.fail("no stable load from the simulator")


class Api(ApiCase):
    @defer.inlineCallbacks
    def test_a_weighing_stores_the_current_stable_weight_exactly(self) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        reading = yield self.until_stable_load()
        response = yield self.post("/api/weighings", {"reference": "ABC-1234", "note": "soja"})
        self.assertEqual(response.code, 201, response.body)
        row = response.json()
        self.assertEqual((row["weight"], row["unit"], row["reference"], row["note"]),
                         (reading["weight"], "kg", "ABC-1234", "soja"))  # fmt: skip
        self.assertEqual((row["kind"], row["number"], row["source"]), ("weighing", 1, "simulator"))
        listed = (yield fetch(self.url("/api/weighings"))).json()["weighings"]
        self.assertEqual(listed[0], row)
        self.assertEqual(listed[0]["weight"], reading["weight"])

    @defer.inlineCallbacks
    def test_a_weighing_is_refused_with_the_code_of_each_capture_guard(self) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        yield self.until_stable_load()
        parts = self.service.parts
        yield parts.link.stopService()  # the simulator stops: the test sets the readings
        hub = parts.hub
        for measurement, body, code in (
            (Measurement(Decimal("0")), {}, None),  # an empty platform: no previous capture
            (Measurement(Decimal("1230"), stable=False), {}, "scale_in_motion"),
            (Measurement(None, stable=False, status="overload"), {}, "scale_in_motion"),
            (Measurement(None, status="overload"), {}, "scale_status"),
            (Measurement(Decimal("0")), {}, "below_minimum"),
            (Measurement(Decimal("1230")), {}, 201),
            (Measurement(Decimal("1230")), {}, "same_load"),
            (Measurement(Decimal("1230")), {"again": True}, 201),
            (Measurement(Decimal("0")), {}, "below_minimum"),  # and the scale counts as emptied
            (Measurement(Decimal("1240")), {}, 201),
        ):
            hub.connected()
            seq = hub.latest.seq + 1
            hub.publish(Reading.stamp(measurement, scale="default", seq=seq, time=NOW, source="simulator"))  # fmt: skip
            if code is None:
                continue
            response = yield self.post("/api/weighings", body)
            if code == 201:
                self.assertEqual(response.code, 201, response.body)
                self.assertEqual(response.json()["weight"], str(measurement.weight))
                self.assertEqual(response.json()["again"], body.get("again", False))
            else:
                self.assertEqual((response.code, response.json()["code"]), (409, code))
        hub.disconnected("device removed: /dev/ttyUSB0")
        response = yield self.post("/api/weighings", {})
        body = response.json()
        self.assertEqual((response.code, body["code"]), (409, "scale_not_live"))
        self.assertEqual(body["detail"], "device removed: /dev/ttyUSB0")
        weight = yield fetch(self.url("/api/weight"))
        self.assertEqual((weight.code, weight.json()["code"]), (503, "scale_disconnected"))
        tare = yield self.post("/api/tare", b"")
        self.assertEqual((tare.code, tare.json()["code"]), (503, "scale_disconnected"))

    @defer.inlineCallbacks
    def test_a_database_that_cannot_be_reached_is_a_503_without_its_exception_text(
        self,
    ) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20", "--db", f"mysql://root@127.0.0.1:{closed_port()}/x")  # fmt: skip
        yield self.until_stable_load()
        response = yield self.post("/api/weighings", {"reference": "ABC-1234"})
        body = response.json()
        self.assertEqual((response.code, body["code"]), (503, "db_unavailable"), body)
        self.assertEqual(sorted(body), ["code", "detail", "error"])
        for raw in ("OperationalError", "2003", "Can't connect", "127.0.0.1"):
            self.assertNotIn(raw, body["detail"])

    @defer.inlineCallbacks
    def test_malformed_weighings_get_400_with_a_json_error(self) -> defer.Generator:
        yield self.start()
        for body, error in (
            (b"{not json", "malformed JSON"),
            ([1, 2], "malformed body"),
            ({"reference": 12}, "bad reference"),
            ({"reference": "x" * 101}, "bad reference"),
            ({"note": "n" * 501}, "bad note"),
            ({"weight": "9999"}, "unknown fields"),
        ):
            response = yield self.post("/api/weighings", body)
            answer = response.json()
            self.assertEqual((response.code, answer["error"]), (400, error), body)
            self.assertEqual(answer["code"], "bad_request", body)
        malformed = yield self.post("/api/weighings", b"{not json")
        self.assertNotIn("Expecting", malformed.json()["detail"], "no exception text")

    @defer.inlineCallbacks
    def test_every_refusal_has_its_code(self) -> defer.Generator:
        token = Path(tempfile.mkdtemp(), "token")
        token.write_text("s3cret\n")
        yield self.start("--token-file", str(token))
        auth = {"Authorization": "Bearer s3cret"}
        for method, path, body, headers, status, code in (
            (b"GET", "/api/nothing", None, {}, 404, "not_found"),
            (b"GET", "/nothing-here.txt", None, {}, 404, "not_found"),
            (b"DELETE", "/api/time", None, {}, 405, "method_not_allowed"),
            (b"POST", "/", b"", {}, 405, "method_not_allowed"),
            (b"PUT", "/app.js", b"", {}, 405, "method_not_allowed"),
            (b"POST", "/api/tare", b"", {}, 401, "unauthorized"),
            (b"POST", "/api/weighings", b"x" * 20_000, auth, 413, "payload_too_large"),
            (b"POST", "/api/weighings", b"{", auth, 400, "bad_request"),
        ):
            response = yield fetch(self.url(path), method, body, headers)
            self.assertEqual((response.code, response.json()["code"]), (status, code), path)

    @defer.inlineCallbacks
    def test_a_place_that_keeps_guessing_tokens_gets_429_before_its_401(self) -> defer.Generator:
        secrets = Path(tempfile.mkdtemp())
        (secrets / "write").write_text("writer\n")
        (secrets / "read").write_text("reader\n")
        yield self.start("--token-file", str(secrets / "write"), "--read-token-file", str(secrets / "read"))  # fmt: skip
        self.service.parts.limiter.clock = Clock()  # no refill while the test runs: exact counts
        codes = []
        for n in range(30):  # writes, reads and /metrics alike, from one address
            path, method = (("/api/tare", b"POST"), ("/api/weight", b"GET"), ("/metrics", b"GET"))[n % 3]  # fmt: skip
            response = yield fetch(self.url(path), method, b"", {"Authorization": f"Bearer guess{n}"})  # fmt: skip
            codes.append(response.code)
            self.assertEqual(response.json()["code"], {401: "unauthorized", 429: "rate_limited"}[response.code])  # fmt: skip
        self.assertEqual(codes, [401] * 20 + [429] * 10)
        other = yield fetch(self.url("/api/weight", "::1"), b"GET", None, {"Authorization": "Bearer nope"})  # fmt: skip
        self.assertEqual(other.code, 401, "another address has its own budget")
        ws = yield open_websocket(Target("127.0.0.1", self.port()), "/ws?token=nope")
        yield ws.closed
        self.assertEqual((ws.status, json.loads(ws.body)["code"]), (429, "rate_limited"))

    @defer.inlineCallbacks
    def test_weighings_page_newest_first_with_before(self) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        yield self.until_stable_load()
        ids = []
        for n in range(5):
            response = yield self.post("/api/weighings", {"reference": f"r{n}", "again": True})
            self.assertEqual(response.code, 201, response.body)
            ids.append(response.json()["number"])
        first = (yield fetch(self.url("/api/weighings?limit=2"))).json()["weighings"]
        self.assertEqual([w["number"] for w in first], ids[::-1][:2])
        before = first[-1]["number"]
        page = (yield fetch(self.url(f"/api/weighings?limit=2&before={before}"))).json()
        self.assertEqual([w["number"] for w in page["weighings"]], ids[::-1][2:4])

    @defer.inlineCallbacks
    def test_recorded_readings_are_served_newest_first_and_parameters_are_checked(
        self,
    ) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20", "--record", "all")
        deadline = reactor.seconds() + 30
        while True:  # until five readings are stored (bounded)
            rows = (yield fetch(self.url("/api/readings?limit=5"))).json().get("readings", [])
            if len(rows) == 5 or reactor.seconds() > deadline:
                break
            yield sleep(0.1)
        self.assertEqual(len(rows), 5)
        seqs = [r["seq"] for r in rows]
        self.assertEqual(seqs, sorted(seqs, reverse=True))
        since = rows[-1]["time"]
        newer = (yield fetch(self.url(f"/api/readings?since={since.replace('+', '%2B')}"))).json()
        self.assertTrue(all(r["time"] >= since for r in newer["readings"]))
        for query in (
            "limit=0",
            "limit=abc",
            "limit=100000",
            "since=yesterday",
            "until=2025-13-01",
        ):
            response = yield fetch(self.url(f"/api/readings?{query}"))
            self.assertEqual(response.code, 400, query)
            self.assertIn("error", response.json())

    @defer.inlineCallbacks
    def test_the_weight_has_the_design_shape_and_tare_and_zero_work_on_the_simulator(
        self,
    ) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        reading = yield self.until_stable_load()
        self.assertEqual(
            sorted(reading),
            sorted(["type", "scale", "seq", "weight", "unit", "stable", "mode", "tare", "status",
                    "source", "time"]),
        )  # fmt: skip
        self.assertEqual(
            (reading["source"], reading["scale"], reading["type"]),
            ("simulator", "default", "reading"),
        )
        tare = yield self.post("/api/tare", b"")
        self.assertEqual(tare.code, 200, tare.body)
        self.assertEqual((tare.json()["code"], tare.json()["ok"]), ("tared", True))
        net = yield self.until_reading(lambda r: r["mode"] == "net")
        self.assertEqual((net["weight"], net["tare"]), ("0", reading["weight"]))

    @defer.inlineCallbacks
    def test_zero_on_the_empty_platform_is_done(self) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        yield self.until_reading(lambda r: r["stable"] and r["weight"] == "0")
        zero = yield self.post("/api/zero", b"")
        self.assertEqual(zero.code, 200, zero.body)
        self.assertEqual((zero.json()["code"], zero.json()["command"]), ("zeroed", "zero"))

    @defer.inlineCallbacks
    def until_reading(self, wanted: Callable[[dict[str, Any]], bool]) -> Any:
        """The first reading from `/api/weight` that is `wanted` (bounded: 30 s)."""
        deadline = reactor.seconds() + 30
        while reactor.seconds() < deadline:
            response = yield fetch(self.url("/api/weight"))
            if response.code == 200 and wanted(response.json()):
                return response.json()
            yield sleep(0.02)
        self.fail("no such reading within 30 s")
