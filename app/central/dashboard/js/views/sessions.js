// Sessions: search by plate (exact or within one character) with filters; one session's detail
// with its entry and exit snapshots side by side (or the lane's picture of a typed-in entry), its
// payments with receipts, its lane commands and its history. A guard takes a payment or closes
// an open session by hand (lost ticket); a manager corrects a misread plate or voids a session.
import { api, snapshotUrl } from "../api.js";
import * as commands from "../commands.js";
import { cleanPlate, dateTime, field, h, modal, money, newestWins, PLATE_PATTERN, percent, select, showError, table, toast } from "../dom.js";
import { t, tv } from "../i18n.js";
import { paidText, receiptLinks, takePayment } from "../payment.js";

const PAGE = 50;
let root = null;
let ctx = null;
let shownId = null;
let refreshTimer = null;
// A session's detail is read again after each of its live messages: the newest read is shown.
const detailReads = newestWins();

function go(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) query.set(key, value);
  location.hash = `#/sessions?${query}`;
}

async function renderList(container, params) {
  const lots = await api("/api/v1/lots");
  const page = Math.max(0, Number(params.get("page") || 0));
  const plate = h("input", { name: "plate", value: params.get("plate") || "", maxlength: 20, autocomplete: "off", placeholder: "51F-123.45" });
  const fuzzy = h("input", { type: "checkbox", name: "fuzzy", checked: params.get("fuzzy") === "1" });
  const status = select("status", [["", t("common.all")], ...["open", "closed", "void"].map((v) => [v, tv("status", v)])], params.get("status") || "");
  const lot = select("lot", [["", t("common.all")], ...lots.map((l) => [l.id, l.name])], params.get("lot") || "");
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "filters", id: "search" },
    field(t("field.plate"), plate),
    h("label", { class: "check" }, fuzzy, h("span", {}, t("sessions.fuzzy"))),
    field(t("field.status"), status),
    field(t("field.lot"), lot),
    h("button", { type: "submit", class: "primary" }, t("common.search")),
    error);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = cleanPlate(plate.value);
    if (text && !/^[A-Z0-9 .\-/]{1,20}$/.test(text)) {
      error.textContent = t("sessions.bad_plate");
      return;
    }
    go({ plate: text, fuzzy: fuzzy.checked ? "1" : "", status: status.value, lot: lot.value });
  });
  container.append(h("h2", {}, t("sessions.title")), form);

  const query = new URLSearchParams({ limit: String(PAGE), offset: String(page * PAGE) });
  if (params.get("plate")) query.set("plate", params.get("plate"));
  if (params.get("fuzzy") === "1") query.set("fuzzy", "true");
  if (params.get("status")) query.set("status", params.get("status"));
  if (params.get("lot")) query.set("lot_id", params.get("lot"));
  const rows = await api(`/api/v1/sessions?${query}`);
  container.append(table([
    { label: "#", cell: (s) => String(s.id) },
    { label: t("field.plate"), cell: (s) => h("span", { class: "plate" }, s.plate), class: "plate-col" },
    { label: t("field.lot"), cell: (s) => s.lot_id },
    { label: t("field.vehicle"), cell: (s) => tv("vehicle", s.vehicle_type) },
    { label: t("field.status"), cell: (s) => tv("status", s.status) },
    { label: t("field.entered"), cell: (s) => dateTime(s.entered_at) },
    { label: t("field.exited"), cell: (s) => dateTime(s.exited_at) },
    { label: t("field.fee"), cell: (s) => money(s.fee), class: "num" },
  ], rows, {
    onRow: (s) => { location.hash = `#/sessions/${Number(s.id)}`; },
    rowProps: (s) => ({ dataset: { session: String(s.id) } }),
  }));
  const pager = h("div", { class: "pager" },
    h("button", { type: "button", class: "secondary", disabled: page === 0, onclick: () => go({ ...Object.fromEntries(params), page: String(page - 1) }) }, t("common.previous")),
    h("span", {}, t("common.page", { n: page + 1 })),
    h("button", { type: "button", class: "secondary", disabled: rows.length < PAGE, onclick: () => go({ ...Object.fromEntries(params), page: String(page + 1) }) }, t("common.next")));
  container.append(pager);
}

