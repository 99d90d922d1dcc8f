"""The live view of a service with several scales, in a real headless Chromium against the
real service simulating four (one of each kind of platform: a toledo truck scale, an A&D floor
scale, an MT-SICS laboratory balance and a polled Prix counter scale).

The grid of cards at a 1920×1080 kiosk and on a 390×844 phone, a card opening its scale's
full view whose commands and captures go to that scale's per-scale paths, `/#scale=ID`
pinning a kiosk to one scale across reloads and service restarts, an unknown id, both
languages, and the worker's one WebSocket for all of it. One scale looking as in 0.1 is
tests/test_page.py's.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from balanca.reading import Measurement
from tests import test_page
from tests.pagebase import ARTIFACTS, REPO, Browser, Page, PageWatch, Service, expect, running
from tests.ptyscale import PtyScale
from tests.test_page import (
    CYCLE_MS,
    DESKTOP,
    LANGUAGES,
    PHONE,
    STABLE_LOAD,
    STABLE_ZERO,
    assert_header_is_one_row,
    assert_in_language,
    body,
    fresh_answer,
    get_json,
    png_size,
    set_language,
    wait_for_answer,
)

SCALES = ("a", "b", "c", "d")
UNITS = {"a": "kg", "b": "kg", "c": "g", "d": "kg"}
FOUR = (
    *("--scale", "a=simulator", "--scale", "b=simulator:protocol=ad"),
    *("--scale", "c=simulator:protocol=sics", "--scale", "d=simulator:protocol=prix"),
)
browser = test_page.browser  # the module's Chromium (a fixture)
CARD = '#cards .card[data-scale="{}"]'
# Every card with a stable load (the simulated scales' cycles are nearly in step).
ALL_LOADED = """() => [...document.querySelectorAll("#cards .card")].every((card) =>
    card.dataset.connection === "live" && card.dataset.stable === "true"
    && Number(card.querySelector(".card-value").textContent) > 0)"""
# Each card's box, its weight's font size, and whether the page scrolls sideways.
CARD_BOXES = """() => {
  const cards = [...document.querySelectorAll("#cards .card")].map((card) => {
    const box = card.getBoundingClientRect();
    const size = parseFloat(getComputedStyle(card.querySelector(".card-weight")).fontSize);
    return {id: card.dataset.scale, x: box.x, y: box.y, w: box.width, h: box.height, size};
  });
  const root = document.documentElement;
  return {cards, width: root.clientWidth, height: root.clientHeight, scrollWidth: root.scrollWidth};
}"""


@pytest.fixture(scope="module")
def site() -> Iterator[Service]:
    """One service with the four scales for the whole module."""
    with running(*FOUR) as service:
        yield service


class Sockets:
    """The WebSockets a page opens (its worker's included), to count them."""

    def __init__(self, page: Page) -> None:
        self.opened: list[Any] = []
        page.on("websocket", lambda ws: self.opened.append(ws))

    def open(self) -> list[str]:
        return [ws.url for ws in self.opened if not ws.is_closed()]


def card(page: Page, scale: str) -> Any:
    return page.locator(CARD.format(scale))


def card_weights(page: Page, seconds: float) -> dict[str, set[str]]:
    """What each card's weight showed while it was sampled, until every card changed ("----"
    while the scale sends no weight: a Prix in motion)."""
    seen: dict[str, set[str]] = {scale: set() for scale in SCALES}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(len(values) < 2 for values in seen.values()):
        shown = page.eval_on_selector_all(
            "#cards .card",
            "cards => cards.map((c) => [c.dataset.scale, c.querySelector('.card-value').textContent])",
        )
        for scale, weight in shown:
            seen[scale].add(weight)
        time.sleep(0.2)
    return seen


def open_grid(browser: Browser, service: Service, viewport: Any, address: str = "/") -> Page:
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{service.origin}{address}")
    return page


def expect_live_grid(page: Page) -> None:
    """The grid of the four scales, in the order configured, every one live and simulated."""
    expect(body(page)).to_have_attribute("data-view", "grid", timeout=15_000)
    expect(page.locator("#cards .card")).to_have_count(len(SCALES))
    order = page.eval_on_selector_all("#cards .card", "cards => cards.map((c) => c.dataset.scale)")
    assert order == list(SCALES)
    for scale in SCALES:
        expect(card(page, scale)).to_have_attribute("data-connection", "live", timeout=15_000)
        expect(card(page, scale).locator(".card-badge")).to_have_text("SIMULADO")
        expect(card(page, scale).locator(".card-unit")).to_have_text(UNITS[scale])
    expect(page.locator("#weight")).to_be_hidden()  # no single scale's view under the grid


def test_four_scales_are_a_grid_of_live_cards_filling_a_kiosk_screen(
    browser: Browser, site: Service
) -> None:
    page = browser.new_context(viewport=DESKTOP).new_page()
    sockets = Sockets(page)
    watch = PageWatch(page)
    try:
        page.goto(f"{site.origin}/")
        expect_live_grid(page)
        seen = card_weights(page, 25)
        assert all(len(values) >= 2 for values in seen.values()), f"a weight froze: {seen}"
        assert all(re.fullmatch(r"-?\d+(\.\d+)?|----", w) for v in seen.values() for w in v), seen
        layout = page.evaluate(CARD_BOXES)
        cards = layout["cards"]
        # 2×2, the four cards sharing the screen below the header, nothing scrolling.
        assert len({round(c["x"]) for c in cards}) == 2, cards
        assert len({round(c["y"]) for c in cards}) == 2, cards
        assert all(
            c["x"] + c["w"] <= layout["width"] and c["y"] + c["h"] <= layout["height"]
            for c in cards
        )
        assert sum(c["h"] for c in cards) / 2 >= 0.7 * layout["height"], cards
        assert min(c["w"] for c in cards) >= 0.45 * layout["width"], cards
        assert min(c["size"] for c in cards) >= 120, cards  # px: read from a few metres
        for lang in LANGUAGES:
            set_language(page, lang)
            assert_in_language(page, lang)
            assert_header_is_one_row(page)
        expect(card(page, "a").locator(".card-badge")).to_have_text("SIMULATED")
        set_language(page, "pt-BR")
        # One WebSocket carries the four scales: the page opened one, the service has one.
        assert len(sockets.opened) == 1 and sockets.open() == [
            f"{site.origin.replace('http', 'ws')}/ws"
        ]
        assert get_json(site, "/api/health")["clients"] == 1
        assert watch.errors == [] and watch.csp_violations() == []
    finally:
        page.context.close()


def test_on_a_phone_the_cards_are_one_column(browser: Browser, site: Service) -> None:
    page = open_grid(browser, site, PHONE)
    try:
        expect_live_grid(page)
        layout = page.evaluate(CARD_BOXES)
        cards = layout["cards"]
        assert len({round(c["x"]) for c in cards}) == 1, cards
        assert [c["y"] for c in cards] == sorted(c["y"] for c in cards), cards
        assert layout["scrollWidth"] <= layout["width"], layout
        assert min(c["size"] for c in cards) >= 44, cards
        for lang in LANGUAGES:
            set_language(page, lang)
            assert_in_language(page, lang)
            assert_header_is_one_row(page)
        set_language(page, "pt-BR")
    finally:
        page.context.close()


def scales_now(service: Service) -> dict[str, Any]:
    return {scale["id"]: scale for scale in get_json(service, "/api/scales")["scales"]}


def wait_for_mode(service: Service, scale: str, mode: str) -> dict[str, Any]:
    """/api/scales, once `scale`'s reading is in `mode` (bounded)."""
    deadline = time.monotonic() + 10
    while True:
        now = scales_now(service)
        if now[scale]["reading"]["mode"] == mode or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def on_a_stable_load(page: Page, button: str) -> str:
    """Click `button` on a stable load (the next one when the load moved first): the answer."""
    for _ in range(3):
        page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)
        fresh_answer(page)
        page.click(button)
        answer = wait_for_answer(page)
        if "409" not in answer:
            return answer
        page.wait_for_function(STABLE_ZERO, timeout=CYCLE_MS)
    return answer


