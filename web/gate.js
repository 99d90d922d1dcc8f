// balanca live view: the gate, where trucks are weighed in and out (DESIGN.md "Truck
// weighing"; docs/guia-do-operador.md tells the operator). The plate shows as it is stored
// while it is typed (`abc-1d23` is ABC1D23) and is checked before anything is sent; with the
// product and the party, "Entrada" opens a transaction on the scale in view (its `in` record),
// "Saída" closes the plate's open one on that scale (its `out` record) and shows the net large
// with "Imprimir ticket"; with "Tara cadastrada" the truck is weighed once against its stored
// tare. Enter in a field presses the primary button: "Saída" for a plate with an open
// transaction (or a stored tare to weigh on), else "Entrada". The open transactions of every
// scale are listed with how long each has been open, each with its own "Saída" and "Anular".
// Refusals read in the gate's words (`gateCodes`, else `codes`); a same_load one asks "Mesma
// carga?" with "Pesar de novo". The gate is a tab beside the weighings, remembered by the
// browser, so a kiosk at the gate opens on it. Loaded before app.js, whose helpers ($, t, api,
// write, shownId, recordBlocked, paintAnswer, refusalAnswer, ...) and records.js's
// (normalPlate, PLATE, element, weighingTime, askVoidReason) it uses once the page has started.
"use strict";

const DESK_KEY = "balanca.desk"; // localStorage: a gate kiosk opens on the gate
const YARD_REFRESH_MS = 10000; // other stations weigh trucks in and out too
const YARD_AGES_MS = 15000; // the ages in the list count minutes

const gate = {
  desk: localStorage.getItem(DESK_KEY) === "gate" ? "gate" : "weighings",
  yard: [], // the open transactions, as GET /api/transactions?state=open lists them
  clockOffset: 0, // the service's clock minus this browser's, in ms: ages by the service's time
  busy: false, // an action is on its way: the others wait for its answer
  blocked: null, // why no weighing can be recorded now (an i18n key), or null
  plateWhy: null, // why the typed plate cannot be sent (an i18n key), or null
  answer: null, // the gate's answer line, as app.js's state.answer
  result: null, // the transaction last closed (or voided) here, shown large
};

// ---- the tabs: weighings or the gate ----

function showDesk(desk, focus = false) {
  gate.desk = desk;
  localStorage.setItem(DESK_KEY, desk);
  renderDesk();
  if (focus) $(`desk-${desk}`).focus();
  if (desk === "gate") loadYard();
}

function renderDesk() {
  for (const tab of document.querySelectorAll(".desks [role=tab]")) {
    const selected = tab.dataset.desk === gate.desk;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
  }
  $("weighings-panel").hidden = gate.desk !== "weighings";
  $("gate-panel").hidden = gate.desk !== "gate";
  document.body.dataset.desk = gate.desk;
}

// The arrow keys move between the tabs, one tab stop for both (WAI-ARIA's tabs pattern).
function deskKey(event) {
  const desks = ["weighings", "gate"];
  const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
  if (step === undefined) return;
  event.preventDefault();
  showDesk(desks[(desks.indexOf(gate.desk) + step + desks.length) % desks.length], true);
}

// ---- the plate ----

function typedPlate() {
  return normalPlate($("gate-plate").value);
}

// The plate shows as the service stores it while it is typed: upper-case, spaces and dashes
// left out (`abc-1d23` is ABC1D23), the caret kept after the same character.
function plateTyped() {
  const input = $("gate-plate");
  const caret = normalPlate(input.value.slice(0, input.selectionStart)).length;
  input.value = normalPlate(input.value);
  input.setSelectionRange(caret, caret);
  gate.plateWhy = input.value && !PLATE.test(input.value) ? "gatePlateInvalid" : null;
  renderPlate();
}

// The typed plate, or null (saying why under the field) when it cannot be sent.
function checkedPlate() {
  const plate = typedPlate();
  gate.plateWhy = !plate ? "plateRequired" : PLATE.test(plate) ? null : "gatePlateInvalid";
  renderPlate();
  if (gate.plateWhy === null) return plate;
  $("gate-plate").focus();
  return null;
}

// The open transaction of `plate` in the yard as last listed, if any.
function inYard(plate) {
  return gate.yard.find((transaction) => transaction.plate === plate);
}

