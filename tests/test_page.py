"""The live view in a real headless Chromium, against the real service with its simulator.

Most tests share one service and one page left open for the whole module, as on a kiosk;
the tests that stop, freeze or lock the service, or need a scale on a pty or a database that
can be cut, start their own. The simulator's cycle is 18 s: stable zero (2 s), loading (2 s),
a stable load (8 s), unloading (2 s), zero (4 s).

The page speaks only its own language: every text on screen must be one of web/i18n.js's
texts for the language shown (`assert_in_language`), whatever state the scale and the
database are in and whatever the service refused (`shows_in_both_languages`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import serial

from balanca.reading import Measurement
from tests.child import free_port
from tests.pagebase import (
    ARTIFACTS,
    REPO,
    Browser,
    DatabaseProxy,
    Page,
    PageWatch,
    Service,
    chromium,
    expect,
    mariadb,
    running,
)
from tests.ptyscale import PtyScale

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
HEAVY_LOAD = """() => document.body.dataset.connection === "live"
    && document.body.dataset.stable === "true" && document.body.dataset.status === "ok"
    && Number(document.getElementById("weight").textContent) > 1000"""
IN_MOTION = """() => document.body.dataset.connection === "live"
    && document.body.dataset.stable === "false" """
SERVICE_ANSWER = re.compile(
    r"^(Tara feita\.|Balança zerada\.|Tara limpa\.)$|^Recusado \((409|501|503)\): .+$"
)
LANGUAGES = ("pt-BR", "en")
SUBMIT = """() => document.getElementById("weigh-form").requestSubmit()"""
# Every text the operator can see or hear: visible text nodes (screen-reader-only ones too),
# labels and the title; the weight, its unit, the weighings' rows, the key's fingerprint and
# what the page marks translate="no" (a scale's id, a card's weight) are data, not words.
ON_SCREEN = """() => {
  const data = ["#weight", "#unit", "#weighings", "#fingerprint", '[translate="no"]'];
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.trim();
    const el = node.parentElement;
    if (text && el.checkVisibility() && !data.some((id) => el.closest(id))) texts.push(text);
  }
  for (const el of document.querySelectorAll("[aria-label]")) {
    if (el.checkVisibility()) texts.push(el.getAttribute("aria-label"));
  }
  texts.push(document.title);
  return texts;
}"""
# Words of the server's English reasons and details (and of 0.1's page, which showed them),
# never on the Portuguese page; and Portuguese words never on the English one.
FOREIGN_WORDS = {
    "pt-BR": re.compile(
        r"\b(the|scale|frames?|connection|closed|cleanly|database|unavailable|weighing|needs|"
        r"stable|device|removed|found|refused|error|tared|zeroed|cleared|lost|waiting|stale|"
        r"motion|not|supported|OperationalError|MySQL)\b",
        re.IGNORECASE,
    ),
    "en": re.compile(
        r"(balança|pesagem|conexão|banco|dados|recusad|aguard|leitura|não|feit|zerad|limp|"
        r"movimento|desconectad|dispositivo)",
        re.IGNORECASE,
    ),
}
HEADER_ROW = """() => {
  const items = [...document.querySelector("header.bar").children]
    .filter((el) => el.checkVisibility() && el.getBoundingClientRect().width > 1);
  const boxes = items.map((el) => el.getBoundingClientRect());
  return {
    items: items.map((el) => el.id || el.className),
    shareARow: Math.max(...boxes.map((b) => b.top)) < Math.min(...boxes.map((b) => b.bottom)),
    right: Math.max(...boxes.map((b) => b.right)),
    width: document.documentElement.clientWidth,
    scrollWidth: document.documentElement.scrollWidth,
  };
}"""
ASKED_OR_ANSWERED = """() => document.getElementById("token-dialog").open
    || document.getElementById("answer").textContent !== "" """
Expected = dict[str, "str | Callable[[dict[str, Any]], str]"]


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


def say(text: dict[str, Any], key: str, **params: object) -> str:
    """web/i18n.js's text at `key` ("codes.tared") in one language's table, filled in."""
    value: Any = text
    for part in key.split("."):
        value = value[part]
    assert isinstance(value, str), key
    for name, param in params.items():
        value = value.replace(f"{{{name}}}", str(param))
    return value


def refusal(status: int, code: str) -> Callable[[dict[str, Any]], str]:
    """The answer line for a refusal with HTTP `status` and machine `code`."""
    return lambda text: f"{say(text, 'refused', status=status)} {say(text, 'codes.' + code)}"


def templates(table: dict[str, Any]) -> Iterator[re.Pattern[str]]:
    """Every text of a language's table as a pattern, its `{placeholders}` matching anything."""
    for value in table.values():
        if isinstance(value, dict):
            yield from templates(value)
        else:
            parts = re.split(r"\{\w+\}", value)
            yield re.compile(".+".join(re.escape(part) for part in parts))


