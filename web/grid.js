// balanca live view with several scales (DESIGN.md "Several scales"). With one scale the page
// is that scale's full view, as in 0.1. With several it is a grid of cards, one per scale in
// the order the service lists them (GET /api/scales): the weight large, its unit, stability,
// the scale's state and a SIMULADO badge for a simulated one. A card is a link to
// `#scale=ID`, the full view of that scale (chart, tare/zero, weighings on its per-scale
// paths), so the address says what is shown: a kiosk opened at `/#scale=ID` stays on that
// scale across reloads and reconnects, and an id the service does not have shows a notice
// over the grid. The worker's one WebSocket carries every scale; the page keeps what it says
// per scale (`scaleRecord`) and this file only chooses what to show. Loaded before app.js,
// whose helpers ($, t, api, state, ...) it uses once the page has started.
"use strict";

const SCALE_HASH = /^#scale=([^&]+)$/;

const scales = {
  list: null, // GET /api/scales's scales ({id, source}), in the order configured; null until known
  seen: new Map(), // scale id -> what the worker said of it (newScale), for every scale it named
  cards: new Map(), // scale id -> its card's elements, while the grid shows it
  main: null, // the id of the scale the full view last showed
  weighingsPath: undefined, // where the full view's weighings were last asked for
};

// What the page knows of one scale: its latest status message (state, link, code, age,
// stale_after), its latest reading with when it arrived and how old it was then, the chart's
// points, and the commands the service answered 501 to on this connection.
function newScale(id) {
  return { id, status: null, reading: null, readingAt: 0, readingAge: 0, chart: [], chartUnit: null, unsupported: new Set() };
}

const NO_SCALE = newScale(null); // the full view before the worker has named any scale

function scaleRecord(id) {
  let scale = scales.seen.get(id);
  if (!scale) {
    scale = newScale(id);
    scales.seen.set(id, scale);
  }
  return scale;
}

// The id `#scale=` names, or null.
function askedScale() {
  const match = SCALE_HASH.exec(window.location.hash);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch (error) {
    return null; // not an id any service has
  }
}

function listed(id) {
  return scales.list !== null && scales.list.some((scale) => scale.id === id);
}

// The id of the scale the full view shows, or null for the grid. Several scales: the one
// `#scale=` names if the service has it, else the grid. One: that one. Not known yet (the
// service has not listed them): the one `#scale=` names, else the first the worker spoke of.
function shownId() {
  const asked = askedScale();
  if (scales.list === null) return asked ?? scales.seen.keys().next().value ?? null;
  if (scales.list.length === 1) return scales.list[0].id;
  return listed(asked) ? asked : null;
}

// The scale the full view shows (NO_SCALE while none is known), or null for the grid.
function shownScale() {
  const id = shownId();
  if (id !== null) return scaleRecord(id);
  return scales.list === null ? NO_SCALE : null;
}

// "single" (one scale, or not known yet), "grid" or "scale" (one of several in full).
function viewName() {
  if (scales.list === null || scales.list.length === 1) return "single";
  return shownId() === null ? "grid" : "scale";
}

// The API path of `name` ("tare", "weighings") for the scale the full view shows: 0.1's
// `/api/NAME` while the service has one scale, the per-scale path when it has several (or
// when the address names a scale before the service has listed them).
function scalePath(name) {
  const id = shownId();
  const several = scales.list === null ? id !== null && id === askedScale() : scales.list.length > 1;
  return id !== null && several ? `/api/scales/${encodeURIComponent(id)}/${name}` : `/api/${name}`;
}

async function loadScales() {
  const answer = await api("GET", "/api/scales", undefined, { interactive: false });
  if (answer.status !== 200 || !answer.body || !Array.isArray(answer.body.scales)) return;
  scales.list = answer.body.scales.map(({ id, source }) => ({ id, source }));
  scheduleRender();
}

// ---- rendering ----

function renderView() {
  const view = viewName();
  const id = shownId();
  document.body.dataset.view = view;
  $("grid-view").hidden = view !== "grid";
  document.querySelector("main").hidden = view === "grid";
  $("scale-bar").hidden = view !== "scale";
  $("scale-name").textContent = view === "scale" ? id : "";
  const asked = askedScale();
  const unknown = asked !== null && scales.list !== null && !listed(asked);
  $("scale-notice").hidden = !unknown;
  $("scale-notice").textContent = unknown ? t("unknownScale", { id: asked }) : "";
  if (view === "grid") {
    $("simulated").hidden = true; // each card has its own
    renderCards();
    return;
  }
  if (id !== null && id !== scales.main) {
    if (scales.main !== null) shownScaleChanged();
    scales.main = id;
  }
  const path = scalePath("weighings");
  if (path !== scales.weighingsPath) {
    if (scales.weighingsPath !== undefined) loadWeighings();
    scales.weighingsPath = path;
  }
}

