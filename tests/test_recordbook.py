"""The record book on SQLite and the real MariaDB: gapless numbers under concurrent captures,
voids and their refusals, 0.1's weighings sealed once, and a chain edited behind the service's
back caught at the next start."""

from __future__ import annotations

import gc
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults

from balanca.records.seal import verify_chain
from balanca.store import chaincheck
from balanca.store.recordbook import RecordBook, RecordRefused
from balanca.store.store import Store
from tests.storebase import MariaDBCase, SQLiteCase, make_reading, wait_until

KEY = Ed25519PrivateKey.generate()


async def start_book(case: Any, store: Store | None = None) -> RecordBook:
    """A started record book on `store` (default: a fresh store of `case`), its chain checked."""
    store = store or await case.start_store()
    book = RecordBook(store.interact, store.spec, lambda: KEY, reactor, store.run, {}, workers=2)
    book.startService()
    case.addCleanup(book.stopService)
    await wait_until(lambda: book.state != "checking")
    return book


class RecordBookCases:
    """Checks run on each database (mixed into the cases below)."""

    async def book(self, store: Store | None = None) -> RecordBook:
        return await start_book(self, store)

    async def test_concurrent_captures_on_four_scales_get_consecutive_numbers(self) -> None:
        book = await self.book()
        captures = [
            Deferred.fromCoroutine(
                book.capture(make_reading(n, scale=f"s{n % 4}"), {"kind": "weighing"})
            )
            for n in range(1, 51)
        ]
        records = await gatherResults(captures)
        case: Any = self
        case.assertEqual(sorted(r["number"] for r in records), list(range(1, 51)))
        verdict = await book.verify()
        case.assertEqual((verdict.ok, verdict.records), (True, 50))
        case.assertEqual(book.state, "ok")

    async def test_a_capture_keeps_the_readings_exact_weight_and_frame(self) -> None:
        book = await self.book()
        reading = make_reading(7, "12.345", unit="t", frame=b"\x02 12.345t\r\n")
        record = await book.capture(reading, {"kind": "weighing", "plate": "ABC1D23"})
        case: Any = self
        case.assertEqual(
            (record["weight"], record["decimals"], record["unit"], record["frame"]),
            ("12.345", 3, "t", "022031322e333435740d0a"),
        )
        case.assertEqual(await book.get(record["number"]), record)

    async def test_voids_are_records_and_a_void_cannot_be_voided(self) -> None:
        book = await self.book()
        first = await book.capture(make_reading(1), {"kind": "weighing"})
        void = await book.void(first["number"], "wrong plate", "ana")
        case: Any = self
        case.assertEqual(
            (void["kind"], void["voids"], void["reason"], void["operator"]),
            ("void", 1, "wrong plate", "ana"),
        )
        case.assertEqual((await book.get(1))["voided_by"], void["number"])
        for number in (1, void["number"]):
            with case.assertRaises(RecordRefused) as caught:
                await book.void(number, "again", None)
            case.assertEqual(caught.exception.code, "already_void")
        with case.assertRaises(RecordRefused) as caught:
            await book.void(99, "no such", None)
        case.assertEqual(caught.exception.status, 404)

    async def test_the_same_load_rule_needs_an_empty_scale_between_captures(self) -> None:
        book = await self.book()
        case: Any = self
        case.assertTrue(await book.emptied("default"))
        await book.capture(make_reading(1), {"kind": "weighing"})
        case.assertFalse(await book.emptied("default"))
        book.reading(make_reading(2, "0.00"), b"")
        case.assertTrue(await book.emptied("default"))
        restarted = await self.book(await self.start_store())
        case.assertFalse(await restarted.emptied("default"))

    async def test_the_check_in_worker_ranges_finds_the_lowest_bad_record(self) -> None:
        case: Any = self
        case.patch(chaincheck, "RANGE", 7)  # many ranges, checked by two workers
        book = await self.book()
        for n in range(1, 31):
            await book.capture(make_reading(n), {"kind": "weighing", "again": True})
        case.assertEqual((await book.verify()).to_json()["records"], 30)
        case.query("UPDATE records SET note = 'x' WHERE number = 23")
        case.query("DELETE FROM records WHERE number = 15")  # the first of the third range
        verdict = (await book.verify()).to_json()
        case.assertEqual(verdict, {"ok": False, "records": 29, "first_bad": 15, "problem": "gap"})
        case.query("DELETE FROM records WHERE number = 14")  # the last of the second range
        verdict = (await book.verify()).to_json()
        case.assertEqual(verdict, {"ok": False, "records": 28, "first_bad": 14, "problem": "gap"})
        case.query("DELETE FROM records WHERE number >= 29")  # the newest, seen before
        case.query("UPDATE records SET prev = hash WHERE number = 3")
        verdict = (await book.verify()).to_json()
        case.assertEqual(verdict, {"ok": False, "records": 26, "first_bad": 3, "problem": "prev"})

    async def test_removing_the_newest_records_is_caught_by_the_running_service(self) -> None:
        book = await self.book()
        for n in range(1, 4):
            await book.capture(make_reading(n), {"kind": "weighing", "again": True})
        case: Any = self
        case.query("DELETE FROM records WHERE number = 3")
        verdict = (await book.verify()).to_json()
        case.assertEqual(verdict, {"ok": False, "records": 2, "first_bad": 3, "problem": "gap"})

    async def test_a_row_edited_behind_the_services_back_is_caught_at_the_next_start(
        self,
    ) -> None:
        book = await self.book()
        for n in range(1, 4):
            await book.capture(make_reading(n), {"kind": "weighing"})
        case: Any = self
        case.query("UPDATE records SET weight = '9.99' WHERE number = 2")
        restarted = await self.book(await self.start_store())
        case.assertEqual(restarted.state, "broken")
        assert restarted.verdict is not None
        case.assertEqual(
            restarted.verdict.to_json(),
            {"ok": False, "records": 3, "first_bad": 2, "problem": "hash"},
        )

    async def test_weighings_from_0_1_are_sealed_once_in_id_order(self) -> None:
        store = await self.start_store()  # type: ignore[attr-defined]
        case: Any = self
        for n, reference in ((1, "NF 1"), (2, "NF 2")):
            case.query(
                "INSERT INTO weighings (uid, scale, run, seq, time, utc_offset, weight,"
                " weight_decimals, unit, mode, tare, tare_decimals, reference, note)"
                " VALUES (?, 'default', 'old', ?, '2025-10-30 16:38:15.835260', -10800,"
                " '1234.50', 2, 'kg', 'gross', NULL, NULL, ?, NULL)",
                (uuid.uuid4().hex, n, reference),
            )
        book = await self.book(store)
        first, second = await book.get(1), await book.get(2)
        case.assertEqual(
            (first["reference"], first["weight"], first["time"], second["reference"]),
            ("NF 1", "1234.50", "2025-10-30T13:38:15.835260-03:00", "NF 2"),
        )
        again = await self.book(await self.start_store())
        case.assertEqual((await again.verify()).records, 2)
        case.assertTrue(verify_chain([first, second], KEY.public_key()).ok)


