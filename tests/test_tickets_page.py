"""Tickets as a printer gets them: the real service in a child process reading a truck scale
on a pty, the system's Chromium printing the ticket to PDF (`page.pdf`, the page's own
`@page` size), and the PDF's text read back with poppler's `pdftotext`; no script on the
page, nothing blocked by the Content-Security-Policy, a party typed as markup printed as
text. The A4 and 80 mm pictures of docs/screenshots are these PDFs (refreshed with
BALANCA_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from balanca.reading import Measurement
from tests.pagebase import ARTIFACTS, REPO, PageWatch, Service, chromium, running
from tests.ptyscale import PtyScale

SITE = """
[site]
name = "Cooperativa Agrícola Vale do Sol"
document = "12.345.678/0001-90"
address = "Rod. BR-116, km 42, Vacaria - RS"
phone = "(54) 3232-1000"
"""
PARTY = '<img src=x onerror="document.title=1">Transportes Sul'
A4_POINTS = (595, 842)
THERMAL_WIDTH_POINTS = 227  # 80 mm


def call(service: Service, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer tok-ana"}
    request = urllib.request.Request(service.origin + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def weigh(service: Service, scale: PtyScale, weight: str, path: str, body: Any) -> Any:
    """Put `weight` on the truck scale, wait until the service reads it, POST `body`."""
    scale.measurement = Measurement(Decimal(weight), "kg", True, "gross")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, reading = call(service, "GET", "/api/scales/truck/weight")
        if status == 200 and reading["weight"] == weight and reading["stable"]:
            status, answer = call(service, "POST", path, {**body, "again": True})
            assert status == 201, answer
            return answer
        time.sleep(0.05)
    raise AssertionError(f"the truck scale never showed {weight}")


@pytest.fixture(scope="module")
def site() -> Iterator[Service]:
    """The service with a truck scale on a pty (MT-SICS, polled) and an operator, `ana`: a
    closed transaction 1, and 2 voided (its party typed as markup)."""
    scale = PtyScale("sics").plug()
    folder = Path(tempfile.mkdtemp(prefix="balanca-tickets-"))
    (folder / "balanca.toml").write_text(SITE, encoding="utf-8")
    (folder / "operators").write_text("ana:tok-ana\n")
    try:
        with running(
            "--config", str(folder / "balanca.toml"),
            "--operators-file", str(folder / "operators"),
            "--scale", f"truck={scale.spec('poll=0.05')}",
        ) as service:  # fmt: skip
            opening = "/api/scales/truck/transactions"
            fields = {"plate": "RST-4E56", "product": "Soja em grão", "party": "Transportes Sul Ltda",
                      "reference": "NF-e 35241", "note": "Lona ok"}  # fmt: skip
            weigh(service, scale, "14980.0", opening, fields)
            weigh(service, scale, "45000.5", "/api/transactions/1/close", {"scale": "truck"})
            weigh(service, scale, "15000.0", opening, {"plate": "XYZ9876", "party": PARTY})
            weigh(service, scale, "30000.0", "/api/transactions/2/close", {"scale": "truck"})
            status, _ = call(
                service, "POST", "/api/transactions/2/void", {"reason": "placa errada"}
            )
            assert status == 201
            yield service
    finally:
        scale.unplug()
        shutil.rmtree(folder, ignore_errors=True)


def printed(service: Service, path: str, name: str) -> tuple[str, tuple[float, float], Path]:
    """Open `path` in Chromium and print it to a PDF: (its text, its first page's size in
    points, the PDF)."""
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = ARTIFACTS / f"{name}.pdf"
    with chromium() as browser:
        page = browser.new_page()
        watch = PageWatch(page)
        page.goto(service.origin + path)
        assert page.evaluate("document.scripts.length") == 0, "a ticket needs no script"
        assert page.evaluate("document.images.length") == 0, "markup typed in stays text"
        assert page.title() != "1"
        assert watch.csp_violations() == [] and watch.errors == [], watch.errors
        assert watch.foreign_urls(service.origin) == []
        page.pdf(path=str(pdf), prefer_css_page_size=True, print_background=True)
    text = subprocess.run(
        ["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    size = re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info.stdout)
    assert size is not None, info.stdout
    return text, (float(size[1]), float(size[2])), pdf


def flat(text: str) -> str:
    return " ".join(text.split())


def test_an_a4_ticket_prints_two_copies_of_the_transaction_on_one_sheet(site: Service) -> None:
    text, size, pdf = printed(site, "/tickets/transactions/1", "ticket-a4")
    assert (round(size[0]), round(size[1])) == A4_POINTS
    assert (
        "Pages:           1"
        in subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    )
    words = flat(text)
    for expected in (
        "Cooperativa Agrícola Vale do Sol",
        "CNPJ 12.345.678/0001-90",
        "Ticket de pesagem nº 1",
        "RST4E56",
        "Soja em grão",
        "Transportes Sul Ltda",
        "14980,0 kg",
        "45000,5 kg",
        "30020,5 kg",
        "Motorista",
        "Balanceiro",
    ):
        assert words.count(expected) >= 2, expected
    assert "Operador ana" in words
    assert "1ª via — motorista" in words and "2ª via — empresa" in words
    key = json.loads(urllib.request.urlopen(site.origin + "/api/weighings/key").read())
    assert words.count(key["fingerprint"]) == 2
    transaction = json.loads(urllib.request.urlopen(site.origin + "/api/transactions/1").read())
    for record in (transaction["in"], transaction["out"]):
        assert words.count(f"nº {record['number']} · {record['hash'][:12]}") == 2
    picture(pdf, "ticket-a4.png")


def test_an_80mm_ticket_prints_one_copy_on_the_roll_in_english(site: Service) -> None:
    text, size, pdf = printed(site, "/tickets/transactions/1?paper=80mm&lang=en", "ticket-80mm")
    assert round(size[0]) == THERMAL_WIDTH_POINTS
    words = flat(text)
    assert words.count("Weighing ticket no. 1") == 1
    for expected in ("Gross 45000.5 kg", "Tare 14980.0 kg", "Net 30020.5 kg", "Driver", "Weigher"):
        assert expected in words, expected
    assert "Copy" not in words
    picture(pdf, "ticket-80mm.png", crop=True)


def test_a_voided_transaction_prints_cancelado_on_both_copies(site: Service) -> None:
    text, _, _ = printed(site, "/tickets/transactions/2", "ticket-void")
    words = flat(text)
    assert words.count("CANCELADO") == 2
    assert words.count("placa errada") == 2
    squeezed = "".join(words.split())  # a long party wraps where it must
    assert squeezed.count("".join(PARTY.split())) == 2  # printed as the text it is


def picture(pdf: Path, name: str, crop: bool = False) -> None:
    """The PDF's first page as a PNG in test-artifacts (and docs/screenshots when asked);
    `crop`: down to the printed part (a roll's page is longer than its ticket)."""
    dpi = 110
    options = ["-r", str(dpi), "-png", "-singlefile", "-f", "1", "-l", "1"]
    if crop:
        boxes = subprocess.run(["pdftotext", "-bbox", "-f", "1", "-l", "1", str(pdf), "-"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        bottom = max(float(y) for y in re.findall(r'yMax="([\d.]+)"', boxes))
        options += ["-H", str(int((bottom + 12) * dpi / 72))]
    out = ARTIFACTS / name
    subprocess.run(["pdftoppm", *options, str(pdf), str(out.with_suffix(""))], check=True)
    assert out.stat().st_size > 1000
    if os.environ.get("BALANCA_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(out, REPO / "docs" / "screenshots" / name)
