// balanca live view: shows what dataWorker.js hears on the WebSocket, records weighings and
// sends tare/zero through the HTTP API. No framework and no build step: the page must run
// from the service itself on LANs without internet, under a strict Content-Security-Policy
// (no inline script or style), on a kiosk left on for weeks.
"use strict";

const LANG_KEY = "balanca.lang"; // localStorage: the operator's language survives restarts
const TOKEN_KEY = "balanca.token"; // sessionStorage: a token lives only as long as the tab
const CHART_WINDOW_MS = 2 * 60 * 1000; // several load cycles, each still wide enough to read
const CHART_MIN_STEP_MS = 100; // at most 10 points a second: 1200 points in the window
const CHART_GAP_MS = 1500; // a longer pause between points breaks the line
const CHART_REDRAW_MS = 200;
const FRESH_GRACE_S = 2; // slack on top of stale_after before the page itself calls it stale
const TICK_MS = 500;
const WEIGHINGS_SHOWN = 10;
const WEIGHINGS_REFRESH_MS = 30000; // other stations record weighings too

const TEXT = {
  "pt-BR": {
    title: "Balança",
    simulated: "SIMULADO",
    switchTo: "EN",
    switchLabel: "Switch to English",
    connecting: "Conectando…",
    live: "Ao vivo",
    reconnectingIn: "Reconectando em {s} s",
    reconnecting: "Reconectando…",
    offline: "Sem rede",
    "scale-disconnected": "Balança desconectada",
    stale: "Leitura desatualizada",
    waiting: "Aguardando a balança",
    weight: "Peso",
    stable: "Estável",
    motion: "Em movimento",
    gross: "Bruto",
    net: "Líquido",
    tareValue: "Tara {value}",
    overload: "Sobrecarga",
    underload: "Subcarga",
    error: "Erro na leitura",
    noReading: "Nenhuma leitura ainda",
    ageNow: "Última leitura: agora",
    ageSeconds: "Última leitura há {n} s",
    ageMinutes: "Última leitura há {n} min",
    ageHours: "Última leitura há {n} h",
    chart: "Últimos 2 minutos",
    chartLabel: "Gráfico do peso nos últimos 2 minutos",
    now: "agora",
    weighings: "Pesagens",
    reference: "Referência (placa, lote, pedido)",
    referenceShort: "Referência",
    record: "Registrar pesagem",
    tare: "Tarar",
    zero: "Zerar",
    latestWeighings: "Últimas pesagens",
    number: "Nº",
    time: "Hora",
    noWeighings: "Nenhuma pesagem registrada.",
    tokenTitle: "Token de acesso",
    tokenHelp: "Este serviço exige um token. Ele fica guardado só nesta aba.",
    token: "Token",
    cancel: "Cancelar",
    ok: "Entrar",
    recorded: "Pesagem nº {id} registrada: {weight} {unit}",
    commandDone: "{command}: feito ({reply})",
    commandRefused: "{command}: não feito ({reply})",
    commandTare: "Tara",
    commandZero: "Zero",
    refused: "Recusado ({status})",
    unreachable: "Serviço inalcançável: verifique a rede.",
    tokenRequired: "É preciso um token para isso.",
    tokenNeeded: "O serviço exige um token de acesso: recarregue a página para informá-lo.",
    tokenRejected: "Token recusado.",
    announceWeight: "Peso estável: {weight} {unit}",
    errors: {
      "scale in motion": "balança em movimento",
      "scale stale": "leitura desatualizada",
      "scale disconnected": "balança desconectada",
      "scale waiting": "aguardando a balança",
      "too many requests": "pedidos demais",
      unauthorized: "não autorizado",
    },
  },
  en: {
    title: "Scale",
    simulated: "SIMULATED",
    switchTo: "PT",
    switchLabel: "Mudar para português",
    connecting: "Connecting…",
    live: "Live",
    reconnectingIn: "Reconnecting in {s} s",
    reconnecting: "Reconnecting…",
    offline: "Offline",
    "scale-disconnected": "Scale disconnected",
    stale: "Reading stale",
    waiting: "Waiting for the scale",
    weight: "Weight",
    stable: "Stable",
    motion: "In motion",
    gross: "Gross",
    net: "Net",
    tareValue: "Tare {value}",
    overload: "Overload",
    underload: "Underload",
    error: "Reading error",
    noReading: "No reading yet",
    ageNow: "Last reading: just now",
    ageSeconds: "Last reading {n} s ago",
    ageMinutes: "Last reading {n} min ago",
    ageHours: "Last reading {n} h ago",
    chart: "Last 2 minutes",
    chartLabel: "Chart of the weight over the last 2 minutes",
    now: "now",
    weighings: "Weighings",
    reference: "Reference (plate, lot, order)",
    referenceShort: "Reference",
    record: "Record weighing",
    tare: "Tare",
    zero: "Zero",
    latestWeighings: "Latest weighings",
    number: "No.",
    time: "Time",
    noWeighings: "No weighings recorded.",
    tokenTitle: "Access token",
    tokenHelp: "This service requires a token. It is kept in this tab only.",
    token: "Token",
    cancel: "Cancel",
    ok: "Sign in",
    recorded: "Weighing no. {id} recorded: {weight} {unit}",
    commandDone: "{command}: done ({reply})",
    commandRefused: "{command}: not done ({reply})",
    commandTare: "Tare",
    commandZero: "Zero",
    refused: "Refused ({status})",
    unreachable: "Service unreachable: check the network.",
    tokenRequired: "A token is required for this.",
    tokenNeeded: "The service requires an access token: reload the page to enter it.",
    tokenRejected: "Token rejected.",
    announceWeight: "Stable weight: {weight} {unit}",
    errors: {},
  },
};

