// balanca live view: the sealed records (docs/records.md). Captures a weighing (with its
// plate and reference, and "Pesar novamente" for the same load on purpose), lists the latest
// records with their number, kind, short hash and voided state, voids one with a reason, and
// shows the signing key's fingerprint in the footer. Loaded before app.js, whose helpers
// ($, t, api, write, showAnswer, showFailure, withButton) it uses once the page has started.
"use strict";

const WEIGHINGS_SHOWN = 10;
const WEIGHINGS_REFRESH_MS = 30000; // other stations record weighings too
const SHORT_HASH = 10; // hex characters of a record's hash in the list (all of it in its title)
const SHORT_FINGERPRINT = 16; // hex characters of the key's fingerprint in the footer
const PLATE = /^[A-Z0-9]{1,10}$/; // as the service stores it (docs/records.md)

const records = {
  list: [], // the latest records, newest first, as GET /api/weighings answers them
  key: null, // GET /api/weighings/key's answer: {algorithm, public_key, fingerprint}
  voiding: new Set(), // numbers of the records whose void is on its way
};

// ---- capture ----

// A plate as the service stores it: upper-case, without spaces or dashes.
function normalPlate(text) {
  return text.replace(/[\s-]/g, "").toUpperCase();
}

// The plate is upper-cased as it is typed, the caret left where it was.
function upperCasePlate() {
  const input = $("plate");
  const { selectionStart, selectionEnd } = input;
  input.value = input.value.toUpperCase();
  input.setSelectionRange(selectionStart, selectionEnd);
}

function recordWeighing(event) {
  event.preventDefault();
  const plate = normalPlate($("plate").value);
  if (plate && !PLATE.test(plate)) {
    showAnswer("error", () => t("plateInvalid"));
    $("plate").focus();
    return;
  }
  const reference = $("reference").value.trim();
  const body = {};
  if (plate) body.plate = plate;
  if (reference) body.reference = reference;
  capture(body);
}

// POST /api/weighings (the shown scale's with several); a same_load refusal offers to send it
// again with "again": true.
function capture(body) {
  if ($("record").dataset.busy === "true") return; // a double click: the first is on its way
  withButton($("record"), async () => {
    const path = scalePath("weighings");
    const answer = await write(`capture ${path}`, path, body);
    if (answer.status !== 201 || !answer.body) {
      showFailure(answer, { again: () => capture({ ...body, again: true }) });
      return;
    }
    const record = answer.body;
    showAnswer("ok", () => t("recorded", { number: record.number, weight: record.weight, unit: record.unit }));
    $("plate").value = "";
    $("reference").value = "";
    await loadWeighings();
  });
}

// ---- the list ----

async function loadWeighings() {
  if (records.key === null) loadKey(); // unknown until the service (and its token) let us
  const path = scalePath("weighings"); // with several scales, the shown one's
  const answer = await api("GET", `${path}?limit=${WEIGHINGS_SHOWN}`, undefined, { interactive: false });
  if (path !== scalePath("weighings")) return; // the view moved to another scale meanwhile
  if (answer.status === 200 && answer.body && Array.isArray(answer.body.weighings)) {
    records.list = answer.body.weighings;
    renderWeighings();
  }
}

// The service's own local time, from its ISO 8601 text: the scale's site is what counts,
// not the time zone of whoever looks at the page.
function weighingTime(iso) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}:\d{2}:\d{2})/.exec(iso || "");
  if (!match) return iso || "";
  const [, year, month, day, clock] = match;
  return state.lang === "en" ? `${year}-${month}-${day} ${clock}` : `${day}/${month}/${year} ${clock}`;
}

// An element with a class, `text` and `children` (elements) after it.
function element(tag, className, text = "", ...children) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text) el.append(text);
  el.append(...children);
  return el;
}

// A cell of the list; the roles keep it a table for screen readers whatever CSS makes of it.
function cell(className, text = "", ...children) {
  const td = element("td", className, text, ...children);
  td.setAttribute("role", "cell");
  return td;
}

function renderWeighings() {
  $("weighings").replaceChildren(...records.list.map(weighingRow));
  $("weighings-empty").hidden = records.list.length > 0;
}

function weighingRow(record) {
  const tr = document.createElement("tr");
  tr.setAttribute("role", "row");
  tr.dataset.number = String(record.number);
  tr.dataset.kind = record.kind;
  tr.classList.toggle("voided", record.voided_by !== null);
  tr.append(
    cell("number", "", element("span", "record-number", String(record.number)), element("span", "kind", kindText(record.kind))),
    cell("time", weighingTime(record.captured || record.time)),
    detailCell(record),
    cell("record-weight", weightText(record)),
    sealCell(record),
    actionCell(record),
  );
  return tr;
}

