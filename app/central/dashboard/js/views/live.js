// Live gate view: entries and exits as they happen, lane commands with their progress, held
// exits waiting for payment (in the feed and in their own panel, so a cashier never loses one),
// today's figures, occupancy per lot, and the camera health grid with an Open gate per lane and
// a Manual entry per entry lane.
import { api, snapshotUrl } from "../api.js";
import * as commands from "../commands.js";
import { ago, cleanPlate, clock, field, h, modal, money, newestWins, percent, PLATE_PATTERN, select, showError, toast } from "../dom.js";
import { t, tv } from "../i18n.js";
import { paidText, receiptLinks, takePayment } from "../payment.js";

const FEED_LIMIT = 60;
const COMMANDS_IN_FEED = 20;
const LOW_CONFIDENCE = 0.6;
const VEHICLES = ["car", "motorbike", "truck", "bus", "unknown"];
// Open sessions are read a page at a time to find the held ones (central has no filter for them).
const OPEN_PAGE = 500;
const OPEN_PAGES_MAX = 40;

let root = null;
let ctx = null;
let ticker = null;
let refreshTimer = null;
let cameraTimer = null;
let waitingTimer = null;
// Held exits by session id: {id, plate, lot_id, exit_held_at, exit_held_camera_id, due}.
let held = new Map();
// Session ids a live message changed, with when: a full reload begun before then keeps them.
const touched = new Map();
// Payments seen on the feed by session id (the held row then says what was taken).
const paidBySession = new Map();
// Rows the live feed put on top, numbered as they came: a re-read of the feed begun before one
// of them came may not have seen it, and keeps it.
const arrivedAs = new WeakMap();
let arrivals = 0;
// Each panel shows only the newest of its overlapping reads (dom.js newestWins).
const reads = { feed: newestWins(), waiting: newestWins(), today: newestWins(), lots: newestWins(), cameras: newestWins() };

function eventFromRow(row) {
  return {
    event_id: row.event_id,
    camera_id: row.camera_id,
    lot_id: row.lot_id,
    direction: row.direction,
    plate: row.plate,
    confidence: row.confidence,
    captured_at: row.captured_at,
    has_snapshot: row.has_snapshot,
    decision: row.ack.decision,
    session_id: row.session_id,
    anomaly: row.ack.anomaly,
  };
}

function thumbnail(event) {
  const box = h("div", { class: "thumb" });
  if (!event.has_snapshot) {
    box.append(h("span", {}, t("live.no_snapshot")));
    return box;
  }
  const img = h("img", { alt: event.plate, width: 120, height: 80, loading: "lazy" });
  box.append(img);
  snapshotUrl(event.event_id).then((url) => { img.src = url; }).catch(() => box.replaceChildren(h("span", {}, t("live.no_snapshot"))));
  return box;
}

const sessionLink = (id, text) => h("a", { class: "plate", href: `#/sessions/${Number(id)}` }, text);

/** What a held exit's row says now: waiting (with Take payment), paid, or no longer waiting. */
function holdBox(item) {
  const sessionId = Number(item.dataset.session);
  const payment = paidBySession.get(sessionId);
  let state = "settled";
  if (held.has(sessionId)) state = "waiting";
  else if (payment) state = "paid";
  if (item.dataset.state === state && item.querySelector(".hold-box")) return;
  item.dataset.state = state;
  item.classList.toggle("waiting", state === "waiting");
  const box = h("div", { class: "hold-box" });
  if (state === "waiting") {
    box.append(
      h("span", { class: "waiting-label" }, t("live.waiting_payment")),
      h("button", { type: "button", class: "primary take-payment", onclick: () => takePayment(sessionId, { can: ctx.can }) }, t("pay.take")));
  } else if (state === "paid") {
    box.append(h("span", { class: "paid-label" }, paidText(payment)), receiptLinks(payment.id));
    if (payment.command_id) box.append(commands.progress(payment.command_id));
  } else {
    box.append(h("span", { class: "muted" }, t("live.no_longer_waiting")));
  }
  const old = item.querySelector(".hold-box");
  if (old) old.replaceWith(box);
  else item.querySelector(".what").append(box);
}

