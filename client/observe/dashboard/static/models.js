/* LearningChain dashboard: deployed models and their prediction requests [API-PREDICT.1-3].
 *
 *   #/models                 every deployed model: schema, owner, royalty, request counts
 *   #/models/<job id>        one model and its latest requests with their status
 *   #/predictions/<id>       one request: phase, drawn executors, commits, reveals, payouts
 *
 * Same rules as views.js: JSON API only, chain text only ever as text.
 */
"use strict";

(function () {
  const LC = window.LC;
  const { api, apiOrNull, h, badge, table, section, facts, addressLink, hashText, route } = LC;
  const { fmtInt, countdown, short } = LC;

  function title(text, ...extra) {
    return h("div", { class: "page-title" }, h("h1", {}, text), ...extra);
  }

  function statusBadge(status, testid) {
    return badge(status, "status-" + status, { testid, dataset: { status } });
  }

  function credits(n) {
    return h("span", { class: "credits" }, fmtInt(n), h("small", {}, " cr"));
  }

  function modelLink(id) {
    return h("a", { href: "#/models/" + id, title: id }, short(id, 10, 6));
  }

  function schemaText(m) {
    const o = m.output;
    const shape = `${m.input.features} × ${m.input.dtype}`;
    return o.kind === "classes"
      ? `${shape} → ${o.labels.length} classes (${o.labels.slice(0, 6).join(", ")}${o.labels.length > 6 ? ", …" : ""})`
      : `${shape} → ${o.outputs} value${o.outputs === 1 ? "" : "s"} (× 10^${o.scale_exp})`;
  }

  function acceptsText(m) {  // [PRED-ACCEPTS.1] modes, row files, encrypted or not and why
    const a = m.accepts;
    const enc = a.encrypted === true ? "encrypted rows: yes" : a.encrypted === false ? "encrypted rows: no" : "encrypted rows: unknown";
    return h("span", { testid: "model-accepts", dataset: { encrypted: String(a.encrypted) }, title: a.encrypted_why },
      `${a.modes.join(", ")} · ${a.input_files.join(" or ")} rows · ${enc}`);
  }

  function servable(m) {  // [PRED-UNLOADABLE.3] an agreed "does not load" closes the model
    return m.unservable_by
      ? h("span", { testid: "model-servable", dataset: { servable: "no" } },
          badge("unservable", "status-no_majority"), " by ",
          h("a", { href: "#/predictions/" + m.unservable_by, title: m.unservable_by }, short(m.unservable_by, 10, 6)))
      : h("span", { testid: "model-servable", dataset: { servable: "yes" } }, badge("serving", "status-agreed"));
  }

  route("/models", "models", async () => {
    const list = await api("/models");
    const rows = list.models.map((m) => h("tr", { testid: "model-row", dataset: { model: m.job_id } },
      h("td", {}, modelLink(m.job_id)), h("td", {}, schemaText(m)), h("td", {}, acceptsText(m)),
      h("td", {}, addressLink(m.owner)),
      h("td", { class: "num" }, `${m.royalty_permille / 10}%`), h("td", {}, servable(m)),
      h("td", { class: "num", testid: "model-requests" }, fmtInt(m.requests.total)),
      h("td", { class: "num" }, fmtInt(m.requests.open)),
      h("td", { class: "num" }, fmtInt(m.requests.agreed))));
    return h("div", { class: "page", testid: "models-page" },
      title("Models", h("span", { class: "muted" }, `${fmtInt(list.models.length)} deployed`)),
      section("Deployed models (a paid job's winning model answers prediction requests)",
        table(["Model", "Schema", "Accepts", "Owner", "Royalty", "Status", "Requests", "Open", "Agreed"], rows,
              { empty: "no deployed model", testid: "models" })));
  });

  function requestRows(predictions) {
    return predictions.map((p) => h("tr", { testid: "request-row", dataset: { request: p.request_id, status: p.status } },
      h("td", {}, h("a", { href: "#/predictions/" + p.request_id, title: p.request_id }, short(p.request_id, 10, 6))),
      h("td", {}, statusBadge(p.status)), h("td", {}, p.mode), h("td", { class: "num" }, fmtInt(p.rows)),
      h("td", { class: "num" }, String(p.k)), h("td", { class: "num" }, credits(p.fee)),
      h("td", {}, addressLink(p.requester)), h("td", { class: "num" }, "#" + fmtInt(p.included_height))));
  }

  route("/models/:id", "models", async ({ id }) => {
    const m = await apiOrNull("/models/" + encodeURIComponent(id));
    if (!m) return h("p", { class: "error" }, "No deployed model " + id);
    const c = m.requests;
    return h("div", { class: "page", testid: "model-page", dataset: { model: m.job_id } },
      title("Model " + short(m.job_id, 10, 6)),
      section("Model", facts([
        ["Model id (job)", h("a", { href: "#/jobs/" + m.job_id }, h("code", { class: "full" }, m.job_id))],
        ["Model hash", hashText(m.model_hash)],
        ["Format", m.format],
        ["Schema", h("span", { testid: "model-schema" }, schemaText(m))],
        ["Accepts", acceptsText(m)],
        ["Encrypted rows", m.accepts.encrypted_why],
        ["Owner", addressLink(m.owner)],
        ["Royalty", `${m.royalty_permille}‰ of every agreed request's fee`],
        ["Status", servable(m)],
        ["Requests", h("span", { testid: "model-counts" },
          `${c.total} (${c.open} open, ${c.agreed} agreed, ${c.no_majority} without majority, ${c.unserved} unserved)`)],
      ])),
      section("Requests, newest first",
        table(["Request", "Status", "Mode", "Rows", "k", "Fee", "Requester", "Included"],
              requestRows(m.predictions), { empty: "no request yet", testid: "model-requests" })));
  });

  route("/predictions/:id", "models", async ({ id }) => {
    const p = await apiOrNull("/predictions/" + encodeURIComponent(id));
    if (!p) return h("p", { class: "error" }, "No prediction request " + id);
    const byExec = new Map(p.answers.map((a) => [a.executor, a]));
    const o = p.outcome;
    const paid = new Map(o ? o.paid.map((x) => [x.address, x.amount]) : []);
    const rows = p.executors.map((e) => {
      const a = byExec.get(e);
      const role = !o ? "" : o.agreeing.includes(e) ? "agreed" : o.disagreeing.includes(e) ? "disagreed" : "no show";
      return h("tr", { testid: "executor-row" }, h("td", {}, addressLink(e)),
        h("td", {}, a ? "committed" : "—"), h("td", {}, a && a.output_hash ? hashText(a.output_hash) : "—"),
        h("td", {}, role), h("td", { class: "num" }, paid.has(e) ? credits(paid.get(e)) : "—"));
    });
    const deadline = p.deadline_ms ? countdown(p.deadline_ms, { ended: "over" }) : "—";
    return h("div", { class: "page", testid: "prediction-page", dataset: { status: p.status } },
      title("Prediction request " + short(p.request_id, 10, 6), statusBadge(p.status, "prediction-status")),
      section("Request", facts([
        ["Model", modelLink(p.model_id)], ["Requester", addressLink(p.requester)],
        ["Mode", p.mode], ["Rows", fmtInt(p.rows)], ["k", `${p.k} (majority ${p.majority})`],
        ["Fee", credits(p.fee)], ["Escrow", credits(p.escrow)],
        ["Drawn at", "#" + fmtInt(p.draw_height)], ["Window ends", deadline],
        ["Agreed answer", p.answer ? hashText(p.answer) : "—"],
        o ? ["Royalty / refund", [credits(o.royalty), " / ", credits(o.refund)]] : null,
      ])),
      section("Executors (draw order)", table(["Executor", "Commit", "Reveal", "Outcome", "Paid"], rows,
        { empty: "not drawn yet", testid: "executors" })));
  });
})();