// The full view moves to another scale: nothing of the last one's stays on it.
function shownScaleChanged() {
  $("weight").textContent = "----";
  $("unit").textContent = "";
  $("stability").textContent = "—";
  $("mode").textContent = "—";
  $("tare").textContent = "—";
  $("tare").hidden = false;
  $("range").hidden = true;
  $("simulated").hidden = true;
  state.answer = null;
  $("answer").replaceChildren();
  state.announced = null;
}

// 2×2 for four scales, three abreast for three or five to nine, four abreast beyond (the
// style sheet narrows them on smaller screens, down to one column on a phone).
function columns(count) {
  if (count <= 3) return count;
  if (count === 4) return 2;
  return count <= 9 ? 3 : 4;
}

function renderCards() {
  const box = $("cards");
  const ids = scales.list.map((scale) => scale.id);
  if (box.dataset.ids !== ids.join(" ")) {
    scales.cards.clear();
    box.replaceChildren(...scales.list.map(newCard));
    box.dataset.ids = ids.join(" ");
    box.dataset.columns = String(columns(ids.length));
  }
  for (const scale of scales.list) renderCard(scales.cards.get(scale.id), scaleRecord(scale.id), scale);
}

// A card: a link to the scale's full view, its text in spans (a link holds no blocks).
function newCard(scale) {
  const parts = {
    name: element("span", "card-name", scale.id),
    badge: element("span", "badge badge-simulated card-badge"),
    value: element("span", "card-value", "----"),
    unit: element("span", "weight-unit card-unit"),
    stability: element("span", "pill card-stability"),
    mode: element("span", "pill card-mode"),
    range: element("span", "pill pill-alarm card-range"),
    connection: element("span", "card-connection"),
    age: element("span", "card-age"),
    reason: element("span", "card-reason"),
  };
  for (const data of [parts.name, parts.value, parts.unit]) data.translate = false; // not words
  const link = element(
    "a",
    "card",
    "",
    element("span", "card-head", "", parts.name, parts.badge),
    element("span", "weight card-weight", "", parts.value, parts.unit),
    element(
      "span",
      "card-foot",
      "",
      element("span", "card-state", "", element("span", "state-dot"), parts.connection),
      element("span", "card-pills", "", parts.stability, parts.mode, parts.range),
    ),
    element("span", "card-why", "", parts.age, parts.reason),
  );
  link.href = `#scale=${encodeURIComponent(scale.id)}`;
  link.dataset.scale = scale.id;
  link.querySelector(".state-dot").setAttribute("aria-hidden", "true");
  scales.cards.set(scale.id, { ...parts, link });
  return element("li", "card-item", "", link);
}

function renderCard(parts, record, scale) {
  const reading = record.reading;
  const connection = connectionState(record);
  const link = parts.link;
  link.dataset.connection = connection;
  link.dataset.stable = String(Boolean(reading && reading.stable));
  parts.badge.textContent = t("simulated");
  parts.badge.hidden = scale.source !== "simulator";
  parts.value.textContent = reading ? reading.weight ?? "----" : "----";
  parts.unit.textContent = reading ? reading.unit || "" : "";
  parts.stability.hidden = !reading;
  parts.stability.textContent = reading ? t(reading.stable ? "stable" : "motion") : "";
  parts.mode.hidden = !reading || reading.mode !== "net";
  parts.mode.textContent = t("net");
  parts.range.hidden = !reading || reading.status === "ok";
  parts.range.textContent = parts.range.hidden ? "" : t(reading.status);
  parts.connection.textContent = connectionText(connection, record);
  // Not live: how old the weight is, and why (from the state's code).
  const why = record.status && connection !== "live" && connection !== "reconnecting";
  parts.age.textContent = connection === "live" ? "" : ageText(record);
  parts.reason.textContent = why ? codeText("states", record.status.code, "unknownState") : "";
}

// ---- moving between the grid and a scale ----

// A card opened (or the address changed by hand): show it now, and keep the keyboard where
// the eye goes: on the way back from a scale, on the grid, on that scale's card.
function addressChanged() {
  const before = scales.main;
  render();
  if (viewName() === "scale") {
    $("back").focus();
  } else if (viewName() === "grid" && scales.cards.has(before)) {
    scales.cards.get(before).link.focus();
  }
}

function startScales() {
  window.addEventListener("hashchange", addressChanged);
  loadScales();
}