// "Saída" is what the truck does next: it is in the yard, or it is weighed once on its stored
// tare.
function leaving() {
  return $("gate-stored-tare").checked || Boolean(inYard(typedPlate()));
}

// The field's verdict, and the button Enter presses shown as the primary one.
function renderPlate() {
  $("gate-plate").setAttribute("aria-invalid", String(gate.plateWhy !== null));
  $("gate-plate-why").textContent = gate.plateWhy ? t(gate.plateWhy) : "";
  $("gate-out").classList.toggle("button-primary", leaving());
  $("gate-in").classList.toggle("button-primary", !leaving());
}

// Enter in a text field presses the primary button, unless the buttons wait (gate.blocked).
function gateEnter(event) {
  if (event.key !== "Enter" || event.target.type === "checkbox" || event.target.tagName !== "INPUT") return;
  event.preventDefault();
  if (gate.blocked !== null) return;
  if (leaving()) weighOut();
  else weighIn();
}

// ---- in, out and void ----

// One action at a time: the buttons wait while it is on its way, and the yard is listed again
// after it whatever the answer.
async function busy(work) {
  if (gate.busy) return; // a double press: the first is on its way
  gate.busy = true;
  renderBusy();
  try {
    await work();
  } finally {
    gate.busy = false;
    renderBusy();
    await loadYard();
  }
}

// While the page is not live, or the database is away, a weighing cannot be recorded:
// "Entrada" and "Saída" wait, saying why (app.js's words for "Registrar pesagem"). A truck in
// motion or an empty scale is left to the service, which refuses it in words.
const GATE_BLOCKED = new Set(["recordNoService", "recordNotLive", "recordNoDatabase"]);

function renderGateButtons(connection, scale) {
  const blocked = recordBlocked(connection, scale);
  gate.blocked = GATE_BLOCKED.has(blocked) ? blocked : null;
  $("gate-why").textContent = gate.blocked ? t(gate.blocked) : "";
  renderBusy();
}

function renderBusy() {
  for (const button of document.querySelectorAll("#gate-in, #gate-out, [data-gate-action=out]")) {
    button.disabled = gate.busy || gate.blocked !== null;
  }
  for (const button of document.querySelectorAll("#gate-void, [data-gate-action=void]")) button.disabled = gate.busy;
  $("gate-panel").setAttribute("aria-busy", String(gate.busy));
}

// What the form says of the truck, to send with its plate.
function typedTruck(plate) {
  const body = { plate };
  for (const name of ["product", "party"]) {
    const value = $(`gate-${name}`).value.trim();
    if (value) body[name] = value;
  }
  if ($("gate-stored-tare").checked) body.stored_tare = true;
  return body;
}

// "Entrada": an `in` record for the typed plate on the scale in view, or with "Tara
// cadastrada" the one pass that closes at once.
function weighIn() {
  const plate = checkedPlate();
  if (plate !== null) busy(() => openTransaction(typedTruck(plate)));
}

async function openTransaction(body) {
  if (noScale()) return;
  const path = `/api/scales/${encodeURIComponent(shownId())}/transactions`;
  const answer = await write(`gate in ${path}`, path, body);
  if (answer.status !== 201 || !answer.body) {
    refused(answer, () => busy(() => openTransaction({ ...body, again: true })));
    return;
  }
  const transaction = answer.body;
  clearForm();
  if (transaction.state === "closed") {
    closed(transaction);
    return;
  }
  const { plate, id } = transaction;
  const { weight, unit } = transaction.in;
  say("ok", () => t("gateOpened", { plate, weight, unit, id }));
}

// "Saída": closes the typed plate's open transaction on the scale in view; with none, and
// "Tara cadastrada", the one pass.
async function weighOut() {
  const plate = checkedPlate();
  if (plate === null) return;
  busy(async () => {
    const listed = await api("GET", `/api/transactions?state=open&plate=${encodeURIComponent(plate)}`);
    if (listed.status !== 200 || !listed.body || !Array.isArray(listed.body.transactions)) {
      refused(listed);
    } else if (listed.body.transactions.length > 0) {
      await closeTransaction(listed.body.transactions[0].id);
    } else if ($("gate-stored-tare").checked) {
      await openTransaction(typedTruck(plate));
    } else {
      say("error", () => t("gateNoneOpen", { plate }));
    }
  });
}

