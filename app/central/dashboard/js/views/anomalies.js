// Anomalies a guard should look at: exit without entry, low confidence, plate mismatch,
// deny-listed vehicles, duplicate entries, sessions open past the lot's longest stay (overstay).
// New ones appear as they are recorded.
import { api } from "../api.js";
import { dateTime, field, h, newestWins, select, table } from "../dom.js";
import { t, tv } from "../i18n.js";

const KINDS = ["exit_without_entry", "low_confidence", "plate_mismatch", "deny_listed", "duplicate_entry", "overstay"];
let root = null;
let params = null;
let timer = null;
const reads = newestWins();

async function load() {
  const query = new URLSearchParams({ limit: "200" });
  if (params.get("kind")) query.set("kind", params.get("kind"));
  if (params.get("resolved")) query.set("resolved", params.get("resolved"));
  const mayShow = reads();
  const rows = await api(`/api/v1/anomalies?${query}`);
  const box = root && root.querySelector("#anomaly-table");
  if (!box || !mayShow()) return;
  box.replaceChildren(table([
    { label: t("field.time"), cell: (a) => dateTime(a.created_at) },
    { label: t("field.kind"), cell: (a) => h("span", { class: `tag kind-${a.kind}` }, tv("anomaly", a.kind)) },
    { label: t("field.lot"), cell: (a) => a.lot_id },
    { label: t("field.camera"), cell: (a) => a.camera_id || "" },
    { label: t("field.plate"), cell: (a) => h("span", { class: "plate" }, a.plate) },
    { label: t("field.detail"), cell: (a) => a.detail },
    { label: t("field.session"), cell: (a) => (a.session_id ? h("a", { href: `#/sessions/${Number(a.session_id)}` }, `#${a.session_id}`) : "") },
    { label: t("anomalies.resolved"), cell: (a) => t(a.resolved ? "common.yes" : "common.no") },
  ], rows, { rowProps: (a) => ({ dataset: { kind: a.kind } }) }));
}

export default {
  async render(container, context) {
    root = container;
    params = context.params;
    const kind = select("kind", [["", t("common.all")], ...KINDS.map((k) => [k, tv("anomaly", k)])], params.get("kind") || "");
    const resolved = select("resolved", [["", t("common.all")], ["false", t("anomalies.unresolved")], ["true", t("anomalies.resolved")]], params.get("resolved") || "");
    const form = h("form", { class: "filters" }, field(t("field.kind"), kind), field(t("anomalies.resolved"), resolved));
    form.addEventListener("change", () => {
      const q = new URLSearchParams();
      if (kind.value) q.set("kind", kind.value);
      if (resolved.value) q.set("resolved", resolved.value);
      location.hash = `#/anomalies?${q}`;
    });
    container.append(h("h2", {}, t("anomalies.title")), form, h("div", { id: "anomaly-table" }));
    await load();
  },
  onLive(message) {
    if (message.type === "anomaly") {
      clearTimeout(timer);
      timer = setTimeout(() => load().catch(() => {}), 300);
    }
  },
  resync() { load().catch(() => {}); },
  dispose() { clearTimeout(timer); root = null; },
};
