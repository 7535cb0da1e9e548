"""The import graph of src/fmkit: no cycles, and only the directions STYLE.md section 1 allows.

The graph is built with :mod:`ast` from every ``.py`` file under ``src/fmkit``. Every import
statement counts, wherever it is: module level, inside functions and methods (lazy imports),
inside ``try``/``except ImportError``. So does ``importlib.import_module("fmkit....")`` with a
literal name. Excluded, because they never run: imports under ``if TYPE_CHECKING:``.

An edge goes to the most specific fmkit module an import names: ``from fmkit.io import paths``
is an edge to ``fmkit.io.paths``, ``from fmkit.io import read`` an edge to the package
``fmkit.io``; a name a package serves lazily through a ``_LAZY = {name: module}`` table
(``fmkit.load_model``) is an edge to that module. The implicit import of parent packages
is not an edge (Python imports ``fmkit.io`` before ``fmkit.io.paths``; that is not a
dependency of the importer on ``fmkit.io``'s re-exports).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "fmkit"

FRONT_ENDS = ("fmkit.cli", "fmkit.sagemaker", "fmkit.serving", "fmkit.sagemaker_api",
              "fmkit.console")
# layers whose code is numpy only: the request path and everything below the engines
NO_TORCH = ("fmkit.io", "fmkit.features", "fmkit.datasets", "fmkit.artifact",
            "fmkit.model_store", "fmkit.inference", "fmkit.serving", "fmkit.registry")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every import node and literal ``importlib.import_module`` call, skipping the bodies
    of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


class Graph:
    """Modules of src/fmkit, their fmkit imports (with line numbers) and outside imports."""

    def __init__(self, root: Path = ROOT) -> None:
        self.files = {_module_name(p): p for p in sorted(root.rglob("*.py"))}
        self.packages = {m for m, p in self.files.items() if p.name == "__init__.py"}
        self.lazy = {m: self._lazy_table(self.files[m]) for m in self.packages}
        self.edges: dict[str, dict[str, int]] = {}
        self.external: dict[str, dict[str, int]] = {}
        for module, path in self.files.items():
            self._scan(module, path)

    @staticmethod
    def _lazy_table(path: Path) -> dict[str, str]:
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Dict)
                    and any(isinstance(t, ast.Name) and t.id == "_LAZY"
                            for t in (node.targets if isinstance(node, ast.Assign)
                                      else [node.target]))):
                return {k.value: v.value for k, v in zip(node.value.keys, node.value.values)
                        if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)}
        return {}

    def _resolve(self, name: str) -> str | None:
        """The most specific module of src/fmkit that ``name`` is or lies in."""
        while name:
            if name in self.files:
                return name
            name = name.rpartition(".")[0]
        return None

    def _add(self, table: dict[str, dict[str, int]], src: str, dst: str, line: int) -> None:
        if dst != src:
            table.setdefault(src, {}).setdefault(dst, line)

    def _scan(self, module: str, path: Path) -> None:
        tree = ast.parse(path.read_text(), filename=str(path))
        package = module if module in self.packages else module.rpartition(".")[0]
        for node in _import_nodes(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.Call):
                targets = [node.args[0].value]  # type: ignore[attr-defined]
            else:
                assert isinstance(node, ast.ImportFrom)
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                for alias in node.names:
                    lazy = self.lazy.get(stem, {}).get(alias.name)
                    targets.append(lazy if lazy else f"{stem}.{alias.name}")
            for target in targets:
                if target == "fmkit" or target.startswith("fmkit."):
                    resolved = self._resolve(target)
                    if resolved is not None:
                        self._add(self.edges, module, resolved, node.lineno)  # type: ignore
                else:
                    self._add(self.external, module, target.split(".")[0],
                              node.lineno)  # type: ignore[attr-defined]

    def where(self, src: str, dst: str) -> str:
        path = self.files[src].relative_to(SRC.parent)
        return f"{path}:{self.edges[src][dst]} ({src} -> {dst})"

    def cycles(self) -> list[list[str]]:
        """One cycle through each strongly connected component of more than one module."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        components: list[list[str]] = []
        counter = [0]

        def visit(v: str) -> None:  # Tarjan; the graph is small enough for recursion
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on_stack.add(v)
            for w in sorted(self.edges.get(v, {})):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    components.append(sorted(comp))

        for v in sorted(self.files):
            if v not in index:
                visit(v)
        return [self._cycle_in(set(c)) for c in components]

    def _cycle_in(self, comp: set[str]) -> list[str]:
        """A shortest cycle through the first module of a strongly connected component."""
        start = min(comp)
        parents: dict[str, str] = {}
        frontier = [start]
        while frontier:
            nxt = []
            for v in frontier:
                for w in sorted(self.edges.get(v, {})):
                    if w not in comp:
                        continue
                    if w == start:
                        path = [v]
                        while path[-1] != start:
                            path.append(parents[path[-1]])
                        return [*reversed(path), start]
                    if w not in parents:
                        parents[w] = v
                        nxt.append(w)
            frontier = nxt
        raise AssertionError(f"no cycle in component {sorted(comp)}")


