"""Idempotency keys on a real store: a retried write gets its first answer, a reused key with
another body is refused, a second request waits for the first, answers last 24 h."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from balanca.store.idempotency import Idempotency, KeyReused, Receipt
from tests.storebase import MariaDBCase, SQLiteCase, make_reading
from tests.test_recordbook import start_book


class IdempotencyCases:
    """Checks run on each database (mixed into the cases below)."""

    async def keys(self, clock: Any = None) -> tuple[Idempotency, Clock]:
        """Keys on a fresh store, timed by `clock` (default: a Clock set to a recent time)."""
        case: Any = self
        store = await case.start_store()
        if clock is None:
            clock = Clock()
            clock.advance(reactor.seconds())
        return Idempotency(store.interact, store.dialect, clock), clock

    async def test_the_same_key_and_body_get_the_first_final_answer(self) -> None:
        keys, _ = await self.keys()
        case: Any = self
        receipt = Receipt.of("k1", "/api/tare", b"{}")
        case.assertIsNone(await keys.begin(receipt))
        await keys.end(receipt, (409, {"code": "scale_in_motion"}), kept=False)
        case.assertEqual(await keys.begin(receipt), (409, {"code": "scale_in_motion"}))
        with case.assertRaises(KeyReused):
            await keys.begin(Receipt.of("k1", "/api/tare", b'{"x": 1}'))
        case.assertIsNone(await keys.begin(Receipt.of("k1", "/api/zero", b"{}")))

    async def test_a_second_request_waits_for_the_first_answer(self) -> None:
        keys, _ = await self.keys()
        case: Any = self
        receipt = Receipt.of("k2", "/api/weighings", b"{}")
        case.assertIsNone(await keys.begin(receipt))
        second = Deferred.fromCoroutine(keys.begin(receipt))
        case.assertNoResult(second)
        await keys.end(receipt, (201, {"number": 1}), kept=False)
        case.assertEqual(case.successResultOf(second), (201, {"number": 1}))

    async def test_an_unavailable_answer_is_not_kept_and_answers_expire_after_a_day(
        self,
    ) -> None:
        keys, clock = await self.keys()
        case: Any = self
        receipt = Receipt.of("k3", "/api/weighings", b"{}")
        await keys.begin(receipt)
        await keys.end(receipt, (503, {"code": "db_unavailable"}), kept=False)
        case.assertIsNone(await keys.begin(receipt))
        await keys.end(receipt, (201, {"number": 7}), kept=False)
        clock.advance(24 * 3600 - 1)
        case.assertEqual(await keys.begin(receipt), (201, {"number": 7}))
        clock.advance(2)
        case.assertIsNone(await keys.begin(receipt))

    async def test_a_records_answer_is_kept_in_the_records_own_transaction(self) -> None:
        keys, _ = await self.keys(reactor)  # the record book stamps with the reactor's time
        book = await start_book(self)
        case: Any = self
        receipt = Receipt.of("k4", "/api/weighings", b'{"plate": "ABC1234"}')
        case.assertIsNone(await keys.begin(receipt))
        record = await book.capture(make_reading(1), {"kind": "weighing"}, receipt)
        await keys.end(receipt, (201, record), kept=True)
        status, answer = await keys.begin(receipt)
        case.assertEqual((status, answer), (201, record))


class SQLiteIdempotency(IdempotencyCases, SQLiteCase):
    pass


class MariaDBIdempotency(IdempotencyCases, MariaDBCase):
    pass