def test_a_card_opens_its_scale_whose_tare_and_captures_go_to_that_scale(
    browser: Browser, site: Service
) -> None:
    page = open_grid(browser, site, DESKTOP)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    try:
        expect_live_grid(page)
        card(page, "b").click()
        expect(body(page)).to_have_attribute("data-view", "scale")
        assert page.url.endswith("/#scale=b")
        expect(page.locator("#scale-name")).to_have_text("b")
        expect(page.locator("#back")).to_be_focused()
        expect(page.locator("#grid-view")).to_be_hidden()
        expect(page.locator("#chart")).to_be_visible()
        expect(page.locator("#unit")).to_have_text("kg")
        expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)

        # A tare on b's full view tares b, and only b.
        assert on_a_stable_load(page, "#tare-button") == "Tara feita."
        assert posts[-1] == f"{site.origin}/api/scales/b/tare", posts
        now = wait_for_mode(site, "b", "net")
        assert {scale: now[scale]["reading"]["mode"] for scale in SCALES} == {
            "a": "gross", "b": "net", "c": "gross", "d": "gross"
        }, now  # fmt: skip
        fresh_answer(page)
        page.click("#clear-tare-button")
        assert wait_for_answer(page) == "Tara limpa."
        assert posts[-1] == f"{site.origin}/api/scales/b/clear-tare", posts
        assert wait_for_mode(site, "b", "gross")["b"]["reading"]["mode"] == "gross"

        # A weighing captured there is b's, and b's list shows it.
        page.wait_for_function(STABLE_ZERO, timeout=CYCLE_MS)
        answer = on_a_stable_load(page, "#record")
        assert answer.startswith("Pesagem nº "), answer
        assert posts[-1] == f"{site.origin}/api/scales/b/weighings", posts
        record = site.weighings()[0]
        assert record["scale"] == "b", record
        expect(page.locator(f'#weighings [data-number="{record["number"]}"]')).to_be_visible()

        # Back to the grid (on b's card), and with the keyboard into another scale.
        page.click("#back")
        expect(body(page)).to_have_attribute("data-view", "grid")
        expect(card(page, "b")).to_be_focused()
        card(page, "c").focus()
        page.keyboard.press("Enter")
        expect(body(page)).to_have_attribute("data-view", "scale")
        expect(page.locator("#scale-name")).to_have_text("c")
        expect(page.locator("#unit")).to_have_text("g", timeout=5_000)
        # c has no weighing: b's list is not left on c's view.
        expect(page.locator("#weighings-empty")).to_be_visible(timeout=5_000)
        page.go_back()  # the browser's back button goes back to the grid too
        expect(body(page)).to_have_attribute("data-view", "grid")
    finally:
        page.context.close()


