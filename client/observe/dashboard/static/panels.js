/* LearningChain dashboard: panels that put the node's and the chain's records into words.
 *
 *   LcPanels.workerPanel(worker)      the node's worker: what it does now, the jobs it follows,
 *                                     what it sent, skipped and kept on disk (never raw JSON)
 *   LcPanels.jobName(job)             the job's name (job.toml's, from its image tag)
 *   LcPanels.claimState(claim, job)   where a leaderboard claim stands, final once settled
 *   LcPanels.refundReason(job)        why a refunded job was not paid, naming the eligible
 *                                     voters that did not vote
 *
 * Text from the chain or the worker is only ever put in the page as text.
 */
"use strict";

(function () {
  const LC = window.LC;
  const { h, badge, facts, table, section, addressLink, short, fmtInt, fmtLoss } = LC;

  // -- the worker ------------------------------------------------------------------------

  const KNOWN = new Set(["address", "running", "cheating", "verify", "training", "engine_problem",
    "verifying", "jobs", "inconsistent", "pending_votes", "sent", "skipped", "refused",
    "abstained", "disk"]);

  function jobLink(jobId) {
    return h("a", { href: "#/jobs/" + jobId, title: jobId }, "job " + short(jobId, 8, 4));
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let x = Number(n);
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
    return (i === 0 ? fmtInt(x) : x.toFixed(x < 10 ? 1 : 0)) + " " + units[i];
  }

  function plural(n, one, many) {
    return fmtInt(n) + " " + (n === 1 ? one : (many || one + "s"));
  }

  /** "3 claims, 1 reveal, 4 vote commits" from the worker's counters of sent transactions. */
  function sentWords(sent) {
    const parts = Object.entries(sent || {}).filter(([, n]) => n > 0)
      .map(([what, n]) => plural(n, what.replace(/_/g, " ")));
    return parts.length ? parts.join(", ") : "nothing yet";
  }

  function doing(worker) {
    const t = worker.training;
    const lines = [];
    if (t) {
      lines.push(h("div", { testid: "worker-training" }, "Training ", jobLink(String(t.job)),
        ": ", String(t.phase || "running"), t.attempt ? `, attempt ${fmtInt(t.attempt)}` : ""));
      const p = t.progress;  // [API-PROGRESS.1] the run's last valid progress file
      if (p && typeof p.fraction === "number") {
        const pct = Math.round(100 * Math.min(1, Math.max(0, p.fraction)));
        const metric = typeof p.metric === "number"
          ? `, ${String(p.metric_name || "metric")} ${fmtLoss(p.metric)}` : "";
        const resumed = typeof p.resumed_from === "number"
          ? ` (resumed from step ${fmtInt(p.resumed_from)})` : "";
        // [API-PROGRESS.3] the public view withholds the step and the metric
        const step = typeof p.step === "number" ? `, step ${fmtInt(p.step)}` : "";
        lines.push(h("div", { testid: "worker-progress" },
          h("progress", { max: "100", value: String(pct) }),
          ` ${pct}%${step}${metric}${resumed}`));
      }
    }
    const v = worker.verifying;
    if (v) {
      lines.push(h("div", { testid: "worker-verifying" }, "Verifying ",
        v.own_claim ? "its own claim" : ["the claim of ", addressLink(String(v.claimer))],
        " on ", jobLink(String(v.job)), ": ", String(v.phase || "running")));
    }
    if (!lines.length) {
      lines.push(h("span", { class: "muted", testid: "worker-idle" },
        worker.running ? "Idle: waiting for a job it accepts or a model to verify" : "Stopped"));
    }
    return lines;
  }

  function jobTable(jobs) {
    const rows = Object.entries(jobs || {}).map(([jobId, p]) => h("tr", { testid: "worker-job" },
      h("td", {}, jobLink(jobId)),
      h("td", { class: "num" }, `${fmtInt(p.runs)} of ${fmtInt(p.attempts)}`),
      h("td", { class: "num" }, fmtLoss(p.best_measured_loss)),
      h("td", { class: "num" }, p.claims ? fmtLoss(p.claimed_loss) : "no claim")));
    return table(["Job", "Runs finished / started", "Best measured loss", "Claimed"], rows,
                 { empty: "no job followed" });
  }

  /** {job id (or "job:claimer"): reason} as a list of "job …: reason" lines. */
  function reasons(title, map, testid) {
    const entries = Object.entries(map || {});
    if (!entries.length) return null;
    return h("details", { class: "reasons", testid, dataset: { key: "worker-" + testid } },
      h("summary", {}, `${title} (${entries.length})`),
      h("ul", {}, entries.slice(0, 50).map(([key, why]) => {
        const [jobId, claimer] = key.split(":");
        return h("li", {}, jobLink(jobId), claimer ? [" (claim of ", short(claimer, 10, 6), ")"] : null,
                 ": ", String(why));
      })));
  }

  function diskWords(disk) {
    if (!disk) return null;
    const removed = (disk.removed || []).length;
    return `${fmtBytes(disk.owned_bytes)} kept for jobs in ${plural(disk.owned, "item")}, ` +
      `budget ${fmtBytes(disk.budget_bytes)}` + (removed ? `; ${plural(removed, "item")} removed lately` : "");
  }

  /** Any field a newer worker reports that this page does not know, in words. */
  function otherWords(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (Array.isArray(value)) return value.length ? value.map(otherWords).join(", ") : "none";
    if (typeof value === "object") {
      const entries = Object.entries(value);
      return entries.length ? entries.map(([k, v]) => `${k.replace(/_/g, " ")} ${otherWords(v)}`).join("; ") : "none";
    }
    return String(value);
  }

  function workerPanel(worker) {
    const state = [
      worker.running ? badge("running", "ok", { testid: "worker-state" }) : badge("stopped", "bad", { testid: "worker-state" }),
      worker.verify ? badge("verifies models", "role") : badge("does not verify", "warn"),
      worker.cheating ? badge("DEMO: claims a false loss", "bad") : null,
    ];
    const other = Object.entries(worker).filter(([k]) => !KNOWN.has(k))
      .map(([k, v]) => [k.replace(/_/g, " "), otherWords(v)]);
    const inconsistent = worker.inconsistent || {};
    return section("Worker", h("div", { class: "worker", testid: "worker-panel" },
      h("p", {}, state),
      facts([
        ["Now", h("div", {}, doing(worker))],
        worker.engine_problem ? ["Docker engine", h("span", { class: "error", testid: "worker-engine" }, String(worker.engine_problem))] : null,
        ["Sent", h("span", { testid: "worker-sent" }, sentWords(worker.sent))],
        ["Votes to open", fmtInt(worker.pending_votes || 0)],
        worker.disk ? ["Disk", diskWords(worker.disk)] : null,
        ...other,
      ]),
      Object.keys(worker.jobs || {}).length ? jobTable(worker.jobs) : null,
      reasons("Jobs skipped", worker.skipped, "worker-skipped"),
      reasons("Jobs refused", worker.refused, "worker-refused"),
      reasons("Votes not sent", worker.abstained, "worker-abstained"),
      reasons("Jobs whose evaluation did not reproduce", inconsistent, "worker-inconsistent")));
  }

  // -- jobs ----------------------------------------------------------------------------------

  /** job.toml's ``name`` reaches the chain in the image tag ``job build`` gives the image. */
  function jobName(job) {
    const ref = (job.spec && job.spec.image_ref) || job.image_ref || "";
    const m = /^learningchain\/job-([^:@/]+)/.exec(ref);
    if (m) return m[1];
    const text = (job.description || "").split("\n")[0].trim();
    if (text) return text.length > 60 ? text.slice(0, 59) + "…" : text;
    return "job " + short(job.job_id, 10, 6);
  }

  const OUTCOME_WORDS = {
    valid: "verified", cheat: "cheat: voted invalid", forfeit: "forfeited: no model revealed",
    no_quorum: "no quorum of votes", inconclusive: "votes split", withdrawn: "withdrawn by its claimer",
    inconsistent: "evaluation did not reproduce", current: "its turn now",
  };

  /** [state, words, explanation]: a claim that never got a turn ends when the job does. */
  function claimState(claim, job) {
    if (claim.state !== "waiting") {
      return [claim.state, claim.winner ? "verified" : (OUTCOME_WORDS[claim.state] || claim.state.replace(/_/g, " ")), ""];
    }
    if (job.status === "paid") return ["outranked", "lost", "a better-ranked claim was verified and paid; this one never needed a turn"];
    if (job.status === "refunded") return ["not_judged", "not judged", "the job was refunded before this claim's turn"];
    if (job.status === "broken") return ["not_judged", "not judged", "the job's evaluation did not reproduce; no further turns"];
    if (job.status === "open") return ["waiting", "claimed", "claims are still open"];
    return ["waiting", "waiting for its turn", ""];
  }

  function eligibleOf(job) {
    if (Array.isArray(job.eligible_voters)) return job.eligible_voters;
    if (job.turn && Array.isArray(job.turn.eligible_voters)) return job.turn.eligible_voters;
    return null;
  }

  /** Who of the last turn's eligible voters opened no vote (the claimer's own vote is not one). */
  function silentVoters(job, claimer) {
    const votes = (job.votes || []).filter((v) => v.voter !== claimer);
    const opened = new Set(votes.filter((v) => v.revealed).map((v) => v.voter));
    const hidden = votes.filter((v) => !v.revealed).map((v) => v.voter);
    const eligible = eligibleOf(job);
    if (eligible) {
      const silent = eligible.filter((a) => !opened.has(a));
      return { named: silent, hidden: hidden, unnamed: 0 };
    }
    const last = job.verdicts[job.verdicts.length - 1];
    const unnamed = last ? Math.max(0, last.eligible - votes.length) : 0;
    return { named: hidden, hidden: hidden, unnamed };
  }

  function voterList(addresses, hidden) {
    return addresses.map((a, i) => [i ? ", " : "", addressLink(a, { testid: "non-voter" }),
      hidden.includes(a) ? " (committed a hidden vote, never opened it)" : ""]);
  }

  /** Why a refunded job paid nobody, in words, with the voters that stayed silent. */
  function refundReason(job) {
    const v = job.spec.voting;
    const last = job.verdicts[job.verdicts.length - 1];
    if (job.holdout && job.holdout.status === "unpublished") {
      return h("p", { testid: "refund-reason", dataset: { reason: "unpublished" } },
        `The submitter never published the public part of its hidden test set: its deposit of ${fmtInt(job.holdout.terms.deposit)} credits burned and the rest of the escrow went back to it.`);
    }
    if (!job.claim_count) {
      return h("p", { testid: "refund-reason", dataset: { reason: "no_claims" } },
        "No claim arrived before the claims closed. The escrow went back to the submitter.");
    }
    if (!last) {
      return h("p", { testid: "refund-reason", dataset: { reason: "no_turn" } },
        "No claim could be judged (every claimer was banned). The escrow went back to the submitter.");
    }
    const why = {
      no_quorum: `Too few votes to decide the last turn: ${fmtInt(last.valid_votes + last.invalid_votes)} of ` +
        `${fmtInt(last.eligible)} eligible voters opened a vote; the quorum is ${v.quorum_permille / 10}%.`,
      inconclusive: `The votes on the last turn were split (${fmtInt(last.valid_votes)} valid, ` +
        `${fmtInt(last.invalid_votes)} invalid); neither side reached the ${v.supermajority_permille / 10}% supermajority.`,
      cheat: "Every claim that had a turn was voted invalid, and no turn was left" +
        ` (at most ${fmtInt(v.max_turns)} turns are voted).`,
      forfeit: "The last claimer did not reveal its model in time, and no claim was left to try.",
      withdrawn: "The last claimer's own measurement said its claim was invalid, and no claim was left to try.",
    }[last.outcome] || `The last turn ended as ${last.outcome.replace(/_/g, " ")}.`;
    const silent = silentVoters(job, last.claimer);
    const named = silent.named.length ? h("p", { testid: "non-voters" },
      `Eligible voters that did not vote (${silent.named.length}): `, voterList(silent.named, silent.hidden),
      ". Their verifier bonds were forfeited.") : null;
    const unnamed = silent.unnamed ? h("p", { class: "muted", testid: "non-voters-unnamed" },
      `${plural(silent.unnamed, "other eligible voter")} sent no vote at all.`) : null;
    const everyone = !silent.named.length && !silent.unnamed
      ? h("p", { class: "muted" }, "Every eligible voter voted.") : null;
    return h("div", { testid: "refund-reason", dataset: { reason: last.outcome } },
      h("p", {}, why, " What remained in escrow went back to the submitter."), named, unnamed, everyone);
  }

  window.LcPanels = { workerPanel, jobName, claimState, refundReason, silentVoters, fmtBytes };
})();
