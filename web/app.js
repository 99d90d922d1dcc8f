// balanca live view: shows what dataWorker.js hears on the WebSocket and sends tare/zero/
// clear-tare through the HTTP API; records.js captures, lists and voids the sealed records
// with this file's HTTP helpers, and gate.js weighs trucks in and out; grid.js keeps what is
// heard per scale and chooses what is shown: one scale's full view, or with several the grid
// of cards. No framework and no build step: the page must run from the service itself on
// LANs without internet, under a strict Content-Security-Policy (no inline script or style),
// on a kiosk left on for weeks.
// Every text on screen comes from TEXT (i18n.js), by key or by the server's machine `code`;
// the server's English `detail` and `reason` go to the console only.
"use strict";

const LANG_KEY = "balanca.lang"; // localStorage: the operator's language survives restarts
const TOKEN_KEY = "balanca.token"; // sessionStorage: a token lives only as long as the tab
const CHART_WINDOW_MS = 2 * 60 * 1000; // several load cycles, each still wide enough to read
const CHART_MIN_STEP_MS = 100; // at most 10 points a second: 1200 points in the window
const CHART_GAP_MS = 1500; // a longer pause between points breaks the line
const CHART_REDRAW_MS = 200;
const FRESH_GRACE_S = 2; // slack on top of stale_after before the page itself calls it stale
const TICK_MS = 500;
const RETRY_WINDOW_MS = 60000; // an action sent again within this is a retry of the same one

const $ = (id) => document.getElementById(id);

const state = {
  lang: localStorage.getItem(LANG_KEY) === "en" ? "en" : "pt-BR",
  token: sessionStorage.getItem(TOKEN_KEY),
  tokenDeclined: false, // the operator cancelled the token dialog: background work stops asking
  tokenPrompt: null, // the open token dialog's promise, shared by everyone waiting on it
  socket: "connecting", // connecting | open | closed (the worker's WebSocket)
  retryAt: null, // performance.now() of the next connection attempt
  db: null, // /api/health's database part: {state, code, backlog, oldest}
  answer: null, // the answer line: {tone, text(), status}, re-rendered on a language switch
  everOpened: false,
  everLive: false,
  needsToken: false, // the live stream refused us for want of a token
  connection: null, // what body[data-connection] says
  announced: null,
  chartDrawnAt: 0,
  renderQueued: false,
  worker: null,
};

// `key` may be a path into a table ("codes.tared"); what is missing in English falls back
// to Portuguese.
function lookup(lang, key) {
  return key.split(".").reduce((table, part) => (table == null ? undefined : table[part]), TEXT[lang]);
}

function t(key, params = {}) {
  const text = lookup(state.lang, key) ?? lookup("pt-BR", key) ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

// The text of a machine code from one of TEXT's tables, or the generic `unknown` text naming
// the code: the server may know codes this page does not.
function codeText(table, code, unknown) {
  return typeof lookup("pt-BR", `${table}.${code}`) === "string" ? t(`${table}.${code}`) : t(unknown, { code: code ?? "?" });
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
    readingArrived(scaleRecord(message.reading.scale), message.reading);
  } else if (message.type === "status") {
    const { status } = message;
    scaleRecord(status.scale).status = status;
    console.info("balanca: scale", status.scale, status.state, status.code, status.reason);
  } else if (message.type === "health") {
    healthArrived(message);
  } else if (message.type === "connection") {
    state.socket = message.state;
    state.everOpened = state.everOpened || message.state === "open";
    if (message.state === "open") {
      state.needsToken = false;
      // The service may have restarted with other scales.
      for (const scale of scales.seen.values()) scale.unsupported.clear();
      loadScales();
    }
    state.retryAt = message.state === "closed" ? performance.now() + message.retryIn : null;
    // What the last connection said about the scales is unknown on the next one until the
    // server's first status messages arrive.
    if (message.state !== "open") for (const scale of scales.seen.values()) scale.status = null;
  } else if (message.type === "auth-required" && (message.token || null) === state.token) {
    state.needsToken = true;
    askToken(false); // unless the token that failed is one we have replaced already
  }
  scheduleRender();
}

