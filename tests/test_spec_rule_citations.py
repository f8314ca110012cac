"""Every rule of protocol_spec/ has a test that cites it ([TX-NONCE.1] in a docstring).

``python scripts/spec_rules.py`` prints the whole map, rule by rule; this test
fails while any rule is uncited, listing them by chapter and section, and
flags the areas other work is changing right now so their owners see them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
OWNED_ELSEWHERE = {
    "job_contract.md": "the job contract (sandbox/, chain/jobspec.py limits)",
    "ledger.md — 5. Jobs [JOB-*]": "the job lifecycle (chain/train/rules.py)",
}
"""Areas being rewritten by other work: their uncited rules are called out by owner."""


def _spec_rules() -> ModuleType:
    spec = importlib.util.spec_from_file_location("spec_rules", ROOT / "scripts" / "spec_rules.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["spec_rules"] = module
    spec.loader.exec_module(module)
    return module


spec_rules = _spec_rules()


def test_rule_id_shorthands_expand() -> None:
    """The parser: one ID, a list, a numeric range and a letter range."""
    ids = list(spec_rules.rule_ids(
        "[TX-NONCE.1] [VOTE-COMMIT.1/2] [JOB-JSON.0-2] [JOB-EVAL.2a-c] [WIRE-SYNC.*]"))
    assert ids == ["TX-NONCE.1", "VOTE-COMMIT.1", "VOTE-COMMIT.2", "JOB-JSON.0", "JOB-JSON.1",
                   "JOB-JSON.2", "JOB-EVAL.2a", "JOB-EVAL.2b", "JOB-EVAL.2c"]


def test_test_names_cite_rules_in_snake_case() -> None:
    assert spec_rules.cited_in_name("test_job_out_4_oversized_model", "JOB-OUT.4")
    assert spec_rules.cited_in_name("test_cons_cert_1", "CONS-CERT.1")
    assert not spec_rules.cited_in_name("test_job_out_41_other", "JOB-OUT.4")
    assert not spec_rules.cited_in_name("test_job_eval_2a_bomb", "JOB-EVAL.2")


def _owner(site: object) -> str | None:
    chapter, section = site.chapter, site.section  # type: ignore[attr-defined]
    for area, owner in OWNED_ELSEWHERE.items():
        if area == chapter or area == f"{chapter} — {section}":
            return owner
    return None


def test_every_spec_rule_is_cited_by_a_test() -> None:
    """No rule of protocol_spec/*.md without a test that names it."""
    index = spec_rules.build_index()
    assert len(index.sites) > 150, "the rule parser found suspiciously few rules"
    uncited = index.uncited()
    if not uncited:
        return
    elsewhere = {rule: _owner(index.sites[rule]) for rule in uncited}
    lines = [f"{len(uncited)} of {len(index.sites)} spec rules have no test citing them "
             "(add a test that tries to break the rule and name the ID in its docstring):",
             spec_rules.report_uncited(index)]
    by_owner: dict[str, list[str]] = {}
    for rule, owner in elsewhere.items():
        if owner is not None:
            by_owner.setdefault(owner, []).append(rule)
    for owner, rules in sorted(by_owner.items()):
        lines.append(f"of these, in an area being changed by other work — {owner}: "
                     + ", ".join(rules))
    raise AssertionError("\n".join(lines))
