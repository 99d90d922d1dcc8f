"""Hypothesis makes up requests (methods, paths, query strings, headers, bodies) for every API
path and the files beside it, and sends them over real sockets while a WebSocket client
watches the live stream.

Whatever comes: never a 500, always a whole HTTP answer, every API error is JSON, the
watching client misses no reading, and the service still answers `/api/health`.
Requests are well framed (a body has its true length, or is chunked properly); what breaks
the framing is the slow-client tests' business.
"""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, threads

from tests.base import ServiceTestCase
from tests.hostile import Target, exchange, exchange_now, http_request, open_websocket
from tests.test_security_hostile import AUTH, READ, WRITE, assert_consecutive, tokens

PATHS = [
    "/api/time",
    "/api/weight",
    "/api/health",
    "/api/readings",
    "/api/weighings",
    "/api/tare",
    "/api/zero",
    "/api",
    "/api/",
    "/metrics",
    "/ws",
    "/",
    "/index.html",
    "/app.js",
]
SUFFIXES = ["", "/", "/x", "/..", "/%2e%2e", "%00", "/%ff", ";x", "//", "/./", "/api/time"]
SAFE = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%"
"""Characters a request target may hold as they are (no space, no line break)."""


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`common` nine times in ten, else `rare`."""
    return st.integers(0, 9).flatmap(lambda n: rare if n == 0 else common)


methods = mostly(
    st.sampled_from(["GET", "GET", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"]),
    st.text(string.ascii_uppercase + "-_", min_size=1, max_size=12),
)
paths = st.builds(
    str.__add__,
    st.sampled_from(PATHS),
    mostly(st.just(""), st.sampled_from(SUFFIXES) | st.text(SAFE, max_size=30)),
)
encoded = st.text(max_size=40).map(lambda text: quote(text, safe=""))
values = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: quote(d.isoformat())),
    st.sampled_from(["", "0", "1000", "1001", "NaN", "1e3", "%C2%B2", "9" * 5000, READ]),
    encoded,
)
names = st.sampled_from(["limit", "before", "since", "until", "token"]) | encoded
queries = st.lists(st.tuples(names, values), max_size=4).map(
    lambda pairs: "?" + "&".join(f"{k}={v}" for k, v in pairs) if pairs else ""
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": mostly(
            st.sampled_from(
                [f"Bearer {WRITE}"] * 4 + [f"Bearer {READ}", "Bearer no", "Basic Og=="]
            ),
            header_text,
        ),
        "Content-Type": st.sampled_from(["application/json", "text/plain"]) | header_text,
        "Origin": st.sampled_from(["http://evil.test", "null"]) | header_text,
        "Accept-Encoding": st.sampled_from(["gzip", "br, deflate", "*"]),
        "Range": st.sampled_from(["bytes=0-10", "bytes=-5", "bytes=10-1", "bytes=x"]),
        "If-Modified-Since": header_text,
        "Expect": st.just("100-continue"),
        "Cookie": header_text,
        "X-Forwarded-For": header_text,
    },
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
json_bodies = st.dictionaries(
    st.sampled_from(["reference", "note", "x"]), json_values | st.text(max_size=600), max_size=3
)
bodies = st.one_of(
    st.none(),
    json_bodies.map(lambda body: json.dumps(body).encode()),
    json_bodies.map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=2000),
    st.sampled_from([b"{", b"[" * 3000, b"x" * (16 * 1024 + 1), b"\xff" * 20_000]),
)


hosts = mostly(
    st.sampled_from(["balanca.test", "[::1]:8080", "127.0.0.1"]), st.text(SAFE, max_size=20)
)


@st.composite
def anything(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """Any method on any path, with any headers and body."""
    method, path = draw(methods), draw(paths) + draw(queries)
    body, chunked, host = draw(bodies), draw(st.booleans()), draw(hosts)
    return method, path, http_request(method, path, draw(headers), body, chunked=chunked, host=host)


@st.composite
def writes(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """A write with the token: it gets past 401 to the body, the scale and the rate limit."""
    path = draw(st.sampled_from(["/api/weighings", "/api/weighings", "/api/tare", "/api/zero"]))
    body, chunked = draw(bodies), draw(st.booleans())
    return "POST", path, http_request("POST", path, AUTH, body, chunked=chunked)


@st.composite
def reads(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """A read with the read token: it gets past 401 to the query's checks."""
    path = draw(st.sampled_from(["/api/readings", "/api/weighings", "/api/weight", "/metrics"]))
    path += draw(queries)
    return "GET", path, http_request("GET", path, {"Authorization": f"Bearer {READ}"})


requests = st.one_of(anything(), writes(), reads())


class AnyRequest(ServiceTestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_no_request_gets_a_500_or_stops_the_service_or_the_live_stream(self) -> Any:
        secrets = tokens()
        yield self.start(
            "--scale",
            "simulator:rate=50",
            "--token-file",
            str(secrets / "write"),
            "--read-token-file",
            str(secrets / "read"),
        )
        target = Target("::1", self.port())
        watcher = yield open_websocket(target, f"/ws?token={READ}")
        self.addCleanup(watcher.close)  # also when an example fails: its pings are timers
        yield watcher.until(2)

        @settings(
            max_examples=1000,
            deadline=None,
            database=None,
            derandomize=True,  # the same examples every run: CI fails for a change, not luck
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(requests)
        @example(("GET", "/", http_request("GET", "/", {"If-Modified-Since": ";"})))  # was a 500
        @example(("HEAD", "/app.js", http_request("HEAD", "/app.js", {"If-Modified-Since": ""})))
        def answered_without_error(request: tuple[str, str, bytes]) -> None:
            method, path, raw = request
            answer = exchange_now(target, raw)
            assert answer.status != 500, (raw[:300], answer)
            assert 100 <= answer.status < 600, (raw[:300], answer)
            is_api = path.startswith("/api/") and not path.startswith("/api//")
            if is_api and answer.status >= 400 and method != "HEAD":
                assert "error" in answer.json(), (raw[:300], answer)

        yield threads.deferToThread(answered_without_error)
        yield watcher.until(len(watcher.readings()) + 10)
        assert_consecutive(self, watcher.seqs())
        self.assertEqual(self.service.parts.live.skipped, 0)
        health = yield exchange(target, http_request("GET", "/api/health", AUTH))
        self.assertIn(health.status, (200, 503))
        self.assertIn("scale", health.json())