const $ = (id) => document.getElementById(id);

const state = {
  lang: localStorage.getItem(LANG_KEY) === "en" ? "en" : "pt-BR",
  token: sessionStorage.getItem(TOKEN_KEY),
  tokenDeclined: false, // the operator cancelled the token dialog: background work stops asking
  tokenPrompt: null, // the open token dialog's promise, shared by everyone waiting on it
  socket: "connecting", // connecting | open | closed (the worker's WebSocket)
  retryAt: null, // performance.now() of the next connection attempt
  scale: null, // the latest status message: {state, link, reason, age, stale_after}
  reading: null,
  readingAt: 0, // performance.now() when the reading arrived
  readingAge: 0, // its age in seconds when it arrived (0 while live)
  everOpened: false,
  everLive: false,
  needsToken: false, // the live stream refused us for want of a token
  connection: null, // what body[data-connection] says
  announced: null,
  chart: [], // {t: performance.now(), v: number}, oldest first
  chartUnit: null,
  chartDrawnAt: 0,
  weighings: [],
  renderQueued: false,
  worker: null,
};

function t(key, params = {}) {
  const text = TEXT[state.lang][key] ?? TEXT["pt-BR"][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

// ---- the worker and what it says ----

function startWorker() {
  const worker = new Worker("dataWorker.js");
  worker.onmessage = (event) => workerSaid(event.data);
  // A worker that dies of an uncaught error would leave the page frozen: start a new one.
  worker.onerror = () => {
    worker.terminate();
    state.socket = "closed";
    setTimeout(startWorker, 5000);
  };
  worker.postMessage({ type: "start", token: state.token });
  state.worker = worker;
}

function workerSaid(message) {
  if (message.type === "reading") {
    readingArrived(message.reading);
  } else if (message.type === "status") {
    state.scale = message.status;
  } else if (message.type === "health") {
    healthArrived(message.scale);
  } else if (message.type === "connection") {
    state.socket = message.state;
    state.everOpened = state.everOpened || message.state === "open";
    if (message.state === "open") state.needsToken = false;
    state.retryAt = message.state === "closed" ? performance.now() + message.retryIn : null;
    // What the last connection said about the scale is unknown on the next one until the
    // server's first status message arrives.
    if (message.state !== "open") state.scale = null;
  } else if (message.type === "auth-required" && (message.token || null) === state.token) {
    state.needsToken = true;
    askToken(false); // unless the token that failed is one we have replaced already
  }
  scheduleRender();
}

function readingArrived(reading) {
  state.reading = reading;
  state.readingAt = performance.now();
  // On connect the server replays its latest reading, which is old unless the scale is live;
  // the status's age is a lower bound until the worker's health probe says exactly.
  const live = state.scale && state.scale.state === "live";
  state.readingAge = live ? 0 : (state.scale && state.scale.age) || 0;
  if (live) addChartPoint(reading); // a replayed old reading does not belong at "now"
}

function healthArrived(scale) {
  state.scale = { ...state.scale, ...scale };
  if (state.reading && typeof scale.age === "number" && scale.state !== "live") {
    state.readingAt = performance.now();
    state.readingAge = scale.age;
  }
}

// ---- connection state ----

function staleAfter() {
  return (state.scale && state.scale.stale_after) || 3;
}

function readingAge() {
  return state.readingAge + (performance.now() - state.readingAt) / 1000;
}

// The page's own judgement on top of the worker's: even if every other safeguard failed, a
// reading older than the server's stale_after never shows as live.
function connectionState() {
  if (!navigator.onLine) return "offline";
  if (state.socket !== "open") return "reconnecting";
  const scale = state.scale ? state.scale.state : "waiting";
  if (scale === "disconnected") return "scale-disconnected";
  if (scale === "live" && state.reading && readingAge() <= staleAfter() + FRESH_GRACE_S) return "live";
  return "stale";
}

function connectionText(connection) {
  if (connection === "reconnecting") {
    if (!state.everOpened) return t("connecting");
    if (state.socket === "connecting" || state.retryAt === null) return t("reconnecting");
    const seconds = Math.max(0, Math.ceil((state.retryAt - performance.now()) / 1000));
    return seconds > 0 ? t("reconnectingIn", { s: seconds }) : t("reconnecting");
  }
  if (connection === "stale" && state.scale && state.scale.state === "waiting") return t("waiting");
  return t(connection);
}

function renderConnection() {
  const connection = connectionState();
  if (connection !== state.connection) {
    document.body.dataset.connection = connection;
    // Announced once per change: the countdown would flood a screen reader.
    if (state.connection !== null) announce(connection === "reconnecting" ? t("reconnecting") : connectionText(connection));
    // Back after an outage: other stations may have recorded weighings meanwhile.
    if (connection === "live" && state.everLive) loadWeighings();
    state.everLive = state.everLive || connection === "live";
    state.connection = connection;
  }
  document.body.dataset.scale = state.scale ? state.scale.state : "waiting";
  $("connection-text").textContent = connectionText(connection);
  // The server's own words on why the scale is not live (they come in English).
  const reason = connection === "live" || !state.scale ? "" : state.scale.reason || "";
  $("reason").textContent = state.needsToken ? t("tokenNeeded") : reason;
}

// ---- the reading ----

function renderReading() {
  const reading = state.reading;
  if (!reading) return;
  // The weight is the scale's own decimal string, shown exactly as sent.
  $("weight").textContent = reading.weight ?? "----";
  $("unit").textContent = reading.unit || "";
  $("stability").textContent = t(reading.stable ? "stable" : "motion");
  $("mode").textContent = t(reading.mode === "net" ? "net" : "gross");
  $("tare").textContent = reading.tare === null ? "" : t("tareValue", { value: `${reading.tare} ${reading.unit}` });
  $("tare").hidden = reading.tare === null;
  const alarm = reading.status !== "ok";
  $("range").hidden = !alarm;
  $("range").textContent = alarm ? t(reading.status) : "";
  $("simulated").hidden = reading.source !== "simulator";
  document.body.dataset.stable = String(Boolean(reading.stable));
  document.body.dataset.mode = reading.mode;
  document.body.dataset.status = reading.status;
  announceStableWeight(reading);
}

function renderAge() {
  const el = $("age");
  if (!state.reading) {
    el.textContent = t("noReading");
    return;
  }
  const age = readingAge();
  if (age < 1) el.textContent = t("ageNow");
  else if (age < 120) el.textContent = t("ageSeconds", { n: Math.floor(age) });
  else if (age < 7200) el.textContent = t("ageMinutes", { n: Math.floor(age / 60) });
  else el.textContent = t("ageHours", { n: Math.floor(age / 3600) });
}

// Screen readers hear a stable weight when it changes, never the frames in between.
function announceStableWeight(reading) {
  if (!reading.stable || reading.weight === null || state.connection !== "live") return;
  const text = t("announceWeight", { weight: reading.weight, unit: reading.unit });
  if (text === state.announced) return;
  state.announced = text;
  announce(text);
}

function announce(text) {
  $("announcer").textContent = text;
}

// ---- chart ----

function addChartPoint(reading) {
  if (reading.unit !== state.chartUnit) {
    state.chart = [];
    state.chartUnit = reading.unit;
  }
  const now = performance.now();
  const last = state.chart[state.chart.length - 1];
  // Numbers for plotting only; the display above keeps the exact decimal string.
  const value = reading.weight === null ? null : Number(reading.weight);
  if (last && now - last.t < CHART_MIN_STEP_MS) {
    last.v = value;
    return;
  }
  state.chart.push({ t: now, v: value });
  const oldest = now - CHART_WINDOW_MS;
  while (state.chart.length && state.chart[0].t < oldest) state.chart.shift();
}

// The plotted range: zero and every point, with a little room above (and below, for
// negative weights) so the line does not run along the edge.
function chartRange(points) {
  let low = 0;
  let high = 0;
  for (const p of points) {
    if (p.v === null) continue;
    low = Math.min(low, p.v);
    high = Math.max(high, p.v);
  }
  if (high === low) high = low + 1;
  const room = (high - low) * 0.05;
  return { low: low < 0 ? low - room : low, high: high + room };
}

// A round step (1, 2, 2.5 or 5 times a power of ten) giving about four grid lines.
function gridStep(low, high) {
  const raw = (high - low) / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((step) => step >= raw);
}

function sizeCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * ratio);
  const height = Math.round(canvas.clientHeight * ratio);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  return ratio;
}

