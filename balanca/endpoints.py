"""The `dualstack:` server endpoint: one IPv6 socket that takes IPv4 peers too.

Twisted's `tcp6:` inherits the host's `net.ipv6.bindv6only`; this endpoint sets
`IPV6_V6ONLY=0` explicitly before bind, so IPv4 clients always arrive as `::ffff:a.b.c.d`.
With `certKey=` and `privateKey=` it serves TLS on the same socket.

    dualstack:PORT[:interface=\\:\\:][:backlog=N][:certKey=PATH:privateKey=PATH]
"""

from __future__ import annotations

import errno
import re
import socket
from typing import Any

from twisted.internet import defer, tcp
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import IPlugin
from zope.interface import implementer

NO_IPV6_ERRORS = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)
NO_IPV6 = "this host has no IPv6: use a tcp: endpoint (e.g. tcp:{port}) instead of dualstack:"


class DualStackPort(tcp.Port):
    """A TCP port whose IPv6 socket accepts IPv4-mapped peers whatever the host default."""

    def createInternetSocket(self) -> socket.socket:
        s = super().createInternetSocket()
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        return s


def address_text(address: Any) -> str:
    """`[::ffff:127.0.0.1]:5000` or `127.0.0.1:5000` for an IPv6 or IPv4 address (a peer's or
    a port's), or the address as it prints for anything else (UNIX sockets)."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if not isinstance(host, str) or port is None:
        return str(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_dual_stack(sock: socket.socket) -> bool:
    """The listening socket takes both IPv4 and IPv6 peers."""
    return sock.family == socket.AF_INET6 and not sock.getsockopt(
        socket.IPPROTO_IPV6, socket.IPV6_V6ONLY
    )


def ipv6_available() -> bool:
    """An IPv6 socket can be made on this host."""
    if not socket.has_ipv6:
        return False
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False
    return True


@implementer(IStreamServerEndpoint)
class DualStackEndpoint:
    """Listen on one IPv6 socket with `IPV6_V6ONLY=0`, optionally with TLS."""

    def __init__(
        self,
        reactor: Any,
        port: int,
        interface: str = "::",
        backlog: int = 50,
        tls: Any = None,
    ) -> None:
        self.reactor = reactor
        self.port = port
        self.interface = interface
        self.backlog = backlog
        self.tls = tls

    def listen(self, protocolFactory: IProtocolFactory) -> defer.Deferred[IListeningPort]:
        return defer.execute(self._listen, protocolFactory)

    def _listen(self, factory: IProtocolFactory) -> IListeningPort:
        if not ipv6_available():
            raise OSError(NO_IPV6.format(port=self.port))
        if self.tls is not None:
            from twisted.protocols.tls import TLSMemoryBIOFactory

            factory = TLSMemoryBIOFactory(self.tls, False, factory)
        port = DualStackPort(self.port, factory, self.backlog, self.interface, self.reactor)
        try:
            port.startListening()
        except CannotListenError as e:
            if isinstance(e.socketError, OSError) and e.socketError.errno in NO_IPV6_ERRORS:
                raise CannotListenError(
                    self.interface, self.port, OSError(NO_IPV6.format(port=self.port))
                ) from e
            raise
        return port


def tls_options(cert_path: str, key_path: str) -> Any:
    """TLS server options from PEM files; `cert_path` may hold the chain after the leaf
    (Let's Encrypt's `fullchain.pem`)."""
    from twisted.internet import ssl

    with open(cert_path, "rb") as f:
        blocks = re.findall(
            rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", f.read(), re.S
        )
    if not blocks:
        raise ValueError(f"no PEM certificate in {cert_path}")
    with open(key_path, "rb") as f:
        leaf = ssl.PrivateCertificate.loadPEM(f.read() + b"\n" + blocks[0])
    return ssl.CertificateOptions(
        privateKey=leaf.privateKey.original,
        certificate=leaf.original,
        extraCertChain=[ssl.Certificate.loadPEM(b).original for b in blocks[1:]],
    )


@implementer(IPlugin, IStreamServerEndpointStringParser)
class DualStackParser:
    """Parses `dualstack:` endpoint strings (registered in `twisted/plugins/`)."""

    prefix = "dualstack"

    def parseStreamServer(  # type: ignore[override]  # the interface only says *args, **kwargs
        self,
        reactor: Any,
        port: str,
        interface: str = "::",
        backlog: str = "50",
        certKey: str | None = None,
        privateKey: str | None = None,
    ) -> DualStackEndpoint:
        if not re.fullmatch(r"\d{1,5}", port) or int(port) > 65535:
            raise ValueError(f"dualstack: port must be a number from 0 to 65535, not {port!r}")
        if (certKey is None) != (privateKey is None):
            raise ValueError("dualstack: TLS needs both certKey= and privateKey=")
        tls = tls_options(certKey, privateKey) if certKey and privateKey else None
        return DualStackEndpoint(reactor, int(port), interface, int(backlog), tls)
