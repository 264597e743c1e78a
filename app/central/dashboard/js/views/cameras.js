// Lane cameras (admins): register one (its API key is shown once), rotate a key.
import { api } from "../api.js";
import { ago, dialog, field, h, newestWins, select, showError, table } from "../dom.js";
import { t, tv } from "../i18n.js";

let root = null;
const reads = newestWins();

async function showKey(made) {
  const key = h("input", { readonly: true, value: made.api_key, class: "key", name: "api_key" });
  await dialog(t("cameras.key_title", { id: made.id }), h("div", {}, h("p", {}, t("cameras.key_once")), key), { submit: "OK" });
}

async function load() {
  const mayShow = reads();
  const cameras = await api("/api/v1/cameras");
  if (!root || !mayShow()) return;
  root.querySelector("#camera-table").replaceChildren(table([
    { label: t("field.id"), cell: (c) => c.id },
    { label: t("field.name"), cell: (c) => c.name },
    { label: t("field.lot"), cell: (c) => c.lot_id },
    { label: t("field.direction"), cell: (c) => tv("direction", c.direction) },
    { label: t("field.status"), cell: (c) => h("span", { class: `status ${c.online ? "on" : "off"}` }, t(c.online ? "live.online" : "live.offline")) },
    { label: t("live.heartbeat"), cell: (c) => ago(c.seconds_since_heartbeat) },
    { label: "", cell: (c) => h("button", { type: "button", class: "secondary small", onclick: () => rotate(c) }, t("cameras.rotate")) },
  ], cameras, { rowProps: (c) => ({ dataset: { camera: c.id } }) }));
}

async function rotate(camera) {
  const ok = await dialog(t("cameras.rotate"), h("p", {}, t("cameras.confirm_rotate", { id: camera.id })), { danger: true });
  if (!ok) return;
  try {
    await showKey(await api(`/api/v1/cameras/${encodeURIComponent(camera.id)}/rotate-key`, { method: "POST" }));
  } catch (error) {
    showError(null, error);
  }
}

export default {
  async render(container) {
    root = container;
    const lots = await api("/api/v1/lots");
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "filters", id: "add-camera" },
      field(t("field.id"), h("input", { name: "id", required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,62}", autocomplete: "off" })),
      field(t("field.name"), h("input", { name: "name", maxlength: 200 })),
      field(t("field.lot"), h("input", { name: "lot_id", required: true, list: "lot-ids", pattern: "[a-z0-9][a-z0-9_\\-]{0,62}", value: lots[0] ? lots[0].id : "" })),
      h("datalist", { id: "lot-ids" }, lots.map((l) => h("option", { value: l.id }, l.name))),
      field(t("field.direction"), select("direction", [["entry", tv("direction", "entry")], ["exit", tv("direction", "exit")]], "entry")),
      h("button", { type: "submit", class: "primary" }, t("common.add")), error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        const made = await api("/api/v1/cameras", { method: "POST", json: Object.fromEntries(new FormData(form)) });
        form.reset();
        await load();
        await showKey(made);
      } catch (e) {
        showError(error, e);
      }
    });
    container.append(h("h2", {}, t("cameras.title")), form, h("div", { id: "camera-table" }));
    await load();
  },
  onLive(message) {
    if (message.type === "camera_online" || message.type === "camera_offline") load().catch(() => {});
  },
  resync() { load().catch(() => {}); },
  dispose() { root = null; },
};