def test_a_card_says_why_its_scale_is_not_live_while_the_others_stay_live(
    browser: Browser,
) -> None:
    """A Prix on a pty beside a simulated scale: missing at start, then plugged and unplugged;
    its card names the state by its code, in both languages, and the other card stays live."""
    scale = PtyScale("prix")  # not plugged: the device is missing when the service starts
    try:
        with running("--scale", "sim=simulator", "--scale", f"pty={scale.spec()}") as service:
            page = open_grid(browser, service, PHONE)
            try:
                expect(body(page)).to_have_attribute("data-view", "grid", timeout=15_000)
                pty, sim = card(page, "pty"), card(page, "sim")
                expect(pty).to_have_attribute("data-connection", "scale-disconnected")
                expect(pty.locator(".card-badge")).to_be_hidden()  # a real scale: no badge
                for code in ("device_not_found", "device_removed"):
                    for lang in LANGUAGES:
                        set_language(page, lang)
                        text = page.evaluate("TEXT")[lang]
                        expect(pty.locator(".card-connection")).to_have_text(
                            text["scale-disconnected"]
                        )
                        expect(pty.locator(".card-reason")).to_have_text(text["states"][code])
                        expect(sim).to_have_attribute("data-connection", "live")
                        assert_in_language(page, lang)
                    set_language(page, "pt-BR")
                    if code == "device_not_found":  # plugged, and live...
                        scale.plug()
                        scale.measurement = Measurement(Decimal("1.250"), "kg", True)
                        expect(pty).to_have_attribute("data-connection", "live", timeout=15_000)
                        expect(pty.locator(".card-value")).to_have_text("1.250")
                        scale.unplug()  # ...then pulled out
                        expect(pty).to_have_attribute("data-connection", "scale-disconnected")
            finally:
                page.context.close()
    finally:
        scale.unplug()
        shutil.rmtree(scale.link.parent, ignore_errors=True)


