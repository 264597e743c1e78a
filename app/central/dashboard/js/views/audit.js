// Who did what, and why (managers): manual gate opens, plate corrections, list and tariff changes.
import { api } from "../api.js";
import { dateTime, field, h, select, table } from "../dom.js";
import { t } from "../i18n.js";

const ACTIONS = [
  "gate.manual_open", "session.correct_plate", "list.add_allow", "list.add_deny", "list.remove_allow",
  "list.remove_deny", "subscription.add", "tariff.put", "lot.create", "lot.update", "camera.create",
  "camera.rotate_key", "operator.create", "operator.set_active",
];
const PAGE = 100;
let root = null;
let params = null;

async function load() {
  const page = Math.max(0, Number(params.get("page") || 0));
  const query = new URLSearchParams({ limit: String(PAGE), offset: String(page * PAGE) });
  if (params.get("action")) query.set("action", params.get("action"));
  const rows = await api(`/api/v1/audit?${query}`);
  if (!root) return;
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
    if (message.type === "gate_opened" || message.type === "session_updated") load().catch(() => {});
  },
  resync() { load().catch(() => {}); },
  dispose() { root = null; },
};