def assert_in_language(page: Page, lang: str) -> None:
    """Every text on screen is one of the page's own texts in `lang`, with no word of the
    server's English (or, in English, of Portuguese) slipped in through a placeholder."""
    table = page.evaluate("TEXT")[lang]
    patterns = list(templates(table))
    shown = [text for text in page.evaluate(ON_SCREEN) if text not in ("—", "----")]
    untranslated = [text for text in shown if not any(p.fullmatch(text) for p in patterns)]
    assert untranslated == [], f"not in {lang}'s texts: {untranslated}"
    foreign = [text for text in shown if FOREIGN_WORDS[lang].search(text)]
    assert foreign == [], f"foreign words on the {lang} page: {foreign}"


def assert_header_is_one_row(page: Page) -> None:
    header = page.evaluate(HEADER_ROW)
    assert header["shareARow"], f"the header wraps: {header}"
    assert header["right"] <= header["width"] and header["scrollWidth"] <= header["width"], header


def set_language(page: Page, lang: str) -> None:
    if page.get_attribute("html", "lang") != lang:
        page.click("#language")
    expect(page.locator("html")).to_have_attribute("lang", lang)


def shows_in_both_languages(page: Page, expected: Expected) -> None:
    """The page shows `expected` (selector: i18n key, or a function of the language's table)
    in Portuguese and, after the switch, in English, with nothing else untranslated and the
    header on one row; then it is switched back to Portuguese."""
    for lang in LANGUAGES:
        set_language(page, lang)
        text = page.evaluate("TEXT")[lang]
        for selector, key in expected.items():
            want = key(text) if callable(key) else say(text, key) if key else ""
            expect(page.locator(selector)).to_have_text(want, timeout=15_000)
        assert_in_language(page, lang)
        assert_header_is_one_row(page)
    set_language(page, "pt-BR")


def submit_weighing(page: Page) -> None:
    """Submit the weighing form as a click racing the scale would: the page has disabled the
    button, the service must refuse it on its own."""
    fresh_answer(page)
    page.evaluate(SUBMIT)


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


