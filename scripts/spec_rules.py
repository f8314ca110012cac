"""Every rule ID the protocol spec defines, and the tests that cite it.

A rule ID is ``[AREA-NAME.n]`` (``[TX-NONCE.1]``, ``[JOB-EVAL.2a]``); shorthands
name several: ``[VOTE-COMMIT.1/2]`` (1 and 2), ``[JOB-JSON.0-4]`` (0 to 4),
``[JOB-EVAL.2a-e]`` (2a to 2e). A rule is *defined* when it appears in
``protocol_spec/*.md``; a test *cites* it when the ID appears in the docstring
of a test function (``def test_*`` in ``tests/**/*.py``) or the test's name
holds the ID in snake case between underscores (``test_job_out_4_...`` cites
``JOB-OUT.4``). Wildcards such as ``[WIRE-SYNC.*]`` refer to a family and
define nothing.

    python scripts/spec_rules.py            # RULE-ID: test, test, ...
    python scripts/spec_rules.py --uncited  # only the rules no test cites (exit 1 if any)
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC_DIR = ROOT / "protocol_spec"
TESTS_DIR = ROOT / "tests"

NUMBER = r"\d+[a-z]?(?:-(?:\d+|[a-z]))?"
RULE_ID = re.compile(r"\[([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*)\.(" + NUMBER + r"(?:/" + NUMBER + r")*)\]")
"""``[TX-NONCE.1]`` and the shorthands ``[VOTE-COMMIT.1/2]``, ``[JOB-JSON.0-4]``, ``[X.2a-e]``."""

SECTION = re.compile(r"^(#{1,3})\s+(.*)$")


@dataclass(frozen=True, slots=True)
class RuleSite:
    """Where the spec first names a rule: chapter file, the heading above it, its line."""

    chapter: str
    section: str
    line: int = field(compare=False)


@dataclass(slots=True)
class RuleIndex:
    """Rules of the spec, where each is defined, and the tests citing each."""

    sites: dict[str, RuleSite] = field(default_factory=dict)
    citations: dict[str, list[str]] = field(default_factory=dict)
    unknown_citations: dict[str, list[str]] = field(default_factory=dict)
    """Rule IDs that tests cite but no spec chapter defines."""

    def uncited(self) -> list[str]:
        return [rule for rule in sorted(self.sites) if not self.citations.get(rule)]


def _numbers(part: str) -> list[str]:
    """``4`` -> [4]; ``0-4`` -> 0..4; ``2a-e`` -> 2a..2e."""
    if "-" not in part:
        return [part]
    low, high = part.split("-")
    if high.isdigit():
        return [str(n) for n in range(int(low), int(high) + 1)]
    stem, first = low[:-1], low[-1]
    return [f"{stem}{chr(c)}" for c in range(ord(first), ord(high) + 1)]


def rule_ids(text: str) -> Iterator[str]:
    """Every rule ID in ``text``, shorthands expanded, in order of appearance."""
    for match in RULE_ID.finditer(text):
        for part in match.group(2).split("/"):
            for number in _numbers(part):
                yield f"{match.group(1)}.{number}"


def name_token(rule: str) -> str:
    """How a test name holds a rule: ``JOB-OUT.4`` -> ``job_out_4``."""
    return rule.lower().replace("-", "_").replace(".", "_")


def cited_in_name(test_name: str, rule: str) -> bool:
    return f"_{name_token(rule)}_" in f"{test_name}_"


def spec_rules(spec_dir: Path = SPEC_DIR) -> dict[str, RuleSite]:
    """Rule ID -> where the spec defines it (else where it first appears), over every chapter."""
    sites: dict[str, RuleSite] = {}
    defined: dict[str, RuleSite] = {}
    for chapter in sorted(spec_dir.glob("*.md")):
        section = ""
        for number, line in enumerate(chapter.read_text().splitlines(), start=1):
            heading = SECTION.match(line)
            if heading:
                section = heading.group(2).strip()
            for match in RULE_ID.finditer(line):
                site = RuleSite(chapter.name, section, number)
                for rule in rule_ids(match.group(0)):
                    if is_definition(line, match.start()):
                        defined.setdefault(rule, site)
                    sites.setdefault(rule, site)
    return {rule: defined.get(rule, site) for rule, site in sites.items()}


def is_definition(line: str, start: int) -> bool:
    """A rule is defined where it opens a line or list item, or stands in bold."""
    before = line[:start]
    return before.endswith("**") or before.strip(" -|*") == ""


def test_docstrings(tests_dir: Path = TESTS_DIR) -> Iterator[tuple[str, str]]:
    """(``path::test_name``, docstring) for every test function under ``tests_dir``."""
    for path in sorted(tests_dir.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except SyntaxError:
            continue
        relative = path.relative_to(tests_dir.parent).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                    node.name.startswith("test_"):
                yield f"{relative}::{node.name}", ast.get_docstring(node) or ""


def build_index(spec_dir: Path = SPEC_DIR, tests_dir: Path = TESTS_DIR) -> RuleIndex:
    index = RuleIndex(sites=spec_rules(spec_dir))
    tokens = {name_token(rule): rule for rule in index.sites}
    for test, doc in test_docstrings(tests_dir):
        cited = dict.fromkeys(rule_ids(doc))
        name = test.rsplit("::", 1)[1]
        for part in range(len(name)):
            if name[part] == "_":
                for token, rule in tokens.items():
                    if name.startswith(token, part + 1) and cited_in_name(name, rule):
                        cited[rule] = None
        for rule in cited:
            target = index.citations if rule in index.sites else index.unknown_citations
            target.setdefault(rule, []).append(test)
    return index


def report_uncited(index: RuleIndex) -> str:
    """The rules no test cites, grouped by chapter and section, one per line."""
    lines: list[str] = []
    last: RuleSite | None = None
    for rule in sorted(index.uncited(), key=lambda r: (index.sites[r].chapter,
                                                       index.sites[r].line)):
        site = index.sites[rule]
        if site != last:
            lines.append(f"{site.chapter} — {site.section or '(top)'}:")
            last = site
        lines.append(f"  {rule}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uncited", action="store_true", help="list only uncited rules")
    args = parser.parse_args(argv)
    index = build_index()
    if not args.uncited:
        for rule in sorted(index.sites):
            tests = index.citations.get(rule, [])
            print(f"{rule}: {', '.join(tests) if tests else '(no test)'}")
        for rule, tests in sorted(index.unknown_citations.items()):
            print(f"{rule}: {', '.join(tests)}  (cited, but no spec chapter defines it)")
    uncited = index.uncited()
    if uncited:
        print(f"\nUncited rules ({len(uncited)}):\n{report_uncited(index)}")
    cited = len(index.sites) - len(uncited)
    print(f"\n{len(index.sites)} rules, {cited} cited by at least one test, "
          f"{len(uncited)} uncited")
    return 1 if uncited else 0


if __name__ == "__main__":
    sys.exit(main())
