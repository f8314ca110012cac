/* LearningChain dashboard: the core (API calls, DOM helpers, formatting, router, live updates).
 *
 * Plain browser JavaScript, no build step, no dependency: the node serves these files as they
 * are. The views (views.js) register themselves in LC.routes; this file routes the location
 * hash (#/jobs/<id>) to a view, re-renders it whenever a block is committed (long poll on
 * /api/v1/wait), and ticks countdowns every second. Text from the chain is only ever put in
 * the page as text (textContent), never parsed as HTML.
 *
 * [DASH-LOAD.1] The page's `load` event fires once the first view is drawn (holdLoad), and
 * the long poll only starts after it: a headless screenshot, --dump-dom or a test driver
 * waiting for `load` sees the page, never "Loading…".
 */
"use strict";

(function () {
  const API = "/api/v1";
  const LC = (window.LC = { routes: [], node: null, clockOffset: 0, height: 0 });
  const TITLE = "LearningChain node";
  /** follow.js, versioned like this script (index.html gives every asset ?v=<content hash>). */
  const FOLLOW_URL = "/dashboard/follow.js" + new URL(document.currentScript.src).search;

  // -- API ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, { timeoutMs = 15000 } = {}) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeoutMs);
    try {
      const resp = await fetch(API + path, { signal: ctrl.signal, cache: "no-store" });
      const body = await resp.json().catch(() => null);
      if (!resp.ok) {
        const err = (body && body.error) || {};
        throw new ApiError(resp.status, err.code || "http_" + resp.status,
                           err.message || resp.statusText);
      }
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Like api(), but null for a 404 (an unknown job, block, account...). */
  async function apiOrNull(path) {
    try {
      return await api(path);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }
  }

  // -- DOM ------------------------------------------------------------------------------

  /** h("td", {class: "num", dataset: {testid: "x"}}, "text", child, [more]) -> element. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "dataset") {
        for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) el.dataset[k] = v;
      } else if (key === "testid") {
        el.setAttribute("data-testid", value);
      } else if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  // -- formatting -------------------------------------------------------------------------

  const nowMs = () => Date.now() + LC.clockOffset;

  function short(text, head = 8, tail = 4) {
    if (!text) return "—";
    return text.length <= head + tail + 1 ? text : text.slice(0, head) + "…" + text.slice(-tail);
  }

  function fmtInt(n) {
    return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
  }

  function fmtLoss(x) {
    if (x === null || x === undefined) return "—";
    const a = Math.abs(x);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(3);
    return Number(x.toPrecision(5)).toString();
  }

  function fmtTime(ms) {
    if (!ms) return "—";
    const d = new Date(ms);
    return d.toLocaleString("en-GB", { hour12: false });
  }

  function fmtDuration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + String(Math.floor(s / 60) % 60).padStart(2, "0") + " min";
    return Math.floor(s / 86400) + " d " + Math.floor(s / 3600) % 24 + " h";
  }

  function relative(ms) {
    if (!ms) return "—";
    const d = ms - nowMs();
    return d >= 0 ? "in " + fmtDuration(d) : fmtDuration(-d) + " ago";
  }

  /** A span that the ticker keeps up to date: "in 12 s" / "3 min ago" (or "ended"). */
  function countdown(ms, { testid, ended } = {}) {
    const el = h("span", { class: "countdown", title: fmtTime(ms), testid });
    el.dataset.deadline = String(ms);
    if (ended) el.dataset.ended = ended;
    tickOne(el);
    return el;
  }

  function tickOne(el) {
    const ms = Number(el.dataset.deadline);
    el.textContent = el.dataset.ended && ms <= nowMs() ? el.dataset.ended : relative(ms);
  }

  function tick() {
    document.querySelectorAll("[data-deadline]").forEach(tickOne);
  }

  /** A stable colour per address (claimers in the leaderboard and the plot). */
  function colorOf(address) {
    let x = 0;
    for (let i = 0; i < (address || "").length; i++) x = (x * 31 + address.charCodeAt(i)) >>> 0;
    return `hsl(${x % 360} 70% 50%)`;
  }

  function addressLink(address, { label, testid } = {}) {
    if (!address) return h("span", { class: "muted" }, "—");
    return h("a", { href: "#/accounts/" + address, class: "addr", title: address, testid },
             label || short(address, 10, 6));
  }

  function hashText(hex, { testid } = {}) {
    return h("code", { class: "hash", title: hex || "", testid }, short(hex, 10, 6));
  }

  function badge(text, kind, attrs = {}) {
    return h("span", { class: "badge " + (kind || String(text).replace(/[^a-z_]/gi, "")), ...attrs }, text);
  }

  function table(headers, rows, { empty, ...attrs } = {}) {
    return h("table", attrs,
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.length ? rows
        : h("tr", {}, h("td", { colspan: headers.length, class: "muted empty" }, empty || "none"))));
  }

  function section(title, ...children) {
    return h("section", { class: "card" }, h("h2", {}, title), ...children);
  }

  /** A definition list from [label, value] pairs (value: text or node). */
  function facts(pairs, attrs = {}) {
    return h("dl", { class: "facts", ...attrs },
      pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }

  // -- routing and rendering -----------------------------------------------------------------

  /** views.js calls this: pattern like "/jobs/:id", render(params, query) -> Promise<Node>. */
  function route(pattern, nav, render) {
    const names = [];
    const re = new RegExp("^" + pattern.replace(/:(\w+)/g, (_, n) => (names.push(n), "([^/]+)")) + "$");
    LC.routes.push({ re, names, nav, render });
  }

  function currentLocation() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const [path, qs] = raw.split("?");
    return { path: path || "/", query: new URLSearchParams(qs || "") };
  }

  let renderSeq = 0;
  let rendering = false;
  let dirty = false;
  let lastRender = 0;

  async function render() {
    if (rendering) {
      dirty = true;
      return;
    }
    rendering = true;
    dirty = false;
    const seq = ++renderSeq;
    const { path, query } = currentLocation();
    const main = document.getElementById("main");
    let view = null;
    let params = {};
    for (const r of LC.routes) {
      const m = r.re.exec(path);
      if (m) {
        view = r;
        r.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])));
        break;
      }
    }
    document.querySelectorAll("nav a").forEach((a) =>
      a.classList.toggle("active", !!view && a.dataset.nav === view.nav));
    try {
      const node = view ? await view.render(params, query)
                        : h("p", { class: "error" }, "No such page: " + path);
      if (seq === renderSeq) {
        const open = new Set([...main.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
        main.replaceChildren(node);
        document.title = node.dataset && node.dataset.title ? node.dataset.title + " · LearningChain" : TITLE;
        main.querySelectorAll("details[data-key]").forEach((d) => { if (open.has(d.dataset.key)) d.open = true; });
        main.dataset.renderedHeight = String(LC.height);
      }
    } catch (e) {
      if (seq === renderSeq) {
        main.replaceChildren(h("p", { class: "error", testid: "error" },
          e instanceof ApiError ? `${e.code}: ${e.message}` : "Cannot reach the node: " + e.message));
        document.title = TITLE;
      }
    } finally {
      rendering = false;
      lastRender = Date.now();
      if (dirty) setTimeout(render, 250);
    }
  }

  let scheduled = false;

  /** Re-render soon (a new block); at most about twice a second. */
  function refresh() {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => { scheduled = false; render(); },
               Math.max(0, 500 - (Date.now() - lastRender)));
  }

  function navigate() {
    renderSeq++; // a render still in flight for the old page must not land
    rendering = false;
    render();
    window.scrollTo(0, 0);
  }

  // -- following the chain -----------------------------------------------------------------

  function setLive(state, text) {
    const live = document.querySelector("[data-testid=live]");
    live.dataset.state = state;
    live.querySelector("[data-testid=live-height]").textContent = text;
  }

  async function loadNode() {
    const status = await api("/status");
    LC.node = status;
    LC.clockOffset = status.time_ms - Date.now();
    LC.height = status.height;
    document.querySelector("[data-testid=chain-id]").textContent =
      status.chain_id + " · node " + short(status.address, 10, 6);
    return status;
  }

  /** Follows the chain from a worker (follow.js) so that no fetch of the page itself is
   * pending forever; re-renders when the chain grows. */
  function follow() {
    const worker = new Worker(FOLLOW_URL);
    worker.onmessage = (event) => {
      const msg = event.data;
      if (msg.offline !== undefined) {
        setLive("offline", "node unreachable");
        LC.node = null;
        return;
      }
      const grew = msg.height > LC.height;
      LC.height = Math.max(LC.height, msg.height);
      setLive("live", "height " + fmtInt(LC.height));
      if (!LC.node) loadNode().catch(() => {});
      if (grew) refresh();
    };
    worker.postMessage({ height: LC.height });
  }

  Object.assign(LC, {
    api, apiOrNull, ApiError, h, svg, short, fmtInt, fmtLoss, fmtTime, fmtDuration, relative,
    countdown, colorOf, addressLink, hashText, badge, table, section, facts, route, nowMs,
    loadNode, refresh,
  });

  // -- the first view, before `load` ------------------------------------------------------

  /** Holds the page's `load` event until the returned release() runs: a hidden image that
   * the node answers once released (client.observe.dashboard.first_render, at most 10 s). */
  function holdLoad() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    const token = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    const url = "/dashboard/first-render/" + token;
    const img = h("img", { src: url, alt: "", hidden: true, width: 1, height: 1 });
    img.addEventListener("load", () => img.remove());
    img.addEventListener("error", () => img.remove());
    document.body.append(img);
    return () => fetch(url, { method: "POST", cache: "no-store" }).catch(() => {});
  }

  function afterLoad(fn) {
    if (document.readyState === "complete") setTimeout(fn, 0);
    else window.addEventListener("load", () => setTimeout(fn, 0), { once: true });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const release = holdLoad();
    window.addEventListener("hashchange", navigate);
    setInterval(tick, 1000);
    loadNode().then(() => setLive("live", "height " + fmtInt(LC.height)))
      .catch(() => setLive("offline", "node unreachable"))
      .then(() => render())
      .finally(() => {
        release();
        afterLoad(() => {
          setInterval(refresh, 15000); // peers and mempool change between blocks too
          follow();
        });
      });
  });
})();
