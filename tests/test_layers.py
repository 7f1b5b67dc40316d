"""The package's layers, enforced: every import between rlhfkit modules (static, including imports
inside functions and ``importlib.import_module("rlhfkit...")`` strings) must go down the layer
order written in docs/architecture.md, and no module may import itself back in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rlhfkit"

# Lowest first. A module may import from its own layer or a lower one. Keep in step with
# docs/architecture.md.
LAYERS = [
    ["progress"],  # the one progress display (rich only)
    ["schema"],
    ["data"],
    ["packing"],
    ["losses", "advantages"],  # pure tensor maths: torch and the standard library only
    ["models"],
    ["rollout"],
    ["rewards"],
    ["eval"],
    ["trainers"],
    ["commands", "cli", "__main__"],
]
# The annotation app sits beside the ML stack: it reads and writes data, never trains.
SIDE = {"feedback": {"schema", "data", "progress", "feedback"}}
# ...and its torch-free label models may be used by the loop and the audit (no database in them)
PURE_FEEDBACK = {"rlhfkit.feedback.simulate", "rlhfkit.feedback.calibration", "rlhfkit.feedback.bias",
                 "rlhfkit.feedback.agreement"}
PURE = {"losses", "advantages"}  # may import only each other among rlhfkit modules
NO_TORCH = {"feedback", "schema", "data", "progress"}  # never import torch (the server stays light)
TORCH_LIBS = {"torch", "transformers", "peft", "accelerate", "trl"}


def layer_of(component: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if component in names:
            return i
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, wherever it stands."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(text: str, package: str) -> list[tuple[str, int]]:
    tree = ast.parse(text)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, node.lineno))
            # `from rlhfkit import x` / `from rlhfkit.trainers import loop` may name submodules
            out += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append((node.args[0].value, node.lineno))
    return out


def edges() -> list[tuple[str, str, str]]:
    """(importer, imported rlhfkit module, 'file:line') over the whole package."""
    known = {module_name(p) for p in PACKAGE.rglob("*.py")}
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = module_name(path)
        for name, line in imports_of(path):
            if name.startswith("rlhfkit") and name in known and name != me:
                out.append((me, name, f"{path.relative_to(PACKAGE.parent)}:{line}"))
    return out


def test_every_component_has_a_layer():
    components = {component(module_name(p)) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    unplaced = sorted(c for c in components if layer_of(c) is None and c not in SIDE)
    assert not unplaced, f"add these to LAYERS (and docs/architecture.md): {unplaced}"


def test_imports_go_down_the_layers():
    bad = []
    for src, dst, where in edges():
        a, b = component(src), component(dst)
        if b == "__init__":
            continue
        if a in SIDE:
            if b not in SIDE[a]:
                bad.append(f"{where}: {src} -> {dst} (feedback may import only {sorted(SIDE[a])})")
            continue
        if b in SIDE and a not in ("commands", "cli") and dst not in PURE_FEEDBACK:
            bad.append(f"{where}: {src} -> {dst} (only the commands wire in the annotation app)")
            continue
        if a in PURE and b not in PURE:
            bad.append(f"{where}: {src} -> {dst} (maths modules import only torch and each other)")
            continue
        la, lb = layer_of(a), layer_of(b)
        if lb is not None and la is not None and lb > la:
            bad.append(f"{where}: {src} ({LAYERS[la][0]}) -> {dst} ({LAYERS[lb][0]}): upward import")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_light_layers_never_import_torch():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if component(module_name(path)) in NO_TORCH:
            for name, line in imports_of(path):
                if name.split(".")[0] in TORCH_LIBS:
                    bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {name}")
    assert not bad, "\n".join(bad)


def test_no_import_circles():
    graph: dict[str, set[str]] = {}
    for src, dst, _ in edges():
        if not dst.endswith("__init__") and module_name(PACKAGE / "__init__.py") != dst:
            graph.setdefault(src, set()).add(dst)
    # a package's __init__ re-exports its own modules: edges into a package are edges to its parts
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    packages = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    real = [c for c in cycles if not any(m in packages for m in c)]
    assert not real, "import circles:\n" + "\n".join(" -> ".join(c) for c in real)


def test_the_checker_sees_function_level_relative_and_importlib_edges():
    text = ("def f():\n    from rlhfkit.trainers import loop\n"
            "import importlib\nimportlib.import_module('rlhfkit.rewards.ensemble')\n"
            "from ..eval import reward_eval\n")
    names = [n for n, _ in imports_in(text, "rlhfkit.feedback")]
    assert {"rlhfkit.trainers.loop", "rlhfkit.rewards.ensemble", "rlhfkit.eval.reward_eval"} <= set(names)