def get_json(service: Service, path: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{service.origin}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def post_json(service: Service, path: str, body: Any, token: str) -> tuple[int, Any]:
    """POST `body` with the write `token`: (status, JSON answer), refusals included."""
    request = urllib.request.Request(
        f"{service.origin}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def newest_number(service: Service) -> int:
    """The newest record's number (0 before the first)."""
    weighings = service.weighings()
    return int(weighings[0]["number"]) if weighings else 0


def record_a_new_load(page: Page, fields: dict[str, str] | None = None) -> str:
    """Click "Registrar pesagem" on a load the scale has shown no capture of (it was seen
    empty first: the same-load rule), typing `fields` (selector: text) first; the answer.
    Retried on the next load when the load moved between the page's check and the click."""
    for _ in range(3):
        page.wait_for_function(STABLE_ZERO, timeout=CYCLE_MS)
        page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)
        expect(page.locator("#record")).to_be_enabled()
        expect(page.locator("#record-why")).to_be_empty()
        for selector, text in (fields or {}).items():
            page.fill(selector, "")
            page.locator(selector).press_sequentially(text)  # typed, key by key
        fresh_answer(page)
        page.click("#record")
        answer = wait_for_answer(page)
        if "409" not in answer:
            return answer
    return answer


def row(page: Page, number: int) -> Any:
    return page.locator(f'#weighings tr[data-number="{number}"]')


def test_a_weighing_recorded_with_the_button_appears_in_the_table(kiosk: Kiosk) -> None:
    page = kiosk.page
    page.locator("#plate").press_sequentially("abc-1234")
    expect(page.locator("#plate")).to_have_value("ABC-1234")  # upper-cased as typed
    answer = record_a_new_load(page, {"#plate": "abc-1234", "#reference": "Lote 7"})
    stored = kiosk.service.weighings()[0]
    assert answer == (
        f"Pesagem nº {stored['number']} registrada: {stored['weight']} {stored['unit']}"
    )
    assert (stored["kind"], stored["plate"], stored["reference"]) == (
        "weighing",
        "ABC1234",
        "Lote 7",
    )
    first_row = page.locator("#weighings tr").first
    expect(first_row).to_have_attribute("data-number", str(stored["number"]))
    cells = first_row.locator("td")
    expect(cells.nth(0)).to_have_text(f"{stored['number']}pesagem")  # the number over its kind
    expect(cells.nth(2)).to_have_text("ABC1234Lote 7")
    expect(cells.nth(3)).to_have_text(f"{stored['weight']} {stored['unit']}")
    # The seal: the hash's first characters, all of it in the title.
    hash_code = cells.nth(4).locator("code")
    expect(hash_code).to_have_text(stored["hash"][:10])
    expect(hash_code).to_have_attribute("title", stored["hash"])
    expect(cells.nth(5).locator("button")).to_have_text("Anular")
    expect(page.locator("#weighings-empty")).to_be_hidden()
    expect(page.locator("#reference")).to_have_value("")
    expect(page.locator("#plate")).to_have_value("")
    set_language(page, "en")
    expect(cells.nth(0)).to_have_text(f"{stored['number']}weighing")
    expect(page.locator("#answer")).to_have_text(
        f"Weighing no. {stored['number']} recorded: {stored['weight']} {stored['unit']}"
    )
    set_language(page, "pt-BR")


def test_a_plate_that_is_not_letters_and_digits_is_refused_before_it_is_sent(
    kiosk: Kiosk,
) -> None:
    page = kiosk.page
    posts: list[str] = []

    def note(request: Any) -> None:
        if request.method == "POST":
            posts.append(request.url)

    page.on("request", note)
    try:
        page.fill("#plate", "abc/12")
        fresh_answer(page)
        page.evaluate(SUBMIT)
        expect(page.locator("#answer")).to_have_text("Placa: de 1 a 10 letras e números.")
        expect(page.locator("#plate")).to_be_focused()
    finally:
        page.remove_listener("request", note)
        page.fill("#plate", "")
    assert posts == []


def test_a_record_voided_with_a_reason_shows_as_voided_by_its_void(kiosk: Kiosk) -> None:
    page = kiosk.page
    answer = record_a_new_load(page)
    assert answer.startswith("Pesagem nº "), answer
    number = newest_number(kiosk.service)
    fresh_answer(page)
    row(page, number).locator("button", has_text="Anular").click()
    dialog = page.locator("#void-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#void-heading")).to_have_text(f"Anular a pesagem nº {number}")
    dialog.locator("button[value=ok]").click()  # no reason: the dialog stays and says why
    expect(page.locator("#void-why")).to_have_text("Diga o motivo da anulação.")
    expect(dialog).to_be_visible()
    page.fill("#void-reason", "  Placa trocada  ")
    dialog.locator("button[value=ok]").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#answer")).to_have_text(
        f"Pesagem nº {number} anulada (anulação nº {number + 1})."
    )
    voided, void = get_json(kiosk.service, f"/api/weighings/{number}"), kiosk.service.weighings()[0]
    assert voided["voided_by"] == number + 1, voided
    assert (void["number"], void["kind"], void["voids"], void["reason"]) == (
        number + 1, "void", number, "Placa trocada"
    )  # fmt: skip
    voided_row = row(page, number)
    expect(voided_row).to_have_class(re.compile(r"\bvoided\b"))
    expect(voided_row).to_contain_text(f"anulada por nº {number + 1}")
    expect(voided_row.locator("button")).to_have_count(0)  # a voided record is not voided twice
    struck = voided_row.locator(".record-number").evaluate(
        "el => getComputedStyle(el).textDecorationLine"
    )
    assert "line-through" in struck, struck
    void_row = row(page, number + 1)
    expect(void_row.locator("td").nth(0)).to_have_text(f"{number + 1}anulação")
    expect(void_row).to_contain_text(f"anula nº {number}: Placa trocada")
    expect(void_row.locator("button")).to_have_count(0)  # nor is a void
    set_language(page, "en")
    expect(voided_row).to_contain_text(f"voided by no. {number + 1}")
    expect(page.locator("#answer")).to_have_text(
        f"Weighing no. {number} voided (void no. {number + 1})."
    )
    set_language(page, "pt-BR")


