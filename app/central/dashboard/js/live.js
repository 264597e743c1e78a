// The live feed: one WebSocket per tab that reconnects by itself with capped, jittered
// exponential backoff and says so; after every reconnect the views re-read their state,
// because messages committed while we were away are not replayed.
export const BACKOFF = { firstMs: 500, maxMs: 15000 };
// The server pings every 20 s by default; silence this long means a dead connection.
const SILENCE_MS = 50000;

export class LiveFeed {
  constructor({ token, onMessage, onStatus, onUnauthorized }) {
    this.token = token;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onUnauthorized = onUnauthorized;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.watchdog = null;
    this.stopped = false;
    this.everLive = false;
    this.retryAt = null;
    this.onlineHandler = () => this.retryNow();
    window.addEventListener("online", this.onlineHandler);
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    window.removeEventListener("online", this.onlineHandler);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, "logout");
      this.ws = null;
    }
  }

  retryNow() {
    if (this.stopped || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this.timer);
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    this.retryAt = null;
    this.status("connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let ws;
    try {
      ws = new WebSocket(`${scheme}://${location.host}/api/v1/live`, [`bearer.${this.token}`]);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => {
      this.touch();
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      if (message.type === "hello") {
        const resumed = this.everLive;
        this.attempt = 0;
        this.everLive = true;
        this.status("live", { resumed });
        return;
      }
      if (message.type === "ping") return;
      this.onMessage(message);
    };
    ws.onclose = (event) => {
      clearTimeout(this.watchdog);
      if (this.ws !== ws) return;
      this.ws = null;
      if (event.code === 4401) {
        this.stopped = true;
        this.onUnauthorized();
        return;
      }
      if (!this.stopped) this.scheduleRetry();
    };
    ws.onerror = () => { /* onclose follows and retries */ };
    this.touch();
  }

  touch() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => { if (this.ws) this.ws.close(4000, "silent"); }, SILENCE_MS);
  }

  scheduleRetry() {
    const ceiling = Math.min(BACKOFF.maxMs, BACKOFF.firstMs * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.status("down", { retryAt: this.retryAt });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  status(state, extra = {}) {
    this.state = state;
    this.onStatus(state, extra);
  }
}
