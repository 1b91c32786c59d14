"""The import layout (issue 24, Layout): tiercli's modules import one another without circles,
the core the simulator and the runtime cache share stands on nothing above it, the runtime cache
loads no command, table, plot, engine, pandas or Ray, and an import inside a function is there
only to put off a heavy package, never to dodge a circle.

Read from the source with ast, so a module that is not imported by any test is checked too.
Imports under `if TYPE_CHECKING:` are types only (never run) and are left out."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tiercli"

# What tiercli/core may import of tiercli: itself and the leaf modules below it.
CORE_MAY_IMPORT = ("tiercli.core", "tiercli.errors", "tiercli.durations", "tiercli.words")

# The runtime cache (tiercli.cache) runs in the application: none of these, even indirectly.
CACHE_MUST_NOT_LOAD = ("tiercli.cli", "tiercli.commands", "tiercli.present", "tiercli.economics",
                       "tiercli.executor", "tiercli.pipeline", "tiercli.engine")
CACHE_MUST_NOT_LOAD_PACKAGES = ("pandas", "ray", "matplotlib")

# The function-level imports of a tiercli module that are allowed: (importer, imported) -> the
# heavy package the import puts off, which the imported module loads and the importer does not.
# Heavy means torch (sentence-transformers), ray, pandas, matplotlib or redis-py's client.
HEAVY = ("torch", "sentence_transformers", "ray", "pandas", "matplotlib", "redis")
ALLOWED_FUNCTION_IMPORTS = {
    # the runtime cache reads records with call_of_record: it must not load pandas (pricing's
    # tables) for the one record whose model has no price, which only the CLI's readers check
    ("tiercli.ingest.records", "tiercli.economics.pricing"): "pandas",
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a tiercli module, or a third-party package's top-level name
    line: int
    in_function: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _target(module: str) -> str:
    """The tiercli module an import names (a name inside a module: that module), or the
    top-level name of a third-party package."""
    if not module.startswith("tiercli"):
        return module.partition(".")[0]
    while module not in MODULES and "." in module:
        module = module.rpartition(".")[0]
    return module


def imports_of(name: str) -> list[Import]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for sub in child.orelse:
                    visit_one(sub, in_function)
                continue
            visit_one(child, in_function)

    def visit_one(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(name, _target(alias.name), node.lineno, in_function) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:  # `from tiercli.ingest import formats` imports a module
                submodule = f"{module}.{alias.name}"
                found.append(Import(name, submodule if submodule in MODULES else _target(module), node.lineno,
                                    in_function))
        else:
            visit(node, in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return found


IMPORTS = {name: imports_of(name) for name in MODULES}


def _ours(target: str) -> bool:
    return target == "tiercli" or target.startswith("tiercli.")


def _graph(with_functions: bool) -> dict[str, set[str]]:
    return {name: {i.target for i in found if _ours(i.target) and i.target != name
                   and (with_functions or not i.in_function)}
            for name, found in IMPORTS.items()}


def _loaded_by(name: str) -> tuple[set[str], set[str]]:
    """(the tiercli modules, the third-party packages) that importing `name` loads: its
    top-level imports, followed through tiercli's modules."""
    graph, seen, packages, stack = _graph(with_functions=False), set(), set(), [name]
    while stack:
        module = stack.pop()
        if module in seen:
            continue
        seen.add(module)
        stack.extend(graph[module])
        packages.update(i.target for i in IMPORTS[module] if not i.in_function and not _ours(i.target))
    return seen, packages


def _a_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports (its modules in order, the first again at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (circle := walk(target)):
                return circle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (circle := walk(module)):
            return circle
    return None


def test_the_modules_are_read():
    # the walk finds the package and the imports it is known to have
    assert {"tiercli.core.lookup", "tiercli.engine.replay", "tiercli.ingest.records"} <= set(MODULES)
    records = {(i.target, i.in_function) for i in IMPORTS["tiercli.ingest.records"]}
    assert {("tiercli.core.keys", False), ("msgspec", False), ("tiercli.economics.pricing", True)} <= records
    # `from tiercli.ingest import formats` names a module; a TYPE_CHECKING import is left out
    assert any(i.target == "tiercli.ingest.formats" for i in IMPORTS["tiercli.ingest.logread"])
    assert not any(i.target == "tiercli.settings" for i in IMPORTS["tiercli.core.ttl"])


def test_no_circle_of_imports():
    circle = _a_circle(_graph(with_functions=False))
    assert circle is None, "a circle of top-level imports: " + " -> ".join(circle)


def test_no_circle_even_through_imports_inside_functions():
    # an import put off into a function must not be what keeps a circle from failing at import
    circle = _a_circle(_graph(with_functions=True))
    assert circle is None, "a circle of imports (some inside functions): " + " -> ".join(circle)


def test_the_core_imports_only_the_core_and_the_leaves():
    wrong = [f"{i.importer}:{i.line} imports {i.target}"
             for name, found in IMPORTS.items() if name.startswith("tiercli.core")
             for i in found if _ours(i.target)
             and not any(i.target == allowed or i.target.startswith(allowed + ".") for allowed in CORE_MAY_IMPORT)]
    assert not wrong, wrong


def test_imports_inside_functions_only_put_off_a_heavy_package():
    found = {(i.importer, i.target): i for imports in IMPORTS.values() for i in imports
             if i.in_function and _ours(i.target)}
    unlisted = [f"{i.importer}:{i.line} imports {i.target} inside a function" for key, i in found.items()
                if key not in ALLOWED_FUNCTION_IMPORTS]
    assert not unlisted, ("make these plain imports (move what both modules need into a module below "
                          f"them), or list them with the heavy package they put off: {unlisted}")
    assert set(ALLOWED_FUNCTION_IMPORTS) <= set(found), "listed, but no longer imported inside a function"
    for (importer, target), package in ALLOWED_FUNCTION_IMPORTS.items():
        assert package in HEAVY
        assert package in _loaded_by(target)[1], f"{target} does not load {package}: nothing to put off"
        assert package not in _loaded_by(importer)[1], f"{importer} loads {package} anyway: nothing is put off"


@pytest.mark.skipif("tiercli.cache" not in MODULES, reason="no tiercli/cache package yet")
def test_the_runtime_cache_loads_no_command_table_engine_pandas_or_ray():
    for name in (m for m in MODULES if m == "tiercli.cache" or m.startswith("tiercli.cache.")):
        modules, packages = _loaded_by(name)
        wrong = sorted(m for m in modules
                       if any(m == bad or m.startswith(bad + ".") for bad in CACHE_MUST_NOT_LOAD))
        assert not wrong, f"{name} loads {wrong}"
        assert not packages & set(CACHE_MUST_NOT_LOAD_PACKAGES), f"{name} loads {packages & set(CACHE_MUST_NOT_LOAD_PACKAGES)}"


def test_the_checks_catch_what_they_are_for():
    # a circle through a function-level import is found, and a module's own loads are followed
    assert _a_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _a_circle({"a": {"b"}, "b": set()}) is None
    modules, packages = _loaded_by("tiercli.economics.pricing")
    assert "pandas" in packages and "tiercli.economics.pricing" in modules
