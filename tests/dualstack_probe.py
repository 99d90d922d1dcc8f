"""Run inside a network namespace by the tests: listen on `dualstack:0` and report what
IPv4 and IPv6 peers look like to the server."""

import socket

from twisted.internet import protocol, reactor
from twisted.internet.endpoints import serverFromString


class Echo(protocol.Protocol):
    def connectionMade(self) -> None:
        self.transport.write(self.transport.getPeer().host.encode())
        self.transport.loseConnection()


def probe(port) -> None:
    number = port.getHost().port
    print(f"v6only={port.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)}", flush=True)
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as s:
            s.settimeout(5)
            s.connect((host, number))
            seen = b""
            while chunk := s.recv(100):
                seen += chunk
            print(f"{host} -> {seen.decode()}", flush=True)
    reactor.callFromThread(reactor.stop)


def failed(f) -> None:
    print(f"failed: {f.getErrorMessage()}")
    reactor.stop()


import twisted.plugins  # noqa: E402,F401  (finds the dualstack: parser)

endpoint = serverFromString(reactor, "dualstack:0")
endpoint.listen(protocol.Factory.forProtocol(Echo)).addCallbacks(
    lambda p: reactor.callInThread(probe, p), failed
)
reactor.callLater(20, reactor.stop)
reactor.run()
