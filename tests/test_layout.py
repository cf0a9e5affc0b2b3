"""The design map's import rules: data flows one way, and only the edges touch the store."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).parent.parent / "feedsvc"
STAGES = ("sources", "rank", "cards", "render", "deliver")
SHARED = {"feedsvc.models", "feedsvc.config", "feedsvc.identity", "feedsvc.retry", "feedsvc.signing"}
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