function eventItem(event) {
  const decision = event.decision || {};
  const low = event.confidence < LOW_CONFIDENCE;
  const hold = decision.action === "hold" && event.session_id;
  const item = h("li", {
    class: `event ${decision.action || ""}${hold ? " held" : ""}`,
    dataset: { plate: event.plate, eventId: event.event_id, kind: "plate_event", session: event.session_id ? String(event.session_id) : undefined },
  },
  thumbnail(event),
  h("div", { class: "what" },
    h("div", { class: "line" },
      h("span", { class: `dir ${event.direction}` }, tv("direction", event.direction)),
      event.session_id ? sessionLink(event.session_id, event.plate) : h("span", { class: "plate" }, event.plate),
      h("span", { class: `decision ${decision.action || ""}` }, `${tv("action", decision.action)} · ${tv("reason", decision.reason)}`),
      decision.fee ? h("span", { class: `fee${hold ? " due" : ""}` }, hold ? t("live.due", { amount: money(decision.fee) }) : money(decision.fee)) : null),
    h("div", { class: "meta" },
      h("span", {}, clock(event.captured_at)),
      h("span", {}, `${t("field.lane")}: ${event.camera_id}`),
      h("span", { class: low ? "warn" : "" }, `${t("field.confidence")}: ${percent(event.confidence)}`),
      event.anomaly ? h("span", { class: "tag warn" }, tv("anomaly", event.anomaly)) : null)));
  if (hold) {
    item.dataset.held = "1";
    holdBox(item);
  }
  return item;
}

function commandItem(command) {
  const view = commands.remember(command);
  return h("li", { class: "event command", dataset: { kind: "lane_command", commandId: view.id, lane: view.camera_id } },
    h("div", { class: "thumb" }, h("span", { class: "icon", "aria-hidden": "true" }, "⇅")),
    h("div", { class: "what" },
      h("div", { class: "line" }, h("strong", {}, t("live.command", { camera: view.camera_id, by: view.operator }))),
      h("div", { class: "meta" },
        h("span", {}, clock(view.issued_at)),
        view.session_id ? h("a", { href: `#/sessions/${Number(view.session_id)}` }, `${t("field.session")} #${view.session_id}`) : null,
        h("span", { class: "reason" }, `${t("field.reason")}: ${view.reason}`)),
      commands.progress(view)));
}

function prepend(item) {
  const list = root && root.querySelector("#feed");
  if (!list) return;
  arrivals += 1;
  arrivedAs.set(item, arrivals);
  list.prepend(item);
  while (list.children.length > FEED_LIMIT) list.lastChild.remove();
}

function syncHeldRows() {
  if (!root) return;
  for (const item of root.querySelectorAll("#feed li[data-held]")) holdBox(item);
}

const feedKey = (li) => `${li.dataset.kind}:${li.dataset.eventId ?? li.dataset.commandId}`;

async function loadFeed() {
  const mayShow = reads.feed();
  const since = arrivals;
  const [rows, recent] = await Promise.all([
    api(`/api/v1/events?limit=${FEED_LIMIT}`),
    api(`/api/v1/commands?limit=${COMMANDS_IN_FEED}`).catch(() => []),
  ]);
  if (!root || !mayShow()) return;
  const items = [
    // In the order central took them (its clock, as for the commands), as the feed showed them.
    ...rows.map((row) => ({ at: Date.parse(row.received_at || row.captured_at), node: () => eventItem(eventFromRow(row)) })),
    ...recent.map((c) => ({ at: Date.parse(c.issued_at), node: () => commandItem(c) })),
  ].sort((a, b) => b.at - a.at).slice(0, FEED_LIMIT).map((i) => i.node());
  const feed = root.querySelector("#feed");
  // The read may have been answered before a row the live feed brought while it was on its way
  // (a reconnect re-reads while new events already arrive): such rows stay, on top.
  const read = new Set(items.map(feedKey));
  const arrived = [...feed.children].filter((li) => arrivedAs.get(li) > since && !read.has(feedKey(li)));
  feed.replaceChildren(...[...arrived, ...items].slice(0, FEED_LIMIT));
  feed.dataset.reads = String(Number(feed.dataset.reads || 0) + 1);
}

function heldFrom(session, due) {
  return {
    id: session.id,
    plate: session.plate,
    lot_id: session.lot_id,
    exit_held_at: session.exit_held_at,
    exit_held_camera_id: session.exit_held_camera_id ?? session.camera_id,
    due: due ?? Math.max(0, (session.fee || 0) - (session.paid_amount || 0)),
  };
}

