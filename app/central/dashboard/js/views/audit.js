// Who did what, and why (managers): lane commands and what became of them, payments, manual
// entries, closes and voids, plate corrections, list and tariff changes.
import { api } from "../api.js";
import { dateTime, field, h, newestWins, select, table } from "../dom.js";
import { t } from "../i18n.js";

const ACTIONS = [
  "gate.manual_open", "gate.open_paid", "gate.open_manual_entry", "gate.open_corrected",
  "gate.command_delivered", "gate.command_pulsed", "gate.command_failed", "gate.command_expired",
  "payment.take", "session.open_manual", "session.close_manual", "session.void", "session.correct_plate", "list.add_allow", "list.add_deny", "list.remove_allow",
  "list.remove_deny", "subscription.add", "tariff.put", "lot.create", "lot.update", "camera.create",
  "camera.rotate_key", "operator.create", "operator.set_active",
];
const PAGE = 100;
let root = null;
let params = null;
let timer = null;
const reads = newestWins();

async function load() {
  const page = Math.max(0, Number(params.get("page") || 0));
  const query = new URLSearchParams({ limit: String(PAGE), offset: String(page * PAGE) });
  if (params.get("action")) query.set("action", params.get("action"));
  const mayShow = reads();
  const rows = await api(`/api/v1/audit?${query}`);
  if (!root || !mayShow()) return;
  root.querySelector("#audit-table").replaceChildren(table([
    { label: t("field.time"), cell: (e) => dateTime(e.at) },
    { label: t("field.actor"), cell: (e) => e.actor },
    { label: t("field.action"), cell: (e) => h("code", {}, e.action) },
    { label: t("field.target"), cell: (e) => `${e.target_type} ${e.target_id}` },
    { label: t("field.reason"), cell: (e) => h("span", { class: "reason" }, e.reason) },
    { label: t("field.detail"), cell: (e) => (Object.keys(e.details || {}).length ? h("code", { class: "details" }, JSON.stringify(e.details)) : "") },
  ], rows, { rowProps: (e) => ({ dataset: { action: e.action, id: String(e.id) } }) }));
}

export default {
  async render(container, context) {
    root = container;
    params = context.params;
    const action = select("action", [["", t("common.all")], ...ACTIONS.map((a) => [a, a])], params.get("action") || "");
    action.addEventListener("change", () => { location.hash = `#/audit${action.value ? `?action=${encodeURIComponent(action.value)}` : ""}`; });
    container.append(h("h2", {}, t("audit.title")), h("div", { class: "filters" }, field(t("field.action"), action)), h("div", { id: "audit-table" }));
    await load();
  },
  onLive(message) {
    if (["lane_command", "payment", "session_updated", "session_opened", "session_closed"].includes(message.type)) {
      clearTimeout(timer);
      timer = setTimeout(() => load().catch(() => {}), 400);
    }
  },
  resync() { load().catch(() => {}); },
  dispose() { clearTimeout(timer); root = null; },
};