def test_the_footer_shows_the_fingerprint_of_the_key_that_signs_the_records(kiosk: Kiosk) -> None:
    page = kiosk.page
    key = get_json(kiosk.service, "/api/weighings/key")
    fingerprint = key["fingerprint"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", fingerprint), key
    summary = page.locator("footer #key-short")
    expect(summary).to_have_text(f"Chave de assinatura: {fingerprint[:23]}…")
    expect(summary).to_have_attribute("title", fingerprint)
    full = page.locator("footer #fingerprint")
    expect(full).to_be_hidden()
    summary.click()  # the whole of it, to compare with the one you were given
    expect(full).to_be_visible()
    expect(full).to_have_text(fingerprint)
    set_language(page, "en")
    expect(summary).to_have_text(f"Signing key: {fingerprint[:23]}…")
    set_language(page, "pt-BR")
    summary.click()
    expect(full).to_be_hidden()


def test_the_same_load_is_refused_and_weigh_again_records_it_on_purpose(kiosk: Kiosk) -> None:
    page = kiosk.page
    for _ in range(3):  # all three clicks on one load: a load that moves first is tried again
        first = record_a_new_load(page)
        assert first.startswith("Pesagem nº "), first
        number = newest_number(kiosk.service)
        fresh_answer(page)
        page.evaluate(SUBMIT)
        if wait_for_answer(page) != "Recusado (409): Esta carga já foi registrada.":
            continue
        shows_in_both_languages(
            page, {"#answer": refusal(409, "same_load"), "#again": "weighAgain"}
        )
        fresh_answer(page)
        page.click("#again")
        expect(page.locator("#again")).to_be_hidden()
        if "409" not in wait_for_answer(page):
            break
    again = kiosk.service.weighings()[0]
    assert again["number"] == number + 1 and again["again"] is True, again
    assert get_json(kiosk.service, f"/api/weighings/{number}")["again"] is False
    expect(page.locator("#answer")).to_have_text(
        f"Pesagem nº {number + 1} registrada: {again['weight']} {again['unit']}"
    )
    expect(row(page, number + 1)).to_contain_text("mesma carga, pesada novamente")
    expect(row(page, number)).not_to_contain_text("mesma carga")


def test_a_double_click_on_record_makes_one_record_with_one_idempotency_key(
    kiosk: Kiosk,
) -> None:
    page = kiosk.page
    sent: list[Any] = []

    def note(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/api/weighings"):
            sent.append(request)

    for _ in range(3):
        page.wait_for_function(STABLE_ZERO, timeout=CYCLE_MS)
        page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)
        before = newest_number(kiosk.service)
        fresh_answer(page)
        page.on("request", note)
        try:
            page.dblclick("#record")
            answer = wait_for_answer(page)
            for request in sent:  # every one of them answered
                assert request.response() is not None, request.failure
        finally:
            page.remove_listener("request", note)
        if "409" not in answer:
            break
        sent.clear()
    assert answer.startswith(f"Pesagem nº {before + 1} "), answer
    assert [w["number"] for w in kiosk.service.weighings() if w["number"] > before] == [before + 1]
    keys = {request.headers.get("idempotency-key") for request in sent}
    assert len(keys) == 1 and None not in keys, keys


def test_a_capture_retried_after_a_network_error_is_one_record(
    browser: Browser, kiosk: Kiosk
) -> None:
    """The first answer is lost on its way back (the service made the record): the page says
    the service was out of reach, and sending again gets the first answer, not a second
    record, because it carries the same Idempotency-Key."""
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        page.goto(f"{kiosk.service.origin}/")
        keys: list[str | None] = []

        def lose_the_answer(route: Any) -> None:
            keys.append(route.request.headers.get("idempotency-key"))
            route.fetch()  # the service gets it and answers...
            route.abort("connectionreset")  # ...and the page never hears

        for attempt in range(3):  # each its own body: a refusal is a final answer to its key
            page.wait_for_function(STABLE_ZERO, timeout=CYCLE_MS)
            page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)
            before = newest_number(kiosk.service)
            page.fill("#reference", f"tentativa {attempt}")
            page.route("**/api/weighings", lose_the_answer, times=1)
            fresh_answer(page)
            page.click("#record")
            expect(page.locator("#answer")).to_have_text("Serviço inalcançável: verifique a rede.")
            if newest_number(kiosk.service) == before + 1:
                break  # made (a load that moved first was refused: try the next)
            keys.clear()
        record = kiosk.service.weighings()[0]
        assert record["reference"] == f"tentativa {attempt}", record

        def note(request: Any) -> None:
            if request.method == "POST" and request.url.endswith("/api/weighings"):
                keys.append(request.headers.get("idempotency-key"))

        page.on("request", note)
        submit_weighing(page)  # again, whatever the scale shows now
        expect(page.locator("#answer")).to_have_text(
            f"Pesagem nº {record['number']} registrada: {record['weight']} {record['unit']}"
        )
        assert newest_number(kiosk.service) == record["number"]
        assert len(keys) >= 2 and keys[0] is not None and set(keys) == {keys[0]}, keys
    finally:
        context.close()