def test_an_unknown_scale_in_the_address_is_named_over_the_grid(
    browser: Browser, site: Service
) -> None:
    page = open_grid(browser, site, PHONE, "/#scale=zz")
    try:
        expect_live_grid(page)
        for lang in LANGUAGES:
            set_language(page, lang)
            text = page.evaluate("TEXT")[lang]
            expect(page.locator("#scale-notice")).to_have_text(
                text["unknownScale"].replace("{id}", "zz")
            )
            assert_in_language(page, lang)
        set_language(page, "pt-BR")
        page.evaluate("window.location.hash = '#scale=c'")
        expect(body(page)).to_have_attribute("data-view", "scale")
        expect(page.locator("#scale-notice")).to_be_hidden()
        expect(page.locator("#scale-name")).to_have_text("c")
    finally:
        page.context.close()


def test_a_kiosk_pinned_to_a_scale_stays_on_it_across_reloads_and_restarts(
    browser: Browser,
) -> None:
    with running(*FOUR) as service:
        page = browser.new_context(viewport=DESKTOP).new_page()
        sockets = Sockets(page)
        try:
            for _ in range(2):  # as opened, then after a reload
                page.goto(f"{service.origin}/#scale=b")
                expect_pinned(page, "b")
            service.stop()
            expect(body(page)).to_have_attribute("data-connection", "reconnecting", timeout=5_000)
            expect(body(page)).to_have_attribute("data-view", "scale")
            service.start()
            expect_pinned(page, "b")
            # The worker reconnected: one WebSocket open for all the scales, on both ends.
            assert len(sockets.open()) == 1, sockets.open()
            assert get_json(service, "/api/health")["clients"] == 1
        finally:
            page.context.close()


def expect_pinned(page: Page, scale: str) -> None:
    """The full view of `scale`, live, its weight changing."""
    expect(body(page)).to_have_attribute("data-view", "scale", timeout=15_000)
    expect(page.locator("#scale-name")).to_have_text(scale)
    expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)
    expect(page.locator("#unit")).to_have_text(UNITS[scale])
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(page.inner_text("#weight"))
        time.sleep(0.2)
    assert len(seen) >= 2, f"pinned, but the weight is frozen: {seen}"


def test_screenshots_of_the_grid_and_the_pinned_view(
    browser: Browser, site: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shots = []
    for view, address in (("grid", "/"), ("pinned", "/#scale=b")):
        for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page = open_grid(browser, site, viewport, address)
            try:
                if view == "grid":
                    expect_live_grid(page)
                    page.wait_for_function(ALL_LOADED, timeout=2 * CYCLE_MS)
                else:
                    expect_pinned(page, "b")
                    page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)
                path = ARTIFACTS / f"scales-{view}-{size}.png"
                page.wait_for_timeout(300)  # the chart's next redraw
                page.screenshot(path=str(path), full_page=size == "phone")
                shots.append(path)
                assert png_size(path)[0] == viewport["width"]
            finally:
                page.context.close()
    with capsys.disabled():
        print("\nscreenshots:", *shots)
    if os.environ.get("BALANCA_UPDATE_SCREENSHOTS") == "1":  # refresh the README's pictures
        docs = REPO / "docs" / "screenshots"
        for path in shots:
            shutil.copyfile(path, docs / path.name)