function kindText(kind) {
  return typeof lookup("pt-BR", `kinds.${kind}`) === "string" ? t(`kinds.${kind}`) : kind;
}

function weightText(record) {
  if (record.weight === null) return ""; // a void weighs nothing
  const net = record.mode === "net" ? ` (${t("net").toLowerCase()})` : "";
  return `${record.weight} ${record.unit}${net}`;
}

// Plate, reference and note, who wrote it, and what voids what.
function detailCell(record) {
  const lines = [];
  if (record.plate) lines.push(element("span", "plate", record.plate));
  if (record.reference) lines.push(element("span", "reference", record.reference));
  if (record.note) lines.push(element("span", "note", record.note));
  if (record.again) lines.push(element("span", "again", t("weighedAgain")));
  if (record.kind === "void") lines.push(element("span", "voids", t("voidsRecord", { number: record.voids, reason: record.reason })));
  if (record.operator) lines.push(element("span", "operator", t("byOperator", { operator: record.operator })));
  if (record.voided_by !== null) lines.push(element("span", "voided-by", t("voidedBy", { number: record.voided_by })));
  return cell("detail", "", ...lines);
}

// The hash's first characters; all of it in the title.
function sealCell(record) {
  const hash = record.hash || "";
  const code = element("code", "hash", hash.slice(0, SHORT_HASH));
  code.title = hash;
  return cell("seal", "", code);
}

// "Anular" for a record that can be voided here: not a void, not voided, not part of a
// truck transaction (those are voided whole).
function actionCell(record) {
  const td = cell("action");
  if (record.kind === "void" || record.voided_by !== null || record.transaction !== null) return td;
  const button = element("button", "button button-small", t("voidButton"));
  button.type = "button";
  button.dataset.void = String(record.number);
  button.setAttribute("aria-label", t("voidLabel", { number: record.number }));
  button.disabled = records.voiding.has(record.number);
  td.append(button);
  return td;
}

// ---- voids ----

// Asks for the reason (required, up to 500 characters) under `heading`, with the words of
// `help` (an i18n key) on what a void does: the reason, or null when cancelled.
function askVoidReason(heading, help = "voidHelp") {
  const dialog = $("void-dialog");
  const input = $("void-reason");
  input.value = "";
  $("void-why").textContent = "";
  $("void-heading").textContent = heading;
  $("void-help").dataset.i18n = help;
  $("void-help").textContent = t(help);
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? input.value.trim() : null), { once: true });
    dialog.showModal();
  });
}

// "Anular" keeps the dialog open until a reason is written.
function checkVoidReason(event) {
  if (event.submitter && event.submitter.value === "ok" && !$("void-reason").value.trim()) {
    event.preventDefault();
    $("void-why").textContent = t("reasonRequired");
    $("void-reason").focus();
  }
}

async function voidRecord(number) {
  if (records.voiding.has(number)) return;
  const reason = await askVoidReason(t("voidLabel", { number }));
  if (reason === null) return;
  records.voiding.add(number);
  renderWeighings();
  try {
    const answer = await write(`void ${number}`, `/api/weighings/${number}/void`, { reason });
    if (answer.status === 201 && answer.body) {
      const voidNumber = answer.body.number;
      showAnswer("ok", () => t("voided", { number, void: voidNumber }));
    } else {
      showFailure(answer, { table: "voidCodes" });
    }
  } finally {
    records.voiding.delete(number);
    await loadWeighings();
  }
}

function clickedVoid(event) {
  const button = event.target.closest("button[data-void]");
  if (button) voidRecord(Number(button.dataset.void));
}

// ---- the signing key ----

async function loadKey() {
  const answer = await api("GET", "/api/weighings/key", undefined, { interactive: false });
  if (answer.status === 200 && answer.body && typeof answer.body.fingerprint === "string") {
    records.key = answer.body;
    renderKey();
  }
}

// The fingerprint's start in the footer's line; all of it under it, and in its title.
function renderKey() {
  const fingerprint = records.key && records.key.fingerprint;
  $("key").hidden = !fingerprint;
  if (!fingerprint) return;
  const short = `${fingerprint.slice(0, fingerprint.indexOf(":") + 1 + SHORT_FINGERPRINT)}…`;
  $("key-short").textContent = t("signingKey", { fingerprint: short });
  $("key-short").title = fingerprint;
  $("fingerprint").textContent = fingerprint;
}

// ---- start ----

function renderRecords() {
  renderWeighings();
  renderKey();
}

function startRecords() {
  $("weigh-form").addEventListener("submit", recordWeighing);
  $("plate").addEventListener("input", upperCasePlate);
  $("weighings").addEventListener("click", clickedVoid);
  $("void-form").addEventListener("submit", checkVoidReason);
  loadWeighings();
  setInterval(loadWeighings, WEIGHINGS_REFRESH_MS);
}
