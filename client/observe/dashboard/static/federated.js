/* LearningChain dashboard: federated jobs [API-FED.1-3].
 *
 *   #/federated              every federated job: owner, status, phase, rule, rounds, participants
 *   #/federated/<job id>     one job: terms, accuracy per round (inline SVG), rounds with their
 *                            participants and trust weights, the end ballot, the payout
 *
 * Same rules as views.js: JSON API only, chain text only ever as text, no remote assets.
 */
"use strict";

(function () {
  const LC = window.LC;
  const { api, apiOrNull, h, svg, badge, table, section, facts, addressLink, hashText, route } = LC;
  const { fmtInt, countdown, short, colorOf } = LC;
  const WEIGHT_ONE = 65536; // [FED-AGG.7] a trust weight of 2^16 is cosine 1

  function title(text, ...extra) {
    return h("div", { class: "page-title" }, h("h1", {}, text), ...extra);
  }

  function credits(n) {
    return h("span", { class: "credits" }, fmtInt(n), h("small", {}, " cr"));
  }

  function pct(ppm) {
    return ppm === null || ppm === undefined ? "—" : `${(ppm / 10000).toFixed(1)}%`;
  }

  function jobLink(id) {
    return h("a", { href: "#/federated/" + id, title: id }, short(id, 10, 6));
  }

  route("/federated", "federated", async () => {
    const list = await api("/federated");
    const rows = list.jobs.map((j) => h("tr", { testid: "fed-row", dataset: { job: j.job_id, status: j.status } },
      h("td", {}, jobLink(j.job_id)), h("td", {}, addressLink(j.owner)),
      h("td", {}, badge(j.status, "status-" + j.status)), h("td", {}, badge(j.phase, "phase")),
      h("td", {}, j.rule), h("td", { class: "num", testid: "fed-rounds" }, `${j.rounds_done} / ${j.rounds_total}`),
      h("td", { class: "num", testid: "fed-participants" }, fmtInt(j.participants)),
      h("td", { class: "num" }, pct(j.accuracy_ppm)), h("td", { class: "num" }, credits(j.bounty))));
    return h("div", { class: "page", testid: "federated-page" },
      title("Federated", h("span", { class: "muted" }, `${fmtInt(list.jobs.length)} jobs`)),
      section("Federated jobs (data owners train on their own data; only updates leave them)",
        table(["Job", "Owner", "Status", "Phase", "Rule", "Rounds", "Participants", "Accuracy", "Bounty"],
              rows, { empty: "no federated job", testid: "federated" })));
  });

  /** Accuracy of each accepted round as an inline SVG line chart (0–100 %). */
  function accuracyChart(rounds, total) {
    const W = 640, H = 220, L = 48, R = 16, T = 12, B = 32;
    const pts = rounds.filter((r) => r.accuracy_ppm !== null);
    const n = Math.max(total, 1);
    const x = (r) => L + (n === 1 ? (W - L - R) / 2 : ((r - 1) / (n - 1)) * (W - L - R));
    const y = (ppm) => T + (1 - ppm / 1e6) * (H - T - B);
    const grid = [0, 25, 50, 75, 100].map((p) => [
      svg("line", { x1: L, x2: W - R, y1: y(p * 1e4), y2: y(p * 1e4), stroke: "currentColor", "stroke-opacity": 0.15 }),
      svg("text", { x: L - 6, y: y(p * 1e4) + 4, "text-anchor": "end", "font-size": 11, fill: "currentColor" }, `${p}%`)]);
    const ticks = Array.from({ length: n }, (_, i) => svg("text", {
      x: x(i + 1), y: H - B + 16, "text-anchor": "middle", "font-size": 11, fill: "currentColor" }, String(i + 1)));
    const line = pts.length > 1 ? svg("polyline", {
      points: pts.map((r) => `${x(r.round)},${y(r.accuracy_ppm)}`).join(" "),
      fill: "none", stroke: "var(--accent, #0969da)", "stroke-width": 2 }) : null;
    const dots = pts.map((r) => svg("circle", {
      cx: x(r.round), cy: y(r.accuracy_ppm), r: 4, fill: "var(--accent, #0969da)",
      testid: "fed-acc-point", dataset: { round: r.round, accuracy: r.accuracy_ppm } },
      svg("title", {}, `round ${r.round}: ${pct(r.accuracy_ppm)}`)));
    return svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", testid: "fed-accuracy-chart",
      "aria-label": "Agreed accuracy per round" },
      grid, ticks, svg("text", { x: (L + W - R) / 2, y: H - 2, "text-anchor": "middle", "font-size": 11, fill: "currentColor" }, "round"),
      line, dots);
  }

  function weightText(w) {
    return w === null || w === undefined ? "—" : (w / WEIGHT_ONE).toFixed(3);
  }

  function roundRows(rounds) {
    return rounds.map((r) => {
      const people = r.participants.filter((p) => !p.owner_reference);
      return h("tr", { testid: "fed-round-row", dataset: { round: r.round, verdict: r.verdict || r.phase } },
        h("td", { class: "num" }, String(r.round)),
        h("td", {}, r.verdict ? badge(r.verdict, r.verdict === "accepted" ? "ok" : "warn") : badge(r.phase, "phase")),
        h("td", {}, people.length ? people.map((p) => h("div", { class: "fed-part", testid: "fed-part", dataset: {
          address: p.address, weight: p.weight === null ? "" : p.weight, revealed: p.revealed } },
          addressLink(p.address), " ", h("span", { class: "muted" }, p.revealed ? "revealed" : "committed"),
          " · weight ", h("span", { testid: "fed-weight" }, weightText(p.weight)))) : "—"),
        h("td", {}, r.aggregator ? addressLink(r.aggregator) : "—"),
        h("td", {}, r.model_hash ? hashText(r.model_hash) : "—"),
        h("td", { class: "num", testid: "fed-accuracy" }, pct(r.accuracy_ppm)),
        h("td", {}, r.slashed.length ? r.slashed.map((a) => addressLink(a)) : "—"));
    });
  }

  route("/federated/:id", "federated", async ({ id }) => {
    const j = await apiOrNull("/federated/" + encodeURIComponent(id));
    if (!j) return h("p", { class: "error" }, "No federated job " + id);
    const s = j.spec;
    const payout = j.payout;
    // [FED-END.4] a banned participant's share is burned, never credited: marked so
    const payRows = payout ? payout.paid.map((p) => h("tr", { testid: "fed-paid-row", dataset: { address: p.address, amount: p.amount, burned: p.burned ? "true" : "false" } },
      h("td", {}, addressLink(p.address)), h("td", { class: "num" }, credits(p.amount),
        p.burned ? [" ", badge("burned: banned", "warn", { testid: "fed-paid-burned", title: "The address is banned: its share was burned, not credited" })] : null))) : [];
    const deadline = j.deadline_ms ? countdown(j.deadline_ms, { ended: "over" }) : "—";
    return h("div", { class: "page", testid: "fed-job-page", dataset: { job: j.job_id, phase: j.phase } },
      title("Federated job " + short(j.job_id, 10, 6), badge(j.status, "status-" + j.status, { testid: "fed-status" })),
      section("Job", facts([
        ["Job", h("a", { href: "#/jobs/" + j.job_id }, h("code", { class: "full" }, j.job_id))],
        ["Owner", addressLink(j.owner)],
        ["Phase", h("span", { testid: "fed-phase" }, `${j.phase} (round ${j.round}, ${j.rounds_done} of ${j.rounds_total} recorded)`)],
        ["Phase ends", deadline],
        ["Rule", `${s.rule}${s.rule === "trimmed_mean" ? ` (trim ${s.trim})` : ""}, ${s.privacy}`],
        ["Participants per round", `${s.min_participants}–${s.max_participants}`],
        ["Model", `${fmtInt(s.dims)} coordinates, 2^-${s.scale_bits} fixed point`],
        ["Current model", j.model_hash ? hashText(j.model_hash) : "initial"],
        ["Target accuracy", pct(s.target_accuracy_ppm)],
        ["Bounty", credits(j.bounty)], ["Leave-one-out share", `${s.loo_permille}‰`],
        ["Cohort", (s.cohort || []).length ? `${s.cohort.length} named addresses: ${s.cohort.join(", ")}`
          : "any admitted member"],
      ])),
      section("Agreed accuracy per round", h("div", { class: "fed-chart" },
        accuracyChart(j.rounds, j.rounds_total))),
      section("Rounds", table(["Round", "Verdict", "Participants (trust weight)", "Aggregator", "Model", "Accuracy", "Slashed"],
        roundRows(j.rounds), { empty: "no round yet", testid: "fed-rounds" })),
      section("End and rewards", facts([
        ["End ballot participants", j.end.participants.length ? j.end.participants.map((a) => [addressLink(a), " "]) : "—"],
        ["Holdout deposit", j.end.deposit],
        ["Voter rewards paid", credits(j.voter_paid)],
        payout ? ["Refund to owner", credits(payout.refund)] : ["Payout", "when the job ends"],
      ]), payout ? table(["Participant", "Paid"], payRows, { empty: "nobody paid", testid: "fed-payout" }) : null));
  });
})();
