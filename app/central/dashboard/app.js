// Minimal operators' dashboard: login, live gate events, occupancy, cameras, session search.
// Everything the server sends is written with textContent, never as HTML.
"use strict";
const state = { token: sessionStorage.getItem("token"), ws: null, retry: 1000 };
const $ = (sel) => document.querySelector(sel);

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {}, { Authorization: `Bearer ${state.token}` });
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) { logout(); throw new Error("session expired"); }
  if (!response.ok) throw new Error(`${response.status}`);
  return response.json();
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const value of cells) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "" : String(value);
    tr.appendChild(td);
  }
  return tr;
}

function fill(table, rows) {
  const body = $(`${table} tbody`);
  body.replaceChildren(...rows.map(row));
}

const time = (iso) => (iso ? new Date(iso).toLocaleString() : "");

async function refresh() {
  const [lots, cameras] = await Promise.all([api("/api/v1/lots"), api("/api/v1/cameras")]);
  fill("#lots", lots.map((l) => [l.name, l.occupied, l.capacity]));
  fill("#cameras", cameras.map((c) => [
    c.id, c.direction, c.online ? "online" : "offline", c.health.outbox_depth ?? "",
    `${c.captured_total ?? "?"} / ${c.received_total}`,
  ]));
}

async function searchSessions(plate = "", fuzzy = false) {
  const params = new URLSearchParams({ limit: "50" });
  if (plate) params.set("plate", plate);
  if (fuzzy) params.set("fuzzy", "true");
  const sessions = await api(`/api/v1/sessions?${params}`);
  fill("#sessions", sessions.map((s) => [s.id, s.plate, s.lot_id, s.status, time(s.entered_at), time(s.exited_at), s.fee ?? ""]));
}

function showEvent(message) {
  const data = message.data;
  const li = document.createElement("li");
  const when = document.createElement("span");
  when.textContent = `${new Date(message.at).toLocaleTimeString()} `;
  const what = document.createElement("span");
  if (message.type === "plate_event") {
    what.textContent = `${data.camera_id} ${data.plate} (${Math.round(data.confidence * 100)}%) → ${data.decision.action} ${data.decision.reason}`;
    what.className = data.decision.action;
  } else {
    what.textContent = `${message.type} ${JSON.stringify(data)}`;
  }
  li.append(when, what);
  $("#feed").prepend(li);
  while ($("#feed").children.length > 200) $("#feed").lastChild.remove();
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/api/v1/live`, [`bearer.${state.token}`]);
  state.ws = ws;
  ws.onopen = () => { state.retry = 1000; $("#link").textContent = "live"; $("#link").className = "badge on"; };
  ws.onmessage = (msg) => {
    const message = JSON.parse(msg.data);
    if (message.type === "ping" || message.type === "hello") return;
    showEvent(message);
    if (message.type.startsWith("session") || message.type.startsWith("camera")) refresh().catch(() => {});
  };
  ws.onclose = (event) => {
    $("#link").textContent = "offline"; $("#link").className = "badge off";
    if (event.code === 4401) { logout(); return; }
    if (state.token) setTimeout(connect, state.retry);  // reconnect with capped backoff
    state.retry = Math.min(state.retry * 2, 30000);
  };
}

function start() {
  $("#login").hidden = true; $("#app").hidden = false; $("#logout").hidden = false;
  refresh().catch(() => {}); searchSessions().catch(() => {}); connect();
  setInterval(() => refresh().catch(() => {}), 15000);
}

function logout() {
  state.token = null; sessionStorage.removeItem("token");
  if (state.ws) state.ws.close();
  $("#login").hidden = false; $("#app").hidden = true; $("#logout").hidden = true;
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/api/v1/auth/token", { method: "POST", body: new URLSearchParams(new FormData(event.target)) });
  if (!response.ok) { $("#login-error").textContent = response.status === 429 ? "Too many attempts, wait a minute" : "Wrong user or password"; return; }
  const body = await response.json();
  state.token = body.access_token; sessionStorage.setItem("token", state.token);
  $("#who").textContent = `${event.target.username.value} (${body.role})`;
  start();
});
$("#logout").addEventListener("click", logout);
$("#search").addEventListener("submit", (event) => {
  event.preventDefault();
  searchSessions(event.target.plate.value, event.target.fuzzy.checked).catch(() => {});
});
if (state.token) start();
