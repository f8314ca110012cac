/* LearningChain dashboard: the "best loss over time" plot of a job, as inline SVG.
 *
 * LcPlot.lossPlot(opts) returns an <svg> element: one dot per claim (coloured by claimer,
 * ringed red when its claimer was found cheating), the best loss so far as a step line, and
 * a dashed line where claims close. No chart library: scales, ticks and paths are below.
 */
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const W = 720, H = 280, M = { left: 64, right: 18, top: 16, bottom: 38 };

  function el(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** About `count` round tick values covering [lo, hi]. */
  function niceTicks(lo, hi, count) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    const raw = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) || 10 * mag;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }

  function logTicks(lo, hi) {
    const out = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      const v = Math.pow(10, e);
      if (v >= lo && v <= hi) out.push(v);
    }
    return out.length >= 2 ? out : [lo, hi];
  }

  function fmtTick(v) {
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(1);
    return String(Number(v.toPrecision(4)));
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
  }

  /** The claims that lowered the best loss, in order. */
  function bestSteps(claims) {
    const out = [];
    for (const c of claims) if (!out.length || c.loss < out[out.length - 1].loss) out.push(c);
    return out;
  }

  /** A caption explaining the marks (HTML, below the plot). */
  function legend(withCheaters) {
    const item = (cls, text) => {
      const span = document.createElement("span");
      span.className = "legend-item";
      const mark = document.createElement("i");
      mark.className = cls;
      span.append(mark, text);
      return span;
    };
    const div = document.createElement("div");
    div.className = "legend";
    div.append(item("mark-dot", "a claim (colour: its claimer)"), item("mark-best", "best loss claimed so far"));
    if (withCheaters) div.append(item("mark-cheat", "claimer found cheating"), item("mark-honest", "best loss without them"));
    return div;
  }

  /**
   * opts: claims [{claimer, loss, time_ms, height}], best [same], startMs, endMs, expiryMs,
   * cheaters (Set of addresses), colorOf(address) -> css colour, fmtLoss(x) -> text.
   */
  function lossPlot(opts) {
    const claims = opts.claims || [];
    const best = opts.best || [];
    const root = el("svg", {
      viewBox: `0 0 ${W} ${H}`, class: "loss-plot", role: "img", "data-testid": "loss-plot",
      "data-points": claims.length,
      "aria-label": claims.length ? `Best loss over time: ${claims.length} claims` : "No claims yet",
    });
    const x0 = opts.startMs;
    const lastClaim = claims.length ? claims[claims.length - 1].time_ms : x0;
    const x1 = Math.max(opts.endMs, lastClaim, x0 + 1000);
    const losses = claims.map((c) => c.loss);
    let lo = losses.length ? Math.min(...losses) : 0;
    let hi = losses.length ? Math.max(...losses) : 1;
    const log = lo > 0 && hi / lo >= 100;
    if (log) {
      lo /= 1.3;
      hi *= 1.3;
    } else if (hi === lo) {
      const d = Math.abs(lo) * 0.1 || 1;
      lo -= d;
      hi += d;
    } else {
      const d = (hi - lo) * 0.08;
      lo -= d;
      hi += d;
    }
    const px = (t) => M.left + ((t - x0) / (x1 - x0)) * (W - M.left - M.right);
    const py = log
      ? (v) => M.top + (Math.log(hi) - Math.log(v)) / (Math.log(hi) - Math.log(lo)) * (H - M.top - M.bottom)
      : (v) => M.top + ((hi - v) / (hi - lo)) * (H - M.top - M.bottom);

    // Axes and grid.
    const grid = el("g", { class: "grid" });
    for (const v of log ? logTicks(lo, hi) : niceTicks(lo, hi, 5)) {
      const y = py(v);
      grid.append(el("line", { x1: M.left, x2: W - M.right, y1: y, y2: y }));
      grid.append(el("text", { x: M.left - 8, y: y + 4, "text-anchor": "end", class: "tick" }, fmtTick(v)));
    }
    const xticks = 5;
    for (let i = 0; i <= xticks; i++) {
      const t = x0 + ((x1 - x0) * i) / xticks;
      const x = px(t);
      grid.append(el("line", { x1: x, x2: x, y1: M.top, y2: H - M.bottom, class: "vgrid" }));
      grid.append(el("text", { x, y: H - M.bottom + 16, "text-anchor": i === 0 ? "start" : i === xticks ? "end" : "middle", class: "tick" }, clock(t)));
    }
    root.append(grid);
    root.append(el("text", { x: 14, y: M.top + (H - M.top - M.bottom) / 2, class: "axis-label",
                             transform: `rotate(-90 14 ${M.top + (H - M.top - M.bottom) / 2})`,
                             "text-anchor": "middle" }, log ? "loss (log)" : "loss"));
    root.append(el("rect", { x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom, class: "frame" }));

    if (opts.expiryMs && opts.expiryMs > x0 && opts.expiryMs <= x1) {
      const x = px(opts.expiryMs);
      root.append(el("line", { x1: x, x2: x, y1: M.top, y2: H - M.bottom, class: "expiry", "data-testid": "expiry-line" }));
      root.append(el("text", { x: x - 4, y: M.top + 12, "text-anchor": "end", class: "tick expiry-label" }, "claims close"));
    }

    if (!claims.length) {
      root.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty-label" }, "no claims yet"));
      return root;
    }

    // The best loss so far: a step line from each improvement to the next, then to the end.
    const steps = (points) => {
      let d = `M ${px(points[0].time_ms).toFixed(1)} ${py(points[0].loss).toFixed(1)}`;
      for (const b of points.slice(1)) d += ` H ${px(b.time_ms).toFixed(1)} V ${py(b.loss).toFixed(1)}`;
      return d + ` H ${px(x1).toFixed(1)}`;
    };
    const cheaters = opts.cheaters || new Set();
    if (best.length) root.append(el("path", { d: steps(best), class: "best-line", "data-testid": "best-line" }));
    // Once claimers are found cheating: the best loss of the others, dashed.
    const honest = bestSteps(claims.filter((c) => !cheaters.has(c.claimer)));
    if (cheaters.size && honest.length) {
      root.append(el("path", { d: steps(honest), class: "best-honest", "data-testid": "best-honest-line" }));
    }

    const dots = el("g", { class: "points" });
    for (const c of claims) {
      const cheat = cheaters.has(c.claimer);
      const g = el("g", { class: "point" + (cheat ? " cheat" : ""), "data-testid": "loss-point",
                          "data-claimer": c.claimer, "data-loss": c.loss });
      const cx = px(c.time_ms), cy = py(c.loss);
      g.append(el("circle", { cx, cy, r: 5, fill: opts.colorOf ? opts.colorOf(c.claimer) : "#1f6feb" }));
      if (cheat) g.append(el("path", { d: `M ${cx - 3} ${cy - 3} L ${cx + 3} ${cy + 3} M ${cx + 3} ${cy - 3} L ${cx - 3} ${cy + 3}`, class: "cross" }));
      const fmt = opts.fmtLoss || String;
      g.append(el("title", {}, `${c.claimer}\nloss ${fmt(c.loss)} at height ${c.height}, ${clock(c.time_ms)}` + (cheat ? "\nclaimer found cheating" : "")));
      dots.append(g);
    }
    root.append(dots);
    return root;
  }

  window.LcPlot = { lossPlot, legend, bestSteps, niceTicks };
})();
