// Tariffs per lot and vehicle type, and lot capacities (managers).
import { api } from "../api.js";
import { field, h, select, showError, table, toast } from "../dom.js";
import { t, tv } from "../i18n.js";

const VEHICLES = ["car", "motorbike", "truck", "bus", "unknown"];
const MONEY_FIELDS = [["free_minutes", "tariffs.free_minutes"], ["hourly_rate", "tariffs.hourly"], ["daily_cap", "tariffs.daily_cap"], ["overnight_fee", "tariffs.overnight"]];
let root = null;

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
  const [lots, tariffs] = await Promise.all([api("/api/v1/lots"), api("/api/v1/tariffs")]);
  if (!root) return;
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

  root.querySelector("#lot-table").replaceChildren(table([
    { label: t("field.id"), cell: (l) => l.id },
    { label: t("field.name"), cell: (l) => l.name },
    { label: t("live.inside"), cell: (l) => String(l.occupied), class: "num" },
    { label: t("field.capacity"), cell: (l) => {
      const input = h("input", { type: "number", min: 0, value: String(l.capacity), name: "capacity" });
      const button = h("button", { type: "button", class: "primary small", onclick: () => {
        api(`/api/v1/lots/${encodeURIComponent(l.id)}`, { method: "PATCH", json: { capacity: Number(input.value) } })
          .then(() => { toast(t("common.saved"), "ok"); return load(); })
          .catch((e) => showError(null, e));
      } }, t("common.save"));
      return h("span", { class: "inline" }, input, button);
    } },
  ], lots));
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
