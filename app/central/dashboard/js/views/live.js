// Live gate view: entries and exits as they happen, today's figures, occupancy per lot, and the
// camera health grid with a manual gate open per lane.
import { api, snapshotUrl } from "../api.js";
import { ago, clock, dialog, field, h, money, percent, showError, toast } from "../dom.js";
import { t, tv } from "../i18n.js";

const FEED_LIMIT = 60;
const LOW_CONFIDENCE = 0.6;

let root = null;
let ticker = null;
let refreshTimer = null;
let cameraTimer = null;

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

function eventItem(event) {
  const decision = event.decision || {};
  const low = event.confidence < LOW_CONFIDENCE;
  const item = h("li", {
    class: `event ${decision.action || ""}`,
    dataset: { plate: event.plate, eventId: event.event_id, kind: "plate_event" },
  },
  thumbnail(event),
  h("div", { class: "what" },
    h("div", { class: "line" },
      h("span", { class: `dir ${event.direction}` }, tv("direction", event.direction)),
      event.session_id
        ? h("a", { class: "plate", href: `#/sessions/${Number(event.session_id)}` }, event.plate)
        : h("span", { class: "plate" }, event.plate),
      h("span", { class: `decision ${decision.action || ""}` }, `${tv("action", decision.action)} · ${tv("reason", decision.reason)}`),
      decision.fee ? h("span", { class: "fee" }, money(decision.fee)) : null),
    h("div", { class: "meta" },
      h("span", {}, clock(event.captured_at)),
      h("span", {}, `${t("field.lane")}: ${event.camera_id}`),
      h("span", { class: low ? "warn" : "" }, `${t("field.confidence")}: ${percent(event.confidence)}`),
      event.anomaly ? h("span", { class: "tag warn" }, tv("anomaly", event.anomaly)) : null)));
  return item;
}

function gateItem(message) {
  const data = message.data || {};
  return h("li", { class: "event manual", dataset: { kind: "gate_opened" } },
    h("div", { class: "thumb" }, h("span", {}, "⚠")),
    h("div", { class: "what" },
      h("div", { class: "line" }, h("strong", {}, t("live.manual_open", { camera: data.camera_id, by: data.by }))),
      h("div", { class: "meta" }, h("span", {}, clock(message.at)), h("span", { class: "reason" }, `${t("field.reason")}: ${data.reason}`))));
}

function prepend(item) {
  const list = root && root.querySelector("#feed");
  if (!list) return;
  list.prepend(item);
  while (list.children.length > FEED_LIMIT) list.lastChild.remove();
}

async function loadFeed() {
  const rows = await api(`/api/v1/events?limit=${FEED_LIMIT}`);
  if (!root) return;
  const list = root.querySelector("#feed");
  list.replaceChildren(...rows.map((row) => eventItem(eventFromRow(row))));
}

async function loadToday() {
  const day = await api("/api/v1/reports/day");
  if (!root) return;
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
  const lots = await api("/api/v1/lots");
  if (!root) return;
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
    h("button", { type: "button", class: "danger open-gate", onclick: () => openGate(camera) }, t("live.open_gate")));
}

async function loadCameras() {
  const list = await api("/api/v1/cameras");
  if (!root) return;
  root.querySelector("#cameras").replaceChildren(...list.map(cameraCard));
}

function tick() {
  // Heartbeat ages move every second without asking the server.
  if (!root) return;
  for (const dd of root.querySelectorAll("#cameras dd.heartbeat")) {
    if (dd.dataset.at) dd.textContent = ago((Date.now() - Date.parse(dd.dataset.at)) / 1000);
  }
}

export async function openGate(camera) {
  const reason = h("textarea", { name: "reason", required: true, minlength: 3, maxlength: 500, rows: 3 });
  const data = await dialog(t("gate.title", { camera: camera.name || camera.id }),
    field(t("field.reason"), reason, t("gate.reason_hint")), { submit: t("live.open_gate"), danger: true });
  if (!data) return;
  const text = String(data.get("reason") || "").trim();
  if (text.length < 3) {
    toast(t("gate.reason_required"), "error");
    return;
  }
  try {
    await api(`/api/v1/cameras/${encodeURIComponent(camera.id)}/open`, { method: "POST", json: { reason: text } });
    toast(t("gate.opened", { camera: camera.name || camera.id }), "ok");
  } catch (error) {
    showError(null, error);
  }
}

function soon(fn) {
  // Bursts of session changes refresh the figures once.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => fn().catch(() => {}), 400);
}

async function refreshAll() {
  await Promise.all([loadFeed(), loadToday(), loadLots(), loadCameras()]);
}

export default {
  async render(container) {
    root = container;
    container.append(
      h("section", { id: "today", class: "today panel" }),
      h("div", { class: "live-grid" },
        h("section", { class: "panel feed-panel" }, h("h2", {}, t("live.feed")), h("ol", { id: "feed", class: "feed", "aria-live": "polite" })),
        h("div", { class: "side" },
          h("section", { class: "panel" }, h("h2", {}, t("live.occupancy")), h("div", { id: "lots" })),
          h("section", { class: "panel" }, h("h2", {}, t("live.cameras")), h("div", { id: "cameras", class: "camera-grid" })))));
    ticker = setInterval(tick, 1000);
    // Heartbeats arrive on the feed; this catches cameras going quiet between them.
    refreshAll.interval = setInterval(() => loadCameras().catch(() => {}), 15000);
    await refreshAll();
  },
  onLive(message) {
    const data = message.data || {};
    switch (message.type) {
      case "plate_event":
        prepend(eventItem(data));
        break;
      case "gate_opened":
        prepend(gateItem(message));
        break;
      case "session_opened":
      case "session_closed":
      case "session_updated":
        soon(() => Promise.all([loadToday(), loadLots()]));
        break;
      case "camera_heartbeat": {
        const card = root && root.querySelector(`[data-camera="${CSS.escape(data.camera_id)}"]`);
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
    clearTimeout(refreshTimer);
    clearTimeout(cameraTimer);
    root = null;
  },
};
