"""The house rules of the layout (issue 14 §5), checked on the source itself.

- Floors: ``chain`` imports nothing of ours above it; ``p2p`` and ``sandbox`` only
  ``chain``; ``client`` anything shipped; nothing shipped imports ``tests``.
- No import cycles between modules, counting every import (module level,
  inside functions and under ``TYPE_CHECKING``): a cycle is a cycle even when
  Python happens to resolve it.
- No module over 600 lines.
- chain/ by chapter (issue 32): the core imports no kind but through ``chain.registry``
  (and a kind's vocabulary from the modules that list it); a kind imports no other kind
  but along a declared edge; no module is named with its package's name as a prefix.
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


# --- chain/ by chapter (issue 32) ---------------------------------------------------------

KINDS = ("train", "verifiers", "governance", "federated", "predict")
"""The parts of the protocol, one package each under chain/ (the spec's chapters)."""
REGISTRY = "chain.registry"
"""The one core module that imports the kinds' rules: the handler table and block steps."""
VOCABULARY = frozenset({"bodies", "records", "spec"})
"""A kind's wire vocabulary: frozen dataclasses and their wire forms, no rules."""
VOCABULARY_LISTS = frozenset({"chain.state", "chain.transactions", "chain.jobspec"})
"""The core modules that list every kind's vocabulary to decode and hash it: the state's
tables [STATE-RECORD.1], the transaction types [TX-*], the job kinds [JOB-SPEC-WIRE.1]."""
KIND_EDGES: dict[tuple[str, str], str] = {
    ("federated", "train"): "a federated/v1 job is posted, split, held out and settled as a "
                            "train/v3 job is [FED-SPEC.1]; its rounds replace the race",
}
"""Kind-to-kind imports that are part of the protocol, each with its reason."""


def kind_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "chain" and len(parts) > 1 and parts[1] in KINDS else None


def core_imports_of_kinds(graph: dict[str, set[str]]) -> list[str]:
    """The core imports a kind only through the registry, or a kind's vocabulary from the
    modules that list it."""
    bad = []
    for name, targets in graph.items():
        if not name.startswith("chain") or kind_of(name) is not None or name == REGISTRY:
            continue
        for target in sorted(targets):
            if kind_of(target) is None:
                continue
            if name in VOCABULARY_LISTS and target.rpartition(".")[2] in VOCABULARY:
                continue
            bad.append(f"{name} imports {target}")
    return bad


def kind_imports_of_kinds(graph: dict[str, set[str]],
                          allowed: dict[tuple[str, str], str]) -> list[str]:
    """A kind imports the core, itself, and another kind only along a declared edge."""
    bad = []
    for name, targets in graph.items():
        source = kind_of(name)
        for target in sorted(targets):
            other = kind_of(target)
            if source and other and other != source and (source, other) not in allowed:
                bad.append(f"{name} imports {target}")
            if source and target == REGISTRY:
                bad.append(f"{name} imports the registry")
    return bad


def prefixed_modules(root: Path, tops: tuple[str, ...]) -> list[str]:
    """Module files named after their package with a prefix: chain/holdout/holdout_rules.py."""
    out = []
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            if path.stem.startswith(path.parent.name + "_"):
                out.append(str(path.relative_to(root)))
    return out


def test_the_core_imports_no_kind_but_through_the_registry() -> None:
    bad = core_imports_of_kinds(dependency_graph())
    assert not bad, "core modules importing kinds:\n" + "\n".join(bad)


def test_a_kind_imports_no_other_kind_but_through_the_core() -> None:
    bad = kind_imports_of_kinds(dependency_graph(), KIND_EDGES)
    assert not bad, "kinds importing kinds:\n" + "\n".join(bad)


def test_no_module_carries_its_package_name_as_a_prefix() -> None:
    bad = prefixed_modules(ROOT, SHIPPED)
    assert not bad, "prefixed modules:\n" + "\n".join(bad)


def test_the_core_rule_refuses_a_core_module_importing_a_kind() -> None:
    """Guards the guard: the transition importing train's rules is refused, the registry
    and the state's table of a kind's records are not."""
    graph = {
        "chain.transition": {"chain.registry", "chain.train.rules"},
        "chain.registry": {"chain.train.rules"},
        "chain.state": {"chain.train.holdout.records"},
        "chain.mempool": {"chain.predict.bodies"},
        "chain.train.rules": {"chain.state"},
    }
    assert core_imports_of_kinds(graph) == [
        "chain.transition imports chain.train.rules",
        "chain.mempool imports chain.predict.bodies"]


def test_the_kind_rule_refuses_an_undeclared_edge_and_the_registry() -> None:
    graph = {
        "chain.predict.tx": {"chain.state", "chain.train.rules", "chain.predict.bodies"},
        "chain.federated.open.steps": {"chain.train.rules"},
        "chain.governance.rules": {"chain.registry"},
    }
    assert kind_imports_of_kinds(graph, KIND_EDGES) == [
        "chain.predict.tx imports chain.train.rules",
        "chain.governance.rules imports the registry"]
    assert kind_imports_of_kinds(graph, {}) == [
        "chain.predict.tx imports chain.train.rules",
        "chain.federated.open.steps imports chain.train.rules",
        "chain.governance.rules imports the registry"]


def test_the_prefix_rule_refuses_a_prefixed_module_in_a_tree(tmp_path: Path) -> None:
    """A small broken tree: chain/holdout/holdout_rules.py is refused, chain/holdout/rules.py
    and chain/holdout.py beside it are not."""
    for name in ("chain/__init__.py", "chain/holdout.py", "chain/holdout/__init__.py",
                 "chain/holdout/rules.py", "chain/holdout/holdout_rules.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert prefixed_modules(tmp_path, ("chain",)) == ["chain/holdout/holdout_rules.py"]


def test_the_core_rule_on_a_broken_tree(tmp_path: Path) -> None:
    """The rules read a real tree the same way: a core module importing a kind's rules,
    written to disk, is found from its source."""
    files = {
        "chain/__init__.py": "",
        "chain/state.py": "",
        "chain/transition.py": "from chain.train import rules\n",
        "chain/train/__init__.py": "",
        "chain/train/rules.py": "from chain.state import Overlay\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph: dict[str, set[str]] = {}
    modules = {module_name_in(tmp_path, p): p for p in sorted(tmp_path.rglob("*.py"))}
    for name, path in modules.items():
        graph[name] = {t for t in imported_names(path, name) if t in modules and t != name}
    assert core_imports_of_kinds(graph) == ["chain.transition imports chain.train",
                                            "chain.transition imports chain.train.rules"]


def module_name_in(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_the_registry_handles_every_transaction_type_once() -> None:
    """Every body type the wire decodes has a row in the registry's table, and no other."""
    from chain.registry import BEGIN_BLOCK, END_BLOCK, HANDLERS
    from chain.transactions import BODY_TYPES

    assert set(HANDLERS) == set(BODY_TYPES.values())
    assert all(HANDLERS.values())
    assert [k for k, _ in BEGIN_BLOCK] == ["upgrade", "train", "governance", "predict",
                                           "federated"]
    assert [k for k, _ in END_BLOCK] == ["governance"]
