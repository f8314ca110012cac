"""Plain-language text about a job, from the node's JSON: what happened, and why.

Pure functions shared by ``job status``, ``job watch`` and ``job list``. A
settled job says how it ended (paid to whom; refunded, and why: no claims, no
quorum, an inconclusive vote, every turn used up), an escrow says what it is
made of, and a worker's attempt says how it failed. Every string here comes
from a node and is printed through ``out`` (inert) by the callers.
"""

from __future__ import annotations

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


def last_log_line(rec: Json) -> str:
    """The line that says what went wrong: a Python traceback's error line (the first
    unindented line after its last ``Traceback`` header; stdout and stderr interleave, so it
    need not be the last line printed), else the last non-empty line."""
    lines = str(rec.get("log") or "").splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("Traceback (most recent call last):"):
            for line in lines[i + 1:]:
                if line.strip() and not line[0].isspace():
                    return line.strip()
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
    escrow = escrow_text(spec["bounty"], voting["voter_reward"], voting["max_turns"])
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
    lines.extend(attempts_summary(attempts or [], j["job_id"]))
    return lines