function drawChart() {
  const canvas = $("chart");
  const ratio = sizeCanvas(canvas);
  const ctx = canvas.getContext("2d");
  const style = getComputedStyle(canvas);
  const color = (name) => style.getPropertyValue(name).trim();
  const w = canvas.width;
  const h = canvas.height;
  const pad = { left: 64 * ratio, right: 12 * ratio, top: 24 * ratio, bottom: 26 * ratio };
  const now = performance.now();
  const points = state.chart.filter((p) => p.t >= now - CHART_WINDOW_MS);
  const { low, high } = chartRange(points);
  const x = (time) => pad.left + ((time - (now - CHART_WINDOW_MS)) / CHART_WINDOW_MS) * (w - pad.left - pad.right);
  const y = (value) => h - pad.bottom - ((value - low) / (high - low)) * (h - pad.top - pad.bottom);

  ctx.clearRect(0, 0, w, h);
  ctx.font = `${15 * ratio}px system-ui, sans-serif`;
  ctx.lineWidth = ratio;
  drawGrid(ctx, { w, h, pad, low, high, x, y, color, ratio });

  ctx.strokeStyle = color("--chart-line");
  ctx.lineWidth = 2.5 * ratio;
  ctx.lineJoin = "round";
  ctx.beginPath();
  let previous = null;
  for (const p of points) {
    if (p.v === null) {
      previous = null;
      continue;
    }
    if (previous && p.t - previous.t <= CHART_GAP_MS) ctx.lineTo(x(p.t), y(p.v));
    else ctx.moveTo(x(p.t), y(p.v));
    previous = p;
  }
  ctx.stroke();
  state.chartDrawnAt = now;
}

