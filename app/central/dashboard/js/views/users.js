// Operator accounts (admins): create, enable and disable.
import { api } from "../api.js";
import { dateTime, field, h, newestWins, select, showError, table, toast } from "../dom.js";
import { t } from "../i18n.js";

let root = null;
let me = null;
const reads = newestWins();

async function load() {
  const mayShow = reads();
  const users = await api("/api/v1/users");
  if (!root || !mayShow()) return;
  root.querySelector("#user-table").replaceChildren(table([
    { label: t("auth.username"), cell: (u) => u.username },
    { label: t("field.role"), cell: (u) => t(`role.${u.role}`) },
    { label: t("field.active"), cell: (u) => t(u.active ? "common.yes" : "common.no") },
    { label: t("field.created"), cell: (u) => dateTime(u.created_at) },
    { label: "", cell: (u) => (u.username === me ? "" : h("button", {
      type: "button", class: u.active ? "danger small" : "secondary small",
      onclick: () => api(`/api/v1/users/${encodeURIComponent(u.username)}`, { method: "PATCH", json: { active: !u.active } })
        .then(load).catch((e) => showError(null, e)),
    }, t(u.active ? "users.disable" : "users.enable"))) },
  ], users, { rowProps: (u) => ({ dataset: { user: u.username } }) }));
}

export default {
  async render(container, context) {
    root = container;
    me = context.user;
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "filters", id: "add-user" },
      field(t("auth.username"), h("input", { name: "username", required: true, pattern: "[a-zA-Z0-9_.\\-]{2,64}", autocomplete: "off" })),
      field(t("auth.password"), h("input", { name: "password", type: "password", required: true, minlength: 8, autocomplete: "new-password" })),
      field(t("field.role"), select("role", ["guard", "manager", "admin"].map((r) => [r, t(`role.${r}`)]), "guard")),
      h("button", { type: "submit", class: "primary" }, t("common.add")), error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const data = new FormData(form);
      try {
        const made = await api("/api/v1/users", { method: "POST", json: Object.fromEntries(data) });
        form.reset();
        toast(t("users.created", { name: made.username }), "ok");
        await load();
      } catch (e) {
        showError(error, e);
      }
    });
    container.append(h("h2", {}, t("users.title")), form, h("div", { id: "user-table" }));
    await load();
  },
  resync() { load().catch(() => {}); },
  dispose() { root = null; },
};
