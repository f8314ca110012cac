"""Plain-language text about a job, from the node's JSON: what happened, and why.

Pure functions shared by ``job status``, ``job watch`` and ``job list``. A
settled job says how it ended (paid to whom; refunded, and why: no claims, no
quorum, an inconclusive vote, every turn used up), an escrow says what it is
made of, and a worker's attempt says how it failed. Every string here comes
from a node and is printed through ``out`` (inert) by the callers.
"""

from __future__ import annotations

import re
from typing import Any

from client.cli.common import short, span, when

Json = dict[str, Any]


def escrow_text(bounty: int, voter_reward: int, max_turns: int, deposit: int = 0) -> str:
    """``escrow = bounty + voter rewards (N turns x R)``: why the escrow exceeds the bounty;
    a train/v3 job's holdout deposit is escrowed too [HOLDOUT-DEPOSIT.1]."""
    escrow = bounty + voter_reward * max_turns + deposit
    text = (f"escrow {escrow} = bounty {bounty} + voter rewards ({max_turns} turns x "
            f"{voter_reward})")
    return text + (f" + holdout deposit {deposit}" if deposit else "")


def refund_reason(j: Json) -> str:
    """Why a refunded job had no verified winner, from its claims and verdicts."""
    verdicts = j.get("verdicts") or []
    holdout = j.get("holdout") or {}
    if holdout.get("status") == "unpublished":  # [HOLDOUT-EXPIRY.1]
        return (f"the public part of the hidden test set was never published; the deposit of "
                f"{holdout['terms']['deposit']} burned [HOLDOUT-FORFEIT.1]")
    if not j.get("claims"):
        return "no claims before the claims closed"
    if not verdicts:
        return "no claimer could take a turn (every claimer was banned)"
    last = verdicts[-1]
    voting = (j.get("spec") or {}).get("voting") or {}
    opened = last["valid_votes"] + last["invalid_votes"]
    if last["outcome"] == "no_quorum":
        return (f"no quorum on the claim of {short(last['claimer'])}: {opened} of "
                f"{last['eligible']} eligible voters opened a vote, "
                f"{voting.get('quorum_permille', '?')}‰ needed")
    if last["outcome"] == "inconclusive":
        return (f"inconclusive vote on the claim of {short(last['claimer'])}: "
                f"{last['valid_votes']} valid, {last['invalid_votes']} invalid, no "
                f"{voting.get('supermajority_permille', '?')}‰ supermajority")
    turns = ", ".join(f"{short(v['claimer'])} {v['outcome']}" for v in verdicts)
    return f"no verified winner after {len(verdicts)} turn(s): {turns}"


def outcome_text(j: Json) -> str:
    """How a settled job ended, in one line (empty while it is not settled)."""
    if not j.get("settled"):
        return ""
    status = j.get("status")
    if status == "paid":
        return f"paid {j['paid']} to {j['winner']}"
    if status == "refunded":
        return f"refunded: {refund_reason(j)}"
    if status == "broken":
        verdicts = j.get("verdicts") or []
        last = verdicts[-1].get("outcome") if verdicts else None
        # [VOTE-FAILED.2] [JOB-TURN.2]: burned after a failed turn, whatever ended the job
        # (its last turn, or a later no quorum / inconclusive); [JOB-BROKEN.1] ends on the
        # inconsistent (or hidden-part) turn itself
        if last not in ("inconsistent", "valid") and any(
                v.get("outcome") == "eval_failed" for v in verdicts):
            return ("broken: the job's evaluation failed on the voters' machines and no claim "
                    "was paid (nobody banned, the escrow burned, nothing refunded)")
        return ("broken: voters measured the same model differently; the job's evaluation "
                "does not reproduce (nobody banned, nothing refunded)")
    return str(status)


def claims_window(expiry_ms: int, now: int) -> str:
    """``claims close in 4m`` / ``claims closed 14m 58s ago``."""
    if expiry_ms > now:
        return f"claims close {when(expiry_ms, now)}"
    return f"claims closed {when(expiry_ms, now)}"


def time_left(j: Json, now: int) -> str:
    """For ``job list``: time until claims close, or what the job is doing instead."""
    if j.get("settled"):
        return "-"
    if j.get("status") == "holdout":
        return "hidden part due"  # train/v3 [HOLDOUT-REVEAL.1]
    if j.get("status") != "open":
        return "judging"
    left = (int(j["expiry_ms"]) - now) / 1000
    return span(left) if left > 0 else "closing"


