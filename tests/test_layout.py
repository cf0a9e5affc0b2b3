"""The design map's import rules: data flows one way, only the edges touch the store, and the edges meet
in `feedsvc.pipeline` rather than in each other's internals."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).parent.parent / "feedsvc"
STAGES = ("sources", "rank", "cards", "render", "deliver")
SHARED = {
    "feedsvc.models",
    "feedsvc.config",
    "feedsvc.identity",
    "feedsvc.retry",
    "feedsvc.signing",
    "feedsvc.bounded",
    "feedsvc.redaction",
}
EDGES = {"pipeline", "cli", "web", "demo", "scheduler", "bot", "__main__"}
# the command line is where the program is put together: it starts the web app, the bot, the scheduler
# and the demo; every other edge reaches the others only through the pipeline
WIRING = {("__main__", "cli"), ("cli", "web"), ("cli", "bot"), ("cli", "scheduler"), ("cli", "demo")}
CLOCK_CALLS = {"now", "today", "utcnow", "time", "monotonic"}


def feedsvc_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("feedsvc"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("feedsvc")}
    return found


def top_level(path: Path) -> str:
    return path.relative_to(PKG).parts[0].removesuffix(".py")


@pytest.mark.parametrize("stage", STAGES)
def test_stages_import_only_models_config_identity_and_themselves(stage: str) -> None:
    for path in (PKG / stage).glob("*.py"):
        for module in feedsvc_imports(path):
            assert module in SHARED or module.startswith(f"feedsvc.{stage}"), f"{path.name} imports {module}"


def test_only_the_edges_import_the_store_and_nothing_imports_the_edges() -> None:
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        top = top_level(path)
        for module in feedsvc_imports(path):
            if module.startswith("feedsvc.store"):
                assert top in EDGES | {"store"}, f"{rel} imports {module}"
            edge = module.removeprefix("feedsvc.").split(".")[0]
            if edge in EDGES and top not in EDGES:
                pytest.fail(f"{rel} imports the edge {module}")


def test_the_edges_meet_in_the_pipeline() -> None:
    for path in PKG.rglob("*.py"):
        top = top_level(path)
        if top not in EDGES:
            continue
        for module in feedsvc_imports(path):
            edge = module.removeprefix("feedsvc.").split(".")[0]
            if edge in EDGES and edge not in (top, "pipeline"):
                assert (top, edge) in WIRING, f"{path.relative_to(PKG)} imports the edge {module}"
            if top == "pipeline":
                assert edge not in EDGES - {"pipeline"}, f"{path.relative_to(PKG)} imports the edge {module}"


def test_the_pipeline_package_re_exports_nothing() -> None:
    tree = ast.parse((PKG / "pipeline" / "__init__.py").read_text(encoding="utf-8"))
    assert all(isinstance(node, ast.Expr) for node in tree.body), "pipeline/__init__.py is its docstring only"


def test_the_notes_are_pure() -> None:
    path = PKG / "pipeline" / "notes.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert not any(m.startswith("feedsvc.store") for m in feedsvc_imports(path)), "notes.py imports the store"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name for a in node.names} & {"time", "sqlalchemy"}, "notes.py imports clock or SQL"
        if isinstance(node, ast.ImportFrom):
            assert node.module not in ("time", "sqlalchemy"), f"notes.py imports from {node.module}"
        if isinstance(node, ast.Attribute):
            assert node.attr not in CLOCK_CALLS, f"notes.py reads the clock (.{node.attr})"


MAX_LINES = 80
LONG_REASON = re.compile(r"\blong:\s*\S")  # "long: <why this function is not split>" in its docstring


def long_functions(source: str, name: str = "<source>") -> list[str]:
    """The functions of `source` over MAX_LINES lines whose docstring gives no "long:" reason."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            if lines > MAX_LINES and not LONG_REASON.search(ast.get_docstring(node) or ""):
                found.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_over_80_lines_without_a_reason() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    assert long_functions(f"def f():\n{body}\n") == ["<source>:1 f (81 lines)"]
    assert long_functions(f'def f():\n    """long: a table."""\n{body}\n') == []
    assert long_functions(f"def f():\n{body[: body.rindex(chr(10))]}\n") == []
    found = []
    for path in sorted(PKG.rglob("*.py")):
        found += long_functions(path.read_text(encoding="utf-8"), path.relative_to(PKG).as_posix())
    assert not found, "split these into named steps, or say why not with 'long:' in the docstring"
