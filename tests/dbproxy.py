"""A TCP proxy on 127.0.0.1 in front of MariaDB (or any TCP server: the MQTT broker) that
tests cut and restore, as a server restart or a network failure would: a cut closes every connection through it and refuses new
ones until it is restored on the same port. Silenced, it accepts connections and keeps them
open but forwards nothing either way, as a dropped route or a frozen server does."""

from __future__ import annotations

from typing import Any

import pymysql
from twisted.enterprise import adbapi
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.python.failure import Failure

from tests.storebase import MARIADB, MariaDBCase, wait_until


class _Pipe(Protocol):
    """One side of a proxied connection: what it receives goes to its peer."""

    def __init__(self, proxy: CuttableProxy) -> None:
        self.proxy = proxy
        self.peer: _Pipe | None = None

    def connectionMade(self) -> None:
        self.proxy.links.add(self)

    def dataReceived(self, data: bytes) -> None:
        if self.peer is not None and not self.proxy.silent:
            self.peer.transport.write(data)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.proxy.links.discard(self)
        if self.peer is not None:
            self.peer.transport.abortConnection()  # type: ignore[union-attr]


class _Accepted(_Pipe):
    """A client's connection to the proxy: connects on to MariaDB, reading nothing until then."""

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.proxy.silent:
            return  # accepted, and never answered
        self.transport.pauseProducing()  # type: ignore[union-attr]
        self.proxy.connecting += 1
        target = TCP4ClientEndpoint(reactor, *self.proxy.target)
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
    """A TCP proxy on 127.0.0.1 to `target` (host, port; MariaDB by default) that can be cut
    and restored on the same port."""

    def __init__(self, target: tuple[str, int] | None = None) -> None:
        self.target = target or (str(MARIADB["host"]), int(MARIADB["port"]))
        self.links: set[_Pipe] = set()
        self.connecting = 0
        self.silent = False
        self.port = 0
        self._listener: Any = None

    def silence(self) -> None:
        """Keep every connection and accept new ones, but forward nothing from now on."""
        self.silent = True

    def restore(self) -> None:
        """Accept connections (again), forwarding what they carry."""
        self.silent = False
        if self._listener is not None:
            return
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


class ProxiedMariaDBCase(MariaDBCase):
    """A MariaDB test whose database is also reachable through `self.proxy`, cut at will."""

    def setUp(self) -> None:
        super().setUp()
        self.proxy = CuttableProxy()
        self.proxy.restore()
        self.addCleanup(self.proxy.close)

    def tearDown(self) -> None:
        # adbapi logs the failed rollback of every interaction on a cut connection.
        self.flushLoggedErrors(pymysql.err.Error, adbapi.ConnectionLost)
        super().tearDown()
