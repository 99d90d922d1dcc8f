"""Truck weighing in the store, on SQLite and the real MariaDB, with the book's clock in the
test's hands: stored tares that expire, one open transaction per plate under concurrent
opens, voids in one database transaction, and the index made again from the records."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock

from balanca.records.transaction import Rules
from balanca.store import ledger
from balanca.store.recordbook import RecordBook, RecordRefused
from balanca.store.transaction_index import Filters, rebuild
from balanca.store.transactions import Transactions, open_transaction, void_transaction
from tests.storebase import MariaDBCase, SQLiteCase, make_reading, wait_until
from tests.test_recordbook import KEY

DAY = 86400.0


class TransactionStoreCases:
    """Checks run on each database (mixed into the cases below)."""

    now = Clock()
    """The record book's clock (the store keeps the case's own, for its timeouts)."""

    async def desk(self, rules: Rules | None = None) -> tuple[RecordBook, Transactions]:
        case: Any = self
        store = await case.start_store()
        self.now = Clock()
        self.now.advance(1_760_000_000)
        book = RecordBook(store.interact, store.spec, lambda: KEY, self.now, store.run, {})
        transactions = Transactions(book, rules or Rules())
        book.startService()
        case.addCleanup(book.stopService)
        await wait_until(lambda: book.state != "checking")
        return book, transactions

    async def refused(self, write: Any) -> str:
        try:
            await write
        except RecordRefused as refused:
            return refused.code
        raise AssertionError("not refused")

    async def test_a_stored_tare_is_in_force_for_tare_days_and_then_expires(self) -> None:
        case: Any = self
        book, desk = await self.desk(Rules(tare_days=90))
        manual = {"weight": "14000", "unit": "kg", "decimals": 0, "source": "manual"}
        tare = await desk.store_tare("ABC1D23", {**manual, "reason": "balança externa"}, None)
        case.assertEqual(
            (tare["kind"], tare["source"], tare["weight"]), ("tare", "manual", "14000")
        )
        wrong = await desk.store_tare("ABC1D23", {**manual, "weight": "1400", "reason": "x"}, None)
        case.assertEqual((await desk.vehicle("ABC1D23"))["tare"], wrong)
        await book.void(wrong["number"], "um zero a menos", None)  # the one before is back
        self.now.advance(89 * DAY)
        vehicle = await desk.vehicle("ABC1D23")
        case.assertEqual(vehicle["tare"], tare)
        one = await desk.open(make_reading(1, "41230"), {"plate": "ABC1D23"}, one_pass=True)
        case.assertEqual(
            (one["state"], one["in"], one["gross"], one["tare"], one["net"], one["tare_source"]),
            ("closed", None, "41230", "14000", "27230", "stored"),
        )
        case.assertEqual(one["out"]["tare_record"], tare["number"])
        self.now.advance(2 * DAY)
        case.assertIsNone((await desk.vehicle("ABC1D23"))["tare"])
        again = desk.open(make_reading(2, "41230"), {"plate": "ABC1D23"}, one_pass=True)
        case.assertEqual(await self.refused(again), "no_stored_tare")

    async def test_of_concurrent_opens_for_one_plate_one_is_refused(self) -> None:
        case: Any = self
        book, desk = await self.desk()
        opens = [
            Deferred.fromCoroutine(
                desk.open(make_reading(n, "30000", scale=f"s{n}"), {"plate": "ABC1234"})
            )
            for n in range(4)
        ]
        outcomes = await gatherResults(
            [d.addErrback(lambda f: f.trap(RecordRefused) and f.value.code) for d in opens]
        )
        case.assertEqual(sorted(map(str, outcomes)).count("transaction_open"), 3, outcomes)
        opened = [o for o in outcomes if isinstance(o, dict)]
        case.assertEqual(len(opened), 1)
        listed = await desk.listing(Filters(state="open"))
        case.assertEqual([t["id"] for t in listed], [opened[0]["id"]])
        verdict = await book.verify()
        case.assertEqual((verdict.ok, verdict.records), (True, 1))

    async def test_a_void_writes_one_void_record_per_record_in_one_database_transaction(
        self,
    ) -> None:
        case: Any = self
        book, desk = await self.desk()
        opened = await desk.open(make_reading(1, "12.345", unit="t"), {"plate": "XYZ9A87"})
        closed = await desk.close(opened["id"], make_reading(2, "4.2", unit="t"), {})
        case.assertEqual(
            (closed["gross"], closed["tare"], closed["net"]), ("12.345", "4.200", "8.145")
        )
        voided = await desk.void(opened["id"], "placa trocada", "ana")
        case.assertEqual(voided["state"], "void")
        voids = await book.listing(ledger.Filters(kind="void"))
        case.assertEqual(sorted(v["voids"] for v in voids), [1, 2])
        case.assertEqual({v["transaction"] for v in voids}, {opened["id"]})
        case.assertEqual((voided["in"]["voided_by"], voided["out"]["voided_by"]), (3, 4))
        again = desk.void(opened["id"], "de novo", None)
        case.assertEqual(await self.refused(again), "already_void")
        reopened = await desk.open(make_reading(3, "9000"), {"plate": "XYZ9A87"})
        case.assertEqual((reopened["id"], reopened["state"]), (2, "open"))

    async def test_the_index_is_made_again_from_the_records_alone(self) -> None:
        case: Any = self
        book, desk = await self.desk()
        await desk.store_tare(
            "AAA1111", {"weight": "10000", "unit": "kg", "decimals": 0, "source": "manual"}, None
        )
        first = await desk.open(make_reading(1, "31000"), {"plate": "AAA1111", "product": "soja"})
        await desk.close(first["id"], make_reading(2, "11500"), {})
        await desk.open(make_reading(3, "25000"), {"plate": "BBB2222"})
        one_pass = await desk.open(make_reading(4, "20000"), {"plate": "AAA1111"}, one_pass=True)
        third = await desk.open(make_reading(5, "8000"), {"plate": "CCC3333"})
        await desk.void(third["id"], "teste", None)
        before = await desk.listing(Filters())
        case.assertEqual([t["state"] for t in before], ["void", "closed", "open", "closed"])
        case.assertTrue(before[-1]["tare_mismatch"])  # 11500 is 15 % above the stored 10000
        case.assertEqual(one_pass["tare_source"], "stored")
        case.query("DELETE FROM transactions")
        case.assertEqual(await desk.listing(Filters()), [])
        count = await book.interact(rebuild, book.dialect, desk.rules)
        case.assertEqual(count, 4)
        case.assertEqual(await desk.listing(Filters()), before)
        case.query("DELETE FROM transactions WHERE id = 2")  # the open one: the plate is free
        lines = case.logged()
        await desk.sync()  # what the book runs at start
        case.assertIn("rebuilt it from them (4 transactions)", lines[-1])
        await desk.sync()  # agreeing now: nothing to do
        case.assertEqual(len(lines), 1)
        case.assertEqual(await desk.listing(Filters()), before)
        refused = desk.open(make_reading(6, "25000"), {"plate": "BBB2222"})
        case.assertEqual(await self.refused(refused), "transaction_open")

    async def test_a_write_sent_again_after_a_lost_connection_writes_nothing_twice(self) -> None:
        """The store runs an interaction once more when the link drops; if the first try had
        committed, the second finds its records by the write's uid."""
        case: Any = self
        book, desk = await self.desk()
        draft = book.capture_draft(make_reading(1, "30000"), {"kind": "in", "plate": "ABC1234"})
        args = (book.dialect, book.signer, desk.rules, draft, False, "f" * 32, None)
        first = await book.write(open_transaction, *args)
        second = await book.write(open_transaction, *args)
        case.assertEqual(second, first)
        case.assertEqual(len(await desk.listing(Filters())), 1)
        void = book.draft({"kind": "void", "reason": "x"})
        args = (book.dialect, book.signer, desk.rules, first["id"], void, "e" * 32, None)
        voided = await book.write(void_transaction, *args)
        case.assertEqual(await book.write(void_transaction, *args), voided)
        case.assertEqual((await book.verify()).records, 2)


class SQLiteTransactionStore(TransactionStoreCases, SQLiteCase):
    pass


class MariaDBTransactionStore(TransactionStoreCases, MariaDBCase):
    pass
