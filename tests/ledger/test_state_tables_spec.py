"""[STATE-RECORD.1] The spec's lists of state tables are the code's (``TABLE_CODECS``).

state.md §2 says how many tables there are in words and lists them in a table;
ledger.md §4 names them in prose. Both drifted once (state.md said nineteen and listed
twenty; ledger.md §4 named the first ten): this reads both and compares with the code.
"""

from __future__ import annotations

import re
from pathlib import Path

from chain.state import TABLE_CODECS

SPEC = Path(__file__).resolve().parents[2] / "protocol_spec"
NUMBERS = {"eighteen": 18, "nineteen": 19, "twenty": 20, "twenty-one": 21, "twenty-two": 22,
           "twenty-three": 23, "twenty-four": 24}


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end, text.index(start))]


def test_state_md_lists_every_table_and_counts_them_right() -> None:
    section = _section((SPEC / "state.md").read_text(), "## 2. Tables", "Records (")
    listed = re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE)
    assert sorted(listed) == sorted(TABLE_CODECS) and len(set(listed)) == len(listed)
    said = re.search(r"The state is ([a-z-]+) tables", section)
    assert said is not None and NUMBERS[said.group(1)] == len(TABLE_CODECS), said


def test_ledger_md_section_4_names_every_table() -> None:
    section = _section((SPEC / "ledger.md").read_text(), "## 4. State", "**[STATE-ROOT.1]**")
    prose = section[:section.index("Records have")]
    named = set(re.findall(r"`([a-z_]+)`", prose)) - {"supply", "burned", "protocol_version"}
    assert named == set(TABLE_CODECS)
    said = re.search(r"a set of ([a-z-]+) tables", prose)
    assert said is not None and NUMBERS[said.group(1)] == len(TABLE_CODECS), said