class SQLiteRecordBook(RecordBookCases, SQLiteCase):
    pass


class MariaDBRecordBook(RecordBookCases, MariaDBCase):
    pass


class StoppingWhileChecking(SQLiteCase):
    async def test_a_book_stopped_while_its_first_check_fails_leaves_no_retry_behind(
        self,
    ) -> None:
        store = await self.start_store()
        gate: Deferred[Any] = Deferred()

        def slow(*args: Any) -> Deferred[Any]:
            return gate  # the first check waits here

        book = RecordBook(slow, store.spec, lambda: KEY, reactor, store.run, {})
        book.startService()
        book.stopService()
        gate.errback(RuntimeError("database gone"))  # the check fails after the stop
        self.assertIsNone(book._retry)
        self.assertEqual(
            [c for c in reactor.getDelayedCalls() if "callback" in repr(c) and c.active()], []
        )

    async def test_a_capture_whose_check_meets_a_stopped_database_leaves_no_error(self) -> None:
        store = await self.start_store()
        book = await start_book(self, store)
        await book._checking.acquire()  # a check under way: the capture's waits behind it
        await book.capture(make_reading(1), {"kind": "weighing"})
        await store.stopService()
        book._checking.release()  # the capture's check now meets the stopped database
        await book._checking.run(lambda: Deferred.fromCoroutine(_nothing()))
        gc.collect()  # an unhandled failure in a Deferred is logged as it is collected
        self.assertEqual(book.state, "ok")


async def _nothing() -> None:
    """An empty turn of the book's check lock: every queued check has run once it returns."""
