"""The dual-stack listener: one socket for IPv4 and IPv6, with or without TLS."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor, ssl, task
from twisted.internet.endpoints import UNIXClientEndpoint, serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from tests.base import ServiceTestCase, fetch, skip_or_fail

ISO_LOCAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$")


class DualStackListener(ServiceTestCase):
    @defer.inlineCallbacks
    def test_ipv4_and_ipv6_clients_reach_one_dualstack_listener(self) -> defer.Generator:
        yield self.start()
        for host in ("127.0.0.1", "::1"):
            response = yield fetch(self.url("/api/time", host))
            self.assertEqual(response.code, 200, host)
            self.assertRegex(response.json()["time"], ISO_LOCAL)

    @defer.inlineCallbacks
    def test_each_listener_logs_its_address_and_dual_stack(self) -> defer.Generator:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        yield self.start("--ws", "tcp:0:interface=127.0.0.1")
        lines = [formatEvent(e) for e in events if e.get("what")]
        self.assertEqual(len(lines), 2, lines)
        self.assertIn(f"listening on [::]:{self.port(0)} (dual-stack IPv4+IPv6)", lines[0])
        self.assertIn(f"WebSocket listening on 127.0.0.1:{self.port(1)} (single-stack)", lines[1])

    @defer.inlineCallbacks
    def test_the_listening_socket_has_ipv6_v6only_off(self) -> defer.Generator:
        yield self.start()
        sock = self.listeners[0].port.socket
        self.assertEqual(sock.family, socket.AF_INET6)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY), 0)

    @defer.inlineCallbacks
    def test_api_time_has_microseconds_and_a_local_offset(self) -> defer.Generator:
        yield self.start()
        response = yield fetch(self.url("/api/time"))
        stamp = response.json()["time"]
        self.assertRegex(stamp, ISO_LOCAL)
        moment = datetime.datetime.fromisoformat(stamp)
        now = datetime.datetime.now().astimezone()
        self.assertLess(abs((now - moment).total_seconds()), 5)
        self.assertEqual(moment.utcoffset(), now.utcoffset())

    @defer.inlineCallbacks
    def test_unknown_paths_and_wrong_methods_get_json_errors(self) -> defer.Generator:
        yield self.start()
        missing = yield fetch(self.url("/api/nothing"))
        self.assertEqual(missing.code, 404)
        self.assertEqual(missing.json()["error"], "not found")
        static_missing = yield fetch(self.url("/nothing-here.txt"))
        self.assertEqual(static_missing.code, 404)
        self.assertEqual(static_missing.json()["error"], "not found")
        wrong = yield fetch(self.url("/api/time"), method=b"DELETE")
        self.assertEqual(wrong.code, 405)
        self.assertEqual(wrong.json()["error"], "method not allowed")
        self.assertIn("GET", wrong.header("Allow") or "")

    @defer.inlineCallbacks
    def test_health_answers_with_the_scale_and_database_state(self) -> defer.Generator:
        yield self.start()
        for _ in range(50):
            response = yield fetch(self.url("/api/health", "::1"))
            body = response.json()
            if body["db"]["state"] == "ok" and body["database"]["backlog"] == 0:
                break  # the first stable reading may wait up to a second for its batch
            yield task.deferLater(reactor, 0.1, lambda: None)
        self.assertIn(body["scale"]["state"], ("waiting", "live"))
        self.assertEqual(body["db"]["state"], "ok")  # 0.2: `db` is an object (0.1: "ok")
        self.assertEqual(body["database"]["backlog"], 0)
        self.assertEqual(body["clients"], 0)


def self_signed(directory: str) -> tuple[str, str]:
    """A self-signed certificate for localhost, 127.0.0.1 and ::1, made now."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def trusting_agent(cert_path: str) -> Agent:
    """An HTTPS agent that trusts exactly the test's certificate."""
    authority = ssl.Certificate.loadPEM(Path(cert_path).read_bytes())
    return Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot=authority))


