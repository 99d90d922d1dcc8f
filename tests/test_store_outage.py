"""Database outages on real connections: a loopback proxy to MariaDB that the tests cut or
silence.

A cut closes every connection through the proxy and refuses new ones, as a database restart
or a network failure does; silenced, it accepts and answers nothing, as a dropped route or a
frozen server. The store must keep every reading, on disk within a second, write each exactly
once, and answer its callers within its bounds.
"""

from __future__ import annotations

import time
from typing import Any

import pymysql
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet import reactor
from twisted.internet.task import LoopingCall

from balanca.store import ledger, schema
from balanca.store.condition import SLOW_AFTER
from balanca.store.recordbook import RecordBook
from balanca.store.store import (
    CAPTURE_TIMEOUT,
    CLOSE_TIMEOUT,
    FLUSH_INTERVAL,
    PING_INTERVAL,
    STOP_WRITE_TIMEOUT,
    DatabaseUnavailable,
    Store,
)
from tests.dbproxy import ProxiedMariaDBCase
from tests.storebase import MARIADB, make_reading, wait_until


class Feeder:
    """Readings 1, 2, 3... into a store every `interval` seconds of the real reactor."""

    def __init__(self, store: Store, interval: float = 0.05) -> None:
        self.store = store
        self.fed: list[int] = []
        self.loop = LoopingCall(self.feed)
        self.loop.clock = reactor
        self.loop.start(interval)

    def feed(self) -> None:
        self.fed.append(len(self.fed) + 1)
        self.store.reading(make_reading(self.fed[-1]), b"")

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()


class OutageTests(ProxiedMariaDBCase):
    """The store through a proxy that the tests cut."""

    def tables(self) -> list[str]:
        """The test database's tables, read without needing the database to exist."""
        connection = pymysql.connect(**MARIADB)
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (self.database,),
                )
                return [name for (name,) in cursor.fetchall()]
        finally:
            connection.close()

    def seqs_in_write_order(self) -> list[int]:
        return [seq for (seq,) in self.query("SELECT seq FROM readings ORDER BY id")]

    async def start_proxied_store(self, **options: Any) -> Any:
        store = self.make_store(port=self.proxy.port, record="all", **options)
        store.startService()
        await store.flush()
        return store

    def feeder(self, store: Store) -> Feeder:
        feeder = Feeder(store)
        self.addCleanup(feeder.stop)
        return feeder

    async def test_an_outage_loses_and_duplicates_no_reading(self) -> None:
        store = await self.start_proxied_store(clock=reactor)
        lines = self.logged()
        feeder = self.feeder(store)
        await wait_until(lambda: len(feeder.fed) >= 40)
        await self.proxy.cut()
        await wait_until(lambda: store.state == "degraded" and len(self.journal_rows()) >= 100)
        health = store.health()
        self.assertEqual(health["code"], "db_unavailable")
        self.assertIsNotNone(health["last_error"])
        self.proxy.restore()
        await wait_until(lambda: store.state == "ok" and len(feeder.fed) >= 200)
        feeder.stop()
        await store.stopService()
        self.assertEqual(self.seqs_in_write_order(), feeder.fed)
        self.assertEqual(self.journal_rows(), [])
        # adbapi's "Rollback failed" tracebacks: one line for the outage, no logged error
        self.assertLessEqual(len([line for line in lines if "rollback failed" in line]), 1)
        self.assertEqual(self.flushLoggedErrors(), [])
        states = [line for line in lines if line.startswith("database state:")]
        self.assertEqual(len(states), 2, states)

    async def test_during_an_outage_every_reading_is_on_disk_within_a_second(self) -> None:
        store = await self.start_proxied_store()
        await self.proxy.cut()
        for seq in range(1, 51):
            store.reading(make_reading(seq), b"")
        self.clock.advance(FLUSH_INTERVAL)
        await wait_until(lambda: store.state == "degraded")
        self.assertEqual([row["seq"] for row in self.journal_rows()], list(range(1, 51)))
        self.assertEqual(store.health()["backlog"], 50)
        self.proxy.restore()
        self.clock.advance(FLUSH_INTERVAL)
        await wait_until(lambda: self.journal_rows() == [])
        self.assertEqual(self.seqs_in_write_order(), list(range(1, 51)))
        self.assertEqual(store.backlog, 0)

    async def test_a_stop_during_an_outage_keeps_the_backlog_for_the_next_start(self) -> None:
        store = await self.start_proxied_store()
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
        lines = self.logged()
        await self.proxy.cut()
        self.clock.advance(PING_INTERVAL)
        await wait_until(lambda: store.state == "degraded")
        self.proxy.restore()
        self.clock.advance(PING_INTERVAL)
        await wait_until(lambda: store.state == "ok")
        states = [line for line in lines if line.startswith("database state:")]
        self.assertEqual(len(states), 2, lines)
        self.assertIn("degraded [db_unavailable]", states[0])
        self.assertIn("ok [ok]", states[1])
        self.assertEqual([line for line in lines if "Traceback" in line], [])

    async def test_queries_during_an_outage_fail_as_unavailable(self) -> None:
        store = await self.start_proxied_store()
        await self.proxy.cut()
        with self.assertRaises(DatabaseUnavailable) as raised:
            await store.readings()
        self.assertEqual(raised.exception.code, "db_unavailable")
        with self.assertRaises(DatabaseUnavailable):
            await store.interact(ledger.extent)
        self.assertEqual(store.health()["db"], "degraded")
        self.proxy.restore()
        self.assertEqual((await store.interact(ledger.extent))[1], 0)
        self.assertEqual(store.health()["db"], "ok")

    async def test_a_migration_cut_half_way_is_finished_by_the_next_try(self) -> None:
        (version, name, statements), *later = schema.migrations("mysql")
        slowed = [statements[0], "SELECT SLEEP(2)", *statements[1:]]
        self.patch(schema, "migrations", lambda dialect: [(version, name, slowed), *later])
        store = self.make_store(port=self.proxy.port, clock=reactor)
        store.startService()
        await wait_until(lambda: "readings" in self.tables())
        await self.proxy.cut()
        await wait_until(lambda: store.state == "degraded")
        self.proxy.restore()
        await wait_until(lambda: store.state == "ok", timeout=20)
        await store.stopService()
        again = await self.start_proxied_store()
        self.assertEqual(
            self.query("SELECT version FROM schema_version ORDER BY version"),
            [(n,) for n, _, _ in schema.migrations("mysql")],
        )
        self.assertEqual(again.state, "ok")