function renderWaiting() {
  if (!root) return;
  const box = root.querySelector("#waiting");
  if (!box) return;
  const rows = [...held.values()].sort((a, b) => Date.parse(a.exit_held_at) - Date.parse(b.exit_held_at));
  box.classList.toggle("busy", rows.length > 0);
  box.querySelector("h2 .count").textContent = String(rows.length);
  box.querySelector("ol").replaceChildren(...(rows.length ? rows.map((s) => h("li", { class: "held-row", dataset: { session: String(s.id), lane: s.exit_held_camera_id || "" } },
    h("div", { class: "line" },
      sessionLink(s.id, s.plate),
      h("strong", { class: "due", dataset: { due: String(s.due) } }, money(s.due))),
    h("div", { class: "meta" },
      h("span", {}, `${t("field.lane")}: ${s.exit_held_camera_id || "–"}`),
      h("span", {}, `${t("live.held_since")} ${clock(s.exit_held_at)}`),
      h("span", { class: "since", dataset: { at: s.exit_held_at } }, ago((Date.now() - Date.parse(s.exit_held_at)) / 1000))),
    h("button", { type: "button", class: "primary take-payment", onclick: () => takePayment(s.id, { can: ctx.can }) }, t("pay.take"))))
    : [h("li", { class: "empty" }, t("live.nobody_waiting"))]));
  syncHeldRows();
}

async function loadWaiting() {
  const mayShow = reads.waiting();
  const started = Date.now();
  const found = new Map();
  for (let page = 0; page < OPEN_PAGES_MAX; page += 1) {
    const rows = await api(`/api/v1/sessions?status=open&limit=${OPEN_PAGE}&offset=${page * OPEN_PAGE}`);
    for (const s of rows) if (s.exit_held_at) found.set(s.id, heldFrom(s));
    if (rows.length < OPEN_PAGE) break;
  }
  if (!root || !mayShow()) return;
  // What live messages said after this read began is newer than what it found.
  for (const [id, at] of touched) {
    if (at < started) continue;
    if (held.has(id)) found.set(id, held.get(id));
    else found.delete(id);
  }
  held = found;
  renderWaiting();
}

function waitingSoon() {
  clearTimeout(waitingTimer);
  waitingTimer = setTimeout(() => loadWaiting().catch(() => {}), 800);
}

function touch(id) {
  touched.set(id, Date.now());
  while (touched.size > 500) touched.delete(touched.keys().next().value);
}

async function loadToday() {
  const mayShow = reads.today();
  const day = await api("/api/v1/reports/day");
  if (!root || !mayShow()) return;
  const totals = day.totals;
  const figure = (label, value, name) => h("div", { class: "figure", dataset: { figure: name } }, h("span", {}, label), h("strong", {}, String(value)));
  root.querySelector("#today").replaceChildren(
    h("h2", {}, `${t("live.today")} · ${day.day}`),
    figure(t("live.entries"), totals.entries, "entries"),
    figure(t("live.exits"), totals.exits, "exits"),
    figure(t("live.inside"), totals.inside_now, "inside"),
    figure(t("live.revenue"), money(totals.revenue), "revenue"));
}

async function loadLots() {
  const mayShow = reads.lots();
  const lots = await api("/api/v1/lots");
  if (!root || !mayShow()) return;
  root.querySelector("#lots").replaceChildren(...lots.map((lot) => {
    const share = lot.capacity ? Math.min(1, lot.occupied / lot.capacity) : 1;
    const bar = h("div", { class: "fill" });
    bar.style.width = `${Math.round(share * 100)}%`;
    return h("div", { class: `lot ${share >= 0.9 ? "full" : ""}`, dataset: { lot: lot.id } },
      h("div", { class: "line" }, h("strong", {}, lot.name), h("span", {}, t("live.used", { used: lot.occupied, capacity: lot.capacity }))),
      h("div", { class: "bar", role: "progressbar", "aria-valuenow": lot.occupied, "aria-valuemax": lot.capacity }, bar));
  }));
}