def test_a_fresh_idempotency_key_is_made_without_crypto_random_uuid(kiosk: Kiosk) -> None:
    """Plain http on the LAN is not a secure context: no crypto.randomUUID there."""
    keys = kiosk.page.evaluate(
        """() => {
        const randomUUID = Crypto.prototype.randomUUID;
        delete Crypto.prototype.randomUUID;
        try {
          return [typeof crypto.randomUUID, newKey(), newKey()];
        } finally {
          Crypto.prototype.randomUUID = randomUUID;
        }
      }"""
    )
    uuid4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert keys[0] == "undefined" and keys[1] != keys[2], keys
    assert all(uuid4.fullmatch(key) for key in keys[1:]), keys


def test_in_motion_recording_is_disabled_with_the_reason_and_the_service_refuses_it(
    kiosk: Kiosk,
) -> None:
    page = kiosk.page
    page.wait_for_function(IN_MOTION, timeout=CYCLE_MS)
    expect(page.locator("#record")).to_be_disabled()
    expect(page.locator("#record-why")).to_have_text("Aguarde o peso estabilizar.")
    for _ in range(3):
        page.wait_for_function(IN_MOTION, timeout=CYCLE_MS)
        submit_weighing(page)
        answer = wait_for_answer(page)
        if "409" in answer:
            break
        page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)  # it had settled: try next motion
    # The service's code in the page's words; its English detail stays in the console.
    assert answer == "Recusado (409): Balança em movimento: uma pesagem precisa de peso estável."
    expect(page.locator("#answer")).to_have_attribute("data-tone", "error")
    set_language(page, "en")
    expect(page.locator("#answer")).to_have_text(
        "Refused (409): Scale in motion: a weighing needs a stable weight."
    )
    set_language(page, "pt-BR")


def test_an_empty_scale_disables_recording_and_the_service_refuses_it_below_minimum(
    kiosk: Kiosk,
) -> None:
    page = kiosk.page
    for _ in range(3):
        page.wait_for_function(STABLE_ZERO, timeout=CYCLE_MS)
        expect(page.locator("#record")).to_be_disabled()
        expect(page.locator("#record-why")).to_have_text("Nada sobre a balança para registrar.")
        submit_weighing(page)  # a click racing the scale
        answer = wait_for_answer(page)
        if "em movimento" not in answer:  # the load may arrive between the check and the submit
            break
    shows_in_both_languages(page, {"#answer": refusal(409, "below_minimum")})


def test_tare_zero_and_clear_tare_show_the_services_answer_in_the_pages_words(
    kiosk: Kiosk,
) -> None:
    page = kiosk.page
    expect(page.locator("#clear-tare-button")).to_have_text("Limpar tara")
    for button, done in (
        ("#tare-button", "Tara feita."),
        ("#zero-button", "Balança zerada."),
        ("#clear-tare-button", "Tara limpa."),
    ):
        page.wait_for_function(STABLE_ZERO, timeout=CYCLE_MS)  # harmless on an empty platform
        fresh_answer(page)
        page.click(button)
        assert wait_for_answer(page) == done
    set_language(page, "en")
    expect(page.locator("#answer")).to_have_text("Tare cleared.")
    expect(page.locator("#clear-tare-button")).to_have_text("Clear tare")
    set_language(page, "pt-BR")


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
    page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)  # "Registrar pesagem" is enabled
    focus = """() => {
      const el = document.activeElement;
      return el.dataset.void ? `void ${el.dataset.void}` : el.id || el.tagName;
    }"""
    page.keyboard.press("Tab")
    focused = [page.evaluate(focus)]
    for _ in range(60):  # once round the page, back where it started
        page.keyboard.press("Tab")
        focused.append(page.evaluate(focus))
        if focused[-1] == focused[0]:
            break
    controls = {
        *("language", "plate", "reference", "record", "tare-button", "zero-button"),
        *("clear-tare-button", "key-short"),
        *(
            f"void {n}"
            for n in page.eval_on_selector_all("[data-void]", "b => b.map(x => x.dataset.void)")
        ),
    }
    assert controls <= set(focused), focused


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


