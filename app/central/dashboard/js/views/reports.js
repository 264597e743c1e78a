// One day's counts and money taken per lot (today by default, any day can be picked), CSV export
// for managers, and (managers) the money taken by payment method over a range of days.
import { api, download } from "../api.js";
import { field, h, money, newestWins, showError, table } from "../dom.js";
import { t, tv } from "../i18n.js";

let root = null;
let ctx = null;
let day = "";
let range = { start: "", end: "" };
let timer = null;
let revenueDirty = false;
let lotNames = {};
const dayReads = newestWins();
const revenueReads = newestWins();

function anomalyCount(row) {
  return Object.values(row.anomalies || {}).reduce((a, b) => a + b, 0);
}

function go(changes) {
  const query = new URLSearchParams();
  const next = { day, start: range.start, end: range.end, ...changes };
  for (const [key, value] of Object.entries(next)) if (value) query.set(key, value);
  location.hash = `#/reports?${query}`;
}

async function load() {
  const mayShow = dayReads();
  const report = await api(`/api/v1/reports/day${day ? `?day=${encodeURIComponent(day)}` : ""}`);
  if (!root || !mayShow()) return;
  day = report.day;
  lotNames = Object.fromEntries(report.lots.map((l) => [l.lot_id, l.name]));
  root.querySelector("input[name=day]").value = report.day;
  const rows = [...report.lots, { ...report.totals, name: t("reports.total"), total: true }];
  root.querySelector("#report-table").replaceChildren(table([
    { label: t("field.lot"), cell: (r) => (r.total ? h("strong", {}, r.name) : r.name) },
    { label: t("live.entries"), cell: (r) => String(r.entries), class: "num" },
    { label: t("live.exits"), cell: (r) => String(r.exits), class: "num" },
    { label: t("reports.paid_exits"), cell: (r) => String(r.paid_exits), class: "num" },
    { label: t("reports.taken"), cell: (r) => money(r.revenue), class: "num" },
    { label: t("live.inside"), cell: (r) => `${r.inside_now} / ${r.capacity}`, class: "num" },
    { label: t("reports.events"), cell: (r) => String(r.events), class: "num" },
    { label: t("reports.manual_opens"), cell: (r) => String(r.manual_opens), class: "num" },
    { label: t("reports.anomalies"), cell: (r) => String(anomalyCount(r)), class: "num" },
  ], rows, { rowProps: (r) => ({ dataset: { lot: r.total ? "total" : r.lot_id }, class: r.total ? "total" : "" }) }));
}

async function loadRevenue() {
  const box = root && root.querySelector("#revenue");
  if (!box) return;
  const error = box.querySelector(".error");
  const query = new URLSearchParams();
  if (range.start) query.set("start", range.start);
  if (range.end) query.set("end", range.end);
  const mayShow = revenueReads();
  let revenue;
  try {
    revenue = await api(`/api/v1/reports/revenue?${query}`);
  } catch (e) {
    if (root) showError(error, e);
    return;
  }
  if (!root || !mayShow()) return;
  error.textContent = "";
  box.querySelector("input[name=start]").value = revenue.first;
  box.querySelector("input[name=end]").value = revenue.last;
  const totals = revenue.totals;
  const rows = [...revenue.by_method, { total: true, ...totals }];
  box.querySelector("#revenue-table").replaceChildren(
    table([
      { label: t("field.lot"), cell: (r) => (r.total ? h("strong", {}, t("reports.total")) : lotNames[r.lot_id] || r.lot_id) },
      { label: t("pay.method"), cell: (r) => (r.total ? "" : tv("method", r.method)) },
      { label: t("reports.payments"), cell: (r) => String(r.payments), class: "num" },
      { label: t("reports.taken"), cell: (r) => money(r.amount), class: "num amount" },
      { label: t("reports.settled"), cell: (r) => money(r.settled), class: "num settled" },
    ], rows, {
      empty: t("reports.no_payments"),
      rowProps: (r) => (r.total
        ? { class: "total", dataset: { method: "total" } }
        : { dataset: { method: r.method, lotId: r.lot_id } }),
    }),
    h("p", { class: "muted", id: "revenue-waived", dataset: { waived: String(totals.waived) } },
      t("reports.waived_total", { amount: money(totals.waived) }), " · ",
      t("reports.range", { first: revenue.first, last: revenue.last, tz: revenue.timezone })));
}

function revenueSection() {
  const start = h("input", { type: "date", name: "start", value: range.start, required: true });
  const end = h("input", { type: "date", name: "end", value: range.end, required: true });
  const form = h("form", { class: "filters", id: "revenue-range" },
    field(t("reports.start"), start), field(t("reports.end"), end),
    h("button", { type: "submit", class: "primary" }, t("reports.show")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go({ start: start.value, end: end.value });
  });
  return h("section", { class: "panel", id: "revenue" },
    h("h3", {}, t("reports.revenue_title")), form, h("p", { class: "error", role: "alert" }), h("div", { id: "revenue-table" }));
}

export default {
  async render(container, context) {
    root = container;
    ctx = context;
    day = context.params.get("day") || "";
    range = { start: context.params.get("start") || "", end: context.params.get("end") || "" };
    const input = h("input", { type: "date", name: "day", value: day });
    input.addEventListener("change", () => go({ day: input.value }));
    const actions = h("div", { class: "filters" }, field(t("reports.day"), input));
    if (context.can("manager")) {
      actions.append(h("button", {
        type: "button", class: "primary", id: "export-csv",
        onclick: () => download(`/api/v1/reports/day.csv?day=${encodeURIComponent(day)}`, `sessions-${day}.csv`).catch((e) => showError(null, e)),
      }, t("reports.csv")));
    }
    container.append(h("h2", {}, t("reports.title")), actions, h("div", { id: "report-table" }));
    await load();
    if (context.can("manager")) {
      container.append(revenueSection());
      await loadRevenue();
    }
  },
  onLive(message) {
    const type = message.type;
    if (type.startsWith("session_") || type === "lane_command" || type === "payment" || type === "anomaly") {
      if (type === "payment") revenueDirty = true;
      clearTimeout(timer);
      timer = setTimeout(() => {
        load().catch(() => {});
        if (revenueDirty && ctx && ctx.can("manager")) loadRevenue().catch(() => {});
        revenueDirty = false;
      }, 500);
    }
  },
  resync() {
    load().catch(() => {});
    if (ctx && ctx.can("manager")) loadRevenue().catch(() => {});
  },
  dispose() { clearTimeout(timer); root = null; },
};
