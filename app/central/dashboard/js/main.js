// The shell: login, role-aware menu, language, the live link and a hash router over the views.
import { api, setToken } from "./api.js";
import * as commands from "./commands.js";
import { $, closeDialogs, h } from "./dom.js";
import { applyStatic, language, onLanguage, setLanguage, setTimezone, t } from "./i18n.js";
import { LiveFeed } from "./live.js";
import anomalies from "./views/anomalies.js";
import audit from "./views/audit.js";
import cameras from "./views/cameras.js";
import lists from "./views/lists.js";
import live from "./views/live.js";
import reports from "./views/reports.js";
import sessions from "./views/sessions.js";
import tariffs from "./views/tariffs.js";
import users from "./views/users.js";

const RANK = { guard: 1, manager: 2, admin: 3 };
// The menu, in order; each screen is shown to its role and the ones above.
const ROUTES = [
  { name: "live", role: "guard", view: live },
  { name: "sessions", role: "guard", view: sessions },
  { name: "anomalies", role: "guard", view: anomalies },
  { name: "reports", role: "guard", view: reports },
  { name: "lists", role: "manager", view: lists },
  { name: "tariffs", role: "manager", view: tariffs },
  { name: "audit", role: "manager", view: audit },
  { name: "users", role: "admin", view: users },
  { name: "cameras", role: "admin", view: cameras },
];

const app = { user: null, role: null, feed: null, current: null, unseenAnomalies: 0, expiry: null, generation: 0 };

export const can = (role) => app.role !== null && RANK[app.role] >= RANK[role];
export const currentUser = () => app.user;

function allowedRoutes() {
  return ROUTES.filter((r) => can(r.role));
}

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, ...rest] = path.split("/");
  return { name: name || "live", rest, params: new URLSearchParams(query) };
}

function renderNav() {
  const { name } = parseHash();
  $("#nav").replaceChildren(...allowedRoutes().map((route) => {
    const link = h("a", { href: `#/${route.name}`, dataset: { route: route.name }, class: route.name === name ? "active" : "" }, t(`nav.${route.name}`));
    if (route.name === "anomalies" && app.unseenAnomalies > 0) {
      link.append(h("span", { class: "count", "aria-label": String(app.unseenAnomalies) }, String(app.unseenAnomalies)));
    }
    return link;
  }));
}

async function route() {
  if (!app.role) return;
  const where = parseHash();
  let target = allowedRoutes().find((r) => r.name === where.name);
  if (!target) {
    location.hash = "#/live";
    return;
  }
  if (target.name === "anomalies") app.unseenAnomalies = 0;
  renderNav();
  if (app.current && app.current.dispose) app.current.dispose();
  // Each navigation renders into an element of its own, so a screen still loading when the
  // operator moves on writes into a detached element, never into the next screen.
  const container = h("div", { class: "screen" });
  $("#view").replaceChildren(container);
  $("#view").dataset.view = target.name;
  app.current = target.view;
  // A newer navigation may replace this screen while it is still loading: its late errors
  // belong to no screen any more.
  const generation = ++app.generation;
  try {
    await target.view.render(container, { rest: where.rest, params: where.params, can, user: app.user });
  } catch (error) {
    if (generation === app.generation && error && error.status !== 401) {
      container.append(h("p", { class: "error", role: "alert" }, error.message || String(error)));
    }
  }
}

function showLink(state, extra) {
  const badge = $("#link");
  badge.hidden = false;
  badge.dataset.state = state;
  badge.textContent = t(state === "live" ? "link.live" : state === "connecting" ? "link.connecting" : "link.down");
  document.body.classList.toggle("stale", state !== "live");
  const banner = $("#banner");
  clearInterval(showLink.countdown);
  if (state === "live") {
    banner.hidden = true;
    return;
  }
  if (!app.feed || !app.feed.everLive && state === "connecting") return;
  banner.hidden = false;
  const update = () => {
    const retryAt = app.feed && app.feed.retryAt;
    const seconds = retryAt ? Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) : 0;
    $("#banner-text").textContent = retryAt ? t("link.retry_in", { n: seconds }) : t("link.retrying");
  };
  update();
  showLink.countdown = setInterval(update, 500);
  void extra;
}