function drawGrid(ctx, { w, h, pad, low, high, x, y, color, ratio }) {
  ctx.strokeStyle = color("--chart-grid");
  ctx.fillStyle = color("--chart-text");
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  // Plain digits with a dot, like the weight itself, not locale grouping ("30.000" reads as
  // thirty in English and as thirty thousand in Portuguese).
  const step = gridStep(low, high);
  for (let value = Math.ceil(low / step) * step; value <= high; value += step) {
    const yy = Math.round(y(value)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.left, yy);
    ctx.lineTo(w - pad.right, yy);
    ctx.stroke();
    ctx.fillText(String(Number(value.toFixed(6))), pad.left - 8 * ratio, yy);
  }
  if (state.chartUnit) {
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(state.chartUnit, 4 * ratio, 0);
  }
  drawTimeLabels(ctx, { w, h, pad, x, ratio });
}

// Marks every 30 s under the plot; every other one when the plot is narrow (a phone).
function drawTimeLabels(ctx, { w, h, pad, x, ratio }) {
  const now = performance.now();
  const span = CHART_WINDOW_MS / 1000;
  const step = (w - pad.left - pad.right) / (span / 30) > 70 * ratio ? 30 : 60;
  ctx.textBaseline = "bottom";
  for (let seconds = span; seconds >= 0; seconds -= step) {
    ctx.textAlign = seconds === span ? "left" : seconds === 0 ? "right" : "center";
    ctx.fillText(seconds === 0 ? t("now") : `−${seconds} s`, x(now - seconds * 1000), h);
  }
}

