/* LearningChain dashboard: the pages. Each route fetches the JSON API and returns a DOM node.
 *
 *   #/                   the graph: this node, its peers, validators, active jobs, recent blocks
 *   #/blocks[?from=H]    block headers, and the transactions of the newest ones
 *   #/blocks/<height>    one block and its transactions
 *   #/txs/<hash>         one transaction
 *   #/jobs[?status=S]    jobs with bounty, status, time left, best loss
 *   #/jobs/<id>          one job: leaderboard, loss plot, turn and votes, verdicts, winner
 *   #/accounts           members with balances and bans, pending governance proposals
 *   #/accounts/<addr>    one account and the jobs it posted
 */
"use strict";

(function () {
  const LC = window.LC;
  const { api, apiOrNull, h, badge, table, section, facts, addressLink, hashText, route } = LC;
  const { fmtInt, fmtLoss, fmtTime, countdown, short, colorOf } = LC;
  const P = window.LcPanels;

  const SETTLED = new Set(["paid", "refunded", "broken"]);

  // -- shared pieces -------------------------------------------------------------------------

  function title(text, ...extra) {
    return h("div", { class: "page-title" }, h("h1", {}, text), ...extra);
  }

  function jobLink(jobId, label) {
    return h("a", { href: "#/jobs/" + jobId, title: jobId }, label || short(jobId, 10, 6));
  }

  function blockLink(height) {
    return h("a", { href: "#/blocks/" + height }, "#" + fmtInt(height));
  }

  function statusBadge(status, testid) {
    return badge(status, "status-" + status, { testid, dataset: { status } });
  }

  function credits(n) {
    return h("span", { class: "credits" }, fmtInt(n), h("small", {}, " cr"));
  }

  function swatch(address) {
    const s = h("span", { class: "swatch", "aria-hidden": "true" });
    s.dataset.color = colorOf(address);
    return s;
  }

  /** Swatch colours are set through the CSSOM (allowed by the page's CSP), after creation. */
  function paintSwatches(root) {
    root.querySelectorAll(".swatch[data-color]").forEach((s) => (s.style.background = s.dataset.color));
    return root;
  }

  /** One line saying what a transaction does. */
  function txSummary(tx) {
    const b = tx.body;
    switch (b.type) {
      case "transfer": return [fmtInt(b.amount), " cr → ", addressLink(b.to)];
      case "post_job": return ["job ", jobLink(tx.hash, "“" + (b.spec.description || b.spec.image_ref) + "”"),
                               ", bounty ", fmtInt(b.spec.bounty)];
      case "claim": return ["loss ", fmtLoss(b.loss), " on ", jobLink(b.job_id)];
      case "reveal": return ["model ", hashText(b.model_hash), " for ", jobLink(b.job_id)];
      case "vote_commit": return ["hidden vote on ", addressLink(b.claimer), " (", jobLink(b.job_id), ")"];
      case "vote_reveal": return [b.valid ? "valid" : "invalid", b.measured_loss === null ? "" : ` (measured ${fmtLoss(b.measured_loss)})`,
                                  " on ", addressLink(b.claimer), " (", jobLink(b.job_id), ")"];
      case "gov_propose": return [b.action.kind.replace("_", " "), " ", addressLink(b.action.address)];
      case "gov_approve": return ["approve proposal ", hashText(b.proposal_id)];
      case "evidence": return ["evidence of a double vote"];
      case "verifier_join": return ["joins the verifiers (bonds credits to vote on models)"];
      case "verifier_leave": return ["leaves the verifiers (its bond returns)"];
      default: return [b.type];
    }
  }

  function txRows(txs, height) {
    return txs.map((tx) => h("tr", { testid: "tx-row", dataset: { type: tx.type } },
      height === undefined ? null : h("td", {}, blockLink(height)),
      h("td", {}, h("a", { href: "#/txs/" + tx.hash }, short(tx.hash, 10, 4))),
      h("td", {}, badge(tx.type, "tx")),
      h("td", {}, addressLink(tx.sender)),
      h("td", { class: "summary" }, txSummary(tx))));
  }

  function timeLeft(job) {
    if (SETTLED.has(job.status)) return h("span", { class: "muted" }, "settled");
    return countdown(job.expiry_ms, { testid: "job-time-left", ended: "claims closed" });
  }

  function jobRows(jobs) {
    return jobs.map((j) => h("tr", { testid: "job-row", dataset: { jobId: j.job_id, status: j.status } },
      h("td", {}, jobLink(j.job_id, j.description || short(j.job_id, 10, 6)),
        h("div", { class: "sub" }, short(j.job_id, 10, 6))),
      h("td", {}, statusBadge(j.status)),
      h("td", { class: "num" }, credits(j.bounty)),
      h("td", { class: "num" }, fmtInt(j.claim_count)),
      h("td", { class: "num" }, fmtLoss(j.best_loss)),
      h("td", {}, timeLeft(j)),
      h("td", {}, j.winner ? addressLink(j.winner) : h("span", { class: "muted" }, "—"))));
  }

  const JOB_HEADERS = ["Job", "Status", "Bounty", "Claims", "Best loss", "Claims close", "Winner"];

  function blockRows(blocks) {
    return blocks.map((b) => h("tr", { testid: "block-row", dataset: { height: b.height } },
      h("td", {}, blockLink(b.height)),
      h("td", {}, hashText(b.hash)),
      h("td", {}, countdown(b.time_ms)),
      h("td", {}, addressLink(b.proposer)),
      h("td", { class: "num" }, fmtInt(b.tx_count))));
  }

  // -- the graph (overview) ----------------------------------------------------------------

  route("/", "overview", async () => {
    const status = await LC.loadNode();
    const [account, peers, validators, jobs, blocks, proposals] = await Promise.all([
      api("/accounts/" + status.address), api("/peers"), api("/validators"),
      api("/jobs?limit=8"), api("/blocks?limit=8"), api("/proposals"),
    ]);
    const worker = Object.keys(status.worker || {});
    return paintSwatches(h("div", { class: "page" },
      title("This node", ...status.roles.map((r) => badge(r, "role", { testid: "node-role" }))),
      h("div", { class: "grid2" },
        section("Identity and chain", facts([
          ["Address", h("span", {}, h("code", { class: "full", testid: "node-address" }, status.address), " ",
                        h("a", { href: "#/accounts/" + status.address }, "account"))],
          ["Balance", h("span", { testid: "node-balance" }, credits(account.balance)),
            account.banned ? badge("banned", "banned") : null],
          ["Height", h("strong", { testid: "node-height" }, fmtInt(status.height))],
          ["Last block", status.last_block_time_ms ? [countdown(status.last_block_time_ms), " · ", fmtTime(status.last_block_time_ms)] : "—"],
          ["Chain", status.chain_id],
          ["Synced", status.caught_up ? "caught up" : badge("catching up", "warn")],
          ["Consensus round", fmtInt(status.consensus_round)],
          ["Mempool", fmtInt(status.mempool_txs) + " pending txs"],
          ["Endpoints", `p2p ${status.p2p_endpoint || "—"} · api ${status.api_endpoint || "—"}`],
        ])),
        section(`Peers (${peers.length})`, table(["Address", "Endpoint", "Direction", "Score"],
          peers.map((p) => h("tr", { testid: "peer-row" },
            h("td", {}, addressLink(p.address)), h("td", {}, p.endpoint || "—"),
            h("td", {}, p.outbound ? "outbound" : "inbound"), h("td", { class: "num" }, p.score.toFixed(1)))),
          { empty: "no peers connected" }))),
      h("div", { class: "grid2" },
        section(`Validators (total power ${validators.total_power})`,
          table(["Address", "Power"], validators.validators.map((v) => h("tr", { testid: "validator-row" },
            h("td", {}, addressLink(v.address), v.address === status.address ? badge("this node", "self") : null),
            h("td", { class: "num" }, fmtInt(v.power))))),
          validators.scheduled_changes.length ? h("p", { class: "muted" },
            validators.scheduled_changes.map((c) => `${c.kind} ${short(c.address, 10, 6)} at height ${c.height}`).join("; ")) : null),
        worker.length ? P.workerPanel(status.worker) : null,
        proposals.proposals.length ? section("Governance proposals", proposalTable(proposals.proposals)) : null),
      section(h("a", { href: "#/jobs" }, `Recent jobs (${fmtInt(jobs.total)} in all)`), table(JOB_HEADERS, jobRows(jobs.jobs), { empty: "no job posted yet" })),
      section(h("a", { href: "#/blocks" }, "Recent blocks"),
        table(["Height", "Hash", "Time", "Proposer", "Txs"], blockRows(blocks.blocks)))));
  });

  function proposalTable(proposals) {
    return table(["Proposal", "Action", "Approved", "Expires"], proposals.map((p) => h("tr", { testid: "proposal-row" },
      h("td", {}, hashText(p.proposal_id)),
      h("td", {}, p.action.kind.replace("_", " "), " ", addressLink(p.action.address)),
      h("td", { class: "num" }, `${p.approved_power} / ${p.needed_power} needed`),
      h("td", {}, countdown(p.expires_ms)))));
  }

  // -- blocks and transactions ---------------------------------------------------------------

  route("/blocks", "blocks", async (_params, query) => {
    const from = query.get("from");
    const page = await api("/blocks?limit=20" + (from ? "&from=" + encodeURIComponent(from) : ""));
    let withTxs = page.blocks.filter((b) => b.tx_count > 0);
    const oldest = page.blocks.length ? page.blocks[page.blocks.length - 1].height : 0;
    if (withTxs.length < 5 && oldest > 1) { // busy graphs commit many empty blocks: look further back
      const more = await api("/blocks?limit=100&from=" + (oldest - 1));
      withTxs = withTxs.concat(more.blocks.filter((b) => b.tx_count > 0));
    }
    withTxs = withTxs.slice(0, 5);
    const details = await Promise.all(withTxs.map((b) => apiOrNull("/blocks/" + b.height)));
    const txs = details.filter(Boolean).flatMap((b) => txRows(b.txs.slice(0, 50), b.height));
    const first = page.blocks.length ? page.blocks[0].height : page.height;
    const last = page.blocks.length ? page.blocks[page.blocks.length - 1].height : 1;
    const pager = h("div", { class: "pager" },
      first < page.height ? h("a", { href: first + 20 >= page.height ? "#/blocks" : "#/blocks?from=" + (first + 20) }, "← newer") : null,
      last > 1 ? h("a", { href: "#/blocks?from=" + (last - 1), testid: "older-blocks" }, "older →") : null);
    return h("div", { class: "page" },
      title("Blocks", h("span", { class: "muted" }, `tip ${fmtInt(page.height)}`)),
      section("Headers", table(["Height", "Hash", "Time", "Proposer", "Txs"], blockRows(page.blocks)), pager),
      section("Latest transactions (the newest blocks that have some)",
        table(["Block", "Tx", "Type", "Sender", "What"], txs, { empty: "no transactions in these blocks" })));
  });

  route("/blocks/:height", "blocks", async ({ height }) => {
    const b = await apiOrNull("/blocks/" + encodeURIComponent(height));
    if (!b) return h("p", { class: "error" }, `No block ${height} here yet.`);
    return h("div", { class: "page", testid: "block-detail" },
      title("Block #" + fmtInt(b.height), h("span", { class: "pager" },
        b.height > 1 ? h("a", { href: "#/blocks/" + (b.height - 1) }, "← previous") : null,
        b.height < LC.height ? h("a", { href: "#/blocks/" + (b.height + 1) }, "next →") : null)),
      section("Header", facts([
        ["Hash", h("code", { class: "full" }, b.hash)],
        ["Time", [fmtTime(b.time_ms), " (", countdown(b.time_ms), ")"]],
        ["Proposer", addressLink(b.proposer)],
        ["Previous", h("code", { class: "full" }, b.prev_hash)],
        ["State root", h("code", { class: "full" }, b.state_root)],
        ["Tx root", h("code", { class: "full" }, b.tx_root)],
        ["Transactions", fmtInt(b.tx_count)],
      ])),
      section(`Transactions (${b.tx_count})`,
        table(["Tx", "Type", "Sender", "What"], txRows(b.txs), { empty: "an empty block" })));
  });

  route("/txs/:hash", "blocks", async ({ hash }) => {
    const t = await apiOrNull("/txs/" + encodeURIComponent(hash));
    if (!t) return h("p", { class: "error" }, "No committed or pending transaction " + hash);
    if (t.status === "pending") {
      return h("div", { class: "page" }, title("Transaction", badge("pending", "warn")),
        section("Pending", h("p", {}, `In the mempool; the chain is at height ${fmtInt(t.chain_height)}.`)));
    }
    const tx = t.tx;
    const body = Object.entries(tx.body).filter(([k]) => k !== "type").map(([k, v]) =>
      [k.replace(/_/g, " "), typeof v === "object" && v !== null ? h("pre", {}, JSON.stringify(v, null, 2)) : String(v)]);
    return h("div", { class: "page" },
      title("Transaction", badge(tx.type, "tx"), badge("committed", "ok")),
      section("Where", facts([
        ["Hash", h("code", { class: "full" }, tx.hash)],
        ["Block", [blockLink(t.height), ` position ${t.index}, `, fmtTime(t.time_ms)]],
        ["Sender", addressLink(tx.sender)],
        ["Nonce", fmtInt(tx.nonce)],
        ["Size", fmtInt(tx.size) + " bytes"],
        ["What", h("span", {}, txSummary(tx))],
      ])),
      section("Body", facts(body)));
  });

  // -- jobs -------------------------------------------------------------------------------

  route("/jobs", "jobs", async (_params, query) => {
    const status = query.get("status") || "all";
    const list = await api("/jobs?limit=200&status=" + encodeURIComponent(status));
    const tabs = h("div", { class: "tabs" }, ["active", "settled", "all"].map((s) =>
      h("a", { href: "#/jobs?status=" + s, class: s === status ? "active" : null }, s)));
    return h("div", { class: "page" },
      title("Jobs", h("span", { class: "muted" }, `${fmtInt(list.total)} ${status === "all" ? "" : status}`)),
      tabs, section("Jobs, newest first", table(JOB_HEADERS, jobRows(list.jobs), { empty: "no job", testid: "jobs" })));
  });

  route("/jobs/:id", "jobs", async ({ id }) => {
    const job = await apiOrNull("/jobs/" + encodeURIComponent(id));
    if (!job) return h("p", { class: "error" }, "No job " + id);
    if (job.spec.kind === "federated/v1") {  // no claims, leaderboard or winner: rounds instead
      return h("div", { class: "page", testid: "job-page", dataset: { jobId: job.job_id, status: job.status } },
        title(h("span", { testid: "job-name" }, P.jobName(job)), statusBadge(job.status, "job-status")),
        h("p", { class: "lead", testid: "federated-link" }, "A federated job: its rounds, participants, trust weights and rewards are on ",
          h("a", { href: "#/federated/" + job.job_id }, "its federated page"), "."),
        section("Job", jobFacts(job)), specDetails(job));
    }
    const [board, history, members] = await Promise.all([
      api(`/jobs/${job.job_id}/leaderboard`), api(`/jobs/${job.job_id}/history`), api("/members")]);
    const banned = new Set(members.members.filter((m) => m.banned).map((m) => m.address));
    const cheats = new Set(job.verdicts.filter((v) => v.outcome === "cheat").map((v) => v.claimer));
    const name = P.jobName(job);
    return paintSwatches(h("div", { class: "page", testid: "job-page",
                                    dataset: { jobId: job.job_id, status: job.status, title: name + " · job" } },
      title(h("span", { testid: "job-name" }, name), statusBadge(job.status, "job-status")),
      job.description && job.description !== name ? h("p", { class: "muted lead", testid: "job-description" }, job.description) : null,
      h("div", { class: "grid2" },
        section("Job", jobFacts(job)),
        job.settled ? outcomePanel(job) : turnPanel(job)),
      section(job.holdout ? "Public leaderboard (claims: the race on the public part)" : "Leaderboard",
        leaderboard(board, banned, job)),
      job.holdout ? holdoutPanel(job) : null,
      job.holdout ? section("Hidden leaderboard (finalists judged on the hidden part)", hiddenBoard(job)) : null,
      section("Best loss over time", lossPlot(job, history, cheats),
        history.complete ? null : h("p", { class: "muted" }, "Older claims are not all indexed on this node; the plot shows those it has.")),
      section(`Verdicts (${job.turns_voted} of at most ${job.spec.voting.max_turns} turns voted; forfeits do not count)`,
        verdictTable(job, banned)),
      job.votes.length && job.settled ? section("Votes of the last turn", voteTable(job)) : null,
      specDetails(job)));
  });

  function jobFacts(job) {
    return facts([
      ["Job id", h("code", { class: "full" }, job.job_id)],
      ["Submitter", addressLink(job.submitter)],
      ["Bounty", h("span", { testid: "job-bounty" }, credits(job.bounty))],
      ["Escrow", credits(job.escrow)],
      ["Posted", [blockLink(job.posted_height), " · ", fmtTime(job.posted_time_ms)]],
      ["Claims close", SETTLED.has(job.status) ? fmtTime(job.expiry_ms)
        : [countdown(job.expiry_ms, { testid: "job-time-left", ended: "closed" }), " · ", fmtTime(job.expiry_ms)]],
      ["Claims", `${fmtInt(job.claim_count)}, best loss ${fmtLoss(job.best_loss)}`],
      ["Image", h("code", {}, job.image_ref)],
    ]);
  }

  function turnPanel(job) {
    if (!job.turn && job.status === "holdout") {
      const d = job.holdout.reveal_deadline_ms;
      return section("Turn", h("p", { class: "muted", testid: "turn" },
        "Claims are closed; the submitter must reveal the hidden part ",
        countdown(d, { testid: "holdout-deadline", ended: "now (the window is over)" }), " · ", fmtTime(d),
        ". Then the best claims take their turns and are judged on it."));
    }
    if (!job.turn) {
      return section("Turn", h("p", { class: "muted", testid: "turn" },
        job.status === "open" && job.holdout ? "Claims are open, raced on the public part; when they close, the submitter reveals the hidden part and the best claims take their turns to be judged on it."
        : job.status === "open" ? "Claims are open; when they close, the best claim gets the first turn to reveal its model."
                              : "No turn in progress."));
    }
    const t = job.turn;
    const phase = { reveal: "waiting for the claimer to reveal its model",
                    vote_commit: "voters commit hidden votes", vote_reveal: "voters open their votes" }[t.phase];
    return section(`Turn ${t.number}`, h("div", { testid: "turn", dataset: { phase: t.phase } },
      facts([
        ["Claimer", [swatch(t.claimer), addressLink(t.claimer)]],
        ["Phase", [badge(t.phase.replace("_", " "), "phase"), " ", phase]],
        ["Deadline", [countdown(t.deadline_ms, { testid: "turn-deadline", ended: "ended (next block moves on)" }), " · ", fmtTime(t.deadline_ms)]],
        ["Model", t.model_hash ? h("a", { href: "/api/v1/blobs/" + t.model_hash, download: "model-" + t.model_hash.slice(0, 12) + ".bin" }, short(t.model_hash, 10, 6))
                               : h("span", { class: "muted" }, "not revealed yet")],
        ["Voters", t.phase === "reveal" ? "fixed when the model is revealed: every member but the submitter and the claimer"
                                        : `${t.votes_committed} committed, ${t.votes_revealed} revealed of ${t.eligible_voters.length} eligible`],
      ]),
      job.votes.length ? voteTable(job) : null));
  }

  function voteTable(job) {
    const hold = !!job.holdout;
    const headers = hold ? ["Voter", "Vote", "Measured loss", "Hidden part", "Hidden loss"] : ["Voter", "Vote", "Measured loss"];
    return table(headers, job.votes.map((v) => h("tr", { testid: "vote-row", dataset: { revealed: v.revealed } },
      h("td", {}, addressLink(v.voter)),
      h("td", {}, v.revealed ? badge(v.valid ? "valid" : "invalid", v.valid ? "ok" : "bad") : badge("hidden", "hidden")),
      h("td", { class: "num" }, v.revealed ? fmtLoss(v.measured_loss) : "—"),
      hold ? h("td", { testid: "vote-holdout-ok" }, v.holdout_ok === null ? "—"
        : badge(v.holdout_ok ? "matches" : "does not match", v.holdout_ok ? "ok" : "bad")) : null,
      hold ? h("td", { class: "num", testid: "vote-hidden-loss" }, v.hidden_loss === null ? "—" : fmtLoss(v.hidden_loss)) : null)),
      { empty: "no vote yet" });
  }

  const HOLDOUT_WORDS = {
    committed: "committed: the pool's root is on chain; the public part is published after the split, the hidden part after expiry",
    revealed: "revealed: the hidden part is named; voters check it against the root",
    verified: "verified: voters found the hidden part matches the root; finalists are ranked by hidden loss",
    unpublished: "unpublished: no public part before expiry; the deposit burned, the escrow went back",
    withheld: "withheld: the hidden part was not revealed in time; the deposit burned, the public ranking pays",
    rejected: "rejected: the hidden part does not match the root; the deposit burned, the public ranking pays",
  };

  function partText(part, missing) {
    return part ? [hashText(part.blob), ` ${fmtInt(part.size)} bytes`] : h("span", { class: "muted" }, missing);
  }

  function holdoutPanel(job) {
    const x = job.holdout, t = x.terms;
    const revealBy = job.expiry_ms + t.reveal_window_ms;
    return section("Hidden test set", h("div", { testid: "holdout", dataset: { status: x.status } }, facts([
      ["Status", [badge(x.status, "holdout-" + x.status, { testid: "holdout-status" }), " ", HOLDOUT_WORDS[x.status] || ""]],
      ["Pool", [`${fmtInt(t.pool)} samples: ${fmtInt(x.public_count)} public, ${fmtInt(x.hidden_count)} hidden; root `, hashText(t.root)]],
      ["Split", x.seed ? ["drawn in ", blockLink(x.split_height), " seed ", hashText(x.seed)] : ["drawn in block ", String(x.split_height), " (not yet)"]],
      ["Public part", partText(x.public, x.status === "committed" ? "not published yet (due before claims close)" : "never published")],
      ["Hidden part", [partText(x.hidden, x.reveal_deadline_ms ? "not revealed yet" : "revealed after claims close"),
        x.hidden ? null : [" · due by ", x.reveal_deadline_ms ? countdown(x.reveal_deadline_ms, { testid: "holdout-reveal-by", ended: "window over" }) : fmtTime(revealBy)]]],
      ["Terms", [`${t.finalists} finalist(s), deposit `, credits(t.deposit),
        `, tie tolerance ${t.tie_tolerance}, reveal window ${LC.fmtDuration(t.reveal_window_ms)}`]],
      ["Winner rule", h("span", { testid: "holdout-rule" }, x.winner_rule === "hidden_loss"
        ? `lowest hidden loss; losses within ${t.tie_tolerance} of it are tied and the earlier claim wins`
        : "the hidden part is not verified: the first finalist (public ranking) wins")],
    ])));
  }

  function hiddenBoard(job) {
    return table(["#", "Finalist", "Hidden loss", "Claimed at", ""], job.holdout.hidden_leaderboard.map((r) =>
      h("tr", { testid: "hidden-row", dataset: { claimer: r.claimer, rank: r.rank, tied: r.tied, leading: r.leading },
                class: r.winner ? "winner-row" : null },
        h("td", { class: "num" }, r.rank),
        h("td", {}, swatch(r.claimer), addressLink(r.claimer)),
        h("td", { class: "num", testid: "hidden-loss" }, r.hidden_loss === null ? "—" : fmtLoss(r.hidden_loss)),
        h("td", {}, blockLink(r.height)),
        h("td", {}, r.tied ? badge("tied", "warn") : null, r.leading && !r.winner ? badge("leading", "phase") : null,
          r.winner ? badge("winner", "ok") : null))),
      { empty: "no finalist judged yet", testid: "hidden-leaderboard" });
  }

  function outcomePanel(job) {
    if (job.status === "paid") {
      const modelHash = job.winner_model_hash;
      return section("Winner", h("div", { testid: "winner", class: "winner" },
        facts([
          ["Winner", [swatch(job.winner), addressLink(job.winner, { testid: "winner-address" })]],
          ["Paid", credits(job.paid)],
          ["Model", h("code", { class: "full" }, modelHash)],
        ]),
        h("a", { class: "button", href: "/api/v1/blobs/" + modelHash, testid: "model-link",
                 download: "model-" + job.job_id.slice(0, 12) + ".bin" }, "Download the winning model"),
        h("p", { class: "muted" }, "The file's blob id (SHA-256 over its 1 MiB chunk hashes) is the model hash above, the model the vote verified.")));
    }
    if (job.status === "refunded") {
      return section("Outcome: refunded", h("div", { testid: "winner" }, P.refundReason(job)));
    }
    return section("Outcome", h("p", { testid: "winner", class: "muted" },
      "Broken: the voters measured the model differently although they followed the contract; " +
      "the job's evaluation does not reproduce. What remained in escrow went back to the submitter."));
  }

  function leaderboard(board, banned, job) {
    return table(["#", "Claimer", "Loss", "Claimed at", "State"], board.claims.map((c) => {
      const [state, words, why] = P.claimState(c, job);
      return h("tr", { testid: "leaderboard-row", dataset: { claimer: c.claimer, state: c.state, rank: c.rank, finalState: state },
                class: c.winner ? "winner-row" : c.state === "cheat" ? "cheat-row" : null },
        h("td", { class: "num" }, c.rank),
        h("td", {}, swatch(c.claimer), addressLink(c.claimer)),
        h("td", { class: "num", testid: "leaderboard-loss" }, fmtLoss(c.loss)),
        h("td", {}, blockLink(c.height)),
        h("td", {}, badge(words, "state-" + state, { testid: "claim-state", title: why || null }),
          c.winner ? badge("winner", "ok") : null,
          banned.has(c.claimer) ? badge("banned", "banned", { testid: "banned" }) : null,
          why ? h("div", { class: "sub" }, why) : null));
    }), { empty: "no claims yet", testid: "leaderboard" });
  }

  function lossPlot(job, history, cheats) {
    const end = SETTLED.has(job.status) ? job.expiry_ms : Math.min(LC.nowMs(), job.expiry_ms);
    return h("div", { class: "plot" }, window.LcPlot.lossPlot({
      claims: history.claims, best: history.best, startMs: job.posted_time_ms, endMs: end,
      expiryMs: job.expiry_ms, cheaters: cheats, colorOf, fmtLoss,
    }), history.claims.length ? window.LcPlot.legend(cheats.size > 0) : null);
  }

  function verdictTable(job, banned) {
    return table(["Turn", "Claimer", "Outcome", "Votes", "Decided", "Model"], job.verdicts.map((v, i) =>
      h("tr", { testid: "verdict-row", dataset: { outcome: v.outcome, claimer: v.claimer } },
        h("td", { class: "num" }, i + 1),
        h("td", {}, addressLink(v.claimer)),
        h("td", {}, badge(v.outcome.replace("_", " "), "outcome-" + v.outcome),
          v.outcome === "cheat" ? h("span", { class: "slashed", testid: "slashed" },
            banned.has(v.claimer) ? " banned, credits burned" : " found cheating") : null),
        h("td", {}, `${v.valid_votes} valid · ${v.invalid_votes} invalid · ${v.eligible} eligible`),
        h("td", {}, fmtTime(v.time_ms)),
        h("td", {}, v.model_hash ? hashText(v.model_hash) : h("span", { class: "muted" }, "not revealed")))),
      { empty: "no turn decided yet", testid: "verdicts" });
  }

  function specDetails(job) {
    const s = job.spec, v = s.voting, l = s.limits;
    return h("details", { class: "card", dataset: { key: "spec" } }, h("summary", {}, "Specification"),
      facts([
        ["Kind", s.kind],
        ["Description", s.description || "—"],
        ["Image", [h("code", {}, s.image_ref), " digest ", hashText(s.image_digest), " blob ", hashText(s.image_blob)]],
        ["Data", Object.keys(s.data || {}).length === 0 ? "in the image (train/v1)"
          : h("ul", { class: "data-blobs", testid: "data-blobs" }, Object.entries(s.data).map(([role, d]) =>
            h("li", {}, [h("code", {}, role), " blob ", hashText(d.blob), ` ${LC.fmtInt(d.size)} bytes`])))],
        ["Entry points", Object.entries(s.entry_points).map(([k, argv]) => `${k}: ${argv.join(" ")}`).join("; ")],
        ["Limits", `${l.memory_mb} MB memory, ${l.cpu_millis / 1000} CPU, ${l.time_s} s, ${l.disk_mb} MB disk`],
        ["Search space", s.search_space.map((p) => `${p.name} ${p.kind} [${p.values.join(", ")}]`).join("; ") || "—"],
        ["Loss tolerance", String(s.loss_tolerance)],
        ["Windows", `reveal ${LC.fmtDuration(v.reveal_window_ms)}, vote commit ${LC.fmtDuration(v.commit_window_ms)}, vote reveal ${LC.fmtDuration(v.vote_reveal_window_ms)}`],
        ["Votes", `quorum ${v.quorum_permille / 10}%, supermajority ${v.supermajority_permille / 10}%, reward ${v.voter_reward} cr, at most ${v.max_turns} turns`],
      ]));
  }

  // -- accounts ---------------------------------------------------------------------------

  route("/accounts", "accounts", async () => {
    const [members, proposals] = await Promise.all([api("/members"), api("/proposals")]);
    const input = h("input", { type: "text", name: "address", placeholder: "lc1… address", size: 56,
                               "aria-label": "Address", testid: "address-input" });
    const lookup = h("form", { class: "lookup", onsubmit: (e) => {
      e.preventDefault();
      const a = input.value.trim();
      if (a) location.hash = "#/accounts/" + a;
    } }, input, h("button", { type: "submit" }, "Look up"));
    const total = members.members.reduce((s, m) => s + m.balance, 0);
    return h("div", { class: "page" },
      title("Accounts", h("span", { class: "muted" }, `${members.members.length} members, ${fmtInt(total)} cr`)),
      lookup,
      section("Members", table(["Address", "Balance", "Role", "Standing"], members.members.map((m) =>
        h("tr", { testid: "member-row", dataset: { address: m.address, banned: m.banned } },
          h("td", {}, addressLink(m.address, { label: m.address })),
          h("td", { class: "num" }, credits(m.balance)),
          h("td", {}, m.validator ? badge("validator", "role") : "member"),
          h("td", {}, m.banned ? badge("banned", "banned", { testid: "banned" }) : badge("good", "ok")))),
        { empty: "no members" })),
      proposals.proposals.length ? section("Pending governance proposals", proposalTable(proposals.proposals)) : null);
  });

  route("/accounts/:address", "accounts", async ({ address }) => {
    const [account, jobs] = await Promise.all([
      api("/accounts/" + encodeURIComponent(address)),
      api("/jobs?limit=50&submitter=" + encodeURIComponent(address))]);
    return h("div", { class: "page", testid: "account-page" },
      title("Account", account.banned ? badge("banned", "banned", { testid: "account-banned" }) : null,
        account.validator_power ? badge("validator", "role") : null,
        account.member ? badge("member", "ok") : badge("not a member", "warn")),
      section("Account", facts([
        ["Address", h("code", { class: "full" }, account.address)],
        ["Balance", h("span", { testid: "account-balance" }, credits(account.balance))],
        ["Nonce", `${fmtInt(account.nonce)} (next ${fmtInt(account.next_nonce)})`],
        ["Validator power", fmtInt(account.validator_power)],
        ["Standing", account.banned ? "banned: proven cheating or equivocation; its credits were burned" : "good"],
      ])),
      section(`Jobs posted (${jobs.total})`, table(JOB_HEADERS, jobRows(jobs.jobs), { empty: "none" })));
  });
})();