function onLive(message) {
  // Lane commands are followed wherever they are shown (dialogs too), whatever the screen.
  commands.onLive(message);
  if (message.type === "anomaly" && parseHash().name !== "anomalies") {
    app.unseenAnomalies += 1;
    renderNav();
  }
  if (app.current && app.current.onLive) app.current.onLive(message);
}

function startFeed(token) {
  app.feed = new LiveFeed({
    token,
    onMessage: onLive,
    onStatus: (state, extra) => {
      showLink(state, extra);
      // Messages are not replayed: after a gap, the screen re-reads what it shows.
      if (state === "live" && extra.resumed) {
        if (app.current && app.current.resync) app.current.resync();
        commands.resync().catch(() => {});
      }
    },
    onUnauthorized: () => expire(),
  });
  app.feed.start();
}

async function enter(stored) {
  setToken(stored.token, expire);
  const me = await api("/api/v1/auth/me");
  app.user = me.username;
  app.role = me.role;
  $("#login").hidden = true;
  $("#view").hidden = false;
  $("#logout").hidden = false;
  $("#who").textContent = `${me.username} (${t(`role.${me.role}`)})`;
  clearTimeout(app.expiry);
  if (stored.expiresAt) app.expiry = setTimeout(expire, Math.max(0, stored.expiresAt - Date.now()));
  try {
    setTimezone((await api("/api/v1/reports/day")).timezone);
  } catch { /* keep the browser's timezone */ }
  startFeed(stored.token);
  if (!location.hash) location.hash = "#/live";
  await route();
}

function leave(message) {
  closeDialogs();
  sessionStorage.removeItem("auth");
  setToken(null);
  clearTimeout(app.expiry);
  if (app.feed) app.feed.stop();
  if (app.current && app.current.dispose) app.current.dispose();
  Object.assign(app, { user: null, role: null, feed: null, current: null, unseenAnomalies: 0 });
  app.generation += 1;
  $("#nav").replaceChildren();
  $("#view").replaceChildren();
  $("#view").hidden = true;
  // Nothing of this session may look like the next one's: no screen, no live link.
  delete $("#view").dataset.view;
  $("#logout").hidden = true;
  $("#link").hidden = true;
  $("#link").dataset.state = "off";
  clearInterval(showLink.countdown);
  $("#banner").hidden = true;
  document.body.classList.remove("stale");
  $("#who").textContent = "";
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#login").password.value = "";
  $("#login").username.focus();
}

function expire() {
  leave(t("auth.expired"));
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const button = form.querySelector("button");
  button.disabled = true;
  $("#login-error").textContent = "";
  try {
    const response = await fetch("/api/v1/auth/token", { method: "POST", body: new URLSearchParams(new FormData(form)) });
    if (!response.ok) {
      $("#login-error").textContent = t(response.status === 429 ? "auth.too_many" : response.status === 401 ? "auth.wrong" : "common.unavailable");
      return;
    }
    const body = await response.json();
    const stored = { token: body.access_token, expiresAt: Date.now() + body.expires_in * 1000 };
    sessionStorage.setItem("auth", JSON.stringify(stored));
    await enter(stored);
  } catch (error) {
    $("#login-error").textContent = error.message || t("common.network");
  } finally {
    button.disabled = false;
  }
});

$("#logout").addEventListener("click", () => leave());
$("#link").addEventListener("click", () => app.feed && app.feed.retryNow());
$("#banner-retry").addEventListener("click", () => app.feed && app.feed.retryNow());
$("#lang").addEventListener("change", (event) => setLanguage(event.target.value));
onLanguage(() => {
  if (!app.role) return;
  $("#who").textContent = `${app.user} (${t(`role.${app.role}`)})`;
  if (app.feed) showLink(app.feed.state || "connecting", {});
  route();
});
window.addEventListener("hashchange", route);

$("#lang").value = language();
applyStatic(document);
const saved = JSON.parse(sessionStorage.getItem("auth") || "null");
if (saved && (!saved.expiresAt || saved.expiresAt > Date.now())) {
  enter(saved).catch(() => leave());
} else {
  leave();
}
