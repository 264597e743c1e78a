// Tariffs per lot and vehicle type, and each lot's capacity and rules: the grace period after
// paying ahead, the lost-ticket fee, the longest stay before an overstay anomaly (managers).
import { api } from "../api.js";
import { field, h, newestWins, select, showError, table, toast } from "../dom.js";
import { t, tv } from "../i18n.js";

const VEHICLES = ["car", "motorbike", "truck", "bus", "unknown"];
const MONEY_FIELDS = [["free_minutes", "tariffs.free_minutes"], ["hourly_rate", "tariffs.hourly"], ["daily_cap", "tariffs.daily_cap"], ["overnight_fee", "tariffs.overnight"]];
const LOT_FIELDS = [["capacity", "field.capacity"], ["exit_grace_minutes", "tariffs.exit_grace"], ["lost_ticket_fee", "tariffs.lost_ticket_fee"], ["max_stay_hours", "tariffs.max_stay"]];
let root = null;
const reads = newestWins();

function numberInput(name, value) {
  return h("input", { name, type: "number", min: 0, step: name === "free_minutes" ? 1 : 1000, value: String(value ?? 0), required: true });
}

async function save(body) {
  await api("/api/v1/tariffs", { method: "PUT", json: body });
  toast(t("common.saved"), "ok");
  await load();
}

function tariffRow(tariff) {
  const inputs = Object.fromEntries(MONEY_FIELDS.map(([name]) => [name, numberInput(name, tariff[name])]));
  const button = h("button", { type: "button", class: "primary small", onclick: () => {
    save({ lot_id: tariff.lot_id, vehicle_type: tariff.vehicle_type, ...Object.fromEntries(MONEY_FIELDS.map(([n]) => [n, Number(inputs[n].value)])) })
      .catch((e) => showError(null, e));
  } }, t("common.save"));
  return { ...tariff, inputs, button };
}

async function load() {
  const mayShow = reads();
  const [lots, tariffs] = await Promise.all([api("/api/v1/lots"), api("/api/v1/tariffs")]);
  if (!root || !mayShow()) return;
  const rows = tariffs.map(tariffRow);
  root.querySelector("#tariff-table").replaceChildren(table([
    { label: t("field.lot"), cell: (r) => r.lot_id },
    { label: t("field.vehicle"), cell: (r) => tv("vehicle", r.vehicle_type) },
    ...MONEY_FIELDS.map(([name, label]) => ({ label: t(label), cell: (r) => r.inputs[name], class: "num" })),
    { label: "", cell: (r) => r.button },
  ], rows, { rowProps: (r) => ({ dataset: { tariff: `${r.lot_id}/${r.vehicle_type}` } }) }));

  const addForm = h("form", { class: "filters", id: "add-tariff" },
    field(t("field.lot"), select("lot_id", lots.map((l) => [l.id, l.name]), lots[0] ? lots[0].id : "")),
    field(t("field.vehicle"), select("vehicle_type", VEHICLES.map((v) => [v, tv("vehicle", v)]), "car")),
    ...MONEY_FIELDS.map(([name, label]) => field(t(label), numberInput(name, 0))),
    h("button", { type: "submit", class: "primary" }, t("common.save")));
  addForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(addForm);
    save({ lot_id: data.get("lot_id"), vehicle_type: data.get("vehicle_type"), ...Object.fromEntries(MONEY_FIELDS.map(([n]) => [n, Number(data.get(n))])) })
      .catch((e) => showError(null, e));
  });
  root.querySelector("#tariff-add").replaceChildren(addForm);

  // Each lot's capacity and rules: the grace period after paying ahead, the lost-ticket fee
  // (a session closed by hand with a lost ticket pays at least this), the longest stay before
  // an overstay anomaly (0 = none).
  const lotRows = lots.map((l) => {
    const inputs = Object.fromEntries(LOT_FIELDS.map(([name]) => [name, h("input", { type: "number", min: 0, value: String(l[name] ?? 0), name })]));
    const button = h("button", { type: "button", class: "primary small", onclick: () => {
      api(`/api/v1/lots/${encodeURIComponent(l.id)}`, { method: "PATCH", json: Object.fromEntries(LOT_FIELDS.map(([name]) => [name, Number(inputs[name].value)])) })
        .then(() => { toast(t("common.saved"), "ok"); return load(); })
        .catch((e) => showError(null, e));
    } }, t("common.save"));
    return { ...l, inputs, button };
  });
  root.querySelector("#lot-table").replaceChildren(table([
    { label: t("field.id"), cell: (l) => l.id },
    { label: t("field.name"), cell: (l) => l.name },
    { label: t("live.inside"), cell: (l) => String(l.occupied), class: "num" },
    ...LOT_FIELDS.map(([name, label]) => ({ label: t(label), cell: (l) => l.inputs[name], class: "num" })),
    { label: "", cell: (l) => l.button },
  ], lotRows, { rowProps: (l) => ({ dataset: { lot: l.id } }) }));
}

export default {
  async render(container) {
    root = container;
    container.append(
      h("h2", {}, t("tariffs.title")), h("div", { id: "tariff-table" }), h("div", { id: "tariff-add" }),
      h("h2", {}, t("tariffs.lots")), h("div", { id: "lot-table" }));
    await load();
  },
  resync() { load().catch(() => {}); },
  dispose() { root = null; },
};