// ---- rendering loop ----

function scheduleRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    render();
  });
}

function render() {
  renderConnection();
  renderReading();
  renderAge();
  if (performance.now() - state.chartDrawnAt >= CHART_REDRAW_MS) drawChart();
}

// Time moves even when nothing arrives: ages grow, countdowns run, the chart slides, and a
// reading that stopped coming turns stale on screen.
function tick() {
  renderConnection();
  renderAge();
  drawChart();
}

// ---- HTTP API ----

async function send(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  try {
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    const data = await response.json().catch(() => null);
    return { status: response.status, body: data };
  } catch (error) {
    return { status: 0, body: null };
  }
}

// One request; on a 401 ask for the token once, keep it for this tab, and retry once.
// `interactive` is true for what the operator just pressed; background refreshes do not
// reopen a dialog the operator has cancelled.
async function api(method, path, body, interactive = true) {
  const used = state.token;
  let answer = await send(method, path, body);
  if (answer.status !== 401) return answer;
  // A token given meanwhile (another request asked) is tried before asking again.
  if (state.token === used && !(await askToken(interactive, Boolean(used)))) return answer;
  answer = await send(method, path, body);
  if (answer.status === 401) forgetToken();
  return answer;
}

function askToken(interactive, rejected = false) {
  if (!interactive && state.tokenDeclined) return Promise.resolve(false);
  if (state.tokenPrompt) return state.tokenPrompt;
  const dialog = $("token-dialog");
  const input = $("token-input");
  input.value = "";
  dialog.returnValue = "";
  state.tokenPrompt = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        state.tokenPrompt = null;
        const token = input.value.trim();
        if (dialog.returnValue !== "ok" || !token) {
          state.tokenDeclined = true;
          resolve(false);
          return;
        }
        state.tokenDeclined = false;
        setToken(token);
        resolve(true);
      },
      { once: true },
    );
  });
  if (rejected) showAnswer(t("tokenRejected"), "error");
  dialog.showModal();
  return state.tokenPrompt;
}

function setToken(token) {
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  if (state.worker) state.worker.postMessage({ type: "token", token });
}

function forgetToken() {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
}

// A kiosk can be set up with ?token=... in its address: keep it for this tab and take it out
// of the address bar, so it is not on screen.
function takeTokenFromAddress() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (!token) return;
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  url.searchParams.delete("token");
  history.replaceState(null, "", url);
}

