"""A fresh clone is all the suite has: no test, fixture or benchmark reaches above the repository root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.paths import CORPUS, REPO, SEED

CHECKED = sorted(p for top in ("tests", "benchmarks") for p in (REPO / top).rglob("*")
                 if p.suffix in (".py", ".sh", ".txt", ".yaml", ".json", ".toml", ".md") and "data" not in p.parts[-2:-1])

# Ways a file can name a place above the root: a relative climb, the team's folder, or Python climbing from its own path.
ESCAPES = [
    re.compile(r"\.\./(\.\./)*shared\b"),
    re.compile(r"/work/shared\b"),
    re.compile(r"\bREPO\.parent\b"),
]


def _climbs_above_root(path: Path, text: str) -> list[str]:
    """`Path(__file__).resolve().parents[N]` or `.parent` chains that leave the repository."""
    depth = len(path.relative_to(REPO).parts)  # `.parent` this many times is the root itself
    found = []
    for m in re.finditer(r"Path\(__file__\)(?:\.resolve\(\))?(\.parents\[(\d+)\]|(?:\.parent\b)+)", text):
        up = int(m.group(2)) + 1 if m.group(2) is not None else m.group(1).count(".parent")
        if up > depth:
            found.append(m.group(0))
    return found


def test_the_check_sees_files() -> None:
    assert any(p.name == "conftest.py" for p in CHECKED) and any(p.parent.name == "benchmarks" for p in CHECKED)


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(REPO)))
def test_no_path_above_the_repository(path: Path) -> None:
    if path == Path(__file__):
        return
    text = path.read_text(errors="replace")
    escapes = [m.group(0) for rx in ESCAPES for m in rx.finditer(text)] + _climbs_above_root(path, text)
    assert escapes == [], f"{path.relative_to(REPO)} names a place outside the repository: {escapes}"


def test_the_climb_check_catches_a_climb() -> None:
    deep = REPO / "tests" / "x" / "y.py"
    assert _climbs_above_root(deep, "Path(__file__).resolve().parents[3] / 'shared'") != []
    assert _climbs_above_root(deep, "Path(__file__).resolve().parents[2] / 'tests'") == []
    assert _climbs_above_root(REPO / "benchmarks" / "b.py", "Path(__file__).resolve().parent.parent.parent") != []


def test_the_data_the_suite_reads_is_in_the_repository() -> None:
    captures = sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".txt"))
    assert len(captures) >= 10
    for capture in captures:  # each published capture keeps the note of where it came from
        assert capture.with_suffix(".meta.md").is_file(), capture.name
    assert SEED.is_file() and SEED.read_text().count(" IP ") >= 15