function snapshotFigure(title, event, emptyText) {
  const figure = h("figure", { class: "shot", dataset: { side: title === t("sessions.entry") ? "entry" : "exit" } });
  if (!event) {
    figure.append(h("div", { class: "frame empty" }, emptyText), h("figcaption", {}, h("strong", {}, title)));
    return figure;
  }
  const frame = h("div", { class: "frame" });
  if (event.has_snapshot) {
    const img = h("img", { alt: `${title} ${event.plate}` });
    frame.append(img);
    snapshotUrl(event.event_id).then((url) => { img.src = url; }).catch(() => frame.replaceChildren(h("span", {}, t("live.no_snapshot"))));
  } else {
    frame.classList.add("empty");
    frame.append(h("span", {}, t("live.no_snapshot")));
  }
  figure.append(frame, h("figcaption", {},
    h("strong", {}, title),
    h("span", { class: "plate" }, t("sessions.read_as", { plate: event.plate })),
    h("span", {}, dateTime(event.captured_at)),
    h("span", {}, `${t("field.camera")}: ${event.camera_id}`),
    h("span", { class: event.confidence < 0.6 ? "warn" : "" }, `${t("field.confidence")}: ${percent(event.confidence)}`)));
  return figure;
}

function feeBox(session) {
  const basis = (session.fee_basis || {}).exit;
  const box = h("div", { class: "fee-box panel" },
    h("div", { class: "line" }, h("span", {}, t("field.fee")), h("strong", { id: "fee", dataset: { fee: session.fee ?? "" } }, session.fee === null ? "–" : money(session.fee))));
  if (basis) {
    box.append(h("dl", {},
      h("dt", {}, t("sessions.fee_rule")), h("dd", {}, tv("rule", basis.rule)),
      h("dt", {}, t("field.time")), h("dd", {}, t("sessions.minutes", { n: basis.minutes })),
      h("dt", {}, t("sessions.parking")), h("dd", {}, money(basis.parking)),
      h("dt", {}, t("sessions.overnight", { n: basis.nights })), h("dd", {}, money(basis.overnight)),
      basis.manual ? [h("dt", {}, t("sessions.closed_by_hand")), h("dd", { class: "lost-ticket" }, basis.lost_ticket ? t("sessions.lost_ticket_fee", { fee: money(basis.total) }) : t("common.yes"))] : null));
  }
  return box;
}

function correctionForm(session) {
  const plate = h("input", { name: "plate", required: true, maxlength: 16, value: session.plate, autocomplete: "off" });
  const reason = h("textarea", { name: "reason", required: true, minlength: 3, maxlength: 500, rows: 2 });
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "panel correction", id: "correct" },
    h("h3", {}, t("sessions.correct")),
    field(t("sessions.new_plate"), plate),
    field(t("field.reason"), reason),
    h("button", { type: "submit", class: "primary" }, t("common.save")),
    error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const text = cleanPlate(plate.value);
    if (!PLATE_PATTERN.test(text)) {
      error.textContent = t("sessions.bad_plate");
      return;
    }
    if (reason.value.trim().length < 3) {
      error.textContent = t("gate.reason_required");
      return;
    }
    try {
      const updated = await api(`/api/v1/sessions/${session.id}`, { method: "PATCH", json: { plate: text, reason: reason.value.trim() } });
      toast(t("sessions.corrected", { before: session.fee === null ? "–" : money(session.fee), after: updated.fee === null ? "–" : money(updated.fee) }), "ok");
      await showDetail(session.id);
    } catch (e) {
      showError(error, e);
    }
  });
  return form;
}

function historySummary(a) {
  const d = a.details || {};
  switch (a.action) {
    case "session.correct_plate":
      return `${d.before?.plate ?? ""} → ${d.after?.plate ?? ""} · ${money(d.before?.fee)} → ${money(d.after?.fee)}`;
    case "session.close_manual":
      return `${t("field.fee")}: ${money(d.fee)}${d.lost_ticket ? ` · ${t("sessions.lost_ticket")}` : ""}`;
    case "session.void":
      return `${tv("status", d.before?.status)} → ${tv("status", "void")}`;
    case "session.open_manual":
      return `${d.plate ?? ""} · ${t("field.lane")}: ${d.camera_id ?? ""}`;
    case "payment.take":
      return `${tv("method", d.method)} ${money(d.method === "waived" ? d.due : d.amount)}${d.reference ? ` · ${d.reference}` : ""}${d.lane ? ` · ${t("field.lane")}: ${d.lane}` : ""}`;
    default:
      return "";
  }
}

function manualFigure(s) {
  const figure = h("figure", { class: "shot", dataset: { side: "manual" } });
  const frame = h("div", { class: "frame" });
  const img = h("img", { alt: `${t("sessions.lane_picture")} ${s.plate}` });
  frame.append(img);
  snapshotUrl(s.snapshot_event_id).then((url) => { img.src = url; }).catch(() => {
    frame.classList.add("empty");
    frame.replaceChildren(h("span", {}, t("live.no_snapshot")));
  });
  figure.append(frame, h("figcaption", {},
    h("strong", {}, t("sessions.lane_picture")),
    h("span", {}, t("sessions.typed_in", { plate: s.plate })),
    h("span", {}, dateTime(s.entered_at))));
  return figure;
}

