"""The HTTP API over real sockets: weighings, recorded readings, paging and validation."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, reactor, task

from tests.base import ServiceTestCase, fetch


def sleep(seconds: float) -> defer.Deferred[None]:
    return task.deferLater(reactor, seconds, lambda: None)


class Api(ServiceTestCase):
    @defer.inlineCallbacks
    def post(self, path: str, body: Any) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = yield fetch(self.url(path), b"POST", raw, {"Content-Type": "application/json"})
        return response

    @defer.inlineCallbacks
    def until_stable_load(self) -> Any:
        """Wait for the simulator's next stable, non-zero load."""
        for _ in range(300):
            reading = (yield fetch(self.url("/api/weight"))).json()
            if reading.get("stable") and reading.get("weight") not in (None, "0"):
                return reading
            yield sleep(0.05)
        self.fail("no stable load from the simulator")

    @defer.inlineCallbacks
    def test_a_weighing_stores_the_current_stable_weight_exactly(self) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        reading = yield self.until_stable_load()
        response = yield self.post("/api/weighings", {"reference": "ABC-1234", "note": "soja"})
        self.assertEqual(response.code, 201, response.body)
        row = response.json()
        self.assertEqual((row["weight"], row["unit"], row["reference"], row["note"]),
                         (reading["weight"], "kg", "ABC-1234", "soja"))  # fmt: skip
        listed = (yield fetch(self.url("/api/weighings"))).json()["weighings"]
        self.assertEqual(listed[0]["id"], row["id"])
        self.assertEqual(listed[0]["weight"], reading["weight"])

    @defer.inlineCallbacks
    def test_a_weighing_in_motion_is_refused_with_409(self) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        for _ in range(400):
            reading = (yield fetch(self.url("/api/weight"))).json()
            if reading.get("stable") is False:
                response = yield self.post("/api/weighings", {})
                if response.code == 409:
                    self.assertEqual(response.json()["error"], "scale in motion")
                    return
            yield sleep(0.02)
        self.fail("never caught the simulator in motion")

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
            self.assertEqual((response.code, response.json()["error"]), (400, error), body)

    @defer.inlineCallbacks
    def test_weighings_page_newest_first_with_before(self) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20")
        yield self.until_stable_load()
        ids = []
        for n in range(5):
            response = yield self.post("/api/weighings", {"reference": f"r{n}"})
            self.assertEqual(response.code, 201, response.body)
            ids.append(response.json()["id"])
        first = (yield fetch(self.url("/api/weighings?limit=2"))).json()["weighings"]
        self.assertEqual([w["id"] for w in first], ids[::-1][:2])
        page = (yield fetch(self.url(f"/api/weighings?limit=2&before={first[-1]['id']}"))).json()
        self.assertEqual([w["id"] for w in page["weighings"]], ids[::-1][2:4])

    @defer.inlineCallbacks
    def test_recorded_readings_are_served_newest_first_and_parameters_are_checked(
        self,
    ) -> defer.Generator:
        yield self.start("--scale", "simulator:rate=20", "--record", "all")
        yield sleep(2.5)
        rows = (yield fetch(self.url("/api/readings?limit=5"))).json()["readings"]
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
        self.assertIn(tare.code, (200, 409), tare.body)
        if tare.code == 200:
            yield sleep(0.3)
            net = (yield fetch(self.url("/api/weight"))).json()
            self.assertEqual(net["mode"], "net")
        zero = yield self.post("/api/zero", b"")
        self.assertIn(zero.code, (200, 409))
        self.assertIn("reply", zero.json())