def job_name(j: Json) -> str:
    """A short name: the image tag's name (``learningchain/job-NAME:latest``), else the
    description's start."""
    ref = str(j.get("image_ref") or "")
    name = ref.rsplit("/", 1)[-1].split(":", 1)[0].removeprefix("job-") if ref else ""
    name = name or str(j.get("description") or "").split("\n", 1)[0] or "-"
    return name if len(name) <= 20 else name[:19] + "…"


def attempt_line(rec: Json) -> str:
    """One worker attempt: number, who, where it ended, how."""
    head = f"attempt {rec['attempt']} (run {rec['run']}) by {short(rec['worker'])}"
    if rec["outcome"] == "ok":
        return f"{head}: ok, measured loss {rec['loss']} ({rec['seconds']} s)"
    fault = {"job": "the job's fault: the attempt is used up",
             "worker": "the worker's fault: the attempt is given back"}.get(rec["fault"], "")
    code = f", exit {rec['exit_code']}" if rec["exit_code"] is not None else ""
    return (f"{head}: {rec['stage']} failed: {rec['reason']}{code} ({fault}): "
            f"{rec['detail']}")


EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?::.*)?$")
"""A traceback's last line: the exception's (dotted) name, then ``: message`` or nothing."""
EXCEPTION_NAME = re.compile(r"(Error|Exception|Exit|Interrupt|Warning|Iteration|Failure)$")
"""How built-in and most library exception names end: preferred over a printed ``x: y``."""


def last_log_line(rec: Json) -> str:
    """The line that says what went wrong: a Python traceback's error line (after its last
    ``Traceback`` header, the last unindented line shaped ``Name: message``; stdout and
    stderr interleave, even inside a line, so it need not be the last line printed nor the
    first unindented one), else the first unindented line there, else the last non-empty
    line."""
    lines = str(rec.get("log") or "").splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("Traceback (most recent call last):"):
            body = [line.strip() for line in lines[i + 1:] if line.strip()
                    and not line[0].isspace()]
            named = [line for line in body if EXCEPTION_LINE.match(line)]
            errors = [line for line in named if EXCEPTION_NAME.search(line.split(":", 1)[0])]
            if errors or named:
                return (errors or named)[-1]
            if body:
                return body[0]
            break
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def attempts_summary(attempts: list[Json], job_id: str) -> list[str]:
    """``job status`` lines about this node's worker attempts (none when there are none)."""
    if not attempts:
        return []
    failed = [a for a in attempts if a["outcome"] != "ok"]
    lines = [f"attempts   {len(attempts)} by this node's worker: "
             f"{len(attempts) - len(failed)} ok, {len(failed)} failed"]
    if failed:
        last = failed[-1]
        lines.append(f"last fail  {attempt_line(last)}")
        if tail := last_log_line(last):
            lines.append(f"           | {tail}")
        lines.append(f"           learningchain job logs {job_id}  (its output)")
    return lines


def describe_job(j: Json, now: int, attempts: list[Json] | None = None) -> list[str]:
    """``job status``: the job, its claims, the current turn, verdicts, how it ended."""
    spec = j["spec"]
    voting = spec["voting"]
    terms = spec.get("holdout") or {}
    escrow = escrow_text(spec["bounty"], voting["voter_reward"], voting["max_turns"],
                         int(terms.get("deposit") or 0))
    lines = [f"job        {j['job_id']}",
             f"status     {j['status']} ({claims_window(spec['expiry_ms'], now)})",
             f"submitter  {j['submitter']}",
             f"bounty     {spec['bounty']} ({escrow}; escrow now {j['escrow']})",
             f"image      {spec['image_ref']} sha256:{spec['image_digest']}"]
    for role, data in sorted(spec.get("data", {}).items()):  # train/v2 [JOB-DATA.1]
        lines.append(f"data       {role}: blob {data['blob']} ({data['size']} bytes)")
    if j["description"]:
        lines.append(f"about      {j['description']}")
    best = j["claims"][0] if j["claims"] else None
    lines.append(f"claims     {len(j['claims'])}" + (
        f", best loss {best['loss']:.6g} by {best['claimer']}" if best else ""))
    turn = j["turn"]
    if turn:
        lines.append(f"turn       #{turn['number']} {turn['claimer']}: {turn['phase']} until "
                     f"{when(turn['deadline_ms'], now)}")
        if turn["phase"] != "reveal":
            lines.append(f"votes      {turn['votes_committed']} committed, "
                         f"{turn['votes_revealed']} revealed of "
                         f"{len(turn['eligible_voters'])} eligible")
    for i, v in enumerate(j["verdicts"], start=1):
        lines.append(f"verdict    #{i} {v['claimer']}: {v['outcome']} ({v['valid_votes']} valid, "
                     f"{v['invalid_votes']} invalid of {v['eligible']})")
    if j["winner"]:
        lines.append(f"winner     {j['winner']} paid {j['paid']}")
        lines.append(f"model      {j['winner_model_hash']}")
    if j["settled"]:
        lines.append(f"settled    {outcome_text(j)}")
    lines.extend(holdout_lines(j, now))
    lines.extend(attempts_summary(attempts or [], j["job_id"]))
    return lines


