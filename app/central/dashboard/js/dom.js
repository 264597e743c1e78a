// Building the page from data without ever parsing data as HTML: every string becomes a text
// node or an attribute value, event handlers are functions, links may only point inside the app.
import { t, locale, timezone } from "./i18n.js";

const SAFE_URL = /^(#|\/(?!\/)|blob:)/;

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) {
      if (typeof value !== "function") throw new TypeError(`${key} must be a function`);
      el.addEventListener(key.slice(2), value);
    } else if (key === "href" || key === "src") {
      if (!SAFE_URL.test(String(value))) throw new TypeError(`unsafe ${key}`);
      el.setAttribute(key, String(value));
    } else if (key === "value") {
      if ("defaultValue" in el) el.defaultValue = value;  // what form.reset() goes back to
      el.value = value;
    }
    else if (typeof value === "boolean") {
      if (key in el) el[key] = value;
      else el.toggleAttribute(key, value);
    }
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);

/**
 * Reads of one thing that may overlap (the re-read after a reconnect, the one after a live
 * message, the one after a save) and come back in any order. Each read calls `begin()` before
 * it asks and `mayShow()` when its answer is in: false when a read begun later has been shown
 * already, so an older, slower answer never overwrites a newer one.
 *   const reads = newestWins();
 *   const mayShow = reads(); const rows = await api(...); if (!root || !mayShow()) return;
 */
export function newestWins() {
  let begun = 0;
  let shown = 0;
  return () => {
    const ticket = ++begun;
    return () => {
      if (ticket < shown) return false;
      shown = ticket;
      return true;
    };
  };
}

/** A table: columns are {label, cell(row) -> string|Node, class?}; rows may get a click. */
export function table(columns, rows, { onRow, empty, rowProps } = {}) {
  const head = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.class }, c.label))));
  const body = h("tbody");
  if (!rows.length) {
    body.append(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty || t("common.none"))));
  }
  for (const row of rows) {
    const tr = h("tr", rowProps ? rowProps(row) : {}, columns.map((c) => h("td", { class: c.class }, c.cell(row))));
    if (onRow) {
      tr.classList.add("clickable");
      tr.tabIndex = 0;
      tr.addEventListener("click", () => onRow(row));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") onRow(row); });
    }
    body.append(tr);
  }
  return h("table", {}, head, body);
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", {}, hint) : null);
}

export function select(name, options, value) {
  return h("select", { name }, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

let toastTimer = null;
export function toast(message, kind = "info") {
  const box = $("#toast");
  box.textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 8000 : 4000);
}

/** Shows an error next to a form (and as a toast): the server's message, never its markup. */
export function showError(target, error) {
  const message = error && error.message ? error.message : String(error);
  if (target) target.textContent = message;
  toast(message, "error");
}

/** A modal dialog built from nodes; resolves with the submitted FormData or null. */
export function dialog(title, body, { submit = t("common.confirm"), danger = false } = {}) {
  return new Promise((resolve) => {
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { method: "dialog", class: "dialog-form" },
      h("h2", {}, title), body, error,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", value: "cancel", onclick: () => close(null) }, t("common.cancel")),
        h("button", { type: "submit", class: danger ? "danger" : "primary" }, submit)));
    const box = h("dialog", { class: "modal" }, form);
    let done = false;
    function close(result) {
      if (done) return;
      done = true;
      box.close();
      box.remove();
      resolve(result);
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      close(new FormData(form));
    });
    box.addEventListener("cancel", () => close(null));
    document.body.append(box);
    box.showModal();
    const first = form.querySelector("input, textarea, select");
    if (first) first.focus();
  });
}

/**
 * A modal dialog that stays open while its work runs and then shows the outcome in place.
 * ``onSubmit(formData, ui)`` runs on submit; what it throws is shown in the dialog, which stays
 * open for another try. ``ui.done()`` turns it into a result view: the fields are read-only,
 * the submit button goes and Cancel becomes Close. ``ui.result`` is where the outcome goes.
 */
export function modal(title, body, { submit = t("common.confirm"), danger = false, onSubmit, onClose, name } = {}) {
  const error = h("p", { class: "error", role: "alert" });
  const result = h("div", { class: "result", "aria-live": "polite" });
  const send = h("button", { type: "submit", class: danger ? "danger" : "primary" }, submit);
  const cancel = h("button", { type: "button", class: "secondary", value: "cancel", onclick: () => close() }, t("common.cancel"));
  const fields = h("fieldset", { class: "fields" }, body);
  const form = h("form", { method: "dialog", class: "dialog-form" },
    h("h2", {}, title), fields, result, error, h("div", { class: "actions" }, cancel, send));
  const box = h("dialog", { class: "modal", dataset: { name: name || "", state: "form" } }, form);
  let closed = false;
  const ui = {
    box,
    form,
    result,
    error,
    get closed() { return closed; },
    done() {
      fields.disabled = true;
      send.remove();
      cancel.textContent = t("common.close");
      cancel.className = "primary close";
      box.dataset.state = "done";
      cancel.focus();
    },
    close,
  };
  function close() {
    if (closed) return;
    closed = true;
    box.close();
    box.remove();
    if (onClose) onClose();
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (send.disabled || box.dataset.state === "done") return;
    error.textContent = "";
    send.disabled = true;
    box.dataset.state = "busy";
    try {
      await onSubmit(new FormData(form), ui);
    } catch (e) {
      if (!closed) showError(error, e);
    } finally {
      send.disabled = false;
      if (box.dataset.state === "busy") box.dataset.state = "form";
    }
  });
  box.addEventListener("cancel", () => close());
  document.body.append(box);
  box.showModal();
  const first = form.querySelector("input:not([type=hidden]), textarea, select");
  if (first) first.focus();
  return ui;
}

/** Closes every open dialog (logout, an expired token): the login form must not sit behind one. */
export function closeDialogs() {
  for (const box of document.querySelectorAll("dialog.modal")) box.dispatchEvent(new Event("cancel"));
}

// Formatting in the operator's language and the lots' timezone.
export function money(value) {
  if (value === null || value === undefined) return "";
  return new Intl.NumberFormat(locale(), { style: "currency", currency: "VND", maximumFractionDigits: 0 }).format(value);
}

export function dateTime(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(locale(), {
    timeZone: timezone(), year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(new Date(iso));
}

export function clock(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(locale(), {
    timeZone: timezone(), hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(new Date(iso));
}

export function percent(value) {
  return `${Math.round((value || 0) * 100)}%`;
}

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return t("common.never");
  if (seconds < 90) return t("time.seconds_ago", { n: Math.max(0, Math.round(seconds)) });
  if (seconds < 5400) return t("time.minutes_ago", { n: Math.round(seconds / 60) });
  return t("time.hours_ago", { n: Math.round(seconds / 3600) });
}

/** Plate text as the server accepts it (the server validates again). */
export const PLATE_PATTERN = /^[A-Z0-9][A-Z0-9 .\-/]{0,14}[A-Z0-9]$/;
export function cleanPlate(text) {
  return String(text || "").trim().toUpperCase().replace(/Đ/g, "D");
}
