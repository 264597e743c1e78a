// Sessions: search by plate (exact or within one character) with filters; one session's detail
// with its entry and exit snapshots side by side; a manager corrects a misread plate.
import { api, snapshotUrl } from "../api.js";
import { cleanPlate, dateTime, field, h, money, PLATE_PATTERN, percent, select, showError, table, toast } from "../dom.js";
import { t, tv } from "../i18n.js";

const PAGE = 50;
let root = null;
let ctx = null;
let shownId = null;

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
  const status = select("status", [["", t("common.all")], ["open", t("status.open")], ["closed", t("status.closed")]], params.get("status") || "");
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
      h("dt", {}, t("sessions.overnight", { n: basis.nights })), h("dd", {}, money(basis.overnight))));
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

async function renderDetail(container, id) {
  const detail = await api(`/api/v1/reports/sessions/${id}`);
  const s = detail.session;
  shownId = s.id;
  container.append(
    h("a", { href: "#/sessions", class: "back" }, t("sessions.back")),
    h("h2", {}, t("sessions.detail", { id: s.id })),
    h("div", { class: "session-head" },
      h("span", { class: "plate big", id: "session-plate" }, s.plate),
      h("span", { class: `tag ${s.status}` }, tv("status", s.status)),
      h("span", {}, `${t("field.lot")}: ${s.lot_id}`),
      h("span", {}, `${t("field.vehicle")}: ${tv("vehicle", s.vehicle_type)}`)),
    h("div", { class: "shots" },
      snapshotFigure(t("sessions.entry"), detail.entry, t("live.no_snapshot")),
      snapshotFigure(t("sessions.exit"), detail.exit, t("sessions.still_inside"))),
    feeBox(s));
  if (ctx.can("manager")) container.append(correctionForm(s));
  container.append(h("section", { class: "panel" }, h("h3", {}, t("sessions.history")), table([
    { label: t("field.time"), cell: (a) => dateTime(a.at) },
    { label: t("field.actor"), cell: (a) => a.actor },
    { label: t("field.plate"), cell: (a) => `${a.details.before?.plate ?? ""} → ${a.details.after?.plate ?? ""}` },
    { label: t("field.fee"), cell: (a) => `${money(a.details.before?.fee)} → ${money(a.details.after?.fee)}` },
    { label: t("field.reason"), cell: (a) => a.reason },
  ], detail.history, { rowProps: () => ({ class: "history" }) })));
  container.append(h("section", { class: "panel" }, h("h3", {}, t("sessions.anomalies")), table([
    { label: t("field.time"), cell: (a) => dateTime(a.created_at) },
    { label: t("field.kind"), cell: (a) => tv("anomaly", a.kind) },
    { label: t("field.plate"), cell: (a) => a.plate },
    { label: t("field.detail"), cell: (a) => a.detail },
  ], detail.anomalies)));
}

async function showDetail(id) {
  if (!root) return;
  const fresh = h("div");
  await renderDetail(fresh, id);
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
    if (message.type === "session_updated" && shownId !== null && message.data && message.data.id === shownId) {
      showDetail(shownId).catch(() => {});
    }
  },
  resync() {
    if (shownId !== null) showDetail(shownId).catch(() => {});
  },
  dispose() {
    root = null;
    shownId = null;
  },
};