@contextmanager
def locked_service() -> Iterator[Service]:
    """A service that reads with `reader-secret` and writes with `writer-secret`."""
    secrets = Path(tempfile.mkdtemp(prefix="balanca-tokens-"))
    (secrets / "read").write_text("reader-secret\n")
    (secrets / "write").write_text("writer-secret\n")
    locked = ("--read-token-file", str(secrets / "read"), "--token-file", str(secrets / "write"))
    try:
        with running(*locked) as service:
            yield service
    finally:
        shutil.rmtree(secrets, ignore_errors=True)


def test_a_locked_service_asks_for_the_token_once_and_the_tab_keeps_it(browser: Browser) -> None:
    with locked_service() as service:
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


def test_a_void_asks_for_the_write_token_and_a_record_voided_meanwhile_is_refused_in_words(
    browser: Browser,
) -> None:
    """A locked service: the page reads with the read token, and its void asks for the write
    token once. A record another station voids while this page's dialog is open is refused
    (already_void) in the page's words."""
    with locked_service() as service:
        deadline = time.monotonic() + CYCLE_MS / 1000
        captured: list[Any] = []
        while len(captured) < 2 and time.monotonic() < deadline:  # on a stable load
            status, answer = post_json(service, "/api/weighings", {"again": True}, "writer-secret")
            if status == 201:
                captured.append(answer)
            else:  # not a stable load yet, or the store still starting (503)
                assert status in (409, 503), answer
                time.sleep(0.2)
        first, second = (record["number"] for record in captured)
        context = browser.new_context(viewport=DESKTOP)
        try:
            page = context.new_page()
            page.goto(f"{service.origin}/")
            sign_in(page, "reader-secret")
            expect(row(page, second).locator("button")).to_have_text("Anular")
            row(page, first).locator("button").click()
            page.fill("#void-reason", "Pesagem de teste")
            page.click("#void-dialog button[value=ok]")
            sign_in(page, "writer-secret")  # the read token cannot write: asked once
            expect(page.locator("#answer")).to_have_text(
                f"Pesagem nº {first} anulada (anulação nº {second + 1})."
            )
            expect(row(page, first)).to_contain_text(f"anulada por nº {second + 1}")

            row(page, second).locator("button").click()
            status, _ = post_json(
                service, f"/api/weighings/{second}/void", {"reason": "outro"}, "writer-secret"
            )
            assert status == 201
            page.fill("#void-reason", "Pesagem de teste")
            page.click("#void-dialog button[value=ok]")
            shows_in_both_languages(page, {"#answer": refusal(409, "already_void")})
            expect(row(page, second)).to_contain_text(f"anulada por nº {second + 2}")
            expect(page.locator("#token-dialog")).not_to_have_attribute("open", "")
        finally:
            context.close()


def sign_in(page: Page, token: str) -> None:
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible(timeout=10_000)
    page.fill("#token-input", token)
    page.click("#token-dialog button[value=ok]")
    expect(dialog).to_be_hidden()


# The machine codes the service may send (DESIGN.md, README "HTTP API"): each needs its text.
API_CODES = {
    *("unauthorized", "forbidden_origin", "not_found", "method_not_allowed", "request_timeout"),
    *("payload_too_large", "headers_too_large", "bad_request", "rate_limited", "no_reading"),
    *("scale_stale", "scale_disconnected", "scale_not_live", "scale_in_motion", "scale_status"),
    *("same_load", "below_minimum", "command_unsupported", "command_timeout", "scale_busy"),
    *("scale_refused", "zero_out_of_range", "db_unavailable", "db_error", "internal_error"),
    *("already_void", "part_of_transaction", "idempotency_key_reused", "scale_required"),
}
REPLY_CODES = {"tared", "zeroed", "tare_cleared"}
STATE_CODES = {
    *("connecting", "waiting", "live", "no_frames", "device_removed", "device_not_found"),
    *("device_busy", "connection_lost", "connection_refused", "open_failed"),
}
DB_CODES = {"ok", "db_unavailable", "db_slow"}
KINDS = {"weighing", "in", "out", "tare", "void"}