function showAnswer(text, tone) {
  const el = $("answer");
  el.textContent = text;
  el.dataset.tone = tone;
}

function showFailure(answer) {
  if (answer.status === 0) {
    showAnswer(t("unreachable"), "error");
    return;
  }
  if (answer.status === 401) {
    showAnswer(t(state.tokenDeclined ? "tokenRequired" : "tokenRejected"), "error");
    return;
  }
  const body = answer.body || {};
  const error = TEXT[state.lang].errors[body.error] || body.error || "";
  const detail = body.detail ? ` — ${body.detail}` : "";
  showAnswer(`${t("refused", { status: answer.status })}: ${error}${detail}`, "error");
}

async function withButton(button, work) {
  button.disabled = true;
  try {
    await work();
  } finally {
    button.disabled = false;
  }
}

function recordWeighing(event) {
  event.preventDefault();
  withButton($("record"), async () => {
    const reference = $("reference").value.trim();
    const answer = await api("POST", "/api/weighings", reference ? { reference } : {});
    if (answer.status !== 201 || !answer.body) {
      showFailure(answer);
      return;
    }
    const row = answer.body;
    showAnswer(t("recorded", { id: row.id, weight: row.weight, unit: row.unit }), "ok");
    $("reference").value = "";
    await loadWeighings();
  });
}

function sendCommand(name, button) {
  withButton(button, async () => {
    const answer = await api("POST", `/api/${name}`, {});
    const body = answer.body;
    if (body && typeof body.ok === "boolean") {
      const command = t(name === "tare" ? "commandTare" : "commandZero");
      showAnswer(t(body.ok ? "commandDone" : "commandRefused", { command, reply: body.reply }), body.ok ? "ok" : "error");
    } else {
      showFailure(answer);
    }
  });
}

// ---- weighings ----

async function loadWeighings() {
  const answer = await api("GET", `/api/weighings?limit=${WEIGHINGS_SHOWN}`, undefined, false);
  if (answer.status === 200 && answer.body && Array.isArray(answer.body.weighings)) {
    state.weighings = answer.body.weighings;
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

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderWeighings() {
  const rows = state.weighings;
  const body = $("weighings");
  body.replaceChildren(
    ...rows.map((row) => {
      const tr = document.createElement("tr");
      const net = row.mode === "net" ? ` (${t("net").toLowerCase()})` : "";
      tr.append(
        cell(String(row.id), "num"),
        cell(weighingTime(row.time)),
        cell(row.reference || "—"),
        cell(`${row.weight} ${row.unit}${net}`, "num"),
      );
      return tr;
    }),
  );
  $("weighings-empty").hidden = rows.length > 0;
}

// ---- language ----

function applyLanguage() {
  document.documentElement.lang = state.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  const toggle = $("language");
  toggle.textContent = t("switchTo");
  toggle.setAttribute("aria-label", t("switchLabel"));
  toggle.lang = state.lang === "en" ? "pt-BR" : "en";
  document.title = t("title");
  state.announced = null;
  renderWeighings();
  render();
}

function toggleLanguage() {
  state.lang = state.lang === "en" ? "pt-BR" : "en";
  localStorage.setItem(LANG_KEY, state.lang);
  applyLanguage();
}

// ---- start ----

function start() {
  takeTokenFromAddress();
  $("language").addEventListener("click", toggleLanguage);
  $("weigh-form").addEventListener("submit", recordWeighing);
  $("tare-button").addEventListener("click", (e) => sendCommand("tare", e.currentTarget));
  $("zero-button").addEventListener("click", (e) => sendCommand("zero", e.currentTarget));
  window.addEventListener("online", () => state.worker && state.worker.postMessage({ type: "reconnect" }));
  window.addEventListener("offline", renderConnection);
  window.addEventListener("resize", drawChart);
  applyLanguage();
  startWorker();
  loadWeighings();
  setInterval(tick, TICK_MS);
  setInterval(loadWeighings, WEIGHINGS_REFRESH_MS);
}

start();
