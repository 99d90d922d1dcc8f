"""Truck weighing over HTTP with trucks on real pty scales, on SQLite and the real MariaDB:
two passes in either order and on two scales, one pass against a stored tare, the capture
guards, one open transaction per plate, exact decimals, voids, and the chain still whole."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.logger import formatEvent, globalLogPublisher

from balanca.reading import Measurement
from tests.base import Response, fetch
from tests.ptyscale import PtyScale
from tests.storebase import MariaDBCase
from tests.test_scale_serial import SerialCase, sleep


class Platform:
    """A truck scale's indicator on a pty, sending what lies on it 20 times a second."""

    def __init__(self, scale: PtyScale, scale_id: str, unit: str = "kg") -> None:
        self.scale, self.id, self.unit = scale, scale_id, unit
        self.measurement: Measurement | None = None
        self.loop = task.LoopingCall(self.send)
        self.loop.start(0.05)

    def send(self) -> None:
        if self.scale.master is not None and self.measurement is not None:
            self.scale.send(self.measurement)

    def show(self, weight: str, stable: bool = True) -> None:
        value = Decimal(weight)
        self.measurement = Measurement(value, self.unit, stable, "gross", 0 * value)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()


class TruckWeighing(SerialCase):
    """On SQLite (the MariaDB case below runs the same tests)."""

    timeout = 120

    def db_args(self) -> list[str]:
        if not hasattr(self, "db_path"):
            self.db_path = Path(tempfile.mkdtemp(prefix="balanca-truck-"), "truck.sqlite3")
        return ["--db", f"sqlite:{self.db_path}"]

    def wipe_index(self) -> None:
        """Empty the transactions index behind the service's back."""
        with sqlite3.connect(self.db_path) as db:
            db.execute("DELETE FROM transactions")

    async def service(self, scales: dict[str, str], *args: str) -> dict[str, Platform]:
        """A service reading a pty platform per scale id (spec options after a `/`: unit
        and `min-weight=`), started with `args`."""
        platforms, specs = {}, []
        for scale_id, options in scales.items():
            unit, _, extra = options.partition("/")
            platform = Platform(self.pty("toledo"), scale_id, unit or "kg")
            self.addCleanup(platform.stop)
            platforms[scale_id] = platform
            spec = platform.scale.spec(*filter(None, [extra]))
            specs += ["--scale", f"{scale_id}={spec}"]
        await self.start(*self.db_args(), *specs, *args)
        await self.wait_for(lambda r: r.code == 200, path="/api/transactions")  # schema ready
        return platforms

    async def settle(self, platform: Platform, weight: str, stable: bool = True) -> None:
        """Put `weight` on the platform and wait until the service shows it."""
        platform.show(weight, stable)
        path = f"/api/scales/{platform.id}/weight"
        for _ in range(200):
            reading = (await fetch(self.url(path))).json()
            shown = reading.get("weight")
            if shown is not None and Decimal(shown) == Decimal(weight):
                if reading["stable"] == stable:
                    return
            await sleep(0.05)
        self.fail(f"{platform.id} never showed {weight}: {reading}")

    async def send(self, path: str, body: Any, method: bytes = b"POST", **headers: str) -> Response:
        raw = json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **headers}
        return await fetch(self.url(path), method, raw, all_headers)  # type: ignore[no-any-return]

    async def created(self, path: str, body: Any, method: bytes = b"POST") -> Any:
        response = await self.send(path, body, method)
        self.assertEqual(response.code, 201, response.body)
        return response.json()

    async def refused(self, path: str, body: Any, status: int, code: str) -> None:
        response = await self.send(path, body, b"PUT" if path.endswith("/tare") else b"POST")
        self.assertEqual((response.code, response.json()["code"]), (status, code), body)

    async def get(self, path: str) -> Any:
        return (await fetch(self.url(path))).json()

    async def assert_chain_whole(self, records: int) -> None:
        verdict = await self.get("/api/weighings/verify")
        self.assertEqual((verdict["ok"], verdict["records"]), (True, records), verdict)

    async def test_two_passes_loaded_first_then_empty(self) -> None:
        truck = (await self.service({"truck": "kg"}))["truck"]
        await self.settle(truck, "41230")
        opened = await self.created(
            "/api/scales/truck/transactions",
            {"plate": "abc-1d23", "product": "soja", "party": "Fazenda Boa Vista",
             "reference": "NF 1201", "note": "lona rasgada"},
        )  # fmt: skip
        first = opened["in"]
        self.assertEqual(
            {k: opened[k] for k in ("id", "plate", "state", "out", "gross", "tare", "net")},
            {"id": 1, "plate": "ABC1D23", "state": "open", "out": None, "gross": None,
             "tare": None, "net": None},
        )  # fmt: skip
        self.assertEqual(
            (opened["unit"], opened["tare_source"], opened["closed"]), ("kg", None, None)
        )
        self.assertEqual((first["kind"], first["transaction"], first["weight"]), ("in", 1, "41230"))
        self.assertEqual((opened["product"], opened["opened"]), ("soja", first["captured"]))
        self.assertEqual(await self.get("/api/transactions/1"), opened)
        await self.settle(truck, "14150")  # never emptied: the same load as far as we know
        await self.refused("/api/transactions/1/close", {}, 409, "same_load")
        await self.settle(truck, "0")
        await self.settle(truck, "14150")
        closed = await self.created("/api/transactions/1/close", {})
        out = closed["out"]
        self.assertEqual(
            (closed["state"], closed["gross"], closed["tare"], closed["net"]),
            ("closed", "41230", "14150", "27080"),
        )
        self.assertEqual((out["kind"], out["gross"], out["net"], out["weight"]),
                         ("out", "41230", "27080", "14150"))  # fmt: skip
        self.assertEqual(out["tare"], "0")  # a record's tare: the indicator's, in its reading
        self.assertEqual(
            (out["plate"], out["product"], out["party"], out["reference"], out["transaction"]),
            ("ABC1D23", "soja", "Fazenda Boa Vista", "NF 1201", 1),
        )
        self.assertEqual((closed["tare_source"], closed["tare_mismatch"]), ("weighing", False))
        self.assertEqual((closed["in"], closed["closed"]), (first, out["captured"]))
        await self.refused("/api/transactions/1/close", {"again": True}, 409, "transaction_closed")
        await self.refused("/api/weighings/1/void", {"reason": "x"}, 409, "part_of_transaction")
        listed = await self.get("/api/transactions?state=closed&plate=abc1d23")
        self.assertEqual(listed, {"transactions": [closed]})
        self.assertEqual(await self.get("/api/transactions?state=open"), {"transactions": []})
        missing = await fetch(self.url("/api/transactions/9"))
        self.assertEqual((missing.code, missing.json()["code"]), (404, "not_found"))
        bad = await fetch(self.url("/api/transactions?state=weighed"))
        self.assertEqual(bad.code, 400)
        await self.assert_chain_whole(2)

    async def test_two_passes_empty_first_on_two_scales(self) -> None:
        platforms = await self.service({"entrada": "kg", "saida": "kg"})
        entrada, saida = platforms["entrada"], platforms["saida"]
        await self.settle(entrada, "15020")
        opened = await self.created("/api/scales/entrada/transactions", {"plate": "QRS 5T67"})
        await self.settle(saida, "45100")
        await self.refused(f"/api/transactions/{opened['id']}/close", {}, 400, "scale_required")
        await self.refused("/api/transactions/1/close", {"scale": "patio"}, 400, "bad_request")
        closed = await self.created("/api/transactions/1/close", {"scale": "saida"})
        self.assertEqual(
            (closed["gross"], closed["tare"], closed["net"]), ("45100", "15020", "30080")
        )
        self.assertEqual((closed["in"]["scale"], closed["out"]["scale"]), ("entrada", "saida"))
        self.assertEqual(closed["out"]["gross"], "45100")  # gross is the heavier pass
        await self.assert_chain_whole(2)

    async def test_the_capture_guards_refuse_an_open_and_leave_nothing_behind(self) -> None:
        truck = (await self.service({"truck": "kg/min-weight=500"}, "--stale-after", "1"))["truck"]
        path, body = "/api/scales/truck/transactions", {"plate": "ABC1234"}
        await self.settle(truck, "300")
        await self.refused(path, body, 409, "below_minimum")
        await self.settle(truck, "30000", stable=False)
        await self.refused(path, body, 409, "scale_in_motion")
        await self.settle(truck, "30000")
        await self.created(path, body)
        await self.refused(path, {"plate": "XYZ9876"}, 409, "same_load")
        await self.refused(path, {"plate": "abc 1234", "again": True}, 409, "transaction_open")
        other = await self.created(path, {"plate": "xyz-9876", "again": True})
        self.assertEqual((other["id"], other["in"]["again"]), (2, True))
        for plate in ("ABC12345678", "ABC_123", "", 1234):
            await self.refused(path, {"plate": plate, "again": True}, 400, "bad_request")
        await self.refused(path, {"again": True}, 400, "bad_request")
        await self.refused(path, {**body, "stored_tare": "yes"}, 400, "bad_request")
        truck.stop()
        await self.wait_for(lambda r: r.code == 503, path="/api/scales/truck/weight")
        await self.refused(path, {"plate": "JJJ0000", "again": True}, 409, "scale_not_live")
        listed = await self.get("/api/transactions")
        self.assertEqual([t["id"] for t in listed["transactions"]], [2, 1])
        await self.assert_chain_whole(2)

    async def test_of_two_opens_for_one_plate_at_once_one_is_refused(self) -> None:
        platforms = await self.service({"a": "kg", "b": "kg"})
        await self.settle(platforms["a"], "20000")
        await self.settle(platforms["b"], "21000")
        answers = await defer.gatherResults(
            [
                defer.Deferred.fromCoroutine(
                    self.send(f"/api/scales/{scale_id}/transactions", {"plate": "MNO4P56"})
                )
                for scale_id in ("a", "b")
            ]
        )
        self.assertEqual(sorted(a.code for a in answers), [201, 409])
        refused = next(a for a in answers if a.code == 409)
        self.assertEqual(refused.json()["code"], "transaction_open")
        vehicle = await self.get("/api/vehicles/mno-4p56")
        opened = next(a for a in answers if a.code == 201).json()
        self.assertEqual((vehicle["open"], vehicle["transactions"]), (opened["id"], [opened]))
        await self.assert_chain_whole(1)

    async def test_a_stored_tare_from_a_weighing_makes_a_one_pass_weighing(self) -> None:
        truck = (await self.service({"truck": "kg"}))["truck"]
        await self.settle(truck, "14100")
        empty = await self.created("/api/scales/truck/weighings", {"plate": "ABC1234"})
        tare = await self.created("/api/vehicles/abc-1234/tare", {"weighing": 1}, b"PUT")
        self.assertEqual((tare["kind"], tare["plate"], tare["number"]), ("tare", "ABC1234", 2))
        copied = ("scale", "run", "seq", "time", "weight", "unit", "frame", "source", "tare")
        self.assertEqual({k: tare[k] for k in copied}, {k: empty[k] for k in copied})
        self.assertEqual((tare["transaction"], tare["again"]), (None, None))
        vehicle = await self.get("/api/vehicles/ABC1234")
        expires = datetime.fromisoformat(tare["captured"]) + timedelta(days=90)
        self.assertEqual((vehicle["tare"], vehicle["open"]), (tare, None))
        self.assertEqual(datetime.fromisoformat(vehicle["expires"]), expires)
        await self.settle(truck, "0")
        await self.settle(truck, "40100")
        path = "/api/scales/truck/transactions"
        await self.refused(path, {"plate": "ZZZ9999", "stored_tare": True}, 409, "no_stored_tare")
        one = await self.created(path, {"plate": "ABC-1234", "stored_tare": True})
        self.assertEqual(
            (one["state"], one["in"], one["gross"], one["tare"], one["net"]),
            ("closed", None, "40100", "14100", "26000"),
        )
        self.assertEqual((one["tare_source"], one["tare_mismatch"]), ("stored", False))
        self.assertEqual((one["out"]["tare_record"], one["out"]["kind"]), (2, "out"))
        self.assertEqual((one["opened"], one["closed"]), (one["out"]["captured"],) * 2)
        tare_path = "/api/vehicles/ABC1234/tare"
        await self.refused(tare_path, {"weighing": 2}, 409, "not_a_capture")
        await self.refused(tare_path, {"weighing": 99}, 404, "not_found")
        await self.refused("/api/vehicles/XYZ1111/tare", {"weighing": 1}, 409, "plate_mismatch")
        await self.refused(tare_path, {"weighing": "1"}, 400, "bad_request")
        typed = {"tare": "14000.5", "unit": "kg", "reason": "balança da transportadora"}
        manual = await self.created(tare_path, typed, b"PUT")
        self.assertEqual(
            (manual["source"], manual["weight"], manual["decimals"], manual["scale"]),
            ("manual", "14000.5", 1, None),
        )
        self.assertEqual(manual["reason"], typed["reason"])
        self.assertEqual((await self.get("/api/vehicles/ABC1234"))["tare"], manual)
        for wrong in ({**typed, "reason": ""}, {**typed, "tare": "0"}, {**typed, "tare": "-5"},
                      {**typed, "tare": "1e3"}, {**typed, "unit": ""}):  # fmt: skip
            await self.refused(tare_path, wrong, 400, "bad_request")
        await self.refused("/api/vehicles/AB_12/tare", typed, 400, "bad_request")
        bad = await fetch(self.url("/api/vehicles/ABCDEFGHIJK"))
        self.assertEqual((bad.code, bad.json()["code"]), (400, "bad_request"))
        await self.created("/api/weighings/1/void", {"reason": "pesada errada"})
        await self.refused(tare_path, {"weighing": 1}, 409, "already_void")
        await self.assert_chain_whole(5)

    async def test_a_stored_tare_expires_after_tare_days(self) -> None:
        truck = (await self.service({"truck": "kg"}, "--tare-days", "0.00003"))["truck"]
        typed = {"tare": "14000", "unit": "kg", "reason": "balança da transportadora"}
        tare = await self.created("/api/vehicles/ABC1234/tare", typed, b"PUT")
        await self.settle(truck, "40000")
        deadline = reactor.seconds() + 10
        while (await self.get("/api/vehicles/ABC1234"))["tare"] is not None:  # 2.6 s later
            self.assertLess(reactor.seconds(), deadline)
            await sleep(0.1)
        expired = datetime.fromisoformat(tare["captured"]) + timedelta(days=0.00003)
        self.assertGreaterEqual(datetime.now().astimezone(), expired)
        body = {"plate": "ABC1234", "stored_tare": True}
        await self.refused("/api/scales/truck/transactions", body, 409, "no_stored_tare")
        await self.assert_chain_whole(1)

    async def test_a_closing_tare_far_from_the_stored_tare_is_flagged_not_refused(self) -> None:
        truck = (await self.service({"truck": "kg"}))["truck"]
        typed = {"tare": "14000", "unit": "kg", "reason": "cadastro"}
        await self.created("/api/vehicles/ABC1234/tare", typed, b"PUT")
        flags = []
        for empty in ("15600", "14500"):  # 11.4 % and 3.6 % from the stored tare
            await self.settle(truck, "40000")
            opened = await self.created("/api/scales/truck/transactions", {"plate": "ABC1234"})
            await self.settle(truck, "0")
            await self.settle(truck, empty)
            closed = await self.created(f"/api/transactions/{opened['id']}/close", {})
            self.assertEqual(closed["tare"], empty)
            flags.append(closed["tare_mismatch"])
            await self.settle(truck, "0")
        self.assertEqual(flags, [True, False])
        listed = await self.get("/api/transactions")
        self.assertEqual([t["tare_mismatch"] for t in listed["transactions"]], [False, True])
        await self.assert_chain_whole(5)

    async def test_a_voided_transaction_voids_each_of_its_records(self) -> None:
        truck = (await self.service({"truck": "kg"}))["truck"]
        await self.settle(truck, "32000")
        await self.created("/api/scales/truck/transactions", {"plate": "DEF4G56"})
        await self.settle(truck, "0")
        await self.settle(truck, "12000")
        await self.created("/api/transactions/1/close", {})
        await self.refused("/api/transactions/1/void", {}, 400, "bad_request")
        voided = await self.created("/api/transactions/1/void", {"reason": "placa errada"})
        self.assertEqual(voided["state"], "void")
        self.assertEqual((voided["in"]["voided_by"], voided["out"]["voided_by"]), (3, 4))
        voids = (await self.get("/api/weighings?kind=void"))["weighings"]
        self.assertEqual(
            [(v["number"], v["voids"], v["transaction"], v["reason"]) for v in voids],
            [(4, 2, 1, "placa errada"), (3, 1, 1, "placa errada")],
        )
        await self.refused("/api/transactions/1/void", {"reason": "de novo"}, 409, "already_void")
        await self.refused("/api/transactions/1/close", {"again": True}, 409, "already_void")
        await self.refused("/api/weighings/3/void", {"reason": "desfazer"}, 409, "already_void")
        reopened = await self.created(
            "/api/scales/truck/transactions", {"plate": "DEF4G56", "again": True}
        )
        voided_open = await self.created(
            f"/api/transactions/{reopened['id']}/void", {"reason": "x"}
        )
        self.assertEqual((voided_open["state"], voided_open["in"]["voided_by"]), ("void", 6))
        self.assertEqual(await self.get("/api/transactions?state=void"),
                         {"transactions": [voided_open, voided]})  # fmt: skip
        await self.assert_chain_whole(6)

    async def test_exact_decimals_and_units_across_scales(self) -> None:
        platforms = await self.service({"t3": "t", "t1": "t", "kg": "kg"})
        t3, t1, kg = platforms["t3"], platforms["t1"], platforms["kg"]
        await self.settle(t3, "12.345")
        opened = await self.created("/api/scales/t3/transactions", {"plate": "GHI7J89"})
        self.assertEqual((opened["in"]["weight"], opened["in"]["decimals"]), ("12.345", 3))
        await self.settle(t1, "4.2")
        closed = await self.created(f"/api/transactions/{opened['id']}/close", {"scale": "t1"})
        self.assertEqual(
            (closed["gross"], closed["tare"], closed["net"], closed["unit"]),
            ("12.345", "4.200", "8.145", "t"),
        )
        out = closed["out"]
        self.assertEqual((out["weight"], out["decimals"], out["gross"], out["net"]),
                         ("4.2", 1, "12.345", "8.145"))  # fmt: skip
        await self.settle(t3, "0.000")
        await self.settle(t3, "20.000")
        second = await self.created("/api/scales/t3/transactions", {"plate": "KLM0N12"})
        await self.settle(kg, "5000")
        await self.refused(f"/api/transactions/{second['id']}/close", {"scale": "kg"}, 409,
                           "unit_mismatch")  # fmt: skip
        await self.settle(t1, "0.0")
        await self.settle(t1, "20.0")
        await self.refused(f"/api/transactions/{second['id']}/close", {"scale": "t1"}, 409,
                           "net_not_positive")  # fmt: skip
        self.assertEqual((await self.get(f"/api/transactions/{second['id']}"))["state"], "open")
        await self.assert_chain_whole(3)

    async def test_writes_name_their_operator_and_a_retried_open_makes_one_transaction(
        self,
    ) -> None:
        folder = Path(tempfile.mkdtemp())
        (folder / "operators").write_text("ana:tok-ana\nbruno:tok-bruno\n")
        truck = (await self.service({"truck": "kg"}, "--operators-file", str(folder / "operators")))["truck"]  # fmt: skip
        await self.settle(truck, "30000")
        path, body = "/api/scales/truck/transactions", {"plate": "ABC1234"}
        unauthorized = await self.send(path, body)
        self.assertEqual(unauthorized.code, 401)
        ana = {"Authorization": "Bearer tok-ana", "Idempotency-Key": "gate-1"}
        first, second = await defer.gatherResults(
            [defer.Deferred.fromCoroutine(self.send(path, body, **ana)) for _ in range(2)]
        )
        self.assertEqual((first.code, second.code), (201, 201), first.body)
        self.assertEqual(first.json(), second.json())
        self.assertEqual(first.json()["in"]["operator"], "ana")
        again = await self.send(path, body, **ana)
        self.assertEqual(again.json(), first.json())
        await self.settle(truck, "0")
        await self.settle(truck, "11000")
        bruno = {"Authorization": "Bearer tok-bruno", "Idempotency-Key": "gate-2"}
        closed = await self.send("/api/transactions/1/close", {}, **bruno)
        self.assertEqual((closed.code, closed.json()["out"]["operator"]), (201, "bruno"))
        replayed = await self.send("/api/transactions/1/close", {}, **bruno)
        self.assertEqual(replayed.json(), closed.json())
        tare = {"Authorization": "Bearer tok-ana", "Idempotency-Key": "gate-3"}
        stored = [
            await self.send("/api/vehicles/ABC1234/tare", {"weighing": 2}, b"PUT", **tare)
            for _ in range(2)
        ]
        self.assertEqual([s.code for s in stored], [201, 201])
        self.assertEqual(stored[0].json(), stored[1].json())
        self.assertEqual(stored[0].json()["operator"], "ana")
        voided = await self.send(
            "/api/transactions/1/void", {"reason": "teste"}, Authorization="Bearer tok-bruno"
        )
        self.assertEqual(
            {voided.json()["in"]["voided_by"], voided.json()["out"]["voided_by"]}, {4, 5}
        )
        listed = (await self.get("/api/weighings?kind=void"))["weighings"]
        self.assertEqual({v["operator"] for v in listed}, {"bruno"})
        await self.assert_chain_whole(5)

    async def test_a_service_that_starts_on_an_index_that_disagrees_rebuilds_it(self) -> None:
        key = str(Path(tempfile.mkdtemp(prefix="balanca-key-"), "records.key"))
        truck = (await self.service({"truck": "kg"}, "--records-key", key))["truck"]
        for plate, load in (("ABC1234", "30000"), ("DEF5678", "31000")):
            await self.settle(truck, "0")
            await self.settle(truck, load)
            await self.created("/api/scales/truck/transactions", {"plate": plate})
        await self.settle(truck, "0")
        await self.settle(truck, "12000")
        await self.created("/api/transactions/1/close", {})
        before = await self.get("/api/transactions")
        spec = self.options["scale"]
        await self.service.stopService()
        self.wipe_index()
        truck.scale.unplug()  # a pty is not opened twice: a new one behind the same link
        truck.scale.plug()
        lines: list[str] = []
        observer = lambda event: lines.append(formatEvent(event) or "")  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        await self.start(*self.db_args(), "--scale", spec[0], "--records-key", key)
        rebuilt = "transactions: the index disagreed with the records; rebuilt it from them (2"
        deadline = reactor.seconds() + 15
        while not any(rebuilt in line for line in lines):
            self.assertLess(reactor.seconds(), deadline, lines)
            await sleep(0.1)
        self.assertEqual(await self.get("/api/transactions"), before)
        await self.settle(truck, "0")
        await self.settle(truck, "31000")
        await self.refused("/api/scales/truck/transactions", {"plate": "DEF5678"}, 409,
                           "transaction_open")  # fmt: skip
        await self.assert_chain_whole(3)

    async def test_transaction_writes_spend_the_write_budget(self) -> None:
        await self.service({"truck": "kg"})
        answers = await defer.gatherResults(
            [
                defer.Deferred.fromCoroutine(
                    self.send("/api/transactions/99/void", {"reason": "teste"})
                )
                for _ in range(30)
            ]
        )
        codes = [a.code for a in answers]
        self.assertEqual(set(codes), {404, 429}, codes)  # a burst of 20, then 10 a second
        self.assertGreaterEqual(codes.count(429), 5, codes)


class TruckWeighingMariaDB(TruckWeighing, MariaDBCase):
    """The same on the real MariaDB."""

    def db_args(self) -> list[str]:
        return ["--db", self.db_url()]

    def wipe_index(self) -> None:
        self.query("DELETE FROM transactions")
