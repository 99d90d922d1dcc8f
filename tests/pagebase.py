"""Fixtures for the live view's browser tests: the real service as a child process
(`tests.child`: a test can stop, freeze and restart it on the same address), the system's
headless Chromium driven by Playwright, and a MariaDB database behind a proxy the test can
cut. No browser is ever downloaded: a missing one skips, or fails in CI.

`python -m tests.pagebase dbproxy` runs tests.dbproxy's cuttable proxy in a process of its own
(the page tests have no reactor): it prints its port, then obeys `cut` and `restore` lines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.base import skip_or_fail
from tests.child import REPO, Service, running

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # checked by `chromium()`, which skips or fails
    sync_playwright = None  # type: ignore[assignment]

__all__ = [
    "ARTIFACTS",
    "REPO",
    "Browser",
    "DatabaseProxy",
    "Page",
    "PageWatch",
    "Service",
    "chromium",
    "expect",
    "mariadb",
    "running",
]

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# Collects Content-Security-Policy violations the page itself sees (the worker's show up as
# console errors). Init scripts are injected by the browser, outside the page's CSP.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI}`);
});
"""


@contextmanager
def chromium() -> Iterator[Browser]:
    """The system's Chromium, headless, through Playwright."""
    if sync_playwright is None:
        skip_or_fail("Playwright for Python is not installed (pip install -e '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class PageWatch:
    """Everything a page asked for and complained about, to hold against it later."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.urls: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("websocket", lambda ws: self.urls.append(ws.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.add_init_script(CSP_WATCH)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("window.__cspViolations || []"))

    def foreign_urls(self, origin: str) -> list[str]:
        """URLs not on `origin` (http://host:port), its WebSocket twin counted as on it."""
        ws_origin = "ws" + origin.removeprefix("http")
        return [
            u
            for u in self.urls
            if not (u.startswith(origin + "/") or u.startswith(ws_origin + "/"))
        ]


@contextmanager
def mariadb() -> Iterator[str]:
    """A fresh database on the local MariaDB (its name), dropped afterwards."""
    import pymysql  # the `mysql` extra: only these tests need it

    from tests.storebase import MARIADB

    try:
        pymysql.connect(**MARIADB, connect_timeout=3).close()
    except pymysql.err.Error as error:
        skip_or_fail(f"no MariaDB at 127.0.0.1:3306: {error}")
    name = f"balanca_page_{os.getpid()}_{uuid.uuid4().hex[:12]}"

    def run(sql: str) -> None:
        connection = pymysql.connect(**MARIADB)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    run(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        run(f"DROP DATABASE IF EXISTS `{name}`")


class DatabaseProxy:
    """tests.dbproxy's CuttableProxy to MariaDB, in a child process: `cut()` closes every
    connection through it and refuses new ones, `restore()` accepts them again."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.pagebase", "dbproxy"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self._reply())

    def _reply(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the proxy exited ({self.process.wait()})")
        return line.strip()

    def _say(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        assert self._reply() == "ok"

    def cut(self) -> None:
        self._say("cut")

    def restore(self) -> None:
        self._say("restore")

    def close(self) -> None:
        """Closing its stdin stops it."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _serve_proxy() -> None:
    """The child side of DatabaseProxy."""
    from twisted.internet import defer, reactor, stdio
    from twisted.protocols.basic import LineReceiver

    from tests.dbproxy import CuttableProxy

    proxy = CuttableProxy()
    proxy.restore()

    class Commands(LineReceiver):
        delimiter = b"\n"

        def connectionMade(self) -> None:
            self.sendLine(str(proxy.port).encode())

        def lineReceived(self, line: bytes) -> None:
            if line == b"restore":
                proxy.restore()
            done = defer.ensureDeferred(proxy.cut()) if line == b"cut" else defer.succeed(None)
            done.addCallback(lambda _: self.sendLine(b"ok"))

        def connectionLost(self, reason: Any = None) -> None:
            reactor.stop()  # type: ignore[attr-defined]

    stdio.StandardIO(Commands())
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__" and sys.argv[1:] == ["dbproxy"]:
    _serve_proxy()