class SilentDatabaseTests(ProxiedMariaDBCase):
    """A database that accepts and never answers: noticed in seconds, answered in bounds."""

    async def silent_store(self) -> Store:
        store = self.make_store(port=self.proxy.port, record="all", clock=reactor)
        store.startService()
        await store.flush()
        self.proxy.silence()
        return store

    async def test_a_capture_is_answered_within_five_seconds(self) -> None:
        store = await self.silent_store()
        key = Ed25519PrivateKey.generate()
        book = RecordBook(store.interact, store.spec, lambda: key, reactor, store.run, {})
        book.startService()
        self.addCleanup(book.stopService)
        started = time.monotonic()
        with self.assertRaises(DatabaseUnavailable) as raised:
            await book.capture(make_reading(1), {"kind": "weighing"})
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertEqual(raised.exception.code, "db_unavailable")
        self.assertIn(f"within {CAPTURE_TIMEOUT:g} s", str(raised.exception))

    async def test_health_turns_slow_within_seconds(self) -> None:
        store = await self.silent_store()
        feeder = Feeder(store)
        self.addCleanup(feeder.stop)
        started = time.monotonic()
        await wait_until(lambda: store.health()["code"] != "ok")
        self.assertLess(time.monotonic() - started, SLOW_AFTER + 2 * FLUSH_INTERVAL)
        health = store.health()
        self.assertEqual((health["db"], health["code"]), ("degraded", "db_slow"))
        self.assertGreaterEqual(health["oldest"], SLOW_AFTER)

    async def test_a_stop_is_bounded_keeps_everything_and_never_stalls_the_reactor(self) -> None:
        store = await self.silent_store()
        feeder = Feeder(store)
        self.addCleanup(feeder.stop)
        await wait_until(lambda: store.health()["code"] == "db_slow")
        feeder.stop()
        gaps: list[float] = []
        beats = LoopingCall(lambda: gaps.append(time.monotonic()))
        beats.clock = reactor
        beats.start(0.05)
        started = time.monotonic()
        await store.stopService()
        elapsed = time.monotonic() - started
        beats.stop()
        self.assertLess(elapsed, STOP_WRITE_TIMEOUT + 2 * CLOSE_TIMEOUT + 1)
        self.assertLess(max(b - a for a, b in zip(gaps, gaps[1:], strict=False)), 0.5)
        stored = [seq for (seq,) in self.query("SELECT seq FROM readings ORDER BY seq")]
        journaled = [row["seq"] for row in self.journal_rows()]
        self.assertEqual(sorted(set(stored) | set(journaled)), feeder.fed)
        await self.proxy.cut()  # drops the silent connections
        self.proxy.restore()
        after = self.make_store(port=self.proxy.port, record="all")
        after.startService()
        await after.flush()
        self.assertEqual(
            self.query("SELECT seq FROM readings ORDER BY id"), [(s,) for s in feeder.fed]
        )
