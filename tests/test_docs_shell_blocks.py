"""Every shell block of the documentation site runs, here or in a named test (issue 32).

A page under docs/ shows commands in fenced ``sh`` blocks. Each block carries a marker,
an HTML comment on the line before it (invisible on the site):

- ``<!-- docs-test: run -->``: the block needs no graph, so this module runs it, line
  after line in one bash session, in a fresh directory with its own HOME, through the
  checkout's `learningchain`; every line must exit 0. These are the `--help` pages,
  `keys new|show`, `node token` and `job init` with what it writes.
- ``<!-- docs-test: tests/A.py [tests/B.py ...] -->``: the block needs a running graph
  or a Docker engine, and the named tests run it. Checked here: every file exists, every
  `learningchain` command of the block is invoked by one of them (its words as string
  literals, e.g. ``"federated", "join"``, or the line itself in the README block that
  test reads), and every `make TARGET` is a Makefile target whose ``-m MODULE`` one of
  them imports. The graph-bound blocks and their tests today: the job's submit, watch and
  fetch-model (tests/client/test_readme_use_it.py, Docker); `make demo`
  (tests/client/test_e2e_demo.py, Docker) and `make docs` (tests/test_docs_site.py);
  federated join and posting (tests/federated/test_federated_cli.py,
  test_federated_cli_submit.py) and `make demo-federated`
  (tests/federated/test_federated_graph.py, Docker, `make test-slow`); model deploy and
  predict (tests/client/test_predict_cli.py); governance, validators and the chain's
  books (tests/client/cli/test_cli_chain.py); verifier join, list, leave
  (tests/client/test_terminal_injection.py).
- A block pulled from README.md (``--8<-- "README.md:NAME"``) is not repeated on the
  page's source: the README's own tests run it (tests/client/test_readme_use_it.py,
  test_readme_join.py). Checked here: the included lines are exactly a block those
  tests read.

A shell block without a marker fails, so a new page cannot add an untested command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.client.test_readme_join import join_blocks
from tests.client.test_readme_use_it import use_it_block
from tests.framework.wait import scaled

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SHELL = re.compile(r"(?:<!-- docs-test: ([^>]*?) -->\n)?```(?:sh|bash|shell|console)\n(.*?)```",
                   re.DOTALL)
SNIPPET = re.compile(r'^--8<-- "README\.md:([a-z-]+)"$', re.MULTILINE)
README_READERS: dict[str, Callable[[], list[str]]] = {
    "tests/client/test_readme_use_it.py": use_it_block,
    "tests/client/test_readme_join.py": lambda: [line for block in join_blocks()
                                                 for line in block],
}
"""The README tests, and the README lines each one runs as written."""
RUN_TIMEOUT_S = scaled(300)


def shell_blocks() -> list[tuple[str, str | None, list[str]]]:
    """(page, marker, command lines) of every shell block of every page under docs/;
    a line ending in a backslash is joined with the next, as bash reads it."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for marker, body in SHELL.findall(page.read_text()):
            lines = re.sub(r"\\\n\s*", "", body).splitlines()
            found.append((page.relative_to(REPO).as_posix(), marker or None,
                          [line for line in lines if line.strip()]))
    return found


BLOCKS = shell_blocks()


def test_every_shell_block_of_the_docs_is_marked() -> None:
    assert len(BLOCKS) >= 10, BLOCKS  # the guides have not lost their commands
    unmarked = [(page, lines[0]) for page, marker, lines in BLOCKS if marker is None]
    assert not unmarked, f"shell blocks without a docs-test marker: {unmarked}"
    assert any(marker == "run" for _, marker, _ in BLOCKS)


def command_words(line: str) -> list[str]:
    """`learningchain job submit DIR …` -> ["job", "submit"]: the subcommand path."""
    words = line.split("#", 1)[0].split()[1:]
    path = []
    for word in words[:2]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        path.append(word)
    return path


def invoked(words: list[str], source: str) -> bool:
    literal = r",\s*".join(f'"{re.escape(w)}"' for w in words)
    return bool(re.search(literal, source) or re.search(re.escape(" ".join(words)), source))


@pytest.mark.parametrize("page,marker,lines",
                         [b for b in BLOCKS if b[1] not in (None, "run")],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_graph_bound_block_is_run_by_the_tests_it_names(page: str, marker: str,
                                                        lines: list[str]) -> None:
    tests = marker.split()
    for name in tests:
        assert name.startswith("tests/") and (REPO / name).is_file(), (page, name)
    sources = {name: (REPO / name).read_text() for name in tests}
    makefile = (REPO / "Makefile").read_text()
    for line in lines:
        if line.startswith("make "):
            target = line.split()[1]
            recipe = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)*)", makefile, re.MULTILINE)
            assert recipe, f"{page}: no Makefile target {target!r}"
            module = re.search(r"-m ([\w.]+)", recipe.group(1))
            if module:
                assert any(module.group(1) in s for s in sources.values()), (page, line, tests)
            continue
        assert line.startswith("learningchain "), f"{page}: {line!r} is neither make nor CLI"
        readme_runs = [line.split("#")[0].strip() in
                       [r.split("#")[0].strip() for r in README_READERS[name]()]
                       for name in tests if name in README_READERS]
        words = command_words(line)
        assert words, line
        assert any(readme_runs) or any(invoked(words, s) for s in sources.values()), (
            f"{page}: `learningchain {' '.join(words)}` is run by none of {tests}")


def test_readme_blocks_the_pages_include_are_the_ones_its_tests_run() -> None:
    readme = (REPO / "README.md").read_text()
    run_by_tests = [[line for line in reader() if line.strip()]
                    for reader in README_READERS.values()]
    run_lines = [line for block in run_by_tests for line in block]
    included = [name for page in DOCS.rglob("*.md") for name in SNIPPET.findall(page.read_text())]
    assert included, "no page includes the README's blocks any more"
    for name in included:
        section = re.search(rf"\[start:{name}\] -->\n```sh\n(.*?)```\n<!-- --8<-- \[end:{name}\]",
                            readme, re.DOTALL)
        assert section, f"README.md has no snippet section {name!r} around one sh block"
        lines = [line for line in section.group(1).splitlines() if line.strip()]
        assert lines and all(line in run_lines for line in lines), (name, lines)


@pytest.mark.parametrize("page,marker,lines", [b for b in BLOCKS if b[1] == "run"],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_runnable_block_runs_as_written(page: str, marker: str, lines: list[str],
                                        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    env.update({"HOME": str(tmp_path), "TMPDIR": str(tmp_path),
                "PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")})
    work = tmp_path / "work"
    work.mkdir()
    transcript = []
    for line in lines:
        done = subprocess.run(["bash", "-c", f"set -e -o pipefail\n{line}"], cwd=work, env=env,
                              text=True, capture_output=True, timeout=RUN_TIMEOUT_S, check=False)
        transcript.append(f"$ {line}\n{done.stdout}{done.stderr}(exit {done.returncode})")
        assert done.returncode == 0, f"{page}:\n" + "\n".join(transcript)