async function closeTransaction(id, again = false) {
  if (noScale()) return;
  const body = { scale: shownId() };
  if (again) body.again = true;
  const answer = await write(`gate out ${id}`, `/api/transactions/${encodeURIComponent(id)}/close`, body);
  if (answer.status === 201 && answer.body) {
    clearForm();
    closed(answer.body);
  } else {
    refused(answer, () => busy(() => closeTransaction(id, true)));
  }
}

// Until the service has named its scales there is none in view to weigh on.
function noScale() {
  if (shownId() !== null) return false;
  say("error", () => t("recordNoService"));
  return true;
}

// A transaction closed here: its net large, with the ticket and "Anular" under it.
function closed(transaction) {
  gate.result = transaction;
  renderResult();
  const { plate, net, unit, id } = transaction;
  say("ok", () => t("gateClosed", { plate, net, unit, id }));
}

async function voidTransaction(transaction) {
  const { id, plate } = transaction;
  const reason = await askVoidReason(t("gateVoidLabel", { id, plate }), "gateVoidHelp");
  if (reason === null) return;
  await busy(async () => {
    const answer = await write(`gate void ${id}`, `/api/transactions/${encodeURIComponent(id)}/void`, { reason });
    if (answer.status !== 201 || !answer.body) {
      refused(answer);
      return;
    }
    if (gate.result && gate.result.id === id) gate.result = answer.body;
    renderResult();
    say("ok", () => t("gateVoided", { id, plate }));
  });
}

function clearForm() {
  for (const name of ["plate", "product", "party"]) $(`gate-${name}`).value = "";
  $("gate-stored-tare").checked = false;
  gate.plateWhy = null;
  renderPlate();
  $("gate-plate").focus(); // ready for the next truck
}

// ---- the answer line ----

function say(tone, text) {
  gate.answer = { tone, text, status: null, again: null };
  renderGateAnswer();
}

// A refusal in the gate's words; `again` is offered after a same_load one ("Mesma carga?").
function refused(answer, again = null) {
  gate.answer = refusalAnswer(answer, { table: "gateCodes", again });
  renderGateAnswer();
}

function renderGateAnswer() {
  paintAnswer($("gate-answer"), $("gate-again"), gate.answer);
}

// "Pesar de novo": the refused action once more, saying it is the same load on purpose.
function gateAgain() {
  const again = gate.answer && gate.answer.again;
  if (!again) return;
  gate.answer.again = null;
  renderGateAnswer();
  again();
}

// ---- the result ----

function renderResult() {
  const transaction = gate.result;
  $("gate-result").hidden = !transaction;
  if (!transaction) return;
  const { id, plate, net, gross, tare, unit, state: status } = transaction;
  $("gate-result").dataset.state = status;
  $("gate-result-title").textContent = t("gatePassage", { id });
  $("gate-result-plate").textContent = plate;
  $("gate-result-void").hidden = status !== "void";
  $("gate-net").textContent = net ?? "";
  $("gate-net-unit").textContent = unit ?? "";
  $("gate-gross").textContent = gross === null ? "" : `${gross} ${unit}`;
  $("gate-tare").textContent = tare === null ? "" : `${tare} ${unit}`;
  const stored = transaction.tare_source === "stored";
  const note = transaction.tare_mismatch ? "gateTareMismatch" : stored ? "gateTareStored" : null;
  $("gate-tare-note").textContent = note ? t(note) : "";
  $("gate-tare-note").dataset.tone = transaction.tare_mismatch ? "warn" : "";
  $("gate-ticket").href = ticketAddress(id);
  $("gate-void").hidden = status === "void";
}

// The ticket's print view (tickets are read with the read token, given in the address since
// a browser opens it as a page), in the page's language.
function ticketAddress(id) {
  const params = new URLSearchParams();
  if (state.lang === "en") params.set("lang", "en");
  if (state.token) params.set("token", state.token);
  const query = params.toString();
  return `/tickets/transactions/${encodeURIComponent(id)}${query ? `?${query}` : ""}`;
}

// ---- the yard ----

async function loadYard() {
  if (gate.desk !== "gate") return;
  const sent = Date.now();
  const [listed, clock] = await Promise.all([
    api("GET", "/api/transactions?state=open", undefined, { interactive: false }),
    api("GET", "/api/time", undefined, { interactive: false }),
  ]);
  if (clock.status === 200 && clock.body && !Number.isNaN(Date.parse(clock.body.time))) {
    gate.clockOffset = Date.parse(clock.body.time) - (sent + Date.now()) / 2;
  }
  if (listed.status === 200 && listed.body && Array.isArray(listed.body.transactions)) {
    gate.yard = listed.body.transactions;
    renderYard();
    renderPlate();
  }
}