function cameraCard(camera) {
  const gap = camera.reconciliation_gap;
  const health = camera.health || {};
  return h("div", { class: `camera ${camera.online ? "online" : "offline"}`, dataset: { camera: camera.id } },
    h("div", { class: "line" },
      h("strong", {}, camera.name || camera.id),
      h("span", { class: `status ${camera.online ? "on" : "off"}` }, t(camera.online ? "live.online" : "live.offline"))),
    h("div", { class: "meta" }, `${camera.lot_id} · ${tv("direction", camera.direction)}`),
    h("dl", {},
      h("dt", {}, t("live.heartbeat")), h("dd", { class: "heartbeat", dataset: { at: camera.last_heartbeat_at || "" } }, ago(camera.seconds_since_heartbeat)),
      h("dt", {}, t("live.outbox")), h("dd", { class: `outbox ${health.outbox_depth ? "warn" : ""}` }, String(health.outbox_depth ?? "–")),
      h("dt", {}, t("live.reconciliation")),
      // As of the last heartbeat: captured at the edge vs received here (the gap is in transit or lost).
      h("dd", { class: `reconciliation ${gap ? "warn" : ""}` },
        Number.isInteger(camera.captured_total) && Number.isInteger(gap)
          ? `${camera.captured_total} / ${camera.captured_total - gap}`
          : `? / ${camera.received_total}`,
        gap ? h("span", { class: "tag warn" }, t("live.gap", { n: gap })) : null)),
    h("div", { class: "lane-actions" },
      camera.direction === "entry"
        ? h("button", { type: "button", class: "secondary manual-entry", onclick: () => manualEntry(camera) }, t("entry.button"))
        : null,
      h("button", { type: "button", class: "danger open-gate", onclick: () => openGate(camera) }, t("live.open_gate"))));
}

async function loadCameras() {
  const mayShow = reads.cameras();
  const list = await api("/api/v1/cameras");
  if (!root || !mayShow()) return;
  root.querySelector("#cameras").replaceChildren(...list.map(cameraCard));
}

function tick() {
  // Heartbeat ages and waiting times move every second without asking the server.
  if (!root) return;
  for (const el of root.querySelectorAll("#cameras dd.heartbeat, #waiting .since")) {
    if (el.dataset.at) el.textContent = ago((Date.now() - Date.parse(el.dataset.at)) / 1000);
  }
}

/** Opens a lane's barrier by hand (reason required); the dialog then follows the command. */
export function openGate(camera) {
  const reason = h("textarea", { name: "reason", required: true, minlength: 3, maxlength: 500, rows: 3 });
  const name = camera.name || camera.id;
  modal(t("gate.title", { camera: name }), field(t("field.reason"), reason, t("gate.reason_hint")), {
    name: "open-gate",
    submit: t("live.open_gate"),
    danger: true,
    async onSubmit(data, ui) {
      const text = String(data.get("reason") || "").trim();
      if (text.length < 3) throw new Error(t("gate.reason_required"));
      const command = await api(`/api/v1/cameras/${encodeURIComponent(camera.id)}/open`, { method: "POST", json: { reason: text } });
      ui.done();
      ui.box.dataset.commandId = command.id;
      ui.result.replaceChildren(commands.progressWithRetry(command));
      if (command.status === "failed") toast(t("gate.failed", { camera: name, detail: command.detail }), "error");
      else toast(t("gate.opened", { camera: name }), "ok");
    },
  });
}

/** A vehicle the entry camera missed: the guard types its plate; optionally opens the barrier. */
export function manualEntry(camera) {
  const plate = h("input", { name: "plate", required: true, maxlength: 16, autocomplete: "off", placeholder: "51F-123.45" });
  const vehicle = select("vehicle_type", VEHICLES.map((v) => [v, tv("vehicle", v)]), "car");
  const reason = h("textarea", { name: "reason", required: true, minlength: 3, maxlength: 500, rows: 2 });
  const open = h("input", { type: "checkbox", name: "open_gate" });
  modal(t("entry.title", { camera: camera.name || camera.id }), [
    field(t("field.plate"), plate),
    field(t("field.vehicle"), vehicle),
    field(t("field.reason"), reason, t("entry.reason_hint")),
    h("label", { class: "check" }, open, h("span", {}, t("entry.open_gate")))], {
    name: "manual-entry",
    submit: t("entry.submit"),
    async onSubmit(data, ui) {
      const text = cleanPlate(data.get("plate"));
      if (!PLATE_PATTERN.test(text)) throw new Error(t("sessions.bad_plate"));
      const why = String(data.get("reason") || "").trim();
      if (why.length < 3) throw new Error(t("gate.reason_required"));
      const opening = data.get("open_gate") === "on";
      const session = await api("/api/v1/sessions", {
        method: "POST",
        json: { camera_id: camera.id, plate: text, vehicle_type: String(data.get("vehicle_type")), reason: why, open_gate: opening },
      });
      ui.done();
      ui.box.dataset.session = String(session.id);
      const link = h("a", { href: `#/sessions/${Number(session.id)}`, class: "session-link", onclick: () => ui.close() },
        t("entry.created", { id: session.id, plate: session.plate }));
      ui.result.replaceChildren(h("p", { class: "ok" }, link),
        h("p", { class: "muted" }, t(session.snapshot_event_id ? "entry.snapshot_attached" : "entry.no_snapshot")));
      toast(t("entry.created", { id: session.id, plate: session.plate }), "ok");
      if (opening) {
        const issued = await api(`/api/v1/commands?session_id=${Number(session.id)}&limit=1`).catch(() => []);
        if (issued.length && !ui.closed) ui.result.append(commands.progressWithRetry(issued[0]));
      }
    },
  });
}

