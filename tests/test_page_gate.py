"""The gate (web/gate.js) in a real headless Chromium, against the real service reading a
truck scale on a pty: a Weightech WT1000 answering the service's polls with the load the test
puts on it, so a truck drives on, settles, moves and leaves when the test says.

The operator's day at the gate: a plate typed in lower case with a dash shows upper-cased,
"Entrada" weighs the truck in and lists it in the yard with how long it has been there,
"Saída" (Enter, for a plate in the yard) weighs it out, shows the net large and "Imprimir
ticket" opens the ticket; the guards' refusals, the same-load question, a plate checked before
it is sent, the one pass against a stored tare and a void with its reason, in Portuguese and in
English, with one Idempotency-Key per action; the keyboard, a 1920×1080 kiosk and a phone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from balanca.reading import Measurement
from tests import test_page
from tests.pagebase import ARTIFACTS, REPO, Page, PageWatch, Service, expect, running
from tests.ptyscale import PtyScale
from tests.test_page import (
    DESKTOP,
    LANGUAGES,
    PHONE,
    png_size,
    say,
    set_language,
    shows_in_both_languages,
    sign_in,
)

browser = test_page.browser  # the module's Chromium (a fixture)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TRUCK = "#gate-open .gate-truck[data-plate='{}']"
HEAVY_ON_SCREEN = """() => document.body.dataset.connection === "live"
    && document.body.dataset.stable === "true"
    && Number(document.getElementById("weight").textContent) > 1000"""
GATE_ACTION = re.compile(r"/api/(scales/[^/]+/transactions|transactions/\d+/(close|void))$")


@dataclass
class Gate:
    service: Service
    scale: PtyScale
    page: Page
    watch: PageWatch


@pytest.fixture(scope="module")
def gate(browser: Any) -> Iterator[Gate]:
    """The service reading the pty scale (empty at start), and a page on its gate tab."""
    scale = PtyScale("wt1000").plug()
    scale.measurement = load("0")
    try:
        with running("--scale", scale.spec()) as service:
            context = browser.new_context(viewport=DESKTOP)
            page = context.new_page()
            watch = PageWatch(page)
            page.goto(f"{service.origin}/")
            page.click("#desk-gate")
            expect(page.locator("#gate-panel")).to_be_visible()
            expect(page.locator("body")).to_have_attribute(
                "data-connection", "live", timeout=15_000
            )
            yield Gate(service, scale, page, watch)
            context.close()
    finally:
        scale.unplug()
        shutil.rmtree(scale.link.parent, ignore_errors=True)


def load(weight: str, stable: bool = True) -> Measurement:
    return Measurement(Decimal(weight), "kg", stable, tare=Decimal(0))


def call(service: Service, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """The service's own answer (status, JSON), refusals included."""
    request = urllib.request.Request(
        f"{service.origin}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def put_load(gate: Gate, weight: str, stable: bool = True) -> None:
    """Put `weight` on the scale and wait until the service reads it."""
    gate.scale.measurement = load(weight, stable)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, reading = call(gate.service, "GET", "/api/weight")
        if status == 200 and (reading["weight"], reading["stable"]) == (weight, stable):
            return
        time.sleep(0.1)
    raise AssertionError(f"the service did not read {weight} kg (stable: {stable})")


def new_truck(gate: Gate, weight: str) -> None:
    """An empty scale, then `weight` on it: a new load for the same-load rule."""
    put_load(gate, "0")
    put_load(gate, weight)


def open_transactions(gate: Gate, plate: str) -> list[dict[str, Any]]:
    """The open transactions of `plate` (of every plate: "")."""
    where = f"&plate={plate}" if plate else ""
    status, listed = call(gate.service, "GET", f"/api/transactions?state=open{where}")
    assert status == 200, listed
    return list(listed["transactions"])


def type_plate(page: Page, text: str) -> None:
    page.fill("#gate-plate", "")
    page.locator("#gate-plate").press_sequentially(text)  # typed, key by key


def fresh_answer(page: Page) -> None:
    page.evaluate('document.getElementById("gate-answer").textContent = ""')


def weigh_in(gate: Gate, plate: str, **fields: str) -> dict[str, Any]:
    """Type `plate` (and product, party), press "Entrada": the transaction it opened."""
    type_plate(gate.page, plate)
    for name, text in fields.items():
        gate.page.fill(f"#gate-{name}", text)
    fresh_answer(gate.page)
    gate.page.click("#gate-in")
    expect(gate.page.locator("#gate-answer")).to_have_text(re.compile("^Entrada de "))
    normal = plate.replace("-", "").upper()
    (transaction,) = open_transactions(gate, normal)
    return transaction


def gate_refusal(status: int, code: str) -> Callable[[dict[str, Any]], str]:
    """The gate's answer line for a refusal with HTTP `status` and machine `code`: the gate's
    own words for it, else a capture's."""

    def line(text: dict[str, Any]) -> str:
        table = "gateCodes" if code in text["gateCodes"] else "codes"
        return f"{say(text, 'refused', status=status)} {say(text, f'{table}.{code}')}"

    return line


def test_a_truck_weighed_in_and_out_shows_its_net_large_and_opens_its_ticket(gate: Gate) -> None:
    page = gate.page
    new_truck(gate, "15000")  # the empty truck drives on
    type_plate(page, "abc-1d23")
    expect(page.locator("#gate-plate")).to_have_value("ABC1D23")  # as stored, while typed
    expect(page.locator("#gate-plate-why")).to_be_empty()
    page.fill("#gate-product", "Soja")
    page.fill("#gate-party", "Fazenda Boa Vista")
    page.click("#gate-in")
    expect(page.locator("#gate-answer")).to_have_text(re.compile("^Entrada de ABC1D23"))
    (opened,) = open_transactions(gate, "ABC1D23")
    tid = opened["id"]
    assert (opened["in"]["weight"], opened["product"], opened["party"]) == (
        "15000",
        "Soja",
        "Fazenda Boa Vista",
    )
    expect(page.locator("#gate-answer")).to_have_text(
        f"Entrada de ABC1D23: 15000 kg (passagem nº {tid})."
    )
    for field in ("#gate-plate", "#gate-product", "#gate-party"):
        expect(page.locator(field)).to_have_value("")  # ready for the next truck
    truck = page.locator(TRUCK.format("ABC1D23"))
    expect(truck).to_contain_text("há menos de 1 min")  # how long it has been in the yard
    expect(truck.locator(".gate-truck-detail")).to_have_text("Soja · Fazenda Boa Vista")
    expect(truck.locator(".gate-truck-in")).to_have_text(re.compile(r"^entrada às .+: 15000 kg$"))

    new_truck(gate, "42000")  # it comes back loaded
    type_plate(page, "abc1d23")
    expect(page.locator("#gate-out")).to_have_class(re.compile(r"\bbutton-primary\b"))
    page.keyboard.press("Enter")  # the plate is in the yard: Enter weighs it out
    expect(page.locator("#gate-answer")).to_have_text(
        f"Saída de ABC1D23: líquido 27000 kg (passagem nº {tid})."
    )
    expect(page.locator("#gate-net")).to_have_text("27000")
    expect(page.locator("#gate-net-unit")).to_have_text("kg")
    expect(page.locator("#gate-gross")).to_have_text("42000 kg")
    expect(page.locator("#gate-tare")).to_have_text("15000 kg")
    expect(page.locator("#gate-result-plate")).to_have_text("ABC1D23")
    net_size = page.eval_on_selector("#gate-net", "el => parseFloat(getComputedStyle(el).fontSize)")
    assert net_size >= 64, net_size  # large: read from the cab
    expect(truck).to_have_count(0)  # it left the yard
    expect(page.locator("#gate-open-empty")).to_be_visible()
    status, closed = call(gate.service, "GET", f"/api/transactions/{tid}")
    assert (status, closed["state"], closed["net"], closed["tare"]) == (
        200,
        "closed",
        "27000",
        "15000",
    )

    with page.context.expect_page() as opening:
        page.click("#gate-ticket")
    ticket = opening.value
    ticket.wait_for_load_state()
    assert ticket.url == f"{gate.service.origin}/tickets/transactions/{tid}"
    expect(ticket.locator("body")).to_contain_text("ABC1D23")
    expect(ticket.locator("body")).to_contain_text("27000")
    ticket.close()

    shows_in_both_languages(
        page,
        {
            "#gate-answer": lambda text: say(
                text, "gateClosed", plate="ABC1D23", net="27000", unit="kg", id=tid
            ),
            "#gate-result-title": lambda text: say(text, "gatePassage", id=tid),
            "#gate-ticket": "printTicket",
            "#gate-open-empty": "yardEmpty",
        },
    )
    set_language(page, "en")
    expect(page.locator("#gate-ticket")).to_have_attribute(
        "href", f"/tickets/transactions/{tid}?lang=en"
    )  # the ticket in the page's language
    set_language(page, "pt-BR")


def test_a_plate_already_in_the_yard_and_a_moving_truck_are_refused_in_words(gate: Gate) -> None:
    page = gate.page
    new_truck(gate, "15500")
    weigh_in(gate, "xyz-9876")
    new_truck(gate, "16000")
    type_plate(page, "XYZ9876")
    fresh_answer(page)
    page.click("#gate-in")  # not "Saída": the service must refuse a second entry
    shows_in_both_languages(page, {"#gate-answer": gate_refusal(409, "transaction_open")})
    assert len(open_transactions(gate, "XYZ9876")) == 1

    type_plate(page, "new9999")  # "Saída" for a truck that never came in
    fresh_answer(page)
    page.click("#gate-out")
    shows_in_both_languages(
        page, {"#gate-answer": lambda text: say(text, "gateNoneOpen", plate="NEW9999")}
    )

    put_load(gate, "20500", stable=False)
    type_plate(page, "mov1234")
    fresh_answer(page)
    page.click("#gate-in")
    shows_in_both_languages(page, {"#gate-answer": gate_refusal(409, "scale_in_motion")})
    assert open_transactions(gate, "MOV1234") == []
    expect(page.locator("#gate-answer")).to_have_text(
        "Recusado (409): Balança em movimento: uma pesagem precisa de peso estável."
    )


def test_the_same_load_asks_and_weigh_again_sends_it_on_purpose(gate: Gate) -> None:
    page = gate.page
    new_truck(gate, "17000")
    weigh_in(gate, "AAA1111")
    type_plate(page, "BBB2222")  # another plate on the very same load, not weighed off
    fresh_answer(page)
    page.click("#gate-in")
    shows_in_both_languages(
        page, {"#gate-answer": gate_refusal(409, "same_load"), "#gate-again": "gateAgain"}
    )
    expect(page.locator("#gate-answer")).to_have_text(re.compile(r"Mesma carga\?$"))
    assert open_transactions(gate, "BBB2222") == []
    page.click("#gate-again")
    expect(page.locator("#gate-again")).to_be_hidden()
    expect(page.locator("#gate-answer")).to_have_text(re.compile(r"^Entrada de BBB2222: 17000 kg"))
    (again,) = open_transactions(gate, "BBB2222")
    assert again["in"]["again"] is True, again


def test_a_plate_is_checked_as_it_is_typed_and_nothing_wrong_is_sent(gate: Gate) -> None:
    page = gate.page
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    for typed in ("ab#12", "ABCDEFGHIJK", "ção1"):
        type_plate(page, typed)
        expect(page.locator("#gate-plate-why")).to_have_text(
            "Placa: de 1 a 10 letras e números, como ABC1D23."
        )
        expect(page.locator("#gate-plate")).to_have_attribute("aria-invalid", "true")
        page.click("#gate-in")
        page.click("#gate-out")
    page.fill("#gate-plate", "")
    page.click("#gate-in")
    expect(page.locator("#gate-plate-why")).to_have_text("Digite a placa.")
    expect(page.locator("#gate-plate")).to_be_focused()
    set_language(page, "en")
    expect(page.locator("#gate-plate-why")).to_have_text("Type the plate.")
    type_plate(page, "abc 1d2")
    expect(page.locator("#gate-plate-why")).to_be_empty()  # a space or a dash is left out
    expect(page.locator("#gate-plate")).to_have_attribute("aria-invalid", "false")
    type_plate(page, "abc+1d2")
    expect(page.locator("#gate-plate-why")).to_have_text(
        "Plate: 1 to 10 letters and digits, like ABC1D23."
    )
    set_language(page, "pt-BR")
    page.fill("#gate-plate", "")
    page.wait_for_timeout(500)
    assert posts == [], posts


def test_a_truck_with_a_stored_tare_is_weighed_once(gate: Gate) -> None:
    page = gate.page
    status, tare = call(
        gate.service,
        "PUT",
        "/api/vehicles/TAR1234/tare",
        {"tare": "14000", "unit": "kg", "reason": "Cadastro da frota"},
    )
    assert status == 201, tare
    new_truck(gate, "40000")
    type_plate(page, "SEM1234")  # no stored tare: in and out it must be
    page.check("#gate-stored-tare")
    expect(page.locator("#gate-out")).to_have_class(re.compile(r"\bbutton-primary\b"))
    fresh_answer(page)
    page.click("#gate-out")
    shows_in_both_languages(page, {"#gate-answer": gate_refusal(409, "no_stored_tare")})
    expect(page.locator("#gate-answer")).to_have_text(
        "Recusado (409): Não há tara cadastrada (ou válida) para esta placa."
    )

    type_plate(page, "tar-1234")
    expect(page.locator("#gate-stored-tare")).to_be_checked()
    fresh_answer(page)
    page.keyboard.press("Enter")  # "Saída", as the loaded truck leaves
    expect(page.locator("#gate-answer")).to_have_text(
        re.compile(r"^Saída de TAR1234: líquido 26000 kg")
    )
    expect(page.locator("#gate-net")).to_have_text("26000")
    expect(page.locator("#gate-tare")).to_have_text("14000 kg")
    expect(page.locator("#gate-tare-note")).to_have_text("Tara cadastrada do veículo.")
    expect(page.locator("#gate-stored-tare")).not_to_be_checked()  # the next truck starts afresh
    expect(page.locator(TRUCK.format("TAR1234"))).to_have_count(0)  # never in the yard
    status, listed = call(gate.service, "GET", "/api/transactions?plate=TAR1234")
    (one,) = listed["transactions"]
    assert (one["state"], one["in"], one["tare_source"], one["net"]) == (
        "closed",
        None,
        "stored",
        "26000",
    )

    # In two passes, a tare far from the stored one is shown, not refused.
    new_truck(gate, "20000")
    weigh_in(gate, "TAR1234")
    new_truck(gate, "45000")
    type_plate(page, "TAR1234")
    page.click("#gate-out")
    expect(page.locator("#gate-net")).to_have_text("25000")
    shows_in_both_languages(page, {"#gate-tare-note": "gateTareMismatch"})
    expect(page.locator("#gate-tare-note")).to_have_attribute("data-tone", "warn")


def test_a_transaction_voided_with_a_reason_leaves_the_yard(gate: Gate) -> None:
    page = gate.page
    new_truck(gate, "18000")
    opened = weigh_in(gate, "VOI1234")
    tid = opened["id"]
    page.click(f"[data-gate-action=void][data-gate-id='{tid}']")
    dialog = page.locator("#void-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#void-heading")).to_have_text(f"Anular a passagem nº {tid} (VOI1234)")
    expect(page.locator("#void-help")).to_have_text(
        "As pesagens da passagem continuam no registro, marcadas como anuladas, com o motivo."
    )
    page.click("#void-dialog button[value=ok]")  # no reason yet: the dialog stays
    expect(page.locator("#void-why")).to_have_text("Diga o motivo da anulação.")
    page.fill("#void-reason", "Caminhão desistiu da carga")
    page.click("#void-dialog button[value=ok]")
    expect(dialog).to_be_hidden()
    expect(page.locator("#gate-answer")).to_have_text(f"Passagem nº {tid} (VOI1234) anulada.")
    expect(page.locator(TRUCK.format("VOI1234"))).to_have_count(0)
    status, voided = call(gate.service, "GET", f"/api/transactions/{tid}")
    assert voided["state"] == "void", voided

    # The weighings' own void dialog still speaks of a weighing.
    page.evaluate("() => { askVoidReason(t('voidLabel', {number: 1})); }")
    expect(page.locator("#void-help")).to_have_text(
        "A pesagem continua no registro, marcada como anulada, com o motivo."
    )
    page.click("#void-dialog button[value=cancel]")

    # A closed one is voided from its result, and its net shows struck through.
    new_truck(gate, "11000")
    opened = weigh_in(gate, "VOI5678")
    new_truck(gate, "31000")
    type_plate(page, "VOI5678")
    page.click("#gate-out")
    expect(page.locator("#gate-net")).to_have_text("20000")
    page.click("#gate-void")
    page.fill("#void-reason", "Pesada na balança errada")
    page.click("#void-dialog button[value=ok]")
    expect(page.locator("#gate-result")).to_have_attribute("data-state", "void")
    expect(page.locator("#gate-result-void")).to_be_visible()
    expect(page.locator("#gate-void")).to_be_hidden()
    assert call(gate.service, "GET", f"/api/transactions/{opened['id']}")[1]["state"] == "void"