// Drawn again for each listing and as the ages grow; the keyboard stays on the button it was on.
function renderYard() {
  const focused = document.activeElement.closest("#gate-open button");
  $("gate-open").replaceChildren(...gate.yard.map(yardRow));
  $("gate-open-empty").hidden = gate.yard.length > 0;
  renderBusy();
  if (!focused) return;
  const { gateAction, gateId } = focused.dataset;
  $("gate-open").querySelector(`[data-gate-action="${gateAction}"][data-gate-id="${gateId}"]`)?.focus();
}

// A truck in the yard: its plate, how long it has been there, what it brought and when it
// came in, and its buttons. The scale is named when the service has several.
function yardRow(transaction) {
  const { id, plate } = transaction;
  const entry = transaction.in;
  const li = element("li", "gate-truck");
  li.dataset.transaction = String(id);
  li.dataset.plate = plate;
  const several = scales.list !== null && scales.list.length > 1;
  const data = [transaction.product, transaction.party, several && entry ? entry.scale : null];
  const detail = element("span", "gate-truck-detail", data.filter(Boolean).join(" · "));
  detail.translate = false; // what was typed, not the page's words
  const plateText = element("span", "gate-plate", plate);
  plateText.translate = false;
  const came = entry && { time: weighingTime(entry.captured || entry.time), weight: entry.weight, unit: entry.unit };
  li.append(
    element("span", "gate-truck-head", "", plateText, element("span", "gate-truck-age", yardAge(transaction))),
    detail,
    element("span", "gate-truck-in", came ? t("gateEntered", came) : ""),
    element(
      "span",
      "gate-truck-buttons",
      "",
      yardButton("out", id, t("gateOut"), t("gateCloseLabel", { plate })),
      yardButton("void", id, t("voidButton"), t("gateVoidLabel", { id, plate })),
    ),
  );
  return li;
}

// A truck's "Saída" (`action` out) or "Anular" (void), its label naming the truck.
function yardButton(action, id, text, label) {
  const button = element("button", "button button-small", text);
  button.type = "button";
  button.dataset.gateAction = action;
  button.dataset.gateId = String(id);
  button.setAttribute("aria-label", label);
  return button;
}

// How long the truck has been in, by the service's clock.
function yardAge(transaction) {
  const now = Date.now() + gate.clockOffset;
  const minutes = Math.max(0, Math.floor((now - Date.parse(transaction.opened)) / 60000));
  if (!(minutes >= 1)) return t("gateAgeNow"); // NaN too: an opening time this page cannot read
  if (minutes < 60) return t("gateAgeMinutes", { n: minutes });
  return t("gateAgeHours", { h: Math.floor(minutes / 60), m: String(minutes % 60).padStart(2, "0") });
}

function clickedYard(event) {
  const button = event.target.closest("button[data-gate-action]");
  const transaction = button && gate.yard.find((one) => String(one.id) === button.dataset.gateId);
  if (!transaction) return;
  if (button.dataset.gateAction === "out") busy(() => closeTransaction(transaction.id));
  else voidTransaction(transaction);
}

// ---- start ----

function renderGate() {
  renderDesk();
  renderPlate();
  renderGateAnswer();
  renderResult();
  renderYard();
}

function startGate() {
  for (const tab of document.querySelectorAll(".desks [role=tab]")) {
    tab.addEventListener("click", () => showDesk(tab.dataset.desk));
    tab.addEventListener("keydown", deskKey);
  }
  $("gate-plate").addEventListener("input", plateTyped);
  $("gate-stored-tare").addEventListener("change", renderPlate);
  $("gate-form").addEventListener("keydown", gateEnter);
  $("gate-form").addEventListener("submit", (event) => event.preventDefault()); // never a reload
  $("gate-in").addEventListener("click", weighIn);
  $("gate-out").addEventListener("click", weighOut);
  $("gate-again").addEventListener("click", gateAgain);
  $("gate-void").addEventListener("click", () => gate.result && voidTransaction(gate.result));
  $("gate-open").addEventListener("click", clickedYard);
  renderGate();
  loadYard();
  setInterval(loadYard, YARD_REFRESH_MS);
  setInterval(renderYard, YARD_AGES_MS);
}