// `scale`: grid.js's record of the scale the reading is from.
function readingArrived(scale, reading) {
  scale.reading = reading;
  scale.readingAt = performance.now();
  // On connect the server replays its latest reading, which is old unless the scale is live;
  // the status's age is a lower bound until the worker's health probe says exactly.
  const live = scale.status && scale.status.state === "live";
  scale.readingAge = live ? 0 : (scale.status && scale.status.age) || 0;
  if (live) addChartPoint(scale, reading); // a replayed old reading does not belong at "now"
}

// The worker polls /api/health: the database's state always, the scales' part only while the
// WebSocket is not due to tell us more (see dataWorker.js).
function healthArrived({ scales: fresh, db }) {
  if (db) {
    if (state.db === null || db.code !== state.db.code) console.info("balanca: database", db.state, db.code);
    state.db = db;
  }
  for (const health of fresh || []) {
    const scale = scaleRecord(health.id);
    scale.status = { ...scale.status, ...health };
    if (scale.reading && typeof health.age === "number" && health.state !== "live") {
      scale.readingAt = performance.now();
      scale.readingAge = health.age;
    }
  }
}

// ---- connection state ----

function staleAfter(scale) {
  return (scale.status && scale.status.stale_after) || 3;
}

function readingAge(scale) {
  return scale.readingAge + (performance.now() - scale.readingAt) / 1000;
}

// The page's own judgement on top of the worker's: even if every other safeguard failed, a
// reading older than the server's stale_after never shows as live. `scale` is null for the
// grid, where the header speaks of the service and each card of its scale.
function connectionState(scale) {
  if (!navigator.onLine) return "offline";
  if (state.socket !== "open") return "reconnecting";
  if (scale === null) return "live";
  const known = scale.status ? scale.status.state : "waiting";
  if (known === "disconnected") return "scale-disconnected";
  if (known === "live" && scale.reading && readingAge(scale) <= staleAfter(scale) + FRESH_GRACE_S) return "live";
  return "stale";
}

function connectionText(connection, scale) {
  if (connection === "reconnecting") {
    if (!state.everOpened) return t("connecting");
    if (state.socket === "connecting" || state.retryAt === null) return t("reconnecting");
    const seconds = Math.max(0, Math.ceil((state.retryAt - performance.now()) / 1000));
    return seconds > 0 ? t("reconnectingIn", { s: seconds }) : t("reconnecting");
  }
  if (connection === "stale" && scale.status && scale.status.state === "waiting") return t("waiting");
  if (connection === "live" && scale === null) return t("connected");
  return t(connection);
}

function renderConnection() {
  const scale = shownScale();
  const connection = connectionState(scale);
  if (connection !== state.connection) {
    document.body.dataset.connection = connection;
    // Announced once per change: the countdown would flood a screen reader.
    if (state.connection !== null) announce(connection === "reconnecting" ? t("reconnecting") : connectionText(connection, scale));
    // Back after an outage: other stations may have recorded weighings meanwhile.
    if (connection === "live" && state.everLive) loadWeighings();
    state.everLive = state.everLive || connection === "live";
    state.connection = connection;
  }
  document.body.dataset.scale = scale && scale.status ? scale.status.state : "waiting";
  $("connection-text").textContent = connectionText(connection, scale);
  // Why the scale is not live, from its state code (the English reason is for the log).
  const reason = connection === "live" || !scale || !scale.status ? "" : codeText("states", scale.status.code, "unknownState");
  $("reason").textContent = state.needsToken ? t("tokenNeeded") : reason;
  renderDatabase(connection);
  renderRecordButton(connection, scale);
  renderGateButtons(connection, scale);
}