def test_each_action_has_its_own_idempotency_key_and_a_double_click_is_one(gate: Gate) -> None:
    page = gate.page
    keys: list[tuple[str, str | None]] = []

    def sent(request: Any) -> None:
        if request.method == "POST" and GATE_ACTION.search(request.url):
            keys.append((request.url, request.headers.get("idempotency-key")))

    page.on("request", sent)
    new_truck(gate, "12500")
    type_plate(page, "DBL1234")
    fresh_answer(page)
    page.dblclick("#gate-in")
    expect(page.locator("#gate-answer")).to_have_text(re.compile("^Entrada de DBL1234"))
    new_truck(gate, "30500")
    type_plate(page, "DBL1234")
    fresh_answer(page)
    page.dblclick("#gate-out")
    expect(page.locator("#gate-answer")).to_have_text(re.compile("^Saída de DBL1234"))
    page.wait_for_timeout(500)
    page.remove_listener("request", sent)
    status, listed = call(gate.service, "GET", "/api/transactions?plate=DBL1234")
    (one,) = listed["transactions"]  # one transaction, in and out once each
    assert [url.rsplit("/", 1)[-1] for url, _ in keys] == ["transactions", "close"], keys
    assert all(key and UUID.match(key) for _, key in keys), keys
    assert keys[0][1] != keys[1][1], keys