def test_both_languages_have_a_text_for_every_code_and_the_same_keys(kiosk: Kiosk) -> None:
    text = kiosk.page.evaluate("TEXT")

    def keys(table: dict[str, Any], prefix: str = "") -> set[str]:
        return {
            name
            for key, value in table.items()
            for name in (
                keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
            )
        }

    assert keys(text["pt-BR"]) == keys(text["en"])
    for lang in LANGUAGES:
        assert set(text[lang]["codes"]) == API_CODES | REPLY_CODES, lang
        assert set(text[lang]["states"]) == STATE_CODES, lang
        assert set(text[lang]["db"]) == DB_CODES, lang
        assert set(text[lang]["kinds"]) == KINDS, lang
        assert set(text[lang]["voidCodes"]) <= API_CODES, lang
        for words in templates(text[lang]):  # no foreign word in the tables themselves
            assert not FOREIGN_WORDS[lang].search(words.pattern), (lang, words.pattern)
    # A capture while the database is away says so plainly (issue 15).
    assert (
        text["pt-BR"]["codes"]["db_unavailable"]
        .lower()
        .startswith("banco de dados fora do ar: pesagem não registrada")
    )
    assert (
        text["en"]["codes"]["db_unavailable"]
        .lower()
        .startswith("database down: weighing not recorded")
    )


def test_a_zero_refused_by_the_indicator_reads_in_either_language(kiosk: Kiosk) -> None:
    """The simulated truck scale zeroes within ±900 kg of its power-up zero only."""
    page = kiosk.page
    page.wait_for_function(HEAVY_LOAD, timeout=3 * CYCLE_MS)
    fresh_answer(page)
    page.click("#zero-button")
    shows_in_both_languages(page, {"#answer": refusal(409, "zero_out_of_range")})


def test_a_code_the_page_does_not_know_shows_as_unexpected_naming_the_code(kiosk: Kiosk) -> None:
    page = kiosk.page  # a newer service may send codes this page has no words for
    page.evaluate("""() => showCode("error", "flux_capacitor", 500)""")
    expect(page.locator("#answer")).to_have_text(
        "Recusado (500): Erro inesperado (código flux_capacitor)"
    )
    set_language(page, "en")
    expect(page.locator("#answer")).to_have_text(
        "Refused (500): Unexpected error (code flux_capacitor)"
    )
    set_language(page, "pt-BR")


def test_the_phone_header_is_one_row_in_both_languages(browser: Browser, kiosk: Kiosk) -> None:
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(f"{kiosk.service.origin}/")
        expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)
        expect(page.locator("#database")).to_be_visible(timeout=15_000)
        expect(page.locator("#simulated")).to_be_visible()
        for lang in LANGUAGES:
            set_language(page, lang)
            assert_header_is_one_row(page)
            assert_in_language(page, lang)
    finally:
        context.close()


def test_every_scale_state_and_refusal_reads_in_either_language(browser: Browser) -> None:
    """A prix scale on a pty (polled, no commands): missing at start, plugged but silent,
    live, in motion, stale and unplugged, each with what the service refuses then."""
    scale = PtyScale("prix")  # not plugged yet: the device is missing when the service starts
    stable = Measurement(Decimal("1.250"), "kg", True)
    try:
        with running("--scale", scale.spec(), "--stale-after", "6") as service:
            context = browser.new_context(viewport=PHONE)
            try:
                page = context.new_page()
                watch = PageWatch(page)
                page.goto(f"{service.origin}/")
                not_live: Expected = {
                    "#connection-text": "scale-disconnected",
                    "#record-why": "recordNotLive",
                }
                shows_in_both_languages(
                    page, {**not_live, "#reason": "states.device_not_found", "#answer": ""}
                )
                page.click("#zero-button")
                shows_in_both_languages(page, {"#answer": refusal(503, "scale_disconnected")})

                scale.plug()  # connected, no frame yet (for up to --stale-after)
                shows_in_both_languages(
                    page, {"#connection-text": "waiting", "#reason": "states.waiting"}
                )

                scale.measurement = stable
                shows_in_both_languages(
                    page, {"#connection-text": "live", "#reason": "", "#record-why": ""}
                )
                for button in ("#tare-button", "#clear-tare-button"):
                    page.click(button)  # prix has neither: the button goes away
                    shows_in_both_languages(page, {"#answer": refusal(501, "command_unsupported")})
                    expect(page.locator(button)).to_be_hidden()
                expect(page.locator("#zero-button")).to_be_visible()

                # In motion a Prix shows no weight at all (IIIII): the guards look at the
                # motion before the status, so the refusal is scale_in_motion.
                scale.measurement = Measurement(Decimal("1.300"), "kg", False)
                shows_in_both_languages(page, {"#record-why": "recordInMotion"})
                expect(page.locator("#record")).to_be_disabled()
                submit_weighing(page)
                shows_in_both_languages(page, {"#answer": refusal(409, "scale_in_motion")})

                scale.measurement = None  # the scale stops answering polls
                shows_in_both_languages(
                    page,
                    {"#connection-text": "stale", "#reason": "states.no_frames",
                     "#record-why": "recordNotLive"},
                )  # fmt: skip
                submit_weighing(page)
                shows_in_both_languages(page, {"#answer": refusal(409, "scale_not_live")})

                scale.unplug()
                shows_in_both_languages(page, {**not_live, "#reason": "states.device_removed"})
                # What the server said in English is kept for whoever debugs, in the console.
                assert not [e for e in watch.errors if e.startswith("uncaught")], watch.errors
            finally:
                context.close()
    finally:
        scale.unplug()
        shutil.rmtree(scale.link.parent, ignore_errors=True)


