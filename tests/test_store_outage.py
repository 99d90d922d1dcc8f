"""Database outages on real connections: a loopback proxy to MariaDB that the tests cut.

A cut closes every connection through the proxy and refuses new ones, as a database restart
or a network failure does; the store must keep every reading and write each exactly once.
"""

from __future__ import annotations

from typing import Any

import pymysql
from twisted.enterprise import adbapi
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure

from balanca.store import PING_INTERVAL, DatabaseUnavailable
from tests.storebase import MARIADB, MariaDBCase, make_reading, wait_until


class _Pipe(Protocol):
    """One side of a proxied connection: what it receives goes to its peer."""

    def __init__(self, proxy: CuttableProxy) -> None:
        self.proxy = proxy
        self.peer: _Pipe | None = None

    def connectionMade(self) -> None:
        self.proxy.links.add(self)

    def dataReceived(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.transport.write(data)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.proxy.links.discard(self)
        if self.peer is not None:
            self.peer.transport.abortConnection()  # type: ignore[union-attr]


class _Accepted(_Pipe):
    """A client's connection to the proxy: connects on to MariaDB, reading nothing until then."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.pauseProducing()  # type: ignore[union-attr]
        self.proxy.connecting += 1
        target = TCP4ClientEndpoint(reactor, MARIADB["host"], MARIADB["port"])
        connectProtocol(target, _Pipe(self.proxy)).addCallbacks(self._joined, self._failed)

    def _joined(self, upstream: _Pipe) -> None:
        self.proxy.connecting -= 1
        if self not in self.proxy.links:  # cut while connecting
            upstream.transport.abortConnection()  # type: ignore[union-attr]
            return
        self.peer, upstream.peer = upstream, self
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def _failed(self, reason: Failure) -> None:
        self.proxy.connecting -= 1
        self.transport.abortConnection()  # type: ignore[union-attr]


class _Entrance(ServerFactory):
    def __init__(self, proxy: CuttableProxy) -> None:
        self.proxy = proxy

    def buildProtocol(self, addr: IAddress | None) -> _Accepted:
        return _Accepted(self.proxy)


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 to MariaDB that can be cut and restored on the same port."""

    def __init__(self) -> None:
        self.links: set[_Pipe] = set()
        self.connecting = 0
        self.port = 0
        self._listener: Any = None

    def restore(self) -> None:
        """Accept connections (again)."""
        self._listener = reactor.listenTCP(self.port, _Entrance(self), interface="127.0.0.1")
        self.port = self._listener.getHost().port

    async def cut(self) -> None:
        """Refuse new connections and close every open one."""
        if self._listener is not None:
            await self._listener.stopListening()
            self._listener = None
        for link in list(self.links):
            link.transport.abortConnection()  # type: ignore[union-attr]

    async def close(self) -> None:
        """Cut, and wait until every socket is gone."""
        await self.cut()
        await wait_until(lambda: not self.links and not self.connecting)


async def sleep(seconds: float) -> None:
    """Let the real reactor run for `seconds`."""
    await deferLater(reactor, seconds, lambda: None)


class OutageTests(MariaDBCase):
    """The store through a proxy that the tests cut."""

    def setUp(self) -> None:
        super().setUp()
        self.proxy = CuttableProxy()
        self.proxy.restore()
        self.addCleanup(self.proxy.close)

    def tearDown(self) -> None:
        # adbapi logs the failed rollback of every interaction on a cut connection.
        self.flushLoggedErrors(pymysql.err.Error, adbapi.ConnectionLost)
        super().tearDown()

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
