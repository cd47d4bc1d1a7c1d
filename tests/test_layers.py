"""Layers: no import cycles, no module importing from a layer above its own (data flows one way: ingest (sources ->
packets) -> journeys/flows -> models, findings -> renderers), and the host seam.

Every import in src/cniscope, read with ast (those inside functions and under TYPE_CHECKING too), is checked
against `ABOVE`: for a package or module, the ones it must never import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cniscope

SRC = Path(cniscope.__file__).parent
DECODERS = ("cniscope.packets.decode", "cniscope.packets.chunks", "cniscope.packets.fallback", "cniscope.packets.columns",
            "cniscope.packets.checksum", "cniscope.packets.digest")
STAGES = ("cniscope.ahead", "cniscope.ingest", "cniscope.parts", "cniscope.analyze", "cniscope.journeys", "cniscope.flows", "cniscope.models",
          "cniscope.findings", "cniscope.report", "cniscope.commands", "cniscope.cli")
ABOVE: dict[str, tuple[str, ...]] = {
    "cniscope.capture": ("cniscope.lab",),  # the lab records through capture; capture knows no lab
    "cniscope.host": ("cniscope.capture", "cniscope.lab", "cniscope.sources", "cniscope.packets", "cniscope.report"),
    # the file formats: what readers and writers share, below both
    "cniscope.wire": ("cniscope.sources", "cniscope.capture", "cniscope.lab", *DECODERS, *STAGES),
    # readers find frames or text rows; decoding them is the ingest stage's
    "cniscope.sources": ("cniscope.capture", "cniscope.lab", *DECODERS, *STAGES),
    # the decoders take frames, not files
    "cniscope.packets": ("cniscope.sources", "cniscope.capture", "cniscope.lab", *STAGES),
    # renderers render a Report: they read no inputs (the report's input handle does)
    "cniscope.report": ("cniscope.sources", "cniscope.ingest", "cniscope.parts", "cniscope.analyze", "cniscope.commands",
                        "cniscope.cli"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The modules `path` imports (a name imported from a package counts too: it may be a module), relative
    imports resolved."""
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
NAMES = {module_name(p) for p in MODULES}
GRAPH = {module_name(p): {i for i in imports(p) if i in NAMES} - {module_name(p)} for p in MODULES}  # cniscope's own


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


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        work = [(root, iter(sorted(graph[root])))]
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while (member := stack.pop()) != node:
                        component.append(member)
                    if component:
                        found.append(sorted([*component, node]))
    return found


def test_no_import_cycles_between_modules() -> None:
    assert cycles(GRAPH) == []


def test_no_import_cycles_between_packages() -> None:
    """sources and packets imported each other through a lazy trampoline once: a cycle no module-level walk sees."""
    def unit(name: str) -> str:
        return ".".join(name.split(".")[:2])  # cniscope.sources, cniscope.ingest ...

    packages: dict[str, set[str]] = {}
    for name, imported in GRAPH.items():
        packages.setdefault(unit(name), set()).update(unit(i) for i in imported if unit(i) != unit(name))
    assert cycles(packages) == []


def test_the_rules_see_the_imports_they_forbid() -> None:
    """The walk finds imports in functions, relative ones and modules imported from packages; the cycle finder
    finds a cycle (else the tests above would pass on anything)."""
    lab_cli = imports(SRC / "lab" / "cli.py")
    assert "cniscope.lab.record" in lab_cli  # imported inside a command
    assert "cniscope.capture.validate" in lab_cli or "cniscope.capture" in lab_cli
    assert "cniscope.packets.decode" in GRAPH["cniscope.ingest"]
    assert "cniscope.sources.pcap" in GRAPH["cniscope.sources.open"]  # `from cniscope.sources import pcap`
    assert "cniscope.wire.pcapng" in GRAPH["cniscope.report.pcapng_out"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