GRAPH = Graph()


def _front_end(module: str) -> str | None:
    return next((f for f in FRONT_ENDS if _within(module, f)), None)


def test_graph_sees_lazy_imports() -> None:
    # the reader must see what it claims to: the package table, a function-level import
    assert "fmkit.io.paths" in GRAPH.files and "fmkit.cli" in GRAPH.packages
    assert "fmkit.cli" in GRAPH.edges.get("fmkit.__main__", {})
    tree = ast.parse("def f():\n    from fmkit.io import paths\n"
                     "if TYPE_CHECKING:\n    import fmkit.cli\n")
    found = [ast.unparse(n) for n in _import_nodes(tree)]
    assert found == ["from fmkit.io import paths"]


def test_no_import_cycles() -> None:
    cycles = GRAPH.cycles()
    lines = []
    for cycle in cycles:
        lines.append(" -> ".join(cycle))
        lines.extend(f"    {GRAPH.where(a, b)}" for a, b in zip(cycle, cycle[1:]))
    assert not cycles, "import cycles in src/fmkit:\n" + "\n".join(lines)


def test_inference_never_imports_serving() -> None:
    bad = [GRAPH.where(src, dst) for src, targets in GRAPH.edges.items()
           if _within(src, "fmkit.inference") for dst in targets
           if _within(dst, "fmkit.serving")]
    assert not bad, "inference imports serving:\n" + "\n".join(bad)


def test_nothing_imports_the_cli_but_main() -> None:
    bad = [GRAPH.where(src, dst) for src, targets in GRAPH.edges.items()
           if not _within(src, "fmkit.cli") and src != "fmkit.__main__" for dst in targets
           if _within(dst, "fmkit.cli")]
    assert not bad, "only fmkit.__main__ may import fmkit.cli:\n" + "\n".join(bad)


def test_front_ends_do_not_import_each_other() -> None:
    bad = []
    for src, targets in GRAPH.edges.items():
        mine = _front_end(src)
        if mine is None:
            continue
        bad += [GRAPH.where(src, dst) for dst in targets
                if _front_end(dst) not in (None, mine)]
    assert not bad, "a front end imports another front end:\n" + "\n".join(bad)


def test_nothing_below_the_front_ends_imports_one() -> None:
    # fmkit.__main__ is the console entry of the CLI; everything else is below the front
    # ends (jobs, engines, model store, data, core, registry) and must not reach up
    bad = [GRAPH.where(src, dst) for src, targets in GRAPH.edges.items()
           if _front_end(src) is None and src != "fmkit.__main__"
           for dst in targets if _front_end(dst) is not None]
    assert not bad, "a module below the front ends imports a front end:\n" + "\n".join(bad)


def test_numpy_layers_never_import_torch() -> None:
    bad = [f"{GRAPH.files[src].relative_to(SRC.parent)}:{targets['torch']} ({src})"
           for src, targets in GRAPH.external.items()
           if any(_within(src, layer) for layer in NO_TORCH) and "torch" in targets]
    assert not bad, "torch imported by a numpy-only layer:\n" + "\n".join(bad)


def test_request_path_imports_no_torch_when_run() -> None:
    # what the graph cannot see (imports of imports at run time): the request path, the
    # model store and the data layer load without torch
    code = ("import sys, fmkit.io, fmkit.io.codecs, fmkit.artifact, fmkit.model_store, "
            "fmkit.inference.predictor, fmkit.inference.recommend, fmkit.inference.transform, "
            "fmkit.inference.scoring, fmkit.serving.app, fmkit.serving.routes; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]", out
