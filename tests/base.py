"""Shared test fixtures: a running balanca service on real loopback sockets, an HTTP client,
and the rule that a missing MariaDB or browser fails CI instead of skipping."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from balanca.tap import Listener, Options, makeService

REQUIRE_ALL = os.environ.get("BALANCA_REQUIRE_ALL") == "1"
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
"""`twistd` of the interpreter running the tests (as a command line)."""


def skip_or_fail(reason: str) -> None:
    """Skip a test for a missing dependency, or fail it when CI requires everything."""
    if REQUIRE_ALL:
        raise AssertionError(f"required for CI but unavailable: {reason}")
    raise SkipTest(reason)


class Response:
    """A finished HTTP response: status, headers and body."""

    def __init__(self, code: int, headers: Headers, body: bytes) -> None:
        self.code, self.headers, self.body = code, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


@defer.inlineCallbacks
def fetch(
    url: str,
    method: bytes = b"GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    agent: Agent | None = None,
) -> Any:
    """Make one real HTTP request and read the whole answer."""
    from io import BytesIO

    from twisted.web.client import FileBodyProducer

    agent = agent or Agent(reactor)
    h = Headers({k: [v] for k, v in (headers or {}).items()})
    producer = FileBodyProducer(BytesIO(body)) if body is not None else None
    response = yield agent.request(method, url.encode(), h, producer)
    content = yield readBody(response)
    return Response(response.code, response.headers, content)


class ServiceTestCase(TestCase):
    """Starts a whole balanca service in this process on ephemeral loopback ports."""

    timeout = 60

    def start(self, *args: str, env: dict[str, str] | None = None) -> defer.Deferred[Any]:
        """Start `twistd balanca ARGS` in-process; fires when every listener listens."""
        self.workdir = tempfile.mkdtemp(prefix="balanca-test-")
        defaults = ["--db", f"sqlite:{self.workdir}/test.sqlite3"] if "--db" not in args else []
        if "--records-key" not in args:
            defaults += ["--records-key", f"{self.workdir}/records.key"]
        if "--http" not in args:
            defaults += ["--http", "dualstack:0:interface=\\:\\:"]
        # Files a service makes beside itself (a MySQL journal) go to the test's folder.
        previous = os.getcwd()
        os.chdir(self.workdir)
        self.addCleanup(os.chdir, previous)
        options = Options(environ=env or {})
        options.parseOptions([*defaults, *args])
        self.options = options
        self.service = makeService(options, reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.listeners = [s for s in self.service if isinstance(s, Listener)]
        return defer.gatherResults([s._waitingForPort for s in self.listeners])

    def port(self, index: int = 0) -> int:
        return int(self.listeners[index].port.getHost().port)

    def url(self, path: str, host: str = "127.0.0.1", index: int = 0) -> str:
        literal = f"[{host}]" if ":" in host else host
        return f"http://{literal}:{self.port(index)}{path}"
