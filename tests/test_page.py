"""The live view in a real headless Chromium, against the real service with its simulator.

Most tests share one service and one page left open for the whole module, as on a kiosk;
the tests that stop, freeze or lock the service start their own. The simulator's cycle is
18 s: stable zero (2 s), loading (2 s), a stable load (8 s), unloading (2 s), zero (4 s).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.pagebase import (
    ARTIFACTS,
    REPO,
    Browser,
    Page,
    PageWatch,
    Service,
    chromium,
    expect,
    running,
)

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

DESKTOP: ViewportSize = {"width": 1920, "height": 1080}
PHONE: ViewportSize = {"width": 390, "height": 844}
CYCLE_MS = 20_000  # a little over the simulator's cycle: long enough to wait for any phase

STABLE_LOAD = """() => document.body.dataset.connection === "live"
    && document.body.dataset.stable === "true" && document.body.dataset.status === "ok"
    && Number(document.getElementById("weight").textContent) > 0"""
STABLE_ZERO = """() => document.body.dataset.connection === "live"
    && document.body.dataset.stable === "true"
    && Number(document.getElementById("weight").textContent) === 0"""
IN_MOTION = """() => document.body.dataset.connection === "live"
    && document.body.dataset.stable === "false" """
SERVICE_ANSWER = re.compile(
    r"^(Tara|Zero): (feito|não feito) \(.+\)$|^Recusado \((409|501|503)\): .+$"
)


@dataclass
class Kiosk:
    service: Service
    page: Page
    watch: PageWatch


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def kiosk(browser: Browser) -> Iterator[Kiosk]:
    """One service and one page on it, open for the whole module."""
    with running() as service:
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        watch = PageWatch(page)
        page.goto(f"{service.origin}/")
        yield Kiosk(service, page, watch)
        context.close()


def body(page: Page) -> Any:
    return page.locator("body")


def fresh_answer(page: Page) -> None:
    """Clear the answer line, so the next one can be waited for."""
    page.evaluate('document.getElementById("answer").textContent = ""')


def wait_for_answer(page: Page) -> str:
    expect(page.locator("#answer")).not_to_be_empty(timeout=10_000)
    return page.inner_text("#answer")


def expect_service_answer(page: Page) -> None:
    """The answer line shows what the service said about a tare or zero."""
    expect(page.locator("#answer")).to_have_text(SERVICE_ANSWER, timeout=10_000)


def distinct_weights(page: Page, wanted: int, seconds: float) -> set[str]:
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while len(seen) < wanted and time.monotonic() < deadline:
        seen.add(page.inner_text("#weight"))
        time.sleep(0.1)
    return seen


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def test_the_page_shows_the_simulated_weight_changing_live_with_its_badge(kiosk: Kiosk) -> None:
    page = kiosk.page
    expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)
    expect(page.locator("#connection-text")).to_have_text("Ao vivo")
    expect(page.locator("#simulated")).to_be_visible()
    expect(page.locator("#simulated")).to_have_text("SIMULADO")
    seen = distinct_weights(page, 3, 15)
    assert len(seen) >= 3, f"the weight did not change: {seen}"
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", w) for w in seen), seen
    expect(page.locator("#unit")).to_have_text("kg")
    expect(page.locator("#age")).to_have_text("Última leitura: agora")


def test_a_weighing_recorded_with_the_button_appears_in_the_table(kiosk: Kiosk) -> None:
    page = kiosk.page
    for _ in range(3):
        page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)
        page.fill("#reference", "ABC-1234")
        fresh_answer(page)
        page.click("#record")
        answer = wait_for_answer(page)
        if "409" not in answer:  # the load may start moving between the check and the click
            break
    assert answer.startswith("Pesagem nº "), answer
    stored = kiosk.service.weighings()[0]
    assert stored["reference"] == "ABC-1234"
    assert answer == f"Pesagem nº {stored['id']} registrada: {stored['weight']} {stored['unit']}"
    first_row = page.locator("#weighings tr").first
    expect(first_row).to_contain_text("ABC-1234")
    expect(first_row.locator("td").nth(3)).to_have_text(f"{stored['weight']} {stored['unit']}")
    expect(page.locator("#weighings-empty")).to_be_hidden()
    expect(page.locator("#reference")).to_have_value("")


def test_recording_while_in_motion_shows_the_services_409_and_its_detail(kiosk: Kiosk) -> None:
    page = kiosk.page
    for _ in range(3):
        page.wait_for_function(IN_MOTION, timeout=CYCLE_MS)
        fresh_answer(page)
        page.click("#record")
        answer = wait_for_answer(page)
        if "409" in answer:
            break
        page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)  # it had settled: try next motion
    assert re.fullmatch(r"Recusado \(409\): .+ — .+", answer), answer
    expect(page.locator("#answer")).to_have_attribute("data-tone", "error")


def test_tare_and_zero_show_the_services_answer(kiosk: Kiosk) -> None:
    page = kiosk.page
    for button in ("#tare-button", "#zero-button"):
        page.wait_for_function(STABLE_ZERO, timeout=CYCLE_MS)  # harmless on an empty platform
        fresh_answer(page)
        page.click(button)
        answer = wait_for_answer(page)
        assert SERVICE_ANSWER.match(answer), answer


def test_screen_readers_hear_each_new_stable_weight_once_not_every_frame(kiosk: Kiosk) -> None:
    page = kiosk.page
    expect(page.locator("#announcer")).to_have_attribute("aria-live", "polite")
    page.evaluate(
        """() => {
        window.__announced = [];
        window.__frames = 0;
        const announcer = document.getElementById("announcer");
        new MutationObserver(() => window.__announced.push(announcer.textContent))
          .observe(announcer, {childList: true, characterData: true, subtree: true});
        new MutationObserver(() => { window.__frames += 1; })
          .observe(document.getElementById("weight"), {childList: true, characterData: true, subtree: true});
      }"""
    )
    page.wait_for_function(IN_MOTION, timeout=CYCLE_MS)
    page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)
    page.wait_for_timeout(2000)  # the load stays put: nothing more to say
    announced = page.evaluate("window.__announced")
    frames = page.evaluate("window.__frames")
    weight = page.inner_text("#weight")
    assert announced and announced[-1] == f"Peso estável: {weight} kg", announced
    assert len(announced) <= 3, announced
    assert frames >= 10 * len(announced), (frames, announced)


def test_screenshots_of_the_live_view_at_desktop_and_phone_sizes(
    kiosk: Kiosk, capsys: pytest.CaptureFixture[str]
) -> None:
    page = kiosk.page
    page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)
    ARTIFACTS.mkdir(exist_ok=True)
    desktop, phone = ARTIFACTS / "live-desktop.png", ARTIFACTS / "live-phone.png"
    page.screenshot(path=str(desktop))
    page.set_viewport_size(PHONE)
    try:
        page.wait_for_timeout(300)  # the chart redraws for its new size on the next tick
        page.screenshot(path=str(phone), full_page=True)
    finally:
        page.set_viewport_size(DESKTOP)
    with capsys.disabled():
        print(f"\nscreenshots: {desktop} {phone}")
    assert png_size(desktop) == (1920, 1080)
    assert png_size(phone)[0] == 390
    if os.environ.get("BALANCA_UPDATE_SCREENSHOTS") == "1":  # refresh the README's pictures
        docs = REPO / "docs" / "screenshots"
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(desktop, docs / "live-desktop.png")
        shutil.copyfile(phone, docs / "live-phone.png")


def test_every_control_is_reachable_with_the_keyboard(kiosk: Kiosk) -> None:
    page = kiosk.page
    page.evaluate("document.activeElement && document.activeElement.blur()")
    focused = []
    for _ in range(8):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
    assert {"language", "reference", "record", "tare-button", "zero-button"} <= set(focused), (
        focused
    )


def test_the_page_fetches_nothing_outside_the_service_and_logs_no_error(kiosk: Kiosk) -> None:
    origin = kiosk.service.origin
    assert f"ws://[::1]:{kiosk.service.port}/ws" in kiosk.watch.urls
    assert f"{origin}/api/weighings?limit=10" in kiosk.watch.urls
    assert kiosk.watch.foreign_urls(origin) == []
    # Chromium logs every 4xx answer to a fetch; these two the tests ask for on purpose (a
    # weighing in motion, and a command the simulated protocol may not have).
    provoked = re.compile(
        r"console: Failed to load resource: the server responded with a status of (409|501) .*"
    )
    assert [e for e in kiosk.watch.errors if not provoked.fullmatch(e)] == []
    assert kiosk.watch.csp_violations() == []


def test_english_is_a_toggle_away_and_is_remembered(browser: Browser, kiosk: Kiosk) -> None:
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(f"{kiosk.service.origin}/")
        expect(page.locator("html")).to_have_attribute("lang", "pt-BR")
        page.click("#language")
        for _ in range(2):  # as toggled, then after a reload
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)
            expect(page.locator("#connection-text")).to_have_text("Live")
            expect(page.locator("#simulated")).to_have_text("SIMULATED")
            expect(page.locator("#record")).to_have_text("Record weighing")
            expect(page.locator("#language")).to_have_text("PT")
            page.reload()
        assert page.evaluate('localStorage.getItem("balanca.lang")') == "en"
    finally:
        context.close()


def test_stopping_the_service_shows_reconnecting_and_a_restart_brings_it_back_live(
    browser: Browser,
) -> None:
    with running() as service:
        context = browser.new_context(viewport=DESKTOP)
        try:
            page = context.new_page()
            page.goto(f"{service.origin}/")
            expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)
            service.stop()
            expect(body(page)).to_have_attribute("data-connection", "reconnecting", timeout=5_000)
            expect(page.locator("#connection-text")).to_have_text(
                re.compile(r"^Reconectando em \d+ s$")
            )
            service.start()
            expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)
            assert len(distinct_weights(page, 2, 10)) >= 2, "live again, but the weight is frozen"
        finally:
            context.close()


def test_a_silent_connection_is_dropped_and_replaced_without_showing_an_old_weight_as_live(
    browser: Browser,
) -> None:
    with running() as service:
        context = browser.new_context(viewport=DESKTOP)
        try:
            page = context.new_page()
            page.goto(f"{service.origin}/")
            expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)
            service.freeze()  # its sockets stay open and say nothing, like a half-open link
            # stale_after (3 s) + the worker's grace (2 s), plus a watchdog tick and slack
            expect(body(page)).to_have_attribute("data-connection", "reconnecting", timeout=8_000)
            expect(page.locator("#age")).to_have_text(re.compile(r"^Última leitura há \d+ s$"))
            service.resume()
            expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)
        finally:
            context.close()


def test_a_locked_service_asks_for_the_token_once_and_the_tab_keeps_it(browser: Browser) -> None:
    secrets = Path(tempfile.mkdtemp(prefix="balanca-tokens-"))
    (secrets / "read").write_text("reader-secret\n")
    (secrets / "write").write_text("writer-secret\n")
    locked = ("--read-token-file", str(secrets / "read"), "--token-file", str(secrets / "write"))
    try:
        with running(*locked) as service:
            context = browser.new_context(viewport=DESKTOP)
            try:
                page = context.new_page()
                watch = PageWatch(page)
                page.goto(f"{service.origin}/")
                # Reads need the token: the worker finds out (401) and the page asks.
                sign_in(page, "reader-secret")
                expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)
                assert any(u.endswith("/ws?token=reader-secret") for u in watch.urls), watch.urls
                # The read token cannot write: a 401 asks once more, then the write goes through.
                fresh_answer(page)
                page.click("#tare-button")
                sign_in(page, "writer-secret")
                expect_service_answer(page)
                assert page.evaluate('sessionStorage.getItem("balanca.token")') == "writer-secret"
                # Kept for this tab: no more asking.
                fresh_answer(page)
                page.click("#zero-button")
                expect_service_answer(page)
                expect(page.locator("#token-dialog")).not_to_have_attribute("open", "")
            finally:
                context.close()
    finally:
        shutil.rmtree(secrets, ignore_errors=True)


def sign_in(page: Page, token: str) -> None:
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible(timeout=10_000)
    page.fill("#token-input", token)
    page.click("#token-dialog button[value=ok]")
    expect(dialog).to_be_hidden()
