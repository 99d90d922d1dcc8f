"""Hostile clients against a whole service: bad tokens, huge bodies, malformed input, paths
that try to leave `web/`, cross-origin and rule-breaking WebSockets, slow headers.

The core runs four times: plain and TLS (a self-signed certificate made by the test), on
127.0.0.1 and ::1 through the one dual-stack socket. Every rule-breaking WebSocket is closed
with its own close code while a well-behaved client keeps its stream with no gap in `seq`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor, task, tcp

from balanca.http.security import SECURITY_HEADERS
from balanca.http.site import DeadlineChannel
from tests.base import ServiceTestCase
from tests.hostile import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    TEXT,
    Answer,
    Target,
    client_frame,
    exchange,
    http_request,
    linger,
    open_websocket,
    trickle,
)
from tests.test_listeners import self_signed

WRITE, READ = "writer-s3cret", "reader-s3cret"
AUTH = {"Authorization": f"Bearer {WRITE}"}
WRITES = ("/api/tare", "/api/zero", "/api/weighings")
BIG = 2 * 1024 * 1024


def tokens() -> Path:
    """A folder with the write token in `write` and the read token in `read`."""
    secrets = Path(tempfile.mkdtemp(prefix="balanca-secrets-"))
    (secrets / "write").write_text(WRITE + "\n")
    (secrets / "read").write_text(READ + "\n")
    return secrets


def escaped(path: str) -> str:
    return path.replace(":", "\\:")


def assert_consecutive(case: Any, seqs: list[int]) -> None:
    case.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "a gap in seq")


def many_fragments() -> list[bytes]:
    """A message over 4 KiB in 61 fragments of 100 bytes."""
    first = client_frame(TEXT, b"[" * 100, fin=False)
    return [first] + [client_frame(CONTINUATION, b"1" * 100, fin=False) for _ in range(60)]


RUDE: list[tuple[int | None, list[bytes]]] = [
    # 1009: a message over 4 KiB, whole, in fragments, or only announced
    (1009, [client_frame(TEXT, b"x" * 5000)]),
    (1009, [client_frame(BINARY, b"\0" * 100_000)]),
    (1009, [client_frame(TEXT, b"a" * 3000, fin=False), client_frame(CONTINUATION, b"b" * 3000)]),
    (1009, many_fragments()),
    (1009, [b"\x82\xff" + (2**40).to_bytes(8, "big") + b"mask"]),  # claims 1 TiB
    # 1007: text that is not UTF-8, whole or split between fragments
    (1007, [client_frame(TEXT, b"\xff\xfe")]),
    (1007, [client_frame(TEXT, b"ok \xc3\x28")]),
    (1007, [client_frame(TEXT, b"\xe2\x82", fin=False), client_frame(CONTINUATION, b"\x28")]),
    (1007, [client_frame(TEXT, b"\xed\xa0\x80")]),  # a UTF-16 surrogate
    # 1002: frames no client may send
    (1002, [client_frame(TEXT, b"{}", masked=False)]),
    (1002, [client_frame(TEXT, b"{}", rsv=4)]),
    (1002, [client_frame(3, b"reserved opcode")]),
    (1002, [client_frame(PING, b"p" * 126)]),
    (1002, [client_frame(PING, b"p", fin=False)]),
    (1002, [client_frame(CONTINUATION, b"no start")]),
    (1002, [client_frame(TEXT, b"a", fin=False), client_frame(TEXT, b"b")]),
    # A close frame that breaks the rules is taken as the end of the closing handshake:
    # Autobahn drops the connection at once, its own 1002 close frame unsent.
    (None, [client_frame(CLOSE, b"\x03")]),
    (None, [client_frame(CLOSE, (999).to_bytes(2, "big"))]),
]


@defer.inlineCallbacks
def settle(live: Any) -> Any:
    """Wait (3 s at most) for the closing-handshake timers Autobahn leaves behind when a
    client it failed goes first: they would fire harmlessly, but trial wants a clean reactor."""
    for _ in range(60):
        if not live._batched_timer._buckets:
            return
        yield task.deferLater(reactor, 0.05, lambda: None)


@defer.inlineCallbacks
def connections_closed() -> Any:
    """Wait (2 s at most) for the service's side of finished connections to close: a TLS
    connection the service ends waits for the client's close, which may come after the test."""
    for _ in range(40):
        if not any(isinstance(s, tcp.Server) for s in reactor.getReaders()):
            return
        yield task.deferLater(reactor, 0.05, lambda: None)