def test_an_entry_whose_answer_was_lost_is_sent_again_as_the_same_one(gate: Gate) -> None:
    """The service opened the transaction but the answer never came back: the page says the
    service was out of reach, and "Entrada" again carries the same Idempotency-Key, so the
    service answers with the first transaction instead of refusing a second."""
    page = gate.page
    keys: list[str | None] = []

    def lose_the_answer(route: Any) -> None:
        keys.append(route.request.headers.get("idempotency-key"))
        route.fetch()  # the service gets it and answers...
        route.abort("connectionreset")  # ...and the page never hears

    new_truck(gate, "14800")
    type_plate(page, "LOS1234")
    page.route("**/api/scales/*/transactions", lose_the_answer, times=1)
    fresh_answer(page)
    page.click("#gate-in")
    expect(page.locator("#gate-answer")).to_have_text("Serviço inalcançável: verifique a rede.")
    expect(page.locator("#gate-plate")).to_have_value("LOS1234")  # kept, to send again
    (made,) = open_transactions(gate, "LOS1234")

    def note(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/transactions"):
            keys.append(request.headers.get("idempotency-key"))

    page.on("request", note)
    page.click("#gate-in")
    expect(page.locator("#gate-answer")).to_have_text(
        f"Entrada de LOS1234: 14800 kg (passagem nº {made['id']})."
    )
    page.remove_listener("request", note)
    assert open_transactions(gate, "LOS1234") == [made]
    assert len(keys) == 2 and keys[0] is not None and keys[0] == keys[1], keys


def test_the_gate_is_worked_from_the_keyboard_and_stays_the_chosen_tab(gate: Gate) -> None:
    page = gate.page
    new_truck(gate, "12000")
    type_plate(page, "kbd5678")
    page.keyboard.press("Enter")  # not in the yard: Enter weighs it in
    expect(page.locator("#gate-answer")).to_have_text(re.compile("^Entrada de KBD5678"))
    expect(page.locator("#gate-plate")).to_be_focused()  # ready for the next plate
    new_truck(gate, "13000")
    type_plate(page, "kbd1234")
    page.fill("#gate-product", "Milho")
    page.focus("#gate-product")
    page.keyboard.press("Enter")  # from any field
    expect(page.locator("#gate-answer")).to_have_text(re.compile("^Entrada de KBD1234"))
    new_truck(gate, "33000")
    page.keyboard.type("kbd1234")
    page.keyboard.press("Enter")  # in the yard now: Enter weighs it out
    expect(page.locator("#gate-answer")).to_have_text(
        re.compile("^Saída de KBD1234: líquido 20000 kg")
    )

    focus = """() => {
      const el = document.activeElement;
      return el.dataset.gateAction ? `${el.dataset.gateAction} ${el.dataset.gateId}` : el.id || el.tagName;
    }"""
    page.focus("#language")
    focused = [page.evaluate(focus)]
    for _ in range(80):
        page.keyboard.press("Tab")
        focused.append(page.evaluate(focus))
        if focused[-1] == focused[0]:
            break
    tid = open_transactions(gate, "KBD5678")[0]["id"]
    controls = {"desk-gate", "gate-plate", "gate-product", "gate-party", "gate-stored-tare"}
    controls |= {"gate-in", "gate-out", "gate-ticket", "gate-void", f"out {tid}", f"void {tid}"}
    assert controls <= set(focused), focused
    assert "desk-weighings" not in focused  # one tab stop for the tabs: arrows between them

    page.focus("#desk-gate")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#desk-weighings")).to_be_focused()
    expect(page.locator("#desk-weighings")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#gate-panel")).to_be_hidden()
    expect(page.locator("#weighings-panel")).to_be_visible()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#desk-gate")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#gate-panel")).to_be_visible()

    page.reload()  # a kiosk at the gate opens on the gate
    expect(page.locator("#gate-panel")).to_be_visible()
    expect(page.locator("#desk-gate")).to_have_attribute("aria-selected", "true")
    expect(page.locator(TRUCK.format("KBD5678"))).to_be_visible()  # listed again at once


def test_in_and_out_wait_while_the_scale_is_not_live_saying_why(gate: Gate) -> None:
    page = gate.page
    new_truck(gate, "19000")
    tid = weigh_in(gate, "STL1234")["id"]
    row = f"[data-gate-id='{tid}']"
    expect(page.locator("#gate-why")).to_be_empty()
    gate.scale.measurement = None  # the indicator stops answering
    shows_in_both_languages(page, {"#gate-why": "recordNotLive"})
    for button in ("#gate-in", "#gate-out", f"{row}[data-gate-action=out]"):
        expect(page.locator(button)).to_be_disabled()
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    type_plate(page, "STL1234")
    page.keyboard.press("Enter")  # Enter waits as the buttons do
    page.wait_for_timeout(500)
    assert posts == [], posts
    expect(page.locator(f"{row}[data-gate-action=void]")).to_be_enabled()  # needs no scale
    put_load(gate, "19000")
    expect(page.locator("#gate-why")).to_be_empty()
    expect(page.locator("#gate-in")).to_be_enabled()
    expect(page.locator(f"{row}[data-gate-action=out]")).to_be_enabled()


def test_with_several_scales_each_pass_is_weighed_on_the_scale_in_view(browser: Any) -> None:
    """Two truck scales: the truck goes in on b and out on a, each pass on the scale whose
    view (`/#scale=ID`) the operator has open; the grid itself has no gate."""
    a, b = PtyScale("wt1000").plug(), PtyScale("wt1000").plug()
    a.measurement = b.measurement = load("0")
    try:
        with running("--scale", f"a={a.spec()}", "--scale", f"b={b.spec()}") as service:
            context = browser.new_context(viewport=DESKTOP)
            try:
                page = context.new_page()
                page.goto(f"{service.origin}/")
                expect(page.locator("body")).to_have_attribute("data-view", "grid", timeout=15_000)
                expect(page.locator("#gate-panel")).to_be_hidden()
                page.goto(f"{service.origin}/#scale=b")
                page.click("#desk-gate")
                b.measurement = load("15000")
                page.wait_for_function(HEAVY_ON_SCREEN, timeout=10_000)
                type_plate(page, "two1234")
                page.fill("#gate-product", "Areia")
                page.click("#gate-in")
                expect(page.locator("#gate-answer")).to_have_text(re.compile("^Entrada de TWO1234"))
                (opened,) = call(service, "GET", "/api/transactions?state=open")[1]["transactions"]
                assert opened["in"]["scale"] == "b", opened
                truck = page.locator(TRUCK.format("TWO1234"))
                expect(truck.locator(".gate-truck-detail")).to_have_text("Areia · b")

                page.click("#back")
                page.click("#cards .card[data-scale='a']")
                expect(page.locator("#scale-name")).to_have_text("a")
                expect(page.locator("#gate-panel")).to_be_visible()  # the tab is kept
                a.measurement = load("42000")
                page.wait_for_function(HEAVY_ON_SCREEN, timeout=10_000)
                truck.locator("[data-gate-action=out]").click()  # its own "Saída", on a
                expect(page.locator("#gate-net")).to_have_text("27000")
                closed = call(service, "GET", f"/api/transactions/{opened['id']}")[1]
                assert (closed["in"]["scale"], closed["out"]["scale"]) == ("b", "a"), closed
            finally:
                context.close()
    finally:
        for scale in (a, b):
            scale.unplug()
            shutil.rmtree(scale.link.parent, ignore_errors=True)


def test_a_locked_service_asks_for_the_token_once_and_the_ticket_carries_it(browser: Any) -> None:
    """Writes need a token: "Entrada" asks for it, then goes through with the same
    Idempotency-Key; the ticket's address carries the token (a browser opens it as a page)."""
    scale = PtyScale("wt1000").plug()
    scale.measurement = load("0")
    secrets = Path(tempfile.mkdtemp(prefix="balanca-tokens-"))
    (secrets / "write").write_text("gate-secret\n")
    locked = ("--token-file", str(secrets / "write"))
    try:
        with running("--scale", scale.spec(), *locked) as service:
            context = browser.new_context(viewport=PHONE)
            try:
                page = context.new_page()
                keys: list[str | None] = []

                def posted(request: Any) -> None:
                    if request.method == "POST":
                        keys.append(request.headers.get("idempotency-key"))

                page.on("request", posted)
                page.goto(f"{service.origin}/")
                page.click("#desk-gate")
                scale.measurement = load("16000")
                page.wait_for_function(HEAVY_ON_SCREEN, timeout=10_000)
                type_plate(page, "tok1234")
                page.click("#gate-in")
                sign_in(page, "gate-secret")
                expect(page.locator("#gate-answer")).to_have_text(re.compile("^Entrada de TOK1234"))
                assert len(keys) == 2 and keys[0] == keys[1], keys  # one action, asked twice
                scale.measurement = load("0")
                page.wait_for_function(
                    "() => document.getElementById('weight').textContent === '0'"
                )
                scale.measurement = load("36000")
                page.wait_for_function(HEAVY_ON_SCREEN, timeout=10_000)
                page.locator("[data-gate-action=out]").click()  # no second question
                expect(page.locator("#gate-net")).to_have_text("20000")
                expect(page.locator("#token-dialog")).to_be_hidden()
                (closed,) = call(service, "GET", "/api/transactions?plate=TOK1234")[1][
                    "transactions"
                ]
                tid = closed["id"]
                expect(page.locator("#gate-ticket")).to_have_attribute(
                    "href", f"/tickets/transactions/{tid}?token=gate-secret"
                )
            finally:
                context.close()
    finally:
        scale.unplug()
        shutil.rmtree(scale.link.parent, ignore_errors=True)
        shutil.rmtree(secrets, ignore_errors=True)


def test_screenshots_at_a_1920x1080_kiosk_and_a_390x844_phone(
    gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a truck in the yard and one just weighed out: everything on the kiosk's screen
    without scrolling the page, nothing wider than the phone, every target a thumb's size."""
    page = gate.page
    for left in open_transactions(gate, ""):  # an empty yard, whatever the tests before left
        call(gate.service, "POST", f"/api/transactions/{left['id']}/void", {"reason": "Teste"})
    new_truck(gate, "14200")
    weigh_in(gate, "QRS-4E56", product="Farelo de soja", party="Cooperativa Vale Verde")
    new_truck(gate, "15100")
    weigh_in(gate, "BRA2E19", product="Calcário", party="Mineração Serra Azul")
    new_truck(gate, "16350")
    weigh_in(gate, "RIO3F45", product="Milho em grão", party="Armazém Santa Luzia")
    new_truck(gate, "44740")
    type_plate(page, "QRS4E56")
    page.keyboard.press("Enter")
    expect(page.locator("#gate-net")).to_have_text("30540")
    page.evaluate("document.activeElement.blur()")
    for lang in LANGUAGES:
        set_language(page, lang)
        test_page.assert_in_language(page, lang)
    set_language(page, "pt-BR")
    ARTIFACTS.mkdir(exist_ok=True)
    kiosk, phone = ARTIFACTS / "gate-1920x1080.png", ARTIFACTS / "gate-390x844.png"
    fits = """() => {
      const root = document.documentElement;
      const box = (id) => document.getElementById(id).getBoundingClientRect();
      return {scrollWidth: root.scrollWidth, width: root.clientWidth,
              scrollHeight: root.scrollHeight, height: root.clientHeight,
              ticket: box("gate-ticket").bottom, yard: box("gate-open").bottom,
              smallest: Math.min(...[...document.querySelectorAll(
                "#gate-panel button, #gate-panel a.button, #gate-panel input[type=text]")]
                .filter((el) => el.checkVisibility())
                .map((el) => el.getBoundingClientRect().height))};
    }"""
    shown = page.evaluate(fits)
    assert shown["scrollHeight"] <= shown["height"], shown  # the kiosk does not scroll
    assert max(shown["ticket"], shown["yard"]) <= shown["height"], shown  # all in sight
    page.wait_for_timeout(600)  # the chart redraws in the language now shown
    page.screenshot(path=str(kiosk))
    page.set_viewport_size(PHONE)
    try:
        page.wait_for_timeout(300)
        shown = page.evaluate(fits)
        assert shown["scrollWidth"] <= shown["width"], shown
        assert shown["smallest"] >= 36, shown  # the yard's buttons; the rest are 48 px and up
        order = page.eval_on_selector_all(
            "main > section, main > .side", "els => els.map((el) => el.getBoundingClientRect().top)"
        )
        assert order[2] < order[1], order  # the gate under the weight, before the chart
        page.screenshot(path=str(phone), full_page=True)
    finally:
        page.set_viewport_size(DESKTOP)
    with capsys.disabled():
        print(f"\nscreenshots: {kiosk} {phone}")
    assert png_size(kiosk) == (1920, 1080)
    assert png_size(phone)[0] == 390
    if os.environ.get("BALANCA_UPDATE_SCREENSHOTS") == "1":  # refresh the docs' pictures
        docs = REPO / "docs" / "screenshots"
        shutil.copyfile(kiosk, docs / "gate-1920x1080.png")
        shutil.copyfile(phone, docs / "gate-390x844.png")


def test_the_gate_fetches_nothing_outside_the_service_and_breaks_no_policy(gate: Gate) -> None:
    origin = gate.service.origin
    assert f"{origin}/api/transactions?state=open" in gate.watch.urls
    assert gate.watch.foreign_urls(origin) == []
    # Chromium logs every 4xx answer to a fetch and every lost one: the refusals and the lost
    # answer these tests provoked.
    provoked = re.compile(
        r"console: Failed to load resource: (the server responded with a status of 409 .*"
        r"|net::ERR_CONNECTION_RESET)"
    )
    assert [e for e in gate.watch.errors if not provoked.fullmatch(e)] == []
    assert gate.watch.csp_violations() == []