// The outcome of the last action on this screen, shown above the refreshed detail.
let lastResult = null;

function actionDialog(kind, title, body, { danger = false, submit, send }) {
  modal(title, body, {
    name: kind,
    danger,
    submit,
    async onSubmit(data, ui) {
      const message = await send(data);
      ui.close();
      lastResult = { sessionId: shownId, kind, message };
      toast(message, "ok");
      await showDetail(shownId);
    },
  });
}

function closeByHand(s) {
  const reason = h("textarea", { name: "reason", required: true, minlength: 3, maxlength: 500, rows: 2 });
  const lost = h("input", { type: "checkbox", name: "lost_ticket" });
  actionDialog("close-session", t("sessions.close_title", { id: s.id, plate: s.plate }), [
    h("p", { class: "muted" }, t("sessions.close_hint")),
    field(t("field.reason"), reason),
    h("label", { class: "check" }, lost, h("span", {}, t("sessions.lost_ticket")))], {
    submit: t("sessions.close"),
    async send(data) {
      const why = String(data.get("reason") || "").trim();
      if (why.length < 3) throw new Error(t("gate.reason_required"));
      const closed = await api(`/api/v1/sessions/${s.id}/close`, { method: "POST", json: { reason: why, lost_ticket: data.get("lost_ticket") === "on" } });
      const due = await api(`/api/v1/sessions/${s.id}/due`).catch(() => null);
      return t("sessions.closed_result", { fee: money(closed.fee), due: money(due ? due.due : Math.max(0, (closed.fee || 0) - (closed.paid_amount || 0))) });
    },
  });
}

function voidSession(s) {
  const reason = h("textarea", { name: "reason", required: true, minlength: 3, maxlength: 500, rows: 2 });
  actionDialog("void-session", t("sessions.void_title", { id: s.id, plate: s.plate }), [
    h("p", { class: "muted" }, t("sessions.void_hint")),
    field(t("field.reason"), reason)], {
    danger: true,
    submit: t("sessions.void"),
    async send(data) {
      const why = String(data.get("reason") || "").trim();
      if (why.length < 3) throw new Error(t("gate.reason_required"));
      await api(`/api/v1/sessions/${s.id}/void`, { method: "POST", json: { reason: why } });
      return t("sessions.voided_result", { id: s.id });
    },
  });
}

function actionsPanel(s, due) {
  const panel = h("section", { class: "panel session-actions", id: "session-actions" });
  if (lastResult && lastResult.sessionId === s.id) {
    panel.append(h("p", { class: "result ok", id: "action-result", dataset: { kind: lastResult.kind } }, lastResult.message));
  }
  const owed = due ? due.due : 0;
  panel.append(h("div", { class: "line" },
    h("span", {}, t("pay.due")),
    h("strong", { id: "due", class: owed > 0 ? "owed" : "", dataset: { due: String(owed) } }, money(owed)),
    due && due.held_at_lane ? h("span", { class: "tag warn" }, t("sessions.held_at", { camera: due.held_at_lane })) : null,
    s.paid_amount ? h("span", { class: "muted" }, t("sessions.paid_so_far", { amount: money(s.paid_amount), at: dateTime(s.paid_at) })) : null));
  const buttons = h("div", { class: "actions" });
  if (owed > 0) {
    buttons.append(h("button", { type: "button", class: "primary", id: "take-payment",
      onclick: () => takePayment(s.id, {
        can: ctx.can,
        onPaid: (taken) => {
          lastResult = { sessionId: s.id, kind: "payment", message: paidText(taken.payment) };
          showDetail(s.id).catch(() => {});
        },
      }) }, t("pay.take")));
  }
  if (s.status === "open") {
    buttons.append(h("button", { type: "button", class: "secondary", id: "close-session", onclick: () => closeByHand(s) }, t("sessions.close")));
  }
  if (s.status !== "void" && ctx.can("manager")) {
    buttons.append(h("button", { type: "button", class: "danger", id: "void-session", onclick: () => voidSession(s) }, t("sessions.void")));
  }
  if (buttons.childNodes.length) panel.append(buttons);
  return panel;
}

