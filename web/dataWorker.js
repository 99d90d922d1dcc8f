// balanca live data worker: owns the WebSocket to /ws, keeps it alive, and posts what it
// hears to the page. The page never touches the socket, so a busy or throttled page cannot
// make the connection miss readings, and all the reconnect logic lives in one place.
//
// Page -> worker messages:
//   {type: "start", token}   connect (token: optional read token, sent as ?token=)
//   {type: "token", token}   a new token: used from the next connection (now, if not open)
//   {type: "reconnect"}      the network came back: reconnect now, backoff reset
// Worker -> page messages:
//   {type: "reading", reading}                    every reading of every scale, as the server
//                                                 sent it (`reading.scale` names the scale)
//   {type: "status", status}                      a scale's state (waiting|live|stale|disconnected)
//   {type: "connection", state, retryIn}          "connecting" | "open" | "closed" (retryIn ms)
//   {type: "health", db, scales}                  /api/health every HEALTH_PERIOD: the database's
//                                                 state always, the scales' part (fresh ages) only
//                                                 while the socket owes us nothing (see below)
//   {type: "auth-required", token}                the service refused this token (or none)
//
// Dead-connection watchdog. Browsers hide WebSocket ping/pong from scripts, and the server's
// keepalive (ping every 30 s) only protects the server, so a half-open connection (cable
// pulled, NAT or switch restarted) would leave the page showing an old weight forever. The
// worker therefore relies on what the server promises (one socket follows every scale, so
// "the scale" below is any of them: the socket owes messages while one of them does):
//   * While the scale is live, or waiting with its link connected, the server sends a reading
//     5-20 times a second, and if frames stop it says so with a "stale" status within
//     `stale_after` seconds (the hub's stale timer). So silence longer than
//     stale_after + GRACE means the connection is dead: close it and reconnect.
//   * While the scale is stale or disconnected, the server sends nothing until the state
//     changes, so silence proves nothing. Then GET /api/health (asked every HEALTH_PERIOD
//     anyway, for the database's state) decides: if the service is unreachable, the socket is
//     dead too; if health says the scale is live again, readings must reach us within
//     stale_after + GRACE or the socket is dead. The page is not misled meanwhile: it shows
//     "stale"/"disconnected" with the last reading's age (health gives a fresh one).
// Worst case, a dead socket is noticed within stale_after + GRACE while live, and within
// HEALTH_PERIOD + stale_after + GRACE of the scale coming back otherwise.
"use strict";

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const GOOD_CONNECTION_MS = 10000; // open this long: the next failure starts again at 1 s
const CONNECT_TIMEOUT_MS = 10000; // a handshake that hangs (SYN into the void) is a failure
const GRACE_MS = 2000; // network and timer slack on top of the server's stale_after
const HEALTH_PERIOD_MS = 5000; // also how soon the page sees the database go down or come back
const HEALTH_TIMEOUT_MS = 5000; // the service answers at once; a hanging request is a dead path
const WATCHDOG_TICK_MS = 500;

let token = null;
let socket = null;
let socketOpened = false;
let attempt = 0; // failures since the last good connection
let retryTimer = null;
let connectTimer = null;
let goodTimer = null;
let staleAfterMs = 3000; // the server's --stale-after, from its status messages
let lastMessageAt = 0;
let expectingSince = null; // when the server started owing us messages, or null
let lastHealthAt = -Infinity;
let healthInFlight = false;
let statuses = 0; // status messages received: health's scale part is news only if none came since
const scaleStates = new Map(); // scale id -> its latest status on this connection

function post(message) {
  self.postMessage(message);
}

function now() {
  return performance.now();
}

// ws: or wss: following the page's scheme, and its host as is: `location.host` keeps the
// brackets of an IPv6 literal and the port. The worker's location is the page's origin.
function socketUrl() {
  const scheme = self.location.protocol === "https:" ? "wss:" : "ws:";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${scheme}//${self.location.host}/ws${query}`;
}

// 1 s doubling to 30 s, each delay drawn from its upper half so that a room of kiosks does
// not reconnect in lockstep after the service restarts.
function backoffDelay(failures) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** failures);
  return Math.round(ceiling * (0.5 + Math.random() * 0.5));
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  post({ type: "connection", state: "connecting" });
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (error) {
    scheduleReconnect();
    return;
  }
  socket = ws;
  connectTimer = setTimeout(() => drop(ws), CONNECT_TIMEOUT_MS);
  ws.onopen = () => opened(ws);
  ws.onmessage = (event) => received(ws, event.data);
  ws.onclose = () => closed(ws);
  // onerror is always followed by onclose, which does the work.
}

