"""The house rules of the layout (issue 14 §5), checked on the source itself.

- Floors: ``chain`` imports nothing of ours above it; ``p2p`` and ``sandbox`` only
  ``chain``; ``client`` anything shipped; nothing shipped imports ``tests``.
- No import cycles between modules, counting every import (module level,
  inside functions and under ``TYPE_CHECKING``): a cycle is a cycle even when
  Python happens to resolve it.
- No module over 600 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("chain", "p2p", "sandbox", "client")
ALLOWED_BELOW: dict[str, frozenset[str]] = {
    "chain": frozenset({"chain"}),
    "p2p": frozenset({"chain", "p2p"}),
    "sandbox": frozenset({"chain", "sandbox"}),
    "client": frozenset({"chain", "p2p", "sandbox", "client"}),
}
MAX_MODULE_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def shipped_modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for top in SHIPPED:
        for path in sorted((ROOT / top).rglob("*.py")):
            out[module_name(path)] = path
    return out


def imported_names(path: Path, name: str) -> Iterator[str]:
    """Every module this file imports, resolved to absolute dotted names."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            yield prefix
            for alias in node.names:
                yield f"{prefix}.{alias.name}"


def dependency_graph() -> dict[str, set[str]]:
    modules = shipped_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target in imported_names(path, name):
            # ``from pkg import sub`` names a module; ``from mod import f`` names mod.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_floors_never_import_upwards() -> None:
    """chain → p2p/sandbox → client; no shipped module imports the tests."""
    bad = []
    for name, path in shipped_modules().items():
        floor = name.split(".")[0]
        for target in imported_names(path, name):
            top = target.split(".")[0]
            if top in (*SHIPPED, "tests") and top not in ALLOWED_BELOW[floor]:
                bad.append(f"{name} imports {target}")
    assert not bad, "upward imports:\n" + "\n".join(sorted(set(bad)))


def test_no_import_cycles() -> None:
    cycles = find_cycles(dependency_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle() -> None:
    """Guards the guard: a planted two-module cycle is reported."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert find_cycles(graph) == [["a", "b"]]


def test_no_module_over_600_lines() -> None:
    too_long = [f"{name}: {n} lines" for name, path in shipped_modules().items()
                if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not too_long, "\n".join(too_long)


def test_client_is_made_of_subpackages() -> None:
    """client/ holds packages, not prefix-named flat modules."""
    flat = sorted(p.name for p in (ROOT / "client").glob("*.py")
                  if p.name not in ("__init__.py", "__main__.py"))
    assert flat == [], f"flat modules in client/: {flat}"


ERROR_ROOTS = {"chain": "ChainError", "p2p": "P2PError", "sandbox": "SandboxError"}
"""One error root per lower floor: callers catch one class and read its ``code``."""


def exception_classes(top: str) -> dict[str, list[str]]:
    """Every class in ``top`` whose name or bases look like an exception, with its bases."""
    out: dict[str, list[str]] = {}
    for name, path in shipped_modules().items():
        if name.split(".")[0] != top:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).rpartition(".")[2] for b in node.bases]
                out[f"{name}.{node.name}"] = bases
    return out


def _reaches(cls: str, root: str, bases: dict[str, list[str]],
             seen: frozenset[str] = frozenset()) -> bool:
    if cls == root:
        return True
    if cls not in bases or cls in seen:
        return False
    return any(_reaches(b, root, bases, seen | {cls}) for b in bases[cls])


def test_every_error_of_a_floor_derives_from_its_root() -> None:
    """chain → ChainError, p2p → P2PError, sandbox → SandboxError (issue 14 §5)."""
    bad = []
    for top, root in ERROR_ROOTS.items():
        classes = exception_classes(top)
        short = {qual.rpartition(".")[2]: bases for qual, bases in classes.items()}

        for qual, bases in classes.items():
            if qual.rpartition(".")[2] == root:
                continue
            exceptionish = any(b in ("Exception", "ValueError", "RuntimeError", "OSError")
                               or b.endswith(("Error", "Exception")) for b in bases)
            if exceptionish and not _reaches(qual.rpartition(".")[2], root, short):
                bad.append(f"{qual}({', '.join(bases)}) does not derive from {root}")
    assert not bad, "\n".join(bad)


def test_checkout_root_constants_point_at_the_checkout() -> None:
    """Modules that locate the checkout by their own path must follow the layout: after
    the client/ move they pointed at client/, and `make demo` wrote client/.demo."""
    from client.devnet.demo import REPO
    from client.devnet.processes import REPO_ROOT

    assert REPO == REPO_ROOT == ROOT
    assert (REPO / "pyproject.toml").is_file() and (REPO / "Makefile").is_file()