function soon(fn) {
  // Bursts of session changes refresh the figures once.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => fn().catch(() => {}), 400);
}

async function refreshAll() {
  await Promise.all([loadWaiting(), loadFeed(), loadToday(), loadLots(), loadCameras()]);
  syncHeldRows();
}

export default {
  async render(container, context) {
    root = container;
    ctx = context;
    held = new Map();
    container.append(
      h("section", { id: "today", class: "today panel" }),
      h("div", { class: "live-grid" },
        h("section", { class: "panel feed-panel" }, h("h2", {}, t("live.feed")), h("ol", { id: "feed", class: "feed", "aria-live": "polite" })),
        h("div", { class: "side" },
          h("section", { class: "panel waiting", id: "waiting" },
            h("h2", {}, t("live.waiting"), " ", h("span", { class: "count" }, "0")),
            h("ol", { class: "held-list" })),
          h("section", { class: "panel" }, h("h2", {}, t("live.occupancy")), h("div", { id: "lots" })),
          h("section", { class: "panel" }, h("h2", {}, t("live.cameras")), h("div", { id: "cameras", class: "camera-grid" })))));
    ticker = setInterval(tick, 1000);
    // Heartbeats arrive on the feed; this catches cameras going quiet between them. The held
    // exits are read again now and then too, in case a message was lost with a connection.
    refreshAll.interval = setInterval(() => loadCameras().catch(() => {}), 15000);
    refreshAll.waiting = setInterval(() => loadWaiting().catch(() => {}), 30000);
    await refreshAll();
  },
  onLive(message) {
    const data = message.data || {};
    switch (message.type) {
      case "plate_event":
        prepend(eventItem(data));
        break;
      case "lane_command":
        if (root && !root.querySelector(`#feed li[data-command-id="${CSS.escape(String(data.id))}"]`)) prepend(commandItem(data));
        break;
      case "session_held":
        touch(data.id);
        held.set(data.id, heldFrom(data, data.due));
        renderWaiting();
        soon(() => Promise.all([loadToday(), loadLots()]));
        break;
      case "payment":
        paidBySession.set(data.session_id, data);
        while (paidBySession.size > 200) paidBySession.delete(paidBySession.keys().next().value);
        syncHeldRows();
        soon(() => Promise.all([loadToday(), loadLots()]));
        waitingSoon();
        break;
      case "session_opened":
      case "session_closed":
      case "session_updated":
        if (data.id !== undefined && held.has(data.id)) {
          touch(data.id);
          if (data.status !== "open" || !data.exit_held_at) held.delete(data.id);
          else held.set(data.id, { ...held.get(data.id), ...heldFrom(data) });
          renderWaiting();
        }
        soon(() => Promise.all([loadToday(), loadLots()]));
        if (message.type !== "session_opened") waitingSoon();
        break;
      case "camera_heartbeat": {
        const card = root && root.querySelector(`#cameras [data-camera="${CSS.escape(data.camera_id)}"]`);
        if (card) {
          const dd = card.querySelector("dd.heartbeat");
          dd.dataset.at = message.at;
          dd.textContent = ago(0);
          const outbox = card.querySelector("dd.outbox");
          outbox.textContent = String(data.outbox_depth ?? "–");
          outbox.classList.toggle("warn", Boolean(data.outbox_depth));
        }
        // The reconciliation figures come with the heartbeat: re-read them, once per burst.
        clearTimeout(cameraTimer);
        cameraTimer = setTimeout(() => loadCameras().catch(() => {}), 1000);
        break;
      }
      case "camera_online":
      case "camera_offline":
        loadCameras().catch(() => {});
        break;
      default:
        break;
    }
  },
  resync() {
    refreshAll().catch(() => {});
  },
  dispose() {
    clearInterval(ticker);
    clearInterval(refreshAll.interval);
    clearInterval(refreshAll.waiting);
    clearTimeout(refreshTimer);
    clearTimeout(cameraTimer);
    clearTimeout(waitingTimer);
    root = null;
  },
};