function opened(ws) {
  if (ws !== socket) return;
  clearTimeout(connectTimer);
  socketOpened = true;
  lastMessageAt = now();
  expectingSince = now(); // the server owes us its status message straight away
  goodTimer = setTimeout(() => { attempt = 0; }, GOOD_CONNECTION_MS);
  post({ type: "connection", state: "open" });
}

function received(ws, data) {
  if (ws !== socket) return;
  lastMessageAt = now();
  let message;
  try {
    message = JSON.parse(data);
  } catch (error) {
    return; // not ours to show; the stream's contract is JSON
  }
  if (message.type === "reading") {
    post({ type: "reading", reading: message });
  } else if (message.type === "status") {
    statusReceived(message);
  }
}

function statusReceived(status) {
  if (typeof status.stale_after === "number" && status.stale_after > 0) {
    staleAfterMs = status.stale_after * 1000;
  }
  statuses += 1;
  scaleStates.set(status.scale, status);
  expectingSince = [...scaleStates.values()].some(serverOwesMessages) ? now() : null;
  lastHealthAt = -Infinity; // a change of state: ask health now if we are to wait on silence
  post({ type: "status", status });
}

// The states in which the server promises a message within stale_after (see the top).
function serverOwesMessages(scale) {
  return scale.state === "live" || (scale.state === "waiting" && scale.link === "connected");
}

function closed(ws) {
  if (ws !== socket) return;
  socket = null;
  clearTimeout(connectTimer);
  clearTimeout(goodTimer);
  if (!socketOpened) checkAuthorization();
  socketOpened = false;
  expectingSince = null;
  scaleStates.clear();
  scheduleReconnect();
}

// Close a socket we no longer trust; its close event (now or later) is ignored.
function drop(ws) {
  if (ws !== socket) return;
  ws.onopen = ws.onmessage = ws.onclose = null;
  try {
    ws.close(4000, "client watchdog");
  } catch (error) {
    // already closing: nothing more to do
  }
  closed(ws);
}

function scheduleReconnect() {
  const delay = backoffDelay(attempt);
  attempt += 1;
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, delay);
  post({ type: "connection", state: "closed", retryIn: delay });
}

function reconnectNow() {
  attempt = 0;
  if (socket) drop(socket);
  connect();
}

function fetchHealth() {
  return fetch("/api/health", {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    cache: "no-store",
    signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS),
  });
}

// A browser does not tell a script why a WebSocket handshake failed; when it never opened,
// one health request tells a missing or wrong token (401) from a service that is down.
async function checkAuthorization() {
  const used = token;
  try {
    const response = await fetchHealth();
    if (response.status === 401) post({ type: "auth-required", token: used });
  } catch (error) {
    // unreachable: the reconnect loop is already on it
  }
}

function watchdog() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const t = now();
  if (expectingSince !== null && t - Math.max(lastMessageAt, expectingSince) > staleAfterMs + GRACE_MS) {
    drop(socket);
  } else if (!healthInFlight && t - lastHealthAt >= HEALTH_PERIOD_MS) {
    probeHealth(socket);
  }
}

async function probeHealth(ws) {
  healthInFlight = true;
  lastHealthAt = now();
  // While the socket owes us messages, its silence is the test; health only adds the database.
  const judging = expectingSince === null;
  const before = statuses;
  try {
    const response = await fetchHealth();
    if (response.status === 401) return; // the socket got in; this is not the socket's problem
    const health = await response.json();
    if (ws !== socket) return;
    // Scale states from before a status message that arrived meanwhile would be older news.
    const fresh = judging && statuses === before && Array.isArray(health.scales);
    const scales = fresh ? health.scales : undefined; // [{id, state, link, reason, code, age}]
    post({ type: "health", db: databaseState(health), scales });
    if (scales && expectingSince === null && scales.some(serverOwesMessages)) expectingSince = now();
  } catch (error) {
    if (judging) drop(ws); // the service is unreachable or does not answer: so is this socket
  } finally {
    healthInFlight = false;
  }
}

// The database's {state, code, backlog, oldest}: `db` in DESIGN 0.2's health; a service that
// keeps 0.1's `"db": "ok"` string has them under `database`.
function databaseState(health) {
  const db = health.db !== null && typeof health.db === "object" ? health.db : health.database;
  return db && typeof db.state === "string" ? db : undefined;
}

self.onmessage = (event) => {
  const message = event.data || {};
  if (message.type === "start") {
    token = message.token || null;
    if (!socket && retryTimer === null) connect();
  } else if (message.type === "token") {
    token = message.token || null;
    // An open socket needs no token change; one that could not open may have needed it.
    if (!socket || socket.readyState !== WebSocket.OPEN) reconnectNow();
  } else if (message.type === "reconnect") {
    reconnectNow();
  }
};

setInterval(watchdog, WATCHDOG_TICK_MS);