// The database's state beside the connection's: a weighing needs both. Unknown (hidden) until
// the first health answer, and while the service itself is out of reach.
function renderDatabase(connection) {
  const db = state.db;
  const shown = db !== null && connection !== "offline" && connection !== "reconnecting";
  $("database").hidden = !shown;
  document.body.dataset.db = shown ? db.state : "unknown";
  if (!shown) return;
  $("database-text").textContent = codeText("db", db.code, "unknownState");
  // Readings waiting for the database: a few are always in flight, so counted only while it
  // is down or slow, when they pile up.
  const backlog = db.state === "ok" ? 0 : Number(db.backlog) || 0;
  $("database-backlog").textContent = backlog === 0 ? "" : backlog === 1 ? t("backlogOne") : t("backlog", { n: backlog });
}

// "Registrar pesagem" is offered only when it can succeed, and says why when it cannot. The
// service checks again: a load that moves between this check and the click is refused there.
function recordBlocked(connection, scale) {
  if (connection === "offline" || connection === "reconnecting") return "recordNoService";
  const reading = scale && scale.reading;
  if (connection !== "live" || !reading) return "recordNotLive";
  if (state.db !== null && state.db.state !== "ok") return "recordNoDatabase";
  if (reading.status !== "ok") return "recordOutOfRange";
  if (!reading.stable || reading.weight === null) return "recordInMotion";
  if (Number(reading.weight) <= 0) return "recordEmpty"; // below any minimum
  return null;
}

function renderRecordButton(connection, scale) {
  const blocked = recordBlocked(connection, scale);
  const button = $("record");
  button.disabled = button.dataset.busy === "true" || blocked !== null;
  $("record-why").textContent = blocked ? t(blocked) : "";
}

// ---- the reading ----

