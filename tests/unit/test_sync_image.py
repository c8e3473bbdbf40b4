"""The wgrest-sync image holds exactly what the service imports: no Ansible-only file, nothing from tests/."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE_UTILS = REPO / "plugins" / "module_utils"


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(sibling modules imported relatively, top-level packages imported absolutely), at any depth of the file."""
    siblings, absolute = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            siblings.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            absolute.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            absolute.update(a.name.split(".")[0] for a in node.names)
    return siblings, absolute


def _service_closure() -> tuple[set[str], set[str]]:
    seen, absolute, todo = set(), set(), ["_sync"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        siblings, packages = _imports(MODULE_UTILS / f"{name}.py")
        absolute |= packages
        todo.extend(siblings - seen)
    return seen, absolute


def _listed() -> set[str]:
    lines = (REPO / "images" / "wgrest-sync" / "sources.txt").read_text().splitlines()
    return {Path(line).stem for line in lines if line.strip() and not line.startswith("#")}


def test_the_image_lists_exactly_what_the_service_imports():
    imported, _packages = _service_closure()
    assert _listed() == imported, (
        f"images/wgrest-sync/sources.txt differs from _sync.py's imports: missing {sorted(imported - _listed())}, "
        f"not imported {sorted(_listed() - imported)}")


def test_the_service_needs_neither_ansible_nor_the_tests():
    _modules, packages = _service_closure()
    assert not packages & {"ansible", "ansible_collections", "tests"}, sorted(packages)