FORFEIT_REASONS = {
    "unpublished": "the public part was not published before expiry",
    "withheld": "the hidden part was not revealed in the window",
    "rejected": "voters found the hidden part does not match the pool's root",
}
"""[HOLDOUT-FORFEIT.1] Why a holdout status burned the deposit."""


def winner_rule(h: Json) -> str:
    """[HOLDOUT-WINNER.1] In words, as the holdout stands."""
    if h["winner_rule"] == "hidden_loss":
        return (f"lowest hidden loss wins; within {h['terms']['tie_tolerance']:g} of it counts "
                "as tied and the earlier claim wins")
    return "the hidden part is not verified: the first finalist (public ranking) wins"


def holdout_lines(j: Json, now: int) -> list[str]:
    """``job status`` of a train/v3 job: the split, both parts with their deadlines, and the
    hidden leaderboard beside the public one [API-HOLDOUT.1]; none for other kinds."""
    h = j.get("holdout")
    if not h:
        return []
    t = h["terms"]
    expiry = int(j["spec"]["expiry_ms"])
    lines = [f"holdout    {h['status']}: pool of {t['pool']} ({h['public_count']} public, "
             f"{h['hidden_count']} hidden), {t['finalists']} finalist(s), deposit "
             f"{t['deposit']}, tie tolerance {t['tie_tolerance']:g}"]
    if h["status"] in FORFEIT_REASONS:
        lines.append(f"forfeit    deposit {t['deposit']} burned: {FORFEIT_REASONS[h['status']]}")
    lines.append(f"split      block {h['split_height']}: "
                 + (f"seed {short(h['seed'])}" if h["seed"] else "not drawn yet"))
    if h["public"]:
        lines.append(f"public     blob {h['public']['blob']} ({h['public']['size']} bytes)")
    elif h["status"] == "committed":
        lines.append(f"public     not published; due before claims close ({when(expiry, now)})")
    if h["hidden"]:
        lines.append(f"hidden     blob {h['hidden']['blob']} ({h['hidden']['size']} bytes)")
    elif h["reveal_deadline_ms"] is not None:
        lines.append(f"hidden     not revealed; due {when(h['reveal_deadline_ms'], now)}")
    elif h["status"] == "committed":
        lines.append(f"hidden     not revealed; due after claims close, within "
                     f"{t['reveal_window_ms'] // 1000} s")
    lines.append("public leaderboard (claims, the race):")
    lines.extend(f"  {i:>2}. {c['loss']:.6g}  {c['claimer']}"
                 for i, c in enumerate(j["claims"], start=1))
    if not j["claims"]:
        lines.append("  no claims yet")
    lines.append(f"hidden leaderboard (finalists; {winner_rule(h)}):")
    lines.extend(f"  {r['rank']:>2}. {hidden_loss_text(r)}  {r['claimer']}{row_marks(r)}"
                 for r in h["hidden_leaderboard"])
    if not h["hidden_leaderboard"]:
        lines.append("  no finalists yet")
    return lines


def hidden_loss_text(row: Json) -> str:
    return "-" if row["hidden_loss"] is None else f"{row['hidden_loss']:.6g}"


def row_marks(row: Json) -> str:
    marks = [m for m, on in (("tied", row["tied"]), ("leading", row["leading"] and
                                                      not row["winner"]),
                             ("winner", row["winner"])) if on]
    return f"  ({', '.join(marks)})" if marks else ""