function renderReading(scale) {
  const reading = scale && scale.reading;
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

function renderAge(scale) {
  if (scale) $("age").textContent = ageText(scale);
}

function ageText(scale) {
  if (!scale.reading) return t("noReading");
  const age = readingAge(scale);
  if (age < 1) return t("ageNow");
  if (age < 120) return t("ageSeconds", { n: Math.floor(age) });
  if (age < 7200) return t("ageMinutes", { n: Math.floor(age / 60) });
  return t("ageHours", { n: Math.floor(age / 3600) });
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

function addChartPoint(scale, reading) {
  if (reading.unit !== scale.chartUnit) {
    scale.chart = [];
    scale.chartUnit = reading.unit;
  }
  const now = performance.now();
  const last = scale.chart[scale.chart.length - 1];
  // Numbers for plotting only; the display above keeps the exact decimal string.
  const value = reading.weight === null ? null : Number(reading.weight);
  if (last && now - last.t < CHART_MIN_STEP_MS) {
    last.v = value;
    return;
  }
  scale.chart.push({ t: now, v: value });
  const oldest = now - CHART_WINDOW_MS;
  while (scale.chart.length && scale.chart[0].t < oldest) scale.chart.shift();
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
  const scale = shownScale();
  if (!scale) return; // the grid
  const canvas = $("chart");
  const ratio = sizeCanvas(canvas);
  const ctx = canvas.getContext("2d");
  const style = getComputedStyle(canvas);
  const color = (name) => style.getPropertyValue(name).trim();
  const w = canvas.width;
  const h = canvas.height;
  const pad = { left: 64 * ratio, right: 12 * ratio, top: 24 * ratio, bottom: 26 * ratio };
  const now = performance.now();
  const points = scale.chart.filter((p) => p.t >= now - CHART_WINDOW_MS);
  const { low, high } = chartRange(points);
  const x = (time) => pad.left + ((time - (now - CHART_WINDOW_MS)) / CHART_WINDOW_MS) * (w - pad.left - pad.right);
  const y = (value) => h - pad.bottom - ((value - low) / (high - low)) * (h - pad.top - pad.bottom);

  ctx.clearRect(0, 0, w, h);
  ctx.font = `${15 * ratio}px system-ui, sans-serif`;
  ctx.lineWidth = ratio;
  drawGrid(ctx, { w, h, pad, low, high, x, y, color, ratio, unit: scale.chartUnit });

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

function drawGrid(ctx, { w, h, pad, low, high, x, y, color, ratio, unit }) {
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
  if (unit) {
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    ctx.fillText(unit, 4 * ratio, 0);
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
  renderView();
  const scale = shownScale();
  renderConnection();
  renderCommands(scale);
  renderReading(scale);
  renderAge(scale);
  if (performance.now() - state.chartDrawnAt >= CHART_REDRAW_MS) drawChart();
}

// Time moves even when nothing arrives: ages grow, countdowns run, the chart slides, and a
// reading that stopped coming turns stale on screen.
function tick() {
  renderView();
  renderConnection();
  renderAge(shownScale());
  drawChart();
}

// ---- HTTP API ----

async function send(method, path, body, key) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (key) headers["Idempotency-Key"] = key;
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
// reopen a dialog the operator has cancelled. `key` is a write's Idempotency-Key (the 401
// comes before the service looks at it, so the retry carries the same one).
async function api(method, path, body, { interactive = true, key = null } = {}) {
  const used = state.token;
  let answer = await send(method, path, body, key);
  if (answer.status !== 401) return answer;
  // A token given meanwhile (another request asked) is tried before asking again.
  if (state.token === used && !(await askToken(interactive, Boolean(used)))) return answer;
  answer = await send(method, path, body, key);
  if (answer.status === 401) forgetToken();
  return answer;
}

// Every write the operator asks for carries an Idempotency-Key (docs/records.md "Retries and
// double clicks"): a fresh one per action, and the same one when the same action (same name,
// same body) is sent again shortly after it got no final answer (no answer at all, a timeout,
// a 5xx): if the first did reach the service, the retry gets the first answer instead of a
// second record. The service keeps a 2xx or a 4xx other than 408/429, and so does the page.
const unanswered = new Map(); // action name -> {body: JSON text, key, at: performance.now()}

function actionKey(action, body) {
  const text = JSON.stringify(body);
  const now = performance.now();
  const last = unanswered.get(action);
  if (last && last.body === text && now - last.at < RETRY_WINDOW_MS) {
    last.at = now;
    return last.key;
  }
  const key = newKey();
  unanswered.set(action, { body: text, key, at: now });
  return key;
}

// crypto.randomUUID exists only in secure contexts (https, localhost); a kiosk on the LAN
// reaches the service over plain http, where getRandomValues still works.
function newKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant 10
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function finalAnswer(status) {
  return (status >= 200 && status < 300) || (status >= 400 && status < 500 && status !== 408 && status !== 429);
}

// POST `body` to `path` as the operator's action `action` ("capture", "void 12", "tare").
async function write(action, path, body) {
  const key = actionKey(action, body);
  const answer = await api("POST", path, body, { key });
  const pending = unanswered.get(action);
  if (finalAnswer(answer.status) && pending && pending.key === key) unanswered.delete(action);
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
  if (rejected) showAnswer("error", () => t("tokenRejected"));
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

// The answer line, kept as how to say it (`text`, a function) rather than the words, so that
// switching language re-renders it. `status` (a refusal's HTTP status) adds the
// "Refused (409):" lead; `again`, a function, offers "Pesar novamente" beside it.
function showAnswer(tone, text, status = null, again = null) {
  state.answer = { tone, text, status, again };
  renderAnswer();
}

// The answer saying `code`, from `table` when it has its own words for it (a void's, the
// gate's), else `codes`.
function codeAnswer(tone, code, status = null, { table = "codes", again = null } = {}) {
  const from = typeof lookup("pt-BR", `${table}.${code}`) === "string" ? table : "codes";
  return { tone, text: () => codeText(from, code, "unknownCode"), status, again };
}

function showCode(tone, code, status = null, options = {}) {
  state.answer = codeAnswer(tone, code, status, options);
  renderAnswer();
}

function renderAnswer() {
  paintAnswer($("answer"), $("again"), state.answer);
}

// An answer line (`el`) and its "again" button, as `answer` says (gate.js has one too).
function paintAnswer(el, againButton, answer) {
  againButton.hidden = !(answer && answer.again);
  if (!answer) return;
  const message = document.createElement("span");
  message.textContent = answer.text();
  if (answer.status === null) {
    el.replaceChildren(message);
  } else {
    const lead = document.createElement("span");
    lead.textContent = t("refused", { status: answer.status });
    el.replaceChildren(lead, " ", message);
  }
  el.dataset.tone = answer.tone;
}

// The answer for a refusal, by its code (from `table` when it has its own words for it,
// else `codes`); the server's English words go to the console for whoever debugs. `again`
// is offered after a same_load refusal.
function refusalAnswer(answer, { table = "codes", again = null } = {}) {
  if (answer.status === 0) return { tone: "error", text: () => t("unreachable"), status: null, again: null };
  const body = answer.body || {};
  console.warn("balanca: refused", answer.status, body.code, body.error, body.detail);
  if (answer.status === 401 && state.tokenDeclined) {
    return { tone: "error", text: () => t("tokenRequired"), status: null, again: null };
  }
  return codeAnswer("error", body.code, answer.status, { table, again: body.code === "same_load" ? again : null });
}

// A refusal on the answer line. `command` names a command the service may lack; `table` and
// `again` as refusalAnswer's.
function showFailure(answer, { command = null, table = "codes", again = null } = {}) {
  if (command && answer.body && answer.body.code === "command_unsupported") {
    const scale = shownScale();
    if (scale) scale.unsupported.add(command);
    scheduleRender();
  }
  state.answer = refusalAnswer(answer, { table, again });
  renderAnswer();
}

async function withButton(button, work) {
  button.disabled = true;
  button.dataset.busy = "true";
  try {
    await work();
  } finally {
    delete button.dataset.busy;
    button.disabled = false;
    renderConnection(); // the record button stays disabled if a weighing cannot succeed now
  }
}

// "Pesar novamente": the refused capture once more, saying it is the same load on purpose.
function weighAgain() {
  const again = state.answer && state.answer.again;
  if (!again) return;
  state.answer.again = null;
  renderAnswer();
  again();
}

function sendCommand(name, button) {
  withButton(button, async () => {
    const path = scalePath(name);
    const answer = await write(path, path, {});
    if (answer.status === 200 && answer.body && answer.body.ok === true) {
      showCode("ok", answer.body.code);
    } else {
      showFailure(answer, { command: name });
    }
  });
}

// A command button shows until the service answers 501 to it: the scale's protocol lacks it
// (after a reconnect the button is back).
function renderCommands(scale) {
  for (const button of document.querySelectorAll("[data-command]")) {
    button.hidden = Boolean(scale) && scale.unsupported.has(button.dataset.command);
  }
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
  announce(""); // what was said in the other language is not repeated in this one
  state.announced = null;
  renderRecords();
  renderGate();
  renderAnswer();
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
  $("again").addEventListener("click", weighAgain);
  for (const button of document.querySelectorAll("[data-command]")) {
    button.addEventListener("click", () => sendCommand(button.dataset.command, button));
  }
  window.addEventListener("online", () => state.worker && state.worker.postMessage({ type: "reconnect" }));
  window.addEventListener("offline", renderConnection);
  window.addEventListener("resize", drawChart);
  applyLanguage();
  startWorker();
  startScales();
  startRecords();
  startGate();
  setInterval(tick, TICK_MS);
}

start();
