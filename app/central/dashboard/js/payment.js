// Taking a payment (cash, card, transfer; waived by a manager with a reason) for what a session
// owes now, from the Live screen's held exits and from the session detail. Central closes a
// held exit and opens its lane: the dialog shows the receipt links and that command's progress.
import { api } from "./api.js";
import { progressWithRetry } from "./commands.js";
import { field, h, modal, money, select, showError, toast } from "./dom.js";
import { language, t, tv } from "./i18n.js";

export const METHODS = ["cash", "card", "transfer", "waived"];

/**
 * A link to the printable receipt (vi or en). The receipt needs the bearer token, which a link
 * cannot send: the first click fetches it and opens it as a blob: URL, which the link then keeps.
 */
export function receiptLink(paymentId, lang) {
  const link = h("a", {
    href: "#", class: "receipt", target: "_blank", rel: "noopener",
    dataset: { lang, payment: String(paymentId) },
  }, t(`pay.receipt_${lang}`));
  link.addEventListener("click", async (event) => {
    if (link.dataset.url) return;  // now a plain link to the fetched receipt
    event.preventDefault();
    try {
      const response = await api(`/api/v1/payments/${Number(paymentId)}/receipt?lang=${lang === "en" ? "en" : "vi"}`, { raw: true });
      // A blob: page resolves no relative URL: point its stylesheet at this origin.
      const html = (await response.text()).replace('href="/receipt.css"', `href="${location.origin}/receipt.css"`);
      const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
      link.dataset.url = url;
      link.setAttribute("href", url);
      window.open(url, "_blank", "noopener");
    } catch (error) {
      showError(null, error);
    }
  });
  return link;
}

export function receiptLinks(paymentId) {
  // The operator's language first.
  const langs = language() === "en" ? ["en", "vi"] : ["vi", "en"];
  return h("span", { class: "receipts" }, langs.map((lang) => receiptLink(paymentId, lang)));
}

/** What a payment did, in words. */
export function paidText(payment) {
  return payment.method === "waived"
    ? t("pay.waived_done", { due: money(payment.due) })
    : t("pay.paid_done", { amount: money(payment.amount), method: tv("method", payment.method) });
}

/**
 * The payment dialog for one session. ``can`` is the shell's role check (waiving is for managers);
 * ``onPaid(taken)`` runs after central took the payment (the dialog stays open with the receipt).
 */
export async function takePayment(sessionId, { can, onPaid } = {}) {
  let due;
  let session;
  let cameras;
  try {
    [due, session, cameras] = await Promise.all([
      api(`/api/v1/sessions/${Number(sessionId)}/due`),
      api(`/api/v1/sessions/${Number(sessionId)}`),
      api("/api/v1/cameras"),
    ]);
  } catch (error) {
    showError(null, error);
    return;
  }
  if (due.due <= 0) {
    toast(t("pay.nothing_due"), "info");
    return;
  }
  const methods = METHODS.filter((m) => m !== "waived" || (can && can("manager")));
  const method = select("method", methods.map((m) => [m, tv("method", m)]), "cash");
  const reference = h("input", { name: "reference", maxlength: 100, autocomplete: "off" });
  const note = h("textarea", { name: "note", maxlength: 500, rows: 2 });
  const refField = field(t("pay.reference"), reference, t("pay.reference_hint"));
  const noteField = field(t("pay.waive_reason"), note, t("pay.waive_hint"));
  refField.classList.add("ref-field");
  noteField.classList.add("note-field");
  const lanes = cameras.filter((c) => c.lot_id === session.lot_id && c.direction === "exit" && c.id !== due.held_at_lane);
  const lane = select("camera_id", [
    ["", due.held_at_lane ? t("pay.lane_held", { camera: due.held_at_lane }) : t("pay.no_lane")],
    ...lanes.map((c) => [c.id, t("pay.lane_open", { camera: c.name || c.id })]),
  ], "");
  const show = () => {
    refField.hidden = !["card", "transfer"].includes(method.value);
    reference.required = !refField.hidden;
    noteField.hidden = method.value !== "waived";
    note.required = !noteField.hidden;
  };
  method.addEventListener("change", show);
  show();
  const summary = h("dl", { class: "due-summary" },
    h("dt", {}, t("field.plate")), h("dd", { class: "plate" }, session.plate),
    h("dt", {}, t("field.lot")), h("dd", {}, session.lot_id),
    due.held_at_lane ? [h("dt", {}, t("pay.waiting_at")), h("dd", { class: "lane" }, due.held_at_lane)] : null,
    h("dt", {}, t("pay.due")), h("dd", {}, h("strong", { class: "due", dataset: { due: String(due.due) } }, money(due.due))));

  modal(t("pay.title", { id: session.id }), [summary,
    field(t("pay.method"), method), refField, noteField, field(t("pay.lane"), lane)], {
    name: "payment",
    submit: t("pay.submit"),
    async onSubmit(data, ui) {
      const chosen = String(data.get("method"));
      const body = { method: chosen };
      if (chosen !== "waived") body.amount = due.due;  // central checks it is still what is due
      if (chosen === "card" || chosen === "transfer") {
        body.reference = String(data.get("reference") || "").trim();
        if (!body.reference) throw new Error(t("pay.reference_required"));
      }
      if (chosen === "waived") {
        body.note = String(data.get("note") || "").trim();
        if (body.note.length < 3) throw new Error(t("pay.waive_reason_required"));
      }
      const laneId = String(data.get("camera_id") || "");
      if (laneId) body.camera_id = laneId;
      const taken = await api(`/api/v1/sessions/${Number(sessionId)}/payments`, { method: "POST", json: body });
      ui.done();
      ui.result.replaceChildren(
        h("p", { class: "paid ok", dataset: { payment: String(taken.payment.id) } }, paidText(taken.payment)),
        h("p", { class: "receipt-line" }, `${t("pay.receipt")}: `, receiptLinks(taken.payment.id)),
        taken.command
          ? h("div", { class: "opening" }, h("span", {}, t("pay.opening", { camera: taken.command.camera_id })), progressWithRetry(taken.command))
          : h("p", { class: "muted" }, taken.session.status === "open" ? t("pay.prepaid") : t("pay.no_command")));
      toast(paidText(taken.payment), "ok");
      if (onPaid) onPaid(taken);
    },
  });
}
