"""Layers: no module imports from a layer above its own (ARCHITECTURE.md: data flows one way), and the host seam.

Every import in src/cniscope, read with ast (those inside functions too), is checked against `ABOVE`: for a
package or module, the ones it must never import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cniscope

SRC = Path(cniscope.__file__).parent
ABOVE: dict[str, tuple[str, ...]] = {
    "cniscope.capture": ("cniscope.lab",),  # the lab records through capture; capture knows no lab
    "cniscope.host": ("cniscope.capture", "cniscope.lab", "cniscope.sources", "cniscope.packets", "cniscope.report"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The modules `path` imports, relative imports resolved."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES = sorted(SRC.rglob("*.py"))


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_from_a_layer_above(path: Path) -> None:
    name = module_name(path)
    for layer, above in ABOVE.items():
        if within(name, layer):
            wrong = sorted(i for i in imports(path) if any(within(i, a) for a in above))
            assert not wrong, f"{name} ({layer}) imports {', '.join(wrong)}"


def test_only_the_host_starts_processes() -> None:
    starting = [module_name(p) for p in MODULES if "subprocess" in imports(p)]
    assert starting == ["cniscope.host"]


def test_the_rules_see_the_imports_they_forbid() -> None:
    """The walk finds imports in functions and relative ones (else the rules above would pass on anything)."""
    lab_cli = imports(SRC / "lab" / "cli.py")
    assert "cniscope.lab.record" in lab_cli  # imported inside a command
    assert "cniscope.capture.validate" in lab_cli or "cniscope.capture" in lab_cli
