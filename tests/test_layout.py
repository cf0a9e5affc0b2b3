"""The design map's import rules: data flows one way, and only the edges touch the store."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).parent.parent / "feedsvc"
STAGES = ("sources", "rank", "cards", "render", "deliver")
SHARED = {"feedsvc.models", "feedsvc.config", "feedsvc.identity", "feedsvc.retry_after", "feedsvc.signing"}
EDGES = {"pipeline", "cli", "web", "demo", "scheduler", "bot", "outbox", "__main__"}


def feedsvc_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("feedsvc"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("feedsvc")}
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_stages_import_only_models_config_identity_and_themselves(stage: str) -> None:
    for path in (PKG / stage).glob("*.py"):
        for module in feedsvc_imports(path):
            assert module in SHARED or module.startswith(f"feedsvc.{stage}"), f"{path.name} imports {module}"


def test_only_the_edges_import_the_store_and_nothing_imports_the_edges() -> None:
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        top = rel.parts[0].removesuffix(".py")
        for module in feedsvc_imports(path):
            if module.startswith("feedsvc.store"):
                assert top in EDGES | {"store"}, f"{rel} imports {module}"
            edge = module.removeprefix("feedsvc.").split(".")[0]
            if edge in EDGES and top not in EDGES:
                pytest.fail(f"{rel} imports the edge {module}")


MAX_LINES = 80
LONG_REASON = re.compile(r"\blong:\s*\S")  # "long: <why this function is not split>" in its docstring
# the PIPELINE engineer is splitting pipeline.py's `_make_digest` (86 lines) into the pipeline/ package
LENGTH_EXEMPT = ("pipeline.py", "pipeline/")


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
        rel = path.relative_to(PKG).as_posix()
        if not rel.startswith(LENGTH_EXEMPT):
            found += long_functions(path.read_text(encoding="utf-8"), rel)
    assert not found, "split these into named steps, or say why not with 'long:' in the docstring"
