// Talking to central: the bearer token on every request, errors turned into messages.
import { t } from "./i18n.js";

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

const session = {
  token: null,
  onExpired: () => {},
};

export function setToken(token, onExpired) {
  session.token = token;
  if (onExpired) session.onExpired = onExpired;
}

export const token = () => session.token;

function describe(status, body) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) {
    // FastAPI/pydantic: [{loc: ["body", "plate"], msg}], never the input itself.
    return detail.map((d) => {
      const where = (d.loc || []).filter((p) => p !== "body" && p !== "query").join(".");
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join("; ");
  }
  if (typeof detail === "string") return detail;
  if (status === 403) return t("common.forbidden");
  if (status === 503) return t("common.unavailable");
  return `HTTP ${status}`;
}

/** fetch() with the token; returns parsed JSON (or the Response when raw). */
export async function api(path, { method = "GET", json, form, raw = false, signal } = {}) {
  const headers = {};
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, t("common.network"));
  }
  if (response.status === 401 && session.token) {
    session.onExpired();
    throw new ApiError(401, t("auth.expired"));
  }
  if (!response.ok) {
    let parsed = null;
    try { parsed = await response.json(); } catch { /* not JSON */ }
    const first = parsed && Array.isArray(parsed.detail) && parsed.detail[0];
    throw new ApiError(response.status, describe(response.status, parsed), first ? (first.loc || []).at(-1) : undefined);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

/** A snapshot as an object URL (an <img> cannot send the bearer header), cached per event. */
const snapshots = new Map();
const SNAPSHOT_CACHE = 120;
export async function snapshotUrl(eventId) {
  if (snapshots.has(eventId)) return snapshots.get(eventId);
  const pending = api(`/api/v1/events/${encodeURIComponent(eventId)}/snapshot`, { raw: true })
    .then((response) => response.blob())
    .then((blob) => URL.createObjectURL(blob));
  snapshots.set(eventId, pending);
  pending.catch(() => snapshots.delete(eventId));
  while (snapshots.size > SNAPSHOT_CACHE) {
    const [oldest, url] = snapshots.entries().next().value;
    snapshots.delete(oldest);
    url.then((u) => setTimeout(() => URL.revokeObjectURL(u), 60000)).catch(() => {});
  }
  return pending;
}

/** Downloads a file that needs the bearer token (CSV export). */
export async function download(path, fallbackName) {
  const response = await api(path, { raw: true });
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = match ? match[1] : fallbackName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
