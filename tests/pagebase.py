"""Fixtures for the live view's browser tests: the real service as a child process
(`tests.child`: a test can stop, freeze and restart it on the same address) and the system's
headless Chromium driven by Playwright. No browser is ever downloaded: a missing one skips,
or fails in CI."""

from __future__ import annotations

import os
import shutil
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
    "Page",
    "PageWatch",
    "Service",
    "chromium",
    "expect",
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
