"""Database outages on real connections: a loopback proxy to MariaDB that the tests cut.

A cut closes every connection through the proxy and refuses new ones, as a database restart
or a network failure does; the store must keep every reading and write each exactly once.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.task import LoopingCall, deferLater

from balanca.store.store import PING_INTERVAL, DatabaseUnavailable
from tests.dbproxy import ProxiedMariaDBCase
from tests.storebase import make_reading, wait_until


async def sleep(seconds: float) -> None:
    """Let the real reactor run for `seconds`."""
    await deferLater(reactor, seconds, lambda: None)


class OutageTests(ProxiedMariaDBCase):
    """The store through a proxy that the tests cut."""

    def seqs_in_write_order(self) -> list[int]:
        return [seq for (seq,) in self.query("SELECT seq FROM readings ORDER BY id")]

    async def start_proxied_store(self, **options: Any) -> Any:
        store = self.make_store(port=self.proxy.port, record="all", **options)
        store.startService()
        await store.flush()
        return store

    async def test_a_ten_second_outage_loses_and_duplicates_no_reading(self) -> None:
        store = await self.start_proxied_store(clock=reactor)
        fed: list[int] = []

        def feed() -> None:
            fed.append(len(fed) + 1)
            store.reading(make_reading(fed[-1]), b"")

        feeder = LoopingCall(feed)
        feeder.clock = reactor
        feeder.start(0.05)
        await sleep(2)
        await self.proxy.cut()
        await sleep(5)
        health = store.health()
        self.assertEqual(health["db"], "degraded")
        self.assertGreater(health["backlog"], 50)
        self.assertIsNotNone(health["last_error"])
        await sleep(5)
        self.proxy.restore()
        await sleep(2)
        feeder.stop()
        await store.stopService()
        self.assertGreater(len(fed), 250)
        self.assertEqual(self.seqs_in_write_order(), fed)
        self.assertEqual(store.health()["db"], "ok")

    async def test_a_backlog_beyond_max_pending_spills_to_the_journal_and_lands_in_order(
        self,
    ) -> None:
        store = await self.start_proxied_store(max_pending=10)
        await self.proxy.cut()
        for seq in range(1, 51):
            store.reading(make_reading(seq), b"")
        self.clock.advance(1)
        await wait_until(lambda: store.state == "degraded")
        await wait_until(lambda: len(self.journal_rows()) == 40)
        self.assertEqual([row["seq"] for row in self.journal_rows()], list(range(11, 51)))
        self.assertEqual(store.health()["backlog"], 50)
        self.proxy.restore()
        self.clock.advance(1)
        await wait_until(lambda: store.backlog == 0)
        self.assertEqual(self.seqs_in_write_order(), list(range(1, 51)))
        self.assertEqual(self.journal_rows(), [])

    async def test_a_stop_during_an_outage_keeps_the_backlog_for_the_next_start(self) -> None:
        store = await self.start_proxied_store(max_pending=10)
        await self.proxy.cut()
        for seq in range(1, 31):
            store.reading(make_reading(seq), b"")
        await store.stopService()
        self.assertEqual([row["seq"] for row in self.journal_rows()], list(range(1, 31)))
        self.proxy.restore()
        after = await self.start_proxied_store()
        self.assertEqual(self.seqs_in_write_order(), list(range(1, 31)))
        self.assertEqual((after.backlog, self.journal_rows()), (0, []))

    async def test_an_idle_store_notices_an_outage_and_the_recovery(self) -> None:
        store = await self.start_proxied_store()
        await self.proxy.cut()
        self.clock.advance(PING_INTERVAL)
        await wait_until(lambda: store.state == "degraded")
        self.proxy.restore()
        self.clock.advance(PING_INTERVAL)
        await wait_until(lambda: store.state == "ok")

    async def test_queries_during_an_outage_fail_as_unavailable(self) -> None:
        store = await self.start_proxied_store()
        await self.proxy.cut()
        with self.assertRaises(DatabaseUnavailable):
            await store.weighings(10)
        with self.assertRaises(DatabaseUnavailable):
            await store.add_weighing(make_reading(1), "truck", None)
        self.assertEqual(store.health()["db"], "degraded")
        self.proxy.restore()
        self.assertEqual(await store.weighings(10), [])
        self.assertEqual(store.health()["db"], "ok")
