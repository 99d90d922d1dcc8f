"""Fixtures for the live view's browser tests: the real service as a child process (so a test
can stop, freeze and restart it on the same address) and the system's headless Chromium
driven by Playwright. No browser is ever downloaded: a missing one skips, or fails in CI."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.base import TWISTD, skip_or_fail

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # checked by `chromium()`, which skips or fails
    sync_playwright = None  # type: ignore[assignment]

__all__ = [
    "ARTIFACTS",
    "REPO",
    "Browser",
    "Page",
    "PageWatch",
    "Service",
    "chromium",
    "expect",
    "running",
]

REPO = Path(__file__).resolve().parent.parent
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


def free_port() -> int:
    """A TCP port free on the IPv6 wildcard address (so on IPv4 too) right now."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        return int(s.getsockname()[1])


class Service:
    """`twistd -n balanca` with the simulator, in a child process on a port of its own that
    stays the same across restarts."""

    def __init__(self, *args: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="balanca-page-"))
        self.port = free_port()
        self.args = args
        self.origin = f"http://[::1]:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            *TWISTD,
            "-n",
            "--pidfile=",
            "balanca",
            "--http",
            f"dualstack:{self.port}",
            "--db",
            f"sqlite:{self.workdir / 'x.sqlite3'}",
            *self.args,
        ]

    def start(self, timeout: float = 30) -> None:
        """Start the service and wait until `/api/health` answers (200 or 503 alike)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BALANCA_", "MYSQL_"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        with open(self.workdir / "service.log", "ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the service exited ({self.process.returncode}):\n{self.log()}"
                )
            if self._answers():
                return
            time.sleep(0.1)
        raise AssertionError(f"the service did not answer within {timeout:g} s:\n{self.log()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.origin}/api/health", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # 503 (scale not live yet) or 401 (token): it answers
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the service the way an operator does (SIGTERM), and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def freeze(self) -> None:
        """Stop the process without closing anything: its sockets stay open but silent, as
        behind a dead switch."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def log(self) -> str:
        path = self.workdir / "service.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def weighings(self) -> list[dict[str, Any]]:
        """The service's own list of weighings (newest first), to check the page against."""
        import json

        with urllib.request.urlopen(f"{self.origin}/api/weighings", timeout=5) as response:
            return list(json.load(response)["weighings"])


@contextmanager
def running(*args: str) -> Iterator[Service]:
    """A started service, stopped and cleaned up afterwards."""
    service = Service(*args)
    try:
        service.start()
        yield service
    finally:
        service.close()


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