async function renderDetail(container, id) {
  const [detail, due] = await Promise.all([
    api(`/api/v1/reports/sessions/${id}`),
    api(`/api/v1/sessions/${id}/due`).catch(() => null),
  ]);
  const s = detail.session;
  shownId = s.id;
  container.append(...[
    h("a", { href: "#/sessions", class: "back" }, t("sessions.back")),
    h("h2", {}, t("sessions.detail", { id: s.id })),
    h("div", { class: "session-head" },
      h("span", { class: "plate big", id: "session-plate" }, s.plate),
      h("span", { class: `tag ${s.status}`, id: "session-status", dataset: { status: s.status } }, tv("status", s.status)),
      h("span", {}, `${t("field.lot")}: ${s.lot_id}`),
      h("span", {}, `${t("field.vehicle")}: ${tv("vehicle", s.vehicle_type)}`)),
    s.manual_by
      ? h("p", { class: "manual-note", id: "manual-note" }, t("sessions.manual_by", { by: s.manual_by }), " ", h("span", { class: "reason" }, s.manual_reason || ""))
      : null,
    h("div", { class: "shots" },
      !detail.entry && s.snapshot_event_id ? manualFigure(s) : snapshotFigure(t("sessions.entry"), detail.entry, t("live.no_snapshot")),
      snapshotFigure(t("sessions.exit"), detail.exit, s.status === "open" ? t("sessions.still_inside") : t("live.no_snapshot"))),
    feeBox(s),
    actionsPanel(s, due),
  ].filter(Boolean));
  if (ctx.can("manager") && s.status !== "void") container.append(correctionForm(s));
  container.append(h("section", { class: "panel", id: "payments" }, h("h3", {}, t("sessions.payments")), table([
    { label: t("field.time"), cell: (p) => dateTime(p.paid_at) },
    { label: t("pay.method"), cell: (p) => tv("method", p.method) },
    { label: t("field.fee"), cell: (p) => money(p.due), class: "num" },
    { label: t("pay.taken"), cell: (p) => money(p.amount), class: "num" },
    { label: t("pay.reference"), cell: (p) => h("span", { class: "reference" }, p.method === "waived" ? p.note : p.reference) },
    { label: t("field.actor"), cell: (p) => p.operator },
    { label: t("field.lane"), cell: (p) => p.camera_id || "" },
    { label: t("pay.receipt"), cell: (p) => receiptLinks(p.id) },
  ], detail.payments, { rowProps: (p) => ({ class: "payment", dataset: { payment: String(p.id), method: p.method } }) })));
  container.append(h("section", { class: "panel", id: "commands" }, h("h3", {}, t("sessions.commands")), table([
    { label: t("field.time"), cell: (c) => dateTime(c.issued_at) },
    { label: t("field.lane"), cell: (c) => c.camera_id },
    { label: t("field.actor"), cell: (c) => c.operator },
    { label: t("field.reason"), cell: (c) => h("span", { class: "reason" }, c.reason) },
    { label: t("field.status"), cell: (c) => commands.progress(c) },
  ], detail.commands, { rowProps: (c) => ({ class: "command", dataset: { commandId: c.id } }) })));
  container.append(h("section", { class: "panel" }, h("h3", {}, t("sessions.history")), table([
    { label: t("field.time"), cell: (a) => dateTime(a.at) },
    { label: t("field.actor"), cell: (a) => a.actor },
    { label: t("field.action"), cell: (a) => tv("audit_action", a.action) },
    { label: t("field.detail"), cell: (a) => historySummary(a) },
    { label: t("field.reason"), cell: (a) => h("span", { class: "reason" }, a.reason) },
  ], detail.history, { rowProps: (a) => ({ class: "history", dataset: { action: a.action } }) })));
  container.append(h("section", { class: "panel" }, h("h3", {}, t("sessions.anomalies")), table([
    { label: t("field.time"), cell: (a) => dateTime(a.created_at) },
    { label: t("field.kind"), cell: (a) => tv("anomaly", a.kind) },
    { label: t("field.plate"), cell: (a) => a.plate },
    { label: t("field.detail"), cell: (a) => a.detail },
  ], detail.anomalies)));
}

async function showDetail(id) {
  if (!root) return;
  const mayShow = detailReads();
  const fresh = h("div");
  await renderDetail(fresh, id);
  if (!root || !mayShow()) return;
  root.replaceChildren(...fresh.childNodes);
}

export default {
  async render(container, context) {
    root = container;
    ctx = context;
    shownId = null;
    const id = Number(context.rest[0]);
    if (Number.isInteger(id) && id > 0) await renderDetail(container, id);
    else await renderList(container, context.params);
  },
  onLive(message) {
    if (shownId === null || !message.data) return;
    const data = message.data;
    const mine = message.type.startsWith("session_") ? data.id === shownId
      : message.type === "payment" || message.type === "lane_command" ? data.session_id === shownId
        : false;
    // A command's steps repaint in place (commands.js); a new one needs the list read again.
    if (message.type === "lane_command" && document.querySelector(`#commands tr[data-command-id="${CSS.escape(String(data.id))}"]`)) return;
    if (mine) {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => showDetail(shownId).catch(() => {}), 300);
    }
  },
  resync() {
    if (shownId !== null) showDetail(shownId).catch(() => {});
  },
  dispose() {
    clearTimeout(refreshTimer);
    lastResult = null;
    root = null;
    shownId = null;
  },
};
