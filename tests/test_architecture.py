"""The layers of ``rampsearch`` (README, "Architecture"), checked on the source: every import
of every module, at its top or inside a function, read with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rampsearch"

# Lowest first: a module imports from its own layer and the layers below it only.
LAYERS = [
    ("foundation", {"rampsearch.errors", "rampsearch.attributes"}),
    ("data", {"rampsearch.data"}),
    ("training", {"rampsearch.training"}),
    ("study", {"rampsearch.study"}),
    ("oneshot", {"rampsearch.oneshot"}),
    ("ranking", {"rampsearch.ranking"}),
    ("fidelity", {"rampsearch.fidelity"}),
    ("reporting", {"rampsearch.reporting"}),
    ("cluster", {"rampsearch.cluster"}),
    ("commands", {"rampsearch.cli", "rampsearch.train", "rampsearch.__main__",
                  "rampsearch.options", "rampsearch.commands", "rampsearch"}),
]
# Third-party packages a layer may import, where the rule is narrower than "anything".
ONLY_IN = {
    "ray": {"cluster"},
    "argparse": {"commands"},
    # errors.py names what a failing study storage raises.
    "optuna": {"foundation", "study", "oneshot", "ranking", "fidelity", "reporting", "cluster",
               "commands"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (``from X import m`` names module X.m when it is one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{alias.name}" for alias in node.names}
            modules = {sub for sub in subs if is_module(sub)}
            found.update(modules or {target})
            if modules != subs:
                found.add(target)
    return found


def layer_of(name: str) -> int:
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    assert best is not None, f"{name} is in no layer; add it to LAYERS"
    return best[0]


MODULES = {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_the_layers(name: str) -> None:
    own = layer_of(name)
    upward = sorted(target for target in MODULES[name] if target.startswith("rampsearch.")
                    and layer_of(target) > own)
    assert not upward, (f"{name} ({LAYERS[own][0]}) imports {', '.join(upward)} from a "
                        f"higher layer")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_third_party_stays_in_its_layers(name: str) -> None:
    own = LAYERS[layer_of(name)][0]
    wrong = sorted(target for target in MODULES[name]
                   if target.split(".")[0] in ONLY_IN and own not in ONLY_IN[target.split(".")[0]])
    assert not wrong, f"{name} ({own}) imports {', '.join(wrong)}"


def test_commands_never_import_commands() -> None:
    crossing = {name: sorted(t for t in targets if t.startswith("rampsearch.commands.")
                             and t != name)
                for name, targets in MODULES.items() if name.startswith("rampsearch.commands.")}
    assert not {name: targets for name, targets in crossing.items() if targets}


def test_no_import_circles() -> None:
    graph = {name: {t for t in targets if t in MODULES and t != name}
             for name, targets in MODULES.items()}
    # A package's __init__ that imports its own modules is no circle: leave packages out as
    # targets of their own members.
    graph = {name: {t for t in targets if not name.startswith(t + ".")}
             for name, targets in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circle = path[path.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_every_layer_says_what_it_may_import() -> None:
    for package in ("study", "training", "oneshot", "ranking", "fidelity", "reporting", "cluster",
                    "commands"):
        text = (PACKAGE / package / "__init__.py").read_text()
        assert ast.get_docstring(ast.parse(text)), f"rampsearch/{package}/__init__.py"
