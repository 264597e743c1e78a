// Lane commands as an operator follows them: issued -> delivered to the lane's agent -> pulsed
// (the barrier relay moved: green) or failed / expired (nothing moved: red), each step with its
// time. Every `lane_command` live message repaints each place a command is shown (the Open
// gate dialog, the payment dialog, the feed, the session detail); after a reconnect the ones
// still under way are read again with GET /api/v1/commands/{id}.
import { api } from "./api.js";
import { clock, h } from "./dom.js";
import { t, tv } from "./i18n.js";

// Statuses only move forward; a late "pulsed" wins over an "expired" (the relay did move).
const RANK = { pending: 0, delivered: 1, failed: 2, expired: 2, pulsed: 3 };
const FINAL = new Set(["pulsed", "failed", "expired"]);
const KNOWN_MAX = 300;
const known = new Map();
// Callbacks waiting for a command to end: id -> [fn(view)], each called once.
const watchers = new Map();

export const isFinal = (status) => FINAL.has(status);

/** The command as this tab knows it best: a view older than what is known changes nothing. */
export function remember(view) {
  if (!view || !view.id) return view;
  const before = known.get(view.id);
  if (before && (RANK[before.status] ?? 0) > (RANK[view.status] ?? 0)) return before;
  known.delete(view.id);
  known.set(view.id, view);
  while (known.size > KNOWN_MAX) known.delete(known.keys().next().value);
  return view;
}

export function tone(status) {
  if (status === "pulsed") return "ok";
  if (status === "failed" || status === "expired") return "bad";
  return "wait";
}

function step(name, label, at, state) {
  return h("li", { class: `step ${state}`, dataset: { step: name } },
    h("span", { class: "label" }, label),
    h("time", { datetime: at || "" }, at ? clock(at) : "–"));
}

function paint(el, c) {
  el.dataset.status = c.status;
  el.className = `command-progress ${tone(c.status)}`;
  const final = isFinal(c.status);
  const delivered = c.delivered_at
    ? step("delivered", t("command.step.delivered"), c.delivered_at, "done")
    : step("delivered", t("command.step.delivered"), null, final ? "skipped" : "now");
  const last = final
    ? step(c.status, tv("command.status", c.status), c.acked_at, tone(c.status))
    : step("pulse", t("command.step.pulse", { until: clock(c.expires_at) }), null, c.delivered_at ? "now" : "todo");
  el.replaceChildren(...[
    h("strong", { class: "status" }, tv("command.status", c.status)),
    h("ol", { class: "steps" }, step("issued", t("command.step.issued"), c.issued_at, "done"), delivered, last),
    c.detail ? h("small", { class: "detail" }, c.detail) : null,
  ].filter(Boolean));
}

/** A live element for one command (a view, or just its id: then it is fetched). */
export function progress(command) {
  const id = typeof command === "string" ? command : command.id;
  const el = h("div", { class: "command-progress wait", dataset: { commandId: id, status: "" } });
  const view = typeof command === "string" ? known.get(id) : remember(command);
  if (view) {
    paint(el, view);
  } else {
    el.append(h("span", {}, t("common.loading")));
    api(`/api/v1/commands/${encodeURIComponent(id)}`).then((fresh) => update(fresh)).catch(() => {});
  }
  return el;
}

/** Repaints every element showing this command; answers the view kept. */
export function update(view) {
  const best = remember(view);
  for (const el of document.querySelectorAll(`.command-progress[data-command-id="${CSS.escape(best.id)}"]`)) {
    paint(el, best);
  }
  if (isFinal(best.status) && watchers.has(best.id)) {
    const waiting = watchers.get(best.id);
    watchers.delete(best.id);
    for (const fn of waiting) fn(best);
  }
  return best;
}

/** Calls ``fn(view)`` once the command has ended (at once if it has). */
export function whenFinal(command, fn) {
  const view = known.get(command.id) || command;
  if (isFinal(view.status)) {
    fn(view);
    return;
  }
  if (!watchers.has(command.id)) watchers.set(command.id, []);
  watchers.get(command.id).push(fn);
  while (watchers.size > KNOWN_MAX) watchers.delete(watchers.keys().next().value);
}

/**
 * The command's progress, and when it ends without opening the barrier (failed, expired), a
 * button that orders the same lane again (a new command, audited as a manual open).
 */
export function progressWithRetry(command) {
  const box = h("div", { class: "command-follow" }, progress(command));
  whenFinal(command, (view) => {
    if (view.status === "pulsed") return;
    const button = h("button", { type: "button", class: "danger small retry-open" }, t("command.retry", { camera: view.camera_id }));
    const error = h("p", { class: "error", role: "alert" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      error.textContent = "";
      try {
        const again = await api(`/api/v1/cameras/${encodeURIComponent(view.camera_id)}/open`, {
          method: "POST", json: { reason: t("command.retry_reason", { reason: view.reason }).slice(0, 500) },
        });
        button.replaceWith(progressWithRetry(again));
        error.remove();
      } catch (e) {
        button.disabled = false;
        error.textContent = e.message || String(e);
      }
    });
    box.append(h("p", { class: "retry-hint" }, t("command.not_opened")), button, error);
  });
  return box;
}

export const latest = (id) => known.get(id);

export function onLive(message) {
  if (message.type === "lane_command" && message.data) update(message.data);
}

/** After a gap in the feed: the commands shown and not yet final are read again. */
export async function resync() {
  const ids = new Set();
  for (const el of document.querySelectorAll(".command-progress[data-command-id]")) {
    if (!isFinal(el.dataset.status)) ids.add(el.dataset.commandId);
  }
  await Promise.all([...ids].map((id) => api(`/api/v1/commands/${encodeURIComponent(id)}`)
    .then((fresh) => update(fresh)).catch(() => {})));
}
