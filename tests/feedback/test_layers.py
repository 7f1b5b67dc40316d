"""The feedback layer imports only rlhfkit.schema and rlhfkit.data (issue 9): checked statically,
imports inside functions and importlib strings included, and with no circle inside it."""

import ast
from pathlib import Path

import rlhfkit.feedback

ALLOWED = ("rlhfkit.schema", "rlhfkit.data", "rlhfkit.feedback")
FORBIDDEN_THIRD_PARTY = ("torch", "transformers")
HERE = Path(rlhfkit.feedback.__file__).parent


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__", "find_spec")):
            out.add(str(node.args[0].value))  # a module imported by name in a string is an edge too
    return out


def _modules():
    return {p.stem: p for p in HERE.rglob("*.py") if "migrations" not in p.parts}


def test_feedback_imports_only_schema_and_data():
    bad = {}
    for name, path in _modules().items():
        edges = [m for m in _imports(path) if (m.startswith("rlhfkit.") and not m.startswith(ALLOWED))
                 or m.split(".")[0] in FORBIDDEN_THIRD_PARTY or m.split(".")[0] == "importlib"]
        if edges:
            bad[name] = sorted(edges)
    assert bad == {}


def test_no_import_circle_inside_feedback():
    graph = {name: {m.split(".")[2] for m in _imports(path)
                    if m.startswith("rlhfkit.feedback.") and m.split(".")[2] in _modules()}
             for name, path in _modules().items()}

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in graph[start])

    circles = sorted(name for name in graph if reaches(name, name))
    assert circles == []