class HostileClients:
    """The core of the hostile suite, for one address family and transport (the subclasses)."""

    host = "127.0.0.1"
    tls = False

    @defer.inlineCallbacks
    def start_target(self, *args: str) -> Any:
        secrets = tokens()
        listener, cert = "dualstack:0:interface=\\:\\:", None
        if self.tls:
            cert, key = self_signed(str(secrets))
            listener += f":certKey={escaped(cert)}:privateKey={escaped(key)}"
        yield self.start(  # type: ignore[attr-defined]
            "--http", listener, "--token-file", str(secrets / "write"), *args
        )
        self.target = Target(self.host, self.port(), cert)  # type: ignore[attr-defined]
        self.addCleanup(connections_closed)  # type: ignore[attr-defined]

    def send(self, *args: Any, **kwargs: Any) -> defer.Deferred[Answer]:
        return exchange(self.target, http_request(*args, **kwargs))

    @defer.inlineCallbacks
    def test_writes_without_the_token_or_with_a_wrong_one_get_401_and_a_challenge(
        self,
    ) -> Any:
        yield self.start_target()
        self.service.parts.limiter.clock = task.Clock()  # no refill while the test runs
        wrong = [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer"}]
        wrong += [{"Authorization": f"Basic {WRITE}"}, {"Authorization": f"Bearer {WRITE}x"}]
        wrong += [{"Authorization": f"Bearer {WRITE.upper()}"}, {"X-Token": WRITE}]
        failures = 0
        for path in WRITES:
            for headers in wrong:
                answer = yield self.send("POST", path, headers, b"{}")
                failures += 1
                if failures > 20:  # a place that keeps failing spends its budget: 429 first
                    self.assertEqual((answer.status, answer.json()["code"]), (429, "rate_limited"))
                    continue
                self.assertEqual(answer.status, 401, (path, headers))
                self.assertEqual(answer.json()["code"], "unauthorized")
                self.assertEqual(answer.headers["www-authenticate"], 'Bearer realm="balanca"')
        self.assertGreater(failures, 20)
        for path in WRITES:  # the right token is no 401 (a 429 now: the budget is spent)
            answer = yield self.send("POST", path, AUTH, b"{}")
            self.assertNotIn(answer.status, (401, 500), path)
        answer = yield self.send("GET", "/api/weight")
        self.assertNotEqual(answer.status, 401, "reads are public without a read token")

    @defer.inlineCallbacks
    def test_bodies_over_16_kib_get_413_with_a_length_or_chunked_after_the_token_check(
        self,
    ) -> Any:
        yield self.start_target()
        huge = b"x" * BIG
        for path in WRITES:
            answer = yield self.send("POST", path, {}, huge)
            self.assertEqual(answer.status, 401, "the token is checked first")
            for chunked in (False, True):
                answer = yield self.send("POST", path, AUTH, huge, chunked=chunked)
                self.assertEqual(answer.status, 413, (path, chunked))
                self.assertEqual(answer.json()["error"], "body too large")
        just_over = b'{"note": "' + b"x" * (16 * 1024 - 11) + b'"}'
        answer = yield self.send("POST", "/api/weighings", AUTH, just_over, chunked=True)
        self.assertEqual(answer.status, 413)
        at_the_limit = just_over[:-3] + b'"}'
        self.assertEqual(len(at_the_limit), 16 * 1024)
        answer = yield self.send("POST", "/api/weighings", AUTH, at_the_limit)
        self.assertEqual((answer.status, answer.json()["error"]), (400, "bad note"))
        for path in ("/api/time", "/", "/app.js", "/metrics"):
            answer = yield self.send("GET", path, {}, huge)
            self.assertEqual(answer.status, 413, path)

    @defer.inlineCallbacks
    def test_malformed_json_fields_and_queries_get_400(self) -> Any:
        yield self.start_target()
        bodies = [b"{", b"\xff\xfe", b"[1]", b'"x"', b"null", b'{"x": 1}', b'{"reference": 5}']
        bodies += [b'{"reference": NaN}', b'{"note": "\\ud800"}', b"[" * 5000, b"1" * 5000]
        bodies += [json.dumps({"reference": "x" * 101}).encode()]
        for body in bodies:
            answer = yield self.send("POST", "/api/weighings", AUTH, body)
            self.assertEqual(answer.status, 400, body[:40])
            self.assertIn("error", answer.json())
        for path in ("/api/tare", "/api/zero"):
            answer = yield self.send("POST", path, AUTH, b"{nope")
            self.assertEqual(answer.status, 400, path)
        queries = ["limit=abc", "limit=0", "limit=1001", "limit=%C2%B2", "limit=" + "9" * 5000]
        queries += ["since=yesterday", "since=0001-01-01", "until=9999-12-31T23:59:59-14:00"]
        queries += ["since=2025-13-01", "until=%00"]
        for query in queries:
            answer = yield self.send("GET", f"/api/readings?{query}")
            self.assertEqual(answer.status, 400, query[:40])
        for query in ("before=-1", "before=0", "before=9223372036854775808", "limit=1e3"):
            answer = yield self.send("GET", f"/api/weighings?{query}")
            self.assertEqual(answer.status, 400, query)

    @defer.inlineCallbacks
    def test_static_paths_never_leave_the_web_folder(self) -> Any:
        yield self.start_target()
        answer = yield self.send("GET", "/app.js")
        self.assertEqual(answer.status, 200)
        for path in (
            "/../setup.cfg",
            "/../../../../etc/passwd",
            "/%2e%2e/setup.cfg",
            "/%2E%2E/%2e%2e/etc/passwd",
            "/..%2fsetup.cfg",
            "/%2e%2e%2fsetup.cfg",
            "/.%2e/setup.cfg",
            "/..%5csetup.cfg",
            "/..\\setup.cfg",
            "/%5c..%5csetup.cfg",
            "/%00",
            "/app.js%00.txt",
            "/%2e%2e%00/setup.cfg",
            "/%ff%fe",
            "//etc/passwd",
            "/%2fetc%2fpasswd",
            "/./../setup.cfg",
            "/web/../setup.cfg",
            "/api/../../setup.cfg",
            "http://balanca.test/../setup.cfg",
        ):
            answer = yield self.send("GET", path)
            self.assertIn(answer.status, (400, 404), path)
            self.assertIn("error", answer.json(), path)
            self.assertNotIn(b"[metadata]", answer.body)
            self.assertNotIn(b"root:", answer.body)

    @defer.inlineCallbacks
    def test_every_answer_carries_the_security_headers(self) -> Any:
        yield self.start_target()
        requests = [
            http_request("GET", "/"),
            http_request("GET", "/app.js"),
            http_request("GET", "/style.css"),
            http_request("HEAD", "/index.html"),
            http_request("GET", "/api/time"),
            http_request("GET", "/api/weight"),
            http_request("GET", "/metrics"),
            http_request("GET", "/api/nothing"),
            http_request("GET", "/nothing.html"),
            http_request("GET", "/%00"),
            http_request("DELETE", "/api/time"),
            http_request("POST", "/api/tare"),
            http_request("POST", "/api/weighings", AUTH, b"{"),
            http_request("POST", "/api/weighings", AUTH, b"x" * BIG),
            b"NONSENSE\r\n\r\n",
            http_request("GET", "/api/time?x=" + "x" * 20_000),
        ]
        for request in requests:
            answer = yield exchange(self.target, request)
            for name, value in SECURITY_HEADERS.items():
                self.assertEqual(
                    answer.headers.get(name.decode().lower()), value.decode(), request[:30]
                )
        policy = answer.headers["content-security-policy"]
        self.assertIn("frame-ancestors 'none'", policy)
        self.assertIn("script-src 'self';", policy)
        self.assertNotIn("unsafe", policy)

    @defer.inlineCallbacks
    def test_a_cross_origin_browser_is_refused_on_the_websocket_and_the_page_accepted(
        self,
    ) -> Any:
        yield self.start_target()
        other_scheme = self.target.origin.replace("https:", "http:" if self.tls else "https:")
        if not self.tls:
            other_scheme = self.target.origin.replace("http:", "https:")
        for origin in ("http://evil.test", "null", other_scheme, self.target.origin + "0"):
            client = yield open_websocket(self.target, origin=origin)
            self.assertIn(client.status, (400, 403), origin)  # Autobahn refuses "null" itself
        for origin in (self.target.origin, self.target.origin.upper(), None):
            client = yield open_websocket(self.target, origin=origin)
            self.assertEqual(client.status, 101, origin)
            yield client.until(1)
            yield client.close()

    @defer.inlineCallbacks
    def test_websockets_breaking_the_rules_get_the_close_code_that_says_why_alone(
        self,
    ) -> Any:
        yield self.start_target("--scale", "simulator:rate=50")
        calm = yield open_websocket(self.target)
        yield calm.until(2)
        for code, frames in RUDE:
            rude = yield open_websocket(self.target)
            self.assertEqual(rude.status, 101)
            for data in frames:
                rude.send(data)
            got = yield rude.closed.addTimeout(10, reactor)
            self.assertEqual(got, code, [f[:12] for f in frames])
        # Past the 32 messages a client may have queued: the stream is drained, over TLS too.
        yield calm.until(max(40, len(calm.readings()) + 10))
        assert_consecutive(self, calm.seqs())
        live = self.service.parts.live  # type: ignore[attr-defined]
        self.assertEqual(len(live.clients), 1, "only the calm client is left")
        self.assertEqual(live.skipped, 0)
        yield calm.close()
        yield settle(live)

    @defer.inlineCallbacks
    def test_a_client_that_sends_its_request_too_slowly_is_answered_408_and_closed(
        self,
    ) -> Any:
        yield self.start_target()
        self.service.parts.site.request_deadline = 1.0  # type: ignore[attr-defined]
        request = http_request("GET", "/api/time")
        pieces = [request[i : i + 1] for i in range(len(request))]
        elapsed, received = yield trickle(self.target, pieces, 0.1)
        self.assertLess(elapsed, 1.0 + DeadlineChannel.abortTimeout + 1)
        self.assertTrue(received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received[:40])

    @defer.inlineCallbacks
    def test_a_client_that_never_lets_its_answered_connection_close_is_cut_off(self) -> Any:
        yield self.start_target()
        self.service.parts.site.timeOut = 1  # type: ignore[attr-defined]  # the idle timeout
        elapsed = yield linger(self.target, http_request("GET", "/api/time"))
        self.assertLess(elapsed, 1 + 2)


class OverIPv4(HostileClients, ServiceTestCase):
    pass


class OverIPv6(HostileClients, ServiceTestCase):
    host = "::1"


class OverTLSIPv4(HostileClients, ServiceTestCase):
    tls = True


class OverTLSIPv6(HostileClients, ServiceTestCase):
    host = "::1"
    tls = True


class ReadToken(ServiceTestCase):
    """With a read token, the page (static files) and `/api/time` stay public so that the
    page can load and ask for the token; everything about the scale needs it."""

    def start_locked(self) -> defer.Deferred[Any]:
        secrets = tokens()
        return self.start(
            "--token-file", str(secrets / "write"), "--read-token-file", str(secrets / "read")
        )

    @defer.inlineCallbacks
    def test_the_page_and_the_clock_are_public_and_everything_else_needs_a_token(self) -> Any:
        yield self.start_locked()
        target = Target("::1", self.port())
        for path in ("/", "/index.html", "/app.js", "/dataWorker.js", "/style.css", "/api/time"):
            answer = yield exchange(target, http_request("GET", path))
            self.assertEqual(answer.status, 200, path)
        private = ["/api/weight", "/api/health", "/api/readings", "/api/weighings", "/metrics"]
        for path in private:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                answer = yield exchange(target, http_request("GET", path, headers))
                self.assertEqual(answer.status, 401, path)
                self.assertEqual(answer.headers["www-authenticate"], 'Bearer realm="balanca"')
                self.assertEqual(answer.json()["error"], "unauthorized")
            for token in (READ, WRITE):
                headers = {"Authorization": f"Bearer {token}"}
                answer = yield exchange(target, http_request("GET", path, headers))
                self.assertIn(answer.status, (200, 503), path)
        answer = yield exchange(target, http_request("GET", "/api/weighings?token=" + READ))
        self.assertEqual(answer.status, 401, "HTTP reads take the token as a header only")
        answer = yield exchange(
            target, http_request("POST", "/api/zero", {"Authorization": f"Bearer {READ}"})
        )
        self.assertEqual(answer.status, 401, "the read token cannot write")

    @defer.inlineCallbacks
    def test_the_websocket_takes_the_token_as_a_query_or_a_bearer_header(self) -> Any:
        yield self.start_locked()
        target = Target("127.0.0.1", self.port())
        for path, headers in (
            ("/ws", {}),
            ("/ws?token=wrong", {}),
            ("/ws?token=", {}),
            ("/ws", {"Authorization": "Bearer wrong"}),
            (f"/ws?token={READ}", {"Authorization": "Bearer wrong"}),  # the header wins
        ):
            client = yield open_websocket(target, path, target.origin, headers)
            self.assertEqual(client.status, 401, (path, headers))
        for path, headers in (
            (f"/ws?token={READ}", {}),
            (f"/ws?token={WRITE}", {}),
            ("/ws", {"Authorization": f"Bearer {READ}"}),
        ):
            client = yield open_websocket(target, path, target.origin, headers)
            self.assertEqual(client.status, 101, (path, headers))
            yield client.close()


class ChecksInOrder(ServiceTestCase):
    """DESIGN.md's order: 401 token, 413 size, 400 malformed, 409/503 scale state, 429 rate."""

    @defer.inlineCallbacks
    def test_a_write_is_refused_for_the_first_rule_it_breaks(self) -> Any:
        secrets = tokens()
        yield self.start("--token-file", str(secrets / "write"), "--scale", "serial:/nonexistent")
        target = Target("127.0.0.1", self.port())

        def post(path: str, body: bytes, headers: dict[str, str] = AUTH) -> Any:
            return exchange(target, http_request("POST", path, headers, body))

        answer = yield post("/api/weighings", b"{" * BIG, {})
        self.assertEqual(answer.status, 401)
        answer = yield post("/api/weighings", b"{" * BIG)
        self.assertEqual(answer.status, 413)
        answer = yield post("/api/weighings", b"{")
        self.assertEqual(answer.status, 400)
        for _ in range(30):  # more than a burst: state refusals spend nothing
            answer = yield post("/api/weighings", b"{}")
            self.assertEqual(answer.status, 409)
            answer = yield post("/api/tare", b"{}")
            self.assertEqual(answer.status, 503)
        self.assertEqual(answer.json()["error"], "scale disconnected")

    @defer.inlineCallbacks
    def test_writes_beyond_a_burst_of_20_get_429_per_client_address(self) -> Any:
        secrets = tokens()
        yield self.start("--token-file", str(secrets / "write"))
        ipv4, ipv6 = Target("127.0.0.1", self.port()), Target("::1", self.port())
        zero = http_request("POST", "/api/zero", AUTH)
        answers = yield defer.gatherResults([exchange(ipv4, zero) for _ in range(40)])
        statuses = [a.status for a in answers]
        self.assertIn(statuses.count(200), range(20, 25), statuses)  # a burst, plus 10/s
        self.assertEqual(statuses.count(200) + statuses.count(429), 40, statuses)
        self.assertEqual(answers[statuses.index(429)].json()["error"], "too many requests")
        answer = yield exchange(ipv6, zero)
        self.assertEqual(answer.status, 200, "another address has its own budget")
        answer = yield exchange(ipv4, http_request("POST", "/api/zero", AUTH, b"{"))
        self.assertEqual(answer.status, 400, "a malformed write is refused before the budget")
        yield task.deferLater(reactor, 0.5, lambda: None)
        answer = yield exchange(ipv4, zero)
        self.assertEqual(answer.status, 200, "the budget refills at 10 a second")


class Deadlines(ServiceTestCase):
    @defer.inlineCallbacks
    def test_keep_alive_clients_are_not_hurried_between_requests(self) -> Any:
        yield self.start()
        self.service.parts.site.request_deadline = 0.5
        target = Target("127.0.0.1", self.port())
        request = http_request("GET", "/api/time").replace(b"Connection: close\r\n", b"")
        pieces = [request[:20], request[20:], request[:20], request[20:], b"\r\n"]
        elapsed, received = yield trickle(target, pieces, 0.4)  # 1.6 s on one connection
        self.assertEqual(received.count(b"HTTP/1.1 200 OK"), 2, received)
        self.assertGreater(elapsed, 1.5)

    @defer.inlineCallbacks
    def test_a_websocket_outlives_the_deadline_of_the_request_it_came_in(self) -> Any:
        yield self.start("--scale", "simulator:rate=20")
        self.service.parts.site.request_deadline = 0.3
        client = yield open_websocket(Target("::1", self.port()))
        yield client.until(1)
        yield task.deferLater(reactor, 1, lambda: None)
        yield client.until(len(client.readings()) + 5)
        assert_consecutive(self, client.seqs())
        yield client.close()


class WebSocketOnlyListener(ServiceTestCase):
    @defer.inlineCallbacks
    def test_the_ws_listener_has_the_same_origin_and_token_policy(self) -> Any:
        secrets = tokens()
        yield self.start(
            "--ws",
            "dualstack:0",
            "--token-file",
            str(secrets / "write"),
            "--read-token-file",
            str(secrets / "read"),
        )
        target = Target("::1", self.port(1))
        refused = [("/", target.origin, 401), (f"/?token={READ}", "http://evil.test", 403)]
        for path, origin, status in refused:
            client = yield open_websocket(target, path, origin)
            self.assertEqual(client.status, status, (path, origin))
            yield client.closed
            code = {401: "unauthorized", 403: "forbidden_origin"}[status]
            self.assertEqual(json.loads(client.body)["code"], code, client.body)
        for path, origin in ((f"/?token={READ}", target.origin), (f"/any?token={READ}", None)):
            client = yield open_websocket(target, path, origin)
            self.assertEqual(client.status, 101, (path, origin))
            yield client.close()

    @defer.inlineCallbacks
    def test_the_ws_listener_refuses_huge_or_slow_handshakes(self) -> Any:
        yield self.start("--ws", "dualstack:0")
        self.service.parts.live.setProtocolOptions(openHandshakeTimeout=1)
        target = Target("127.0.0.1", self.port(1))
        huge = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"p" * 100_000 + b"\r\n\r\n"
        elapsed, received = yield trickle(target, [huge], 0)
        self.assertTrue(received.startswith(b"HTTP/1.1 431 "), received[:40])
        request = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        elapsed, received = yield trickle(target, [bytes([b]) for b in request], 0.1)
        self.assertLess(elapsed, 3)
