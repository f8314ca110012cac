/* LearningChain dashboard: the long poll on /api/v1/wait, in a dedicated worker.
 *
 * The page (app.js) starts this worker after its `load` event and posts it the height it
 * knows; the worker asks the node to answer when the chain grows past it and posts back
 * {height} for every answer, or {offline: message} (then it retries every 2 s). A fetch
 * that is always pending in the page itself would keep a headless browser's virtual time
 * (chromium --virtual-time-budget) from ever advancing [DASH-LOAD.1]; a worker's does not.
 */
"use strict";

let height = 0;
let running = false;

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function waitOnce() {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), 30000);
  try {
    const resp = await fetch(`/api/v1/wait?height=${height + 1}&timeout=20`,
                             { signal: ctrl.signal, cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const body = await resp.json();
    return Number(body.height);
  } finally {
    clearTimeout(timer);
  }
}

async function follow() {
  running = true;
  for (;;) {
    try {
      const now = await waitOnce();
      height = Math.max(height, now);
      postMessage({ height: now });
    } catch (e) {
      postMessage({ offline: String((e && e.message) || e) });
      await sleep(2000);
    }
  }
}

onmessage = (event) => {
  height = Math.max(height, Number(event.data.height) || 0);
  if (!running) follow();
};