class DualStackTLS(ServiceTestCase):
    @defer.inlineCallbacks
    def test_tls_on_the_dualstack_socket_serves_ipv4_and_ipv6(self) -> defer.Generator:
        cert, key = self_signed(tempfile.mkdtemp())
        escaped = lambda p: p.replace(":", "\\:")  # noqa: E731
        yield self.start("--http", f"dualstack:0:certKey={escaped(cert)}:privateKey={escaped(key)}")
        agent = trusting_agent(cert)
        for host in ("127.0.0.1", "::1"):
            url = self.url("/api/time", host).replace("http://", "https://")
            response = yield fetch(url, agent=agent)
            self.assertEqual(response.code, 200, host)
            self.assertIn("time", response.json())


PROBE = Path(__file__).with_name("dualstack_probe.py")


def in_namespace(script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script as root in a new network namespace (loopback up)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        skip_or_fail("network namespaces need root, unshare and ip")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.run(
        ["unshare", "--net", "sh", "-ec", f"ip link set lo up\n{script}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


class Namespaces(ServiceTestCase):
    def test_ipv4_arrives_mapped_even_when_the_host_defaults_to_v6only(self) -> None:
        run = in_namespace(f"sysctl -qw net.ipv6.bindv6only=1\n{sys.executable} {PROBE}")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("v6only=0", run.stdout)
        self.assertIn("127.0.0.1 -> ::ffff:127.0.0.1", run.stdout)
        self.assertIn("::1 -> ::1", run.stdout)


class WithoutIPv6(TestCase):
    def test_a_host_without_ipv6_gets_a_message_naming_tcp(self) -> defer.Deferred[None]:
        self.patch(socket, "has_ipv6", False)
        endpoint = serverFromString(reactor, "dualstack:0")
        d = self.assertFailure(endpoint.listen(Factory.forProtocol(Protocol)), OSError)
        d.addCallback(lambda e: self.assertIn("use a tcp: endpoint", str(e)))
        return d


@implementer(IAgentEndpointFactory)
class UnixEndpoints:
    """Every URL goes to one UNIX socket."""

    def __init__(self, path: str) -> None:
        self.path = path

    def endpointForURI(self, uri: object) -> UNIXClientEndpoint:
        return UNIXClientEndpoint(reactor, self.path)


class UnixListener(ServiceTestCase):
    @defer.inlineCallbacks
    def test_writes_over_a_unix_socket_work_and_share_one_budget(self) -> defer.Generator:
        path = os.path.join(tempfile.mkdtemp(), "balanca.sock")
        yield self.start("--scale", "simulator:rate=20", "--http", f"unix:{path}")
        self.service.parts.limiter.clock = task.Clock()  # no refill while the test runs
        agent = Agent.usingEndpointFactory(reactor, UnixEndpoints(path))
        url = "http://balanca/api/weighings"
        for _ in range(200):
            weight = yield fetch("http://balanca/api/weight", agent=agent)
            if weight.code == 200 and weight.json()["stable"] and weight.json()["weight"] != "0":
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        codes = []
        for _ in range(22):
            response = yield fetch(url, b"POST", b'{"again": true}', agent=agent)
            codes.append(response.code)
            self.assertEqual(response.header("Content-Type"), "application/json")
        self.assertEqual(codes, [201] * 20 + [429] * 2, "one bucket for every peer")


class StaticView(ServiceTestCase):
    @defer.inlineCallbacks
    def test_a_malformed_if_modified_since_is_ignored_and_a_good_one_is_honoured(
        self,
    ) -> defer.Generator:
        yield self.start()
        for header in (";", "", "x;y", "Mon, 99 Foo 2025 99:99:99 GMT", "Tue, 01 Dec"):
            response = yield fetch(self.url("/"), headers={"If-Modified-Since": header})
            self.assertEqual(response.code, 200, header)
            self.assertEqual(response.header("Content-Type"), "text/html; charset=utf-8")
        later = yield fetch(self.url("/"), headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})  # fmt: skip
        self.assertEqual(later.code, 304)

    @defer.inlineCallbacks
    def test_the_page_is_served_as_utf8_and_revalidated_after_upgrades(self) -> defer.Generator:
        yield self.start()
        for path, kind in (
            ("/", "text/html"),
            ("/app.js", "text/javascript"),
            ("/style.css", "text/css"),
        ):
            response = yield fetch(self.url(path))
            self.assertEqual(response.code, 200, path)
            self.assertEqual(response.header("Content-Type"), f"{kind}; charset=utf-8")
            self.assertEqual(response.header("Cache-Control"), "no-cache")