def test_the_database_state_is_shown_and_recording_waits_for_it(browser: Browser) -> None:
    """MariaDB through a proxy the test cuts: the header says so with the backlog, "Registrar
    pesagem" is disabled with the reason, and a weighing the service is asked for anyway is
    refused with db_unavailable in the page's words; a wrong token is refused as such."""
    secrets = Path(tempfile.mkdtemp(prefix="balanca-tokens-"))
    (secrets / "write").write_text("writer-secret\n")
    proxy = DatabaseProxy()
    try:
        with mariadb() as name:
            db = f"mysql://root@127.0.0.1:{proxy.port}/{name}"
            locked = ("--token-file", str(secrets / "write"))
            with running("--db", db, "--record", "all", *locked) as service:
                context = browser.new_context(viewport=PHONE)
                try:
                    page = context.new_page()
                    page.goto(f"{service.origin}/")
                    expect(body(page)).to_have_attribute("data-connection", "live", timeout=15_000)
                    shows_in_both_languages(page, {"#database-text": "db.ok"})
                    expect(body(page)).to_have_attribute("data-db", "ok")

                    page.click("#zero-button")
                    sign_in(page, "not-the-token")
                    shows_in_both_languages(page, {"#answer": refusal(401, "unauthorized")})

                    proxy.cut()
                    shows_in_both_languages(
                        page,
                        {"#database-text": "db.db_unavailable", "#record-why": "recordNoDatabase"},
                    )
                    expect(body(page)).to_have_attribute("data-db", "degraded")
                    expect(page.locator("#record")).to_be_disabled()
                    # Readings wait in the backlog meanwhile, and the header counts them.
                    backlog = re.compile(r"^(1 leitura|(?!1 )[1-9]\d* leituras) na fila$")
                    expect(page.locator("#database-backlog")).to_have_text(backlog)
                    # Asked anyway (a racing click), the service refuses: no database.
                    for _ in range(3):
                        page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)
                        submit_weighing(page)
                        page.wait_for_function(ASKED_OR_ANSWERED, timeout=10_000)
                        if page.locator("#token-dialog").is_visible():
                            sign_in(page, "writer-secret")  # the wrong one was forgotten
                        answer = wait_for_answer(page)
                        if "409" not in answer:  # the load may move between check and submit
                            break
                    shows_in_both_languages(page, {"#answer": refusal(503, "db_unavailable")})

                    proxy.restore()
                    shows_in_both_languages(page, {"#database-text": "db.ok"})
                    page.wait_for_function(STABLE_LOAD, timeout=CYCLE_MS)
                    expect(page.locator("#record")).to_be_enabled()
                finally:
                    context.close()
    finally:
        proxy.close()
        shutil.rmtree(secrets, ignore_errors=True)


@contextmanager
def unreachable_scale(code: str) -> Iterator[str]:
    """A `--scale` spec the service cannot open, for the reason `code` names."""
    if code == "connection_refused":
        yield f"tcp:127.0.0.1:{free_port()}:protocol=toledo"  # nothing listens there
        return
    scale = PtyScale("prix").plug()
    other = serial.Serial(str(scale.link), exclusive=True)  # another program holds the port
    try:
        yield scale.spec()
    finally:
        other.close()
        scale.unplug()
        shutil.rmtree(scale.link.parent, ignore_errors=True)


@pytest.mark.parametrize("code", ["connection_refused", "device_busy"])
def test_a_scale_that_cannot_be_opened_is_named_in_either_language(
    browser: Browser, code: str
) -> None:
    with unreachable_scale(code) as spec, running("--scale", spec) as service:
        context = browser.new_context(viewport=PHONE)
        try:
            page = context.new_page()
            page.goto(f"{service.origin}/")
            shows_in_both_languages(
                page,
                {"#connection-text": "scale-disconnected",
                 "#reason": f"states.{code}", "#record-why": "recordNotLive"},
            )  # fmt: skip
        finally:
            context.close()
