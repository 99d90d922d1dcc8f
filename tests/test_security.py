"""The security rules on their own: tokens, browser origins, the write budget of a client, and
the request deadline of HTTP connections, on a fake clock and an in-memory transport."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.static import Data

from balanca.http.security import SECURITY_HEADERS, Access, RateLimiter, bearer, client_key
from balanca.http.site import BalancaSite, DeadlineChannel

SECRET, READ = "write-s3cret", "read-s3cret"


class Tokens(TestCase):
    def test_only_an_authorization_bearer_header_carries_a_token(self) -> None:
        self.assertEqual(bearer(b"Bearer abc"), "abc")
        self.assertEqual(bearer(b"bearer   abc  "), "abc")
        self.assertEqual(bearer("Bearer abc"), "abc")
        for header in (None, b"", b"Bearer", b"Bearer   ", b"Basic YWJjOmRlZg==", b"abc"):
            self.assertIsNone(bearer(header), header)

    def test_writes_need_the_write_token_exactly(self) -> None:
        access = Access(write_token=SECRET)
        self.assertTrue(access.may_write(SECRET))
        for wrong in (None, "", SECRET[:-1], SECRET + "x", SECRET.upper(), " " + SECRET, READ):
            self.assertFalse(access.may_write(wrong), wrong)
        self.assertTrue(access.may_read(None), "reads are public without a read token")

    def test_a_read_token_lets_readers_in_and_the_write_token_reads_too(self) -> None:
        access = Access(write_token=SECRET, read_token=READ)
        self.assertTrue(access.may_read(READ))
        self.assertTrue(access.may_read(SECRET))
        self.assertFalse(access.may_write(READ), "the read token cannot write")
        for wrong in (None, "", "read", "\ud800", "x" * 10_000):
            self.assertFalse(access.may_read(wrong), wrong)

    def test_without_tokens_anyone_reads_and_writes(self) -> None:
        self.assertTrue(Access().may_read(None))
        self.assertTrue(Access().may_write(None))


class Origins(TestCase):
    def test_a_client_without_origin_is_no_browser_and_is_accepted(self) -> None:
        self.assertTrue(Access().origin_allowed(None, "127.0.0.1:8080", False))

    def test_the_page_own_origin_is_accepted_whatever_the_case_and_address_family(self) -> None:
        access = Access()
        for origin, host, secure in (
            ("http://127.0.0.1:8080", "127.0.0.1:8080", False),
            ("http://[::1]:8080", "[::1]:8080", False),
            ("HTTP://[::1]:8080/", "[::1]:8080", False),
            ("https://Scale.Example.com", "scale.example.com", True),
            ("https://[2001:db8::7]:8443", "[2001:DB8::7]:8443", True),
        ):
            self.assertTrue(access.origin_allowed(origin, host, secure), origin)

    def test_other_origins_are_refused(self) -> None:
        access = Access()
        for origin, host, secure in (
            ("http://evil.test", "127.0.0.1:8080", False),
            ("null", "127.0.0.1:8080", False),
            ("http://127.0.0.1:8081", "127.0.0.1:8080", False),
            ("http://scale.example.com", "scale.example.com", True),  # http page, https socket
            ("https://scale.example.com", "scale.example.com", False),
            ("http://[::1]:8080", "[::2]:8080", False),
            ("http://127.0.0.1:8080", None, False),
        ):
            self.assertFalse(access.origin_allowed(origin, host, secure), origin)

    def test_allowed_origin_patterns_take_star_as_their_only_wildcard(self) -> None:
        access = Access(allowed_origins=("https://*.example.com", "http://[::1]:*"))
        host = "scale.test"
        for origin in ("https://kiosk.example.com", "HTTPS://A.B.Example.com", "http://[::1]:81"):
            self.assertTrue(access.origin_allowed(origin, host, False), origin)
        for origin in (
            "https://example.com.evil.test",
            "https://evil-example.com",
            "http://kiosk.example.com",
            "http://1:81",  # "[::1]" is an IPv6 literal, not a set of characters
            "http://[::2]:81",
        ):
            self.assertFalse(access.origin_allowed(origin, host, False), origin)


class WriteBudget(TestCase):
    def test_a_client_writes_in_bursts_of_20_then_10_a_second(self) -> None:
        clock = Clock()
        limiter = RateLimiter(clock)
        allowed = [limiter.allow("192.0.2.1") for _ in range(25)]
        self.assertEqual(allowed, [True] * 20 + [False] * 5)
        clock.advance(0.5)
        self.assertEqual([limiter.allow("192.0.2.1") for _ in range(6)], [True] * 5 + [False])
        self.assertTrue(limiter.allow("192.0.2.2"), "another client has its own budget")
        clock.advance(60)
        self.assertEqual(sum(limiter.allow("192.0.2.1") for _ in range(30)), 20, "no savings")

    def test_ipv4_clients_count_alike_mapped_or_not_and_ipv6_ones_by_their_64(self) -> None:
        self.assertEqual(client_key("::ffff:192.0.2.1"), "192.0.2.1")
        self.assertEqual(client_key("192.0.2.1"), "192.0.2.1")
        self.assertEqual(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:2:ffff::9"))
        self.assertNotEqual(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:3::1"))
        self.assertEqual(client_key("fe80::1%eth0"), "fe80::/64")
        self.assertEqual(client_key("/run/balanca.sock"), "/run/balanca.sock")
        clock = Clock()
        limiter = RateLimiter(clock)
        for i in range(20):
            self.assertTrue(limiter.allow(f"2001:db8:1:2::{i:x}"))
        self.assertFalse(limiter.allow("2001:db8:1:2::ffff"), "hopping inside a /64 buys nothing")

    def test_the_table_of_clients_stays_bounded_however_many_addresses_write(self) -> None:
        limiter = RateLimiter(Clock(), max_clients=100)
        for i in range(1000):
            limiter.allow(f"2001:db8:{i:x}::1")
        self.assertEqual([len(table.buckets) for table in limiter._tables], [100, 100, 100])

    def test_rotating_through_the_64s_of_one_48_buys_no_budget(self) -> None:
        clock = Clock()
        limiter = RateLimiter(clock)
        allowed = 0
        for n in range(50_000):  # 50,000 writes over 12,000 /64s of 2001:db8:7::/48, in 100 s
            allowed += limiter.allow(f"2001:db8:7:{n % 12_000:x}::1")
            clock.advance(100 / 50_000)
        self.assertLessEqual(allowed, 80 + 40 * 100, "the /48's budget: bursts of 80, 40/s")
        self.assertLess(allowed / 50_000, 0.1, "mostly refused")
        self.assertTrue(limiter.allow("2001:db8:8::1"), "another /48 has its own budget")

    def test_a_56_is_limited_apart_from_its_48(self) -> None:
        limiter = RateLimiter(Clock())
        allowed = sum(limiter.allow(f"2001:db8:7:{n:x}::1") for n in range(40))  # one /56
        self.assertEqual(allowed, 40)
        self.assertFalse(limiter.allow("2001:db8:7:ff::1"), "the /56 spent its burst of 40")
        self.assertTrue(limiter.allow("2001:db8:7:100::1"), "the next /56 of the /48 has more")

    def test_a_full_table_never_hands_out_a_fresh_burst(self) -> None:
        clock = Clock()
        limiter = RateLimiter(clock, max_clients=100)
        spent = sum(limiter.allow("192.0.2.1") for _ in range(25))
        self.assertEqual(spent, 20)
        for i in range(1000):  # other clients crowd the table at the same instant
            limiter.allow(f"198.51.{i // 256}.{i % 256}")
        self.assertFalse(limiter.allow("192.0.2.1"), "its spent bucket was kept")
        self.assertLessEqual(len(limiter._tables[0].buckets), 100)
        newcomers = sum(limiter.allow(f"203.0.113.{i}") for i in range(50))
        self.assertEqual(newcomers, 0, "newcomers share the spent overflow bucket")
        clock.advance(2)  # every bucket has refilled: the table makes room again
        self.assertTrue(limiter.allow("203.0.113.1"))
        self.assertTrue(limiter.allow("192.0.2.1"))

    def test_every_peer_of_a_unix_socket_is_one_client(self) -> None:
        self.assertEqual(client_key(UNIXAddress(None)), "unix")
        self.assertEqual(client_key(UNIXAddress(b"/run/balanca.sock")), "unix")
        self.assertEqual(client_key(IPv6Address("TCP", "2001:db8:1:2::1", 5)), "2001:db8:1:2::/64")
        self.assertEqual(client_key(IPv4Address("TCP", "192.0.2.1", 5)), "192.0.2.1")
        limiter = RateLimiter(Clock())
        self.assertEqual(sum(limiter.allow(UNIXAddress(None)) for _ in range(25)), 20)


def channel_on(clock: Clock) -> tuple[DeadlineChannel, StringTransport]:
    """A connection to a site with `/time` on a fake clock, opened now."""
    root = Resource()
    root.putChild(b"time", Data(b"12:00", "text/plain"))
    site = BalancaSite(root, timeout=60, reactor=clock)
    channel = site.buildProtocol(IPv4Address("TCP", "192.0.2.1", 50000))
    assert isinstance(channel, DeadlineChannel)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


GET = b"GET /time HTTP/1.1\r\nHost: balanca.test\r\n\r\n"


class RequestDeadline(TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.channel, self.transport = channel_on(self.clock)

    def answers(self) -> int:
        return self.transport.value().count(b"HTTP/1.1 200 ")

    def test_a_request_trickling_in_past_the_deadline_gets_408_and_is_closed(self) -> None:
        for byte in GET[:-2]:
            self.channel.dataReceived(bytes([byte]))
            self.clock.advance(0.25)  # each byte resets the idle timeout, not the deadline
        self.assertTrue(self.transport.disconnecting)
        self.assertIn(b"HTTP/1.1 408 Request Timeout", self.transport.value())
        self.assertIn(b'"code":"request_timeout"', self.transport.value())
        self.assertLess(self.clock.seconds(), len(GET) * 0.25)

    def test_a_connection_that_says_nothing_is_closed_at_the_deadline(self) -> None:
        self.clock.advance(9.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(self.transport.disconnecting)

    def test_a_slow_request_that_arrives_within_the_deadline_is_answered(self) -> None:
        for piece in (GET[:10], GET[10:30], GET[30:]):
            self.clock.advance(3)
            self.channel.dataReceived(piece)
        self.assertEqual(self.answers(), 1)
        self.assertFalse(self.transport.disconnecting)

    def test_keep_alive_connections_wait_between_requests_on_the_idle_timeout_only(self) -> None:
        self.channel.dataReceived(GET)
        self.clock.advance(50)  # longer than the deadline, shorter than the idle timeout
        self.channel.dataReceived(GET)
        self.assertEqual(self.answers(), 2)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(61)
        self.assertTrue(self.transport.disconnecting, "the idle timeout still closes it")
        self.assertNotIn(b" 408 ", self.transport.value())

    def test_a_peer_that_never_lets_its_answered_connection_close_is_cut_off(self) -> None:
        self.channel.dataReceived(GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        self.assertEqual(self.answers(), 1)
        self.assertTrue(self.transport.disconnecting)
        self.clock.advance(59.5)
        self.assertFalse(self.transport.disconnected)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnected, "aborted")

    def test_a_pipelined_request_gets_its_own_deadline(self) -> None:
        self.channel.dataReceived(GET + GET[:30])
        self.assertEqual(self.answers(), 1)
        self.clock.advance(9)
        self.channel.dataReceived(GET[30:35])
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1.1)
        self.assertTrue(self.transport.disconnecting)
        self.assertIn(b" 408 ", self.transport.value())

    def test_a_request_started_late_on_a_keep_alive_connection_gets_its_whole_deadline(
        self,
    ) -> None:
        self.channel.dataReceived(GET)
        self.clock.advance(9)
        self.channel.dataReceived(GET[:10])  # its deadline is 19 s, not the first one's 10
        self.clock.advance(9.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(self.transport.disconnecting)
        self.assertIn(b" 408 ", self.transport.value())
        self.assertEqual(self.answers(), 1)

    def test_a_request_line_or_header_over_16_kib_gets_431_and_is_closed(self) -> None:
        for request in (b"GET /" + b"a" * 20_000, GET[:-2] + b"X-Pad: " + b"p" * 20_000):
            channel, transport = channel_on(self.clock)
            channel.dataReceived(request + b"\r\n\r\n")
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 431 "), transport.value()[:40])
            self.assertIn(b'"code":"headers_too_large"', transport.value())
            self.assertTrue(transport.disconnecting)

    def test_a_request_twisted_cannot_parse_gets_a_json_400_with_the_security_headers(
        self,
    ) -> None:
        self.channel.dataReceived(b"NONSENSE\r\n\r\n")
        answer = self.transport.value()
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer)
        for name, value in SECURITY_HEADERS.items():
            self.assertIn(name + b": " + value + b"\r\n", answer)
        self.assertTrue(
            answer.endswith(
                b'{"error":"bad request","code":"bad_request",'
                b'"detail":"the HTTP request is malformed"}'
            )
        )
        self.assertTrue(self.transport.disconnecting)
        self.clock.advance(20)
        self.assertNotIn(b" 408 ", answer, "no deadline after the connection is done")
