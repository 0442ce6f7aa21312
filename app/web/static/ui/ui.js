// The ops page: the service's own API, read and followed from the browser. Every value
// shown is set as text (textContent), never parsed as HTML: order data, reasons and
// the token cannot become markup. Paths are relative to /ui, so the page also works
// under a proxy's path prefix.
"use strict";

(() => {
  const TOKEN_KEY = "execution-api-token"; // sessionStorage: this tab only
  const OPEN = new Set(["NEW", "PARTIALLY_FILLED"]);
  const RECENT_FILLS = 100; // fills listed, newest first
  const FILL_WINDOW = 500; // events before the stream's start searched for recent fills
  const SHOWN_ORDERS = 500; // open order rows drawn (all are counted)
  const OPEN_PAGES = 20; // pages of 1,000 open orders read at start
  const CHART_POINTS = 1800; // P&L samples kept (an hour at the default refresh)
  const RETRY_FIRST_MS = 500;
  const RETRY_MOST_MS = 10000;
  const JOURNAL_HEADER = "Journal-Id"; // names the journal the stream's seqs belong to
  // Bytes a header value may hold (fetch refuses others), and no space: a token sent
  // as `Bearer <token>` is made of these.
  const TOKEN_CHARACTERS = /^[\x21-\x7e]+$/;

  const byId = (id) => document.getElementById(id);
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const tokenRequired = meta("token-required") === "true";
  // The service sends a heartbeat once a stream is quiet for half of this; a stream
  // silent for twice as long (and a second) is stalled.
  const heartbeatSeconds = Number(meta("events-heartbeat-seconds"));
  const STREAM_SILENCE_MS = (2 * heartbeatSeconds + 1) * 1000;
  const refreshMs = refreshInterval(new URLSearchParams(location.search).get("refresh"));
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let session = null;

  class Unauthorized extends Error {}
  class Expired extends Error {}
  class Stalled extends Error {
    constructor() {
      super(`nothing received for ${STREAM_SILENCE_MS / 1000} s`);
    }
  }

  // `?refresh=S`: seconds between reads of positions, balances and health (0.2-60, default 2).
  function refreshInterval(text) {
    const seconds = Number(text);
    return text !== null && Number.isFinite(seconds) && seconds >= 0.2 && seconds <= 60 ? seconds * 1000 : 2000;
  }

  function headers(extra) {
    const all = { Accept: "application/json", ...extra };
    if (token) all.Authorization = `Bearer ${token}`;
    return all;
  }

  async function failure(response, what) {
    const text = await response.text();
    let detail = text.slice(0, 300);
    try {
      detail = JSON.parse(text).detail || detail;
    } catch (_) {
      // not JSON: the text itself
    }
    if (response.status === 401) return new Unauthorized(detail);
    if (response.status === 410) return new Expired(detail);
    return new Error(`${what}: ${response.status} ${detail}`);
  }

  async function api(method, path, body) {
    const init = { method, cache: "no-store", headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(path, init);
    if (!response.ok) throw await failure(response, `${method} /${path}`);
    return response.json();
  }

  // Numbers as the API gave them, without float noise from sums (12 significant digits).
  function num(value) {
    if (value === null || value === undefined) return "—";
    return String(Number.parseFloat(Number(value).toPrecision(12)));
  }

  function clock(ts) {
    return ts ? ts.slice(11, 23) : "—"; // HH:MM:SS.mmm of an ISO UTC time
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function signClass(value) {
    if (value === null || value === undefined || value === 0) return "num";
    return value > 0 ? "num up" : "num down";
  }

  function setText(id, text, className) {
    const node = byId(id);
    node.textContent = text;
    if (className !== undefined) node.className = className;
  }

  function showError(message) {
    const node = byId("page-error");
    node.textContent = message;
    node.hidden = !message;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // One SSE message ("id: 7\nevent: fill\ndata: {...}") as its fields.
  function parseMessage(block) {
    const fields = {};
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      fields[name] = name === "data" && fields.data !== undefined ? `${fields.data}\n${value}` : value;
    }
    return fields;
  }

  // What one page session holds and follows; a new token starts a new one.
  class Session {
    constructor() {
      this.orders = new Map(); // order_id -> order, open ones only
      this.openTruncated = false; // more were open at the load than it read
      this.canceling = new Set(); // order ids whose cancel is on its way
      this.fills = new Map(); // seq -> fill, the newest RECENT_FILLS
      this.after = null; // the last seq applied (null: not started)
      this.journalId = null; // the journal those seqs belong to
      this.opened = false; // the current stream sent its opening
      this.pnl = []; // [time ms, total P&L]
      this.stopped = false;
      this.controller = null;
      this.timers = new Set();
      this.drawPending = false;
      this.refreshing = false;
      this.refreshAgain = false;
      this.refreshFailed = false;
    }

    start() {
      this.follow();
      this.poll();
    }

    stop() {
      this.stopped = true;
      if (this.controller) this.controller.abort();
      for (const timer of this.timers) clearTimeout(timer);
    }

    later(ms, action) {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (!this.stopped) action();
      }, ms);
      this.timers.add(timer);
    }

    failed(error) {
      if (this.stopped) return;
      if (error instanceof Unauthorized) refused(this, error.message);
      else showError(error.message);
    }

    // The stream, resumed after the last seq applied whenever it ends or fails.
    async follow() {
      let delay = RETRY_FIRST_MS;
      while (!this.stopped) {
        this.opened = false;
        try {
          await this.readStream();
          setText("stream-status", "reconnecting", "warn-text");
        } catch (error) {
          if (this.stopped) return;
          if (error instanceof Unauthorized) {
            refused(this, error.message);
            return;
          }
          if (error instanceof Expired) this.after = null; // history gone: load everything again
          setText("stream-status", `reconnecting (${error.message})`, "bad");
        }
        if (this.opened) delay = RETRY_FIRST_MS; // it ran: no backoff carried over
        await sleep(delay);
        delay = Math.min(delay * 2, RETRY_MOST_MS);
      }
    }

    // One connection, until it ends or fails. Nothing at all for STREAM_SILENCE_MS (the
    // service sends a heartbeat well within it) means a stalled connection: dropped.
    async readStream() {
      const controller = new AbortController();
      this.controller = controller;
      let watchdog = null;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(new Stalled()), STREAM_SILENCE_MS);
      };
      arm();
      try {
        const query = this.after === null ? "" : `?after=${this.after}`;
        const response = await fetch(`execution/events/stream${query}`, {
          cache: "no-store",
          headers: headers({ Accept: "text/event-stream" }),
          signal: controller.signal,
        });
        if (!response.ok) throw await failure(response, "the event stream");
        const type = response.headers.get("Content-Type") || "none";
        if (!type.startsWith("text/event-stream")) throw new Error(`the event stream answered ${type}`);
        this.checkJournal(response.headers.get(JOURNAL_HEADER));
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          arm();
          const { value, done } = await reader.read();
          if (done || this.stopped) return;
          buffer += value;
          let end = buffer.indexOf("\n\n");
          while (end >= 0) {
            await this.receive(parseMessage(buffer.slice(0, end)));
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf("\n\n");
          }
        }
      } finally {
        clearTimeout(watchdog);
        controller.abort(); // a failure above leaves no connection open behind it
      }
    }

    // Seqs number one journal: a memory store's starts again at 1 with a new id when
    // the service restarts. Another journal than the one followed: load everything.
    checkJournal(id) {
      if (id !== this.journalId) this.after = null;
      this.journalId = id;
    }

    async receive(message) {
      if (message.event === "overflow") {
        this.after = JSON.parse(message.data).last_seq; // resumed from there
      } else if (message.data !== undefined) {
        const event = JSON.parse(message.data);
        if (this.after !== null && event.seq > this.after) {
          this.apply(event);
          this.after = event.seq;
        }
      } else if (message.id !== undefined) {
        // The opening: the seq the stream starts after. The first one loads the state
        // as it is now; the events after that seq are then applied on top, in order.
        if (this.after === null) await this.load(Number(message.id));
        if (this.stopped) return;
        this.opened = true;
        setText("stream-status", "live", "ok");
      }
    }

    async load(head) {
      const [open, fills, state] = await Promise.all([
        this.openOrders(),
        api("GET", `execution/fills?after=${Math.max(0, head - FILL_WINDOW)}&limit=1000`),
        api("GET", "execution/trading-state"),
      ]);
      if (this.stopped) return;
      this.orders = new Map(open.orders.map((order) => [order.order_id, order]));
      this.openTruncated = open.truncated;
      this.fills = new Map();
      for (const fill of fills.items) this.addFill(fill);
      showTradingState(state, true);
      this.after = head;
      showError("");
      this.draw();
    }

    async openOrders() {
      const orders = [];
      let cursor = null;
      for (let page = 0; page < OPEN_PAGES; page += 1) {
        const next = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
        const answer = await api("GET", `execution/orders?status=NEW,PARTIALLY_FILLED&limit=1000${next}`);
        orders.push(...answer.items);
        cursor = answer.next_cursor;
        if (cursor === null) break;
      }
      return { orders, truncated: cursor !== null };
    }

    apply(event) {
      if (event.type === "trading_state") {
        showTradingState(event.trading_state);
        return;
      }
      const order = event.order;
      if (order) {
        if (OPEN.has(order.status)) this.orders.set(order.order_id, order);
        else this.orders.delete(order.order_id);
      }
      if (event.fill) {
        this.addFill(event.fill);
        this.refresh(); // the position and balances it changed
      }
      this.drawSoon();
    }

    addFill(fill) {
      this.fills.set(fill.seq, fill);
      if (this.fills.size > RECENT_FILLS) {
        const seqs = [...this.fills.keys()].sort((a, b) => a - b);
        for (const seq of seqs.slice(0, seqs.length - RECENT_FILLS)) this.fills.delete(seq);
      }
    }

    // Many events in a burst are drawn once.
    drawSoon() {
      if (this.drawPending) return;
      this.drawPending = true;
      this.later(30, () => {
        this.drawPending = false;
        this.draw();
      });
    }

    draw() {
      drawOrders(this);
      drawFills(this);
    }

    async cancel(orderId) {
      this.canceling.add(orderId);
      this.draw();
      try {
        const order = await api("POST", `execution/orders/${encodeURIComponent(orderId)}/cancel`);
        if (this.stopped) return;
        this.orders.delete(order.order_id);
      } catch (error) {
        this.failed(error);
      } finally {
        this.canceling.delete(orderId);
        if (!this.stopped) this.draw();
      }
    }

    // Positions are marked at the latest quote, which no event announces: read on a timer.
    poll() {
      this.refresh().finally(() => this.later(refreshMs, () => this.poll()));
    }

    // One refresh at a time: asked for while one runs, one more follows it, so a burst
    // of fills costs the service two reads, and an older answer never draws last.
    async refresh() {
      if (this.refreshing) {
        this.refreshAgain = true;
        return;
      }
      this.refreshing = true;
      try {
        do {
          this.refreshAgain = false;
          await this.refreshOnce();
        } while (this.refreshAgain && !this.stopped);
      } finally {
        this.refreshing = false;
      }
    }

    async refreshOnce() {
      const [health, capabilities, account] = await Promise.allSettled([
        api("GET", "healthz"),
        api("GET", "capabilities"),
        Promise.all([api("GET", "execution/positions"), api("GET", "execution/balances")]),
      ]);
      if (this.stopped) return;
      showHealth(health, capabilities, account);
      if (account.status === "rejected") {
        this.failed(account.reason);
        this.refreshFailed = true;
        return;
      }
      if (this.refreshFailed) showError(""); // what the last failed refresh said is over
      this.refreshFailed = false;
      const [positions, balances] = account.value;
      const total = drawPositions(positions.items);
      drawBalances(balances.items);
      this.pnl.push([Date.now(), total]);
      if (this.pnl.length > CHART_POINTS) this.pnl.shift();
      drawChart(this.pnl);
    }
  }

  // The state shown is the newest seen: a PUT's answer that lands after the event of a
  // later change (another operator's) does not draw over it.
  let shownStateTs = "";
  function showTradingState(state, fresh = false) {
    const since = state.updated_ts_utc || "";
    if (!fresh && since < shownStateTs) return;
    shownStateTs = since;
    setText("trading-state", state.state, `state ${state.state}`);
    setText("trading-reason", state.reason ? `— ${state.reason}` : "");
    setText("trading-updated", since ? `since ${since}` : "");
  }

  // The header: the store (reached through the positions and balances just read), the
  // intake (can orders be taken now, as /capabilities says) and the market data.
  function showHealth(health, capabilities, account) {
    if (health.status === "rejected") {
      setText("store-status", "service unreachable", "bad");
    } else if (account.status === "rejected" && !(account.reason instanceof Unauthorized)) {
      setText("store-status", `${health.value.store}: ${account.reason.message}`, "bad");
    } else {
      setText("store-status", `${health.value.store}: ok`, "ok");
    }
    if (capabilities.status === "rejected") {
      setText("intake-status", "unknown", "bad");
      setText("market-status", "unknown", "bad");
      return;
    }
    const { status, degraded_reason: reason, stale_market_data: stale } = capabilities.value;
    if (status === "ok") setText("intake-status", "accepting orders", "ok");
    else setText("intake-status", `degraded: ${reason}`, "warn-text");
    if (stale.length) setText("market-status", `stale: ${stale.join(", ")}`, "bad");
    else setText("market-status", "no instrument stale", "ok");
  }

  function drawOrders(current) {
    const orders = [...current.orders.values()].sort((a, b) => (a.accepted_ts_utc < b.accepted_ts_utc ? 1 : -1));
    const rows = orders.slice(0, SHOWN_ORDERS).map((order) => {
      const row = document.createElement("tr");
      row.dataset.orderId = order.order_id;
      const accepted = cell(clock(order.accepted_ts_utc));
      accepted.title = order.accepted_ts_utc;
      row.append(
        accepted,
        cell(order.order_id),
        cell(order.idempotency_key),
        cell(`${order.exchange} ${order.symbol}`),
        cell(order.side),
        cell(order.type),
        cell(num(order.qty), "num"),
        cell(num(order.filled_qty), "num"),
        cell(num(order.limit_price), "num"),
        cell(order.time_in_force),
        cell(order.status),
      );
      const action = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Cancel";
      button.disabled = current.canceling.has(order.order_id);
      button.addEventListener("click", () => current.cancel(order.order_id));
      action.append(button);
      row.append(action);
      return row;
    });
    byId("open-orders").tBodies[0].replaceChildren(...rows);
    const more = current.openTruncated ? "+ (more than the page reads at once)" : "";
    const shown = orders.length > SHOWN_ORDERS ? ` (newest ${SHOWN_ORDERS} shown)` : "";
    setText("open-count", `${orders.length}${more}${shown}`);
  }

  function drawFills(current) {
    const fills = [...current.fills.values()].sort((a, b) => b.seq - a.seq);
    const rows = fills.map((fill) => {
      const row = document.createElement("tr");
      row.dataset.seq = String(fill.seq);
      const origin = fill.provenance;
      const level = origin ? `${num(origin.level_price)} × ${num(origin.level_size)}` : "—";
      row.append(
        cell(String(fill.seq), "num"),
        cell(clock(fill.ts_utc)),
        cell(fill.order_id),
        cell(`${fill.exchange} ${fill.symbol}`),
        cell(fill.side),
        cell(num(fill.qty), "num"),
        cell(num(fill.price), "num"),
        cell(num(fill.fee), "num"),
        cell(fill.liquidity),
        cell(origin ? origin.source : "—"),
        cell(level, "num"),
        cell(origin ? num(origin.queue_ahead) : "—", "num"),
        cell(origin ? clock(origin.ts_utc) : "—"),
      );
      return row;
    });
    byId("fills").tBodies[0].replaceChildren(...rows);
  }

  // The positions' rows; returns the total P&L (realized + unrealized - fees).
  function drawPositions(positions) {
    let total = 0;
    const rows = positions.map((position) => {
      const net = position.realized_pnl + (position.unrealized_pnl || 0) - position.fees;
      total += net;
      const row = document.createElement("tr");
      row.dataset.instrument = `${position.exchange}:${position.symbol}`;
      row.append(
        cell(`${position.exchange} ${position.symbol}`),
        cell(num(position.qty), "num"),
        cell(num(position.avg_entry_price), "num"),
        cell(num(position.mark_price), "num"),
        cell(num(position.realized_pnl), signClass(position.realized_pnl)),
        cell(num(position.unrealized_pnl), signClass(position.unrealized_pnl)),
        cell(num(position.fees), "num"),
        cell(num(net), signClass(net)),
      );
      return row;
    });
    byId("positions").tBodies[0].replaceChildren(...rows);
    setText("pnl-total", num(total), `figure ${signClass(total)}`);
    return total;
  }

  function drawBalances(balances) {
    byId("balances-off").hidden = balances.length > 0;
    byId("balances").hidden = balances.length === 0;
    const rows = balances.map((balance) => {
      const row = document.createElement("tr");
      row.append(cell(balance.asset), cell(num(balance.total), "num"), cell(num(balance.reserved), "num"), cell(num(balance.free), "num"));
      return row;
    });
    byId("balances").tBodies[0].replaceChildren(...rows);
  }

  function svg(name, attributes) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    return node;
  }

  function drawChart(points) {
    const chart = byId("pnl-chart");
    const width = 600;
    const height = 140;
    const values = points.map(([, value]) => value);
    let low = Math.min(0, ...values);
    let high = Math.max(0, ...values);
    if (high === low) high = low + 1;
    const pad = (high - low) * 0.08;
    low -= pad;
    high += pad;
    const first = points[0][0];
    const span = Math.max(points[points.length - 1][0] - first, 1);
    const y = (value) => (height * (high - value)) / (high - low);
    const line = points.map(([time, value]) => `${((width * (time - first)) / span).toFixed(1)},${y(value).toFixed(1)}`);
    chart.replaceChildren(
      svg("line", { class: "zero", x1: 0, x2: width, y1: y(0), y2: y(0) }),
      svg("polyline", { class: "line", points: line.join(" ") }),
    );
    chart.dataset.points = String(points.length);
    const since = new Date(first).toISOString().slice(11, 19);
    setText("pnl-range", `low ${num(Math.min(...values))}, high ${num(Math.max(...values))} since ${since} UTC`);
  }

  // Trading state buttons: each asks first, then PUTs the state.
  const dialog = byId("confirm");
  let confirmed = null;
  byId("confirm-yes").addEventListener("click", () => {
    dialog.close();
    if (confirmed) confirmed();
  });
  byId("confirm-no").addEventListener("click", () => dialog.close());

  for (const button of document.querySelectorAll("#trading button[data-state]")) {
    button.addEventListener("click", () => {
      const state = button.dataset.state;
      const cancelOpen = byId("control-cancel").checked;
      const reason = byId("control-reason").value.trim();
      let question = `Set the trading state to ${state}`;
      if (cancelOpen) question += " and cancel every open order";
      question += reason ? `, reason: ${reason}?` : " (no reason given)?";
      byId("confirm-text").textContent = question;
      confirmed = async () => {
        const current = session;
        if (!current) return;
        const body = { state, cancel_open_orders: cancelOpen };
        if (reason) body.reason = reason;
        try {
          const changed = await api("PUT", "execution/trading-state", body);
          if (current.stopped) return;
          showTradingState(changed);
          showError("");
          byId("control-reason").value = ""; // a choice made for one change, not the next
          byId("control-cancel").checked = false;
        } catch (error) {
          current.failed(error);
        }
      };
      dialog.showModal();
    });
  }

  // The token: asked for when the service needs one, kept for this tab only.
  function askForToken(message) {
    byId("dashboard").hidden = true;
    byId("token-panel").hidden = false;
    const error = byId("token-error");
    error.textContent = message || "";
    error.hidden = !message;
    setText("stream-status", "waiting for the token", "warn-text");
    byId("token-input").focus();
  }

  function refused(from, detail) {
    if (from !== session) return; // told once per session
    session.stop();
    session = null;
    for (const id of ["store-status", "intake-status", "market-status"]) setText(id, "…", "");
    token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    askForToken(`The service refused the token (401: ${detail}). Enter the EXECUTION_API_TOKEN it was started with.`);
  }

  function begin() {
    if (tokenRequired && !token) {
      askForToken("");
      return;
    }
    byId("token-panel").hidden = true;
    byId("dashboard").hidden = false;
    session = new Session();
    session.start();
  }

  function useToken(event) {
    event.preventDefault(); // the form is never sent anywhere
    const given = byId("token-input").value.trim();
    if (!given) {
      askForToken("Enter the token.");
      return;
    }
    if (!TOKEN_CHARACTERS.test(given)) {
      askForToken("A token is made of printable ASCII characters, without spaces: this one cannot be sent.");
      return;
    }
    byId("token-input").value = "";
    token = given;
    sessionStorage.setItem(TOKEN_KEY, token);
    begin();
  }

  byId("token-form").addEventListener("submit", useToken);

  begin();
})();
