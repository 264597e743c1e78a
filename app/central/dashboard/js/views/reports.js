// Today's counts and revenue per lot (any day can be picked), CSV export for managers.
import { api, download } from "../api.js";
import { field, h, money, showError, table } from "../dom.js";
import { t } from "../i18n.js";

let root = null;
let day = "";
let timer = null;

function anomalyCount(row) {
  return Object.values(row.anomalies || {}).reduce((a, b) => a + b, 0);
}

async function load() {
  const report = await api(`/api/v1/reports/day${day ? `?day=${encodeURIComponent(day)}` : ""}`);
  if (!root) return;
  day = report.day;
  root.querySelector("input[name=day]").value = report.day;
  const rows = [...report.lots, { ...report.totals, name: t("reports.total"), total: true }];
  root.querySelector("#report-table").replaceChildren(table([
    { label: t("field.lot"), cell: (r) => (r.total ? h("strong", {}, r.name) : r.name) },
    { label: t("live.entries"), cell: (r) => String(r.entries), class: "num" },
    { label: t("live.exits"), cell: (r) => String(r.exits), class: "num" },
    { label: t("reports.paid_exits"), cell: (r) => String(r.paid_exits), class: "num" },
    { label: t("live.revenue"), cell: (r) => money(r.revenue), class: "num" },
    { label: t("live.inside"), cell: (r) => `${r.inside_now} / ${r.capacity}`, class: "num" },
    { label: t("reports.events"), cell: (r) => String(r.events), class: "num" },
    { label: t("reports.manual_opens"), cell: (r) => String(r.manual_opens), class: "num" },
    { label: t("reports.anomalies"), cell: (r) => String(anomalyCount(r)), class: "num" },
  ], rows, { rowProps: (r) => ({ dataset: { lot: r.total ? "total" : r.lot_id }, class: r.total ? "total" : "" }) }));
}

export default {
  async render(container, context) {
    root = container;
    day = context.params.get("day") || "";
    const input = h("input", { type: "date", name: "day", value: day });
    input.addEventListener("change", () => { location.hash = `#/reports?day=${encodeURIComponent(input.value)}`; });
    const actions = h("div", { class: "filters" }, field(t("reports.day"), input));
    if (context.can("manager")) {
      actions.append(h("button", {
        type: "button", class: "primary", id: "export-csv",
        onclick: () => download(`/api/v1/reports/day.csv?day=${encodeURIComponent(day)}`, `sessions-${day}.csv`).catch((e) => showError(null, e)),
      }, t("reports.csv")));
    }
    container.append(h("h2", {}, t("reports.title")), actions, h("div", { id: "report-table" }));
    await load();
  },
  onLive(message) {
    if (message.type.startsWith("session_") || message.type === "gate_opened" || message.type === "anomaly") {
      clearTimeout(timer);
      timer = setTimeout(() => load().catch(() => {}), 500);
    }
  },
  resync() { load().catch(() => {}); },
  dispose() { clearTimeout(timer); root = null; },
};
