"""Imports run one way (README, "Layout, dependency rules, where a change goes"): models at the bottom, then
core.platform, the core domain packages, activities, workflows; api, sdk and workers on top. A wrong-way import
fails here before it makes a cycle or drags I/O into workflow code."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLATFORM, DOMAIN = "core.platform", "core.domain"
ALLOWED: dict[str, set[str]] = {
    "models": {"models"},
    PLATFORM: {"models", PLATFORM},
    DOMAIN: {"models", PLATFORM, DOMAIN},
    "activities": {"models", PLATFORM, DOMAIN, "activities"},
    "workflows": {"models", "activities", "workflows"},
    "api": {"models", PLATFORM, DOMAIN, "api"},
    "sdk": {"models", PLATFORM, DOMAIN, "sdk"},
    "examples": {"sdk", "examples"},
}


def _layer(module: list[str]) -> str:
    """The layer of ``ains.<package>...`` (given without the ``ains``)."""
    if module[0] != "core":
        return module[0]
    return PLATFORM if len(module) > 1 and module[1] == "platform" else DOMAIN


def _imported(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ains":
            names = (
                [f"{node.module}.{a.name}" for a in node.names]
                if node.module in ("ains", "ains.core")
                else [node.module]
            )
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "ains"]
        found |= {_layer(name.split(".")[1:]) for name in names}
    return found


def test_every_import_runs_the_allowed_way() -> None:
    wrong: list[str] = []
    for package in ("models", "core", "activities", "workflows", "api", "sdk", "examples"):
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO)
            layer = _layer(list(relative.with_suffix("").parts))
            for target in sorted(_imported(ast.parse(path.read_text())) - ALLOWED[layer]):
                wrong.append(f"{relative} ({layer}) imports {target}")
    assert wrong == []


def test_the_check_sees_a_wrong_way_import() -> None:
    assert _imported(ast.parse("from ains.core.routing.dispatch import Dispatcher")) == {DOMAIN}
    assert _imported(ast.parse("from ains.core import tasks")) == {DOMAIN}
    assert _imported(ast.parse("from ains.core.platform.db import Database")) == {PLATFORM}
    assert _layer(["core", "platform", "db"]) == PLATFORM and _layer(["core", "routing"]) == DOMAIN
