// Allow and deny lists and monthly passes (managers).
import { api } from "../api.js";
import { cleanPlate, dateTime, dialog, field, h, newestWins, PLATE_PATTERN, select, showError, table, toast } from "../dom.js";
import { t } from "../i18n.js";

let root = null;
let lots = [];
const reads = newestWins();

function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : null;
}

async function load() {
  const mayShow = reads();
  const [entries, subs] = await Promise.all([api("/api/v1/lists"), api("/api/v1/subscriptions")]);
  if (!root || !mayShow()) return;
  root.querySelector("#list-table").replaceChildren(table([
    { label: t("field.plate"), cell: (e) => h("span", { class: "plate" }, e.plate) },
    { label: t("field.kind"), cell: (e) => h("span", { class: `tag ${e.kind}` }, t(`lists.${e.kind}`)) },
    { label: t("field.lot"), cell: (e) => e.lot_id || t("lists.all_lots") },
    { label: t("field.reason"), cell: (e) => h("span", { class: "reason" }, e.reason) },
    { label: t("field.created"), cell: (e) => dateTime(e.created_at) },
    { label: t("field.expires"), cell: (e) => dateTime(e.expires_at) },
    { label: "", cell: (e) => h("button", { type: "button", class: "danger small", onclick: () => remove(e) }, t("common.delete")) },
  ], entries, { rowProps: (e) => ({ dataset: { entry: String(e.id), plate: e.plate } }) }));
  root.querySelector("#sub-table").replaceChildren(table([
    { label: t("field.plate"), cell: (s) => h("span", { class: "plate" }, s.plate) },
    { label: t("field.lot"), cell: (s) => s.lot_id },
    { label: t("field.holder"), cell: (s) => s.holder },
    { label: t("field.valid_from"), cell: (s) => dateTime(s.valid_from) },
    { label: t("field.valid_until"), cell: (s) => dateTime(s.valid_until) },
  ], subs));
}

async function remove(entry) {
  const ok = await dialog(t("lists.confirm_delete", { plate: entry.plate }), h("p", {}, entry.reason), { submit: t("common.delete"), danger: true });
  if (!ok) return;
  try {
    await api(`/api/v1/lists/${Number(entry.id)}`, { method: "DELETE" });
    await load();
  } catch (error) {
    showError(null, error);
  }
}

function lotOptions(withAll) {
  return [...(withAll ? [["", t("lists.all_lots")]] : []), ...lots.map((l) => [l.id, l.name])];
}

function entryForm() {
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "filters", id: "add-entry" },
    field(t("field.plate"), h("input", { name: "plate", required: true, maxlength: 16, autocomplete: "off" })),
    field(t("field.kind"), select("kind", [["allow", t("lists.allow")], ["deny", t("lists.deny")]], "deny")),
    field(t("field.lot"), select("lot_id", lotOptions(true), "")),
    field(t("field.reason"), h("input", { name: "reason", maxlength: 500 })),
    field(t("field.expires"), h("input", { name: "expires_at", type: "datetime-local" })),
    h("button", { type: "submit", class: "primary" }, t("common.add")), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const data = new FormData(form);
    const plate = cleanPlate(data.get("plate"));
    if (!PLATE_PATTERN.test(plate)) {
      error.textContent = t("sessions.bad_plate");
      return;
    }
    try {
      await api("/api/v1/lists", { method: "POST", json: {
        plate, kind: data.get("kind"), lot_id: data.get("lot_id") || null,
        reason: String(data.get("reason") || ""), expires_at: isoFromLocal(data.get("expires_at")),
      } });
      form.reset();
      toast(t("common.saved"), "ok");
      await load();
    } catch (e) {
      showError(error, e);
    }
  });
  return form;
}

function subscriptionForm() {
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "filters", id: "add-subscription" },
    field(t("field.plate"), h("input", { name: "plate", required: true, maxlength: 16, autocomplete: "off" })),
    field(t("field.lot"), select("lot_id", lotOptions(false), lots[0] ? lots[0].id : "")),
    field(t("field.holder"), h("input", { name: "holder", maxlength: 200 })),
    field(t("field.valid_from"), h("input", { name: "valid_from", type: "date", required: true })),
    field(t("field.valid_until"), h("input", { name: "valid_until", type: "date", required: true })),
    h("button", { type: "submit", class: "primary" }, t("common.add")), error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const data = new FormData(form);
    const plate = cleanPlate(data.get("plate"));
    if (!PLATE_PATTERN.test(plate)) {
      error.textContent = t("sessions.bad_plate");
      return;
    }
    try {
      await api("/api/v1/subscriptions", { method: "POST", json: {
        plate, lot_id: data.get("lot_id"), holder: String(data.get("holder") || ""),
        valid_from: isoFromLocal(`${data.get("valid_from")}T00:00`),
        valid_until: isoFromLocal(`${data.get("valid_until")}T23:59:59`),
      } });
      form.reset();
      toast(t("common.saved"), "ok");
      await load();
    } catch (e) {
      showError(error, e);
    }
  });
  return form;
}

export default {
  async render(container) {
    root = container;
    lots = await api("/api/v1/lots");
    container.append(
      h("h2", {}, t("lists.title")), entryForm(), h("div", { id: "list-table" }),
      h("h2", {}, t("lists.subscriptions")), subscriptionForm(), h("div", { id: "sub-table" }));
    await load();
  },
  resync() { load().catch(() => {}); },
  dispose() { root = null; },
};
