"""The catalogue of finding words: docs/findings.md is generated from it, every kind is described, every next step
a detector asks for exists."""

from __future__ import annotations

import os
import re

from cniscope.analyze import analyze
from cniscope.findings import catalogue
from cniscope.results import FindingKind
from cniscope.sources import InputSpec
from tests.paths import CORPUS, DATA, REPO

DOC = REPO / "docs" / "findings.md"
FINDINGS = REPO / "src" / "cniscope" / "findings"


def test_docs_findings_md_is_the_catalogue() -> None:
    if os.environ.get("CNISCOPE_UPDATE_GOLDEN"):
        DOC.write_text(catalogue.markdown())
    assert DOC.read_text() == catalogue.markdown(), "regenerate: python -m cniscope.findings.catalogue > docs/findings.md"


def test_every_kind_is_described_once() -> None:
    assert sorted(k.kind.value for k in catalogue.KINDS) == sorted(k.value for k in FindingKind)


def test_every_next_step_asked_for_exists() -> None:
    asked = {m for path in FINDINGS.glob("*.py") for m in re.findall(r'(?:say\(\s*|key=)"([a-z_.]+)"', path.read_text())}
    asked |= set(re.findall(r'"((?:drop|unanswered|reset)\.[a-z_]+)"', "".join(p.read_text() for p in FINDINGS.glob("*.py"))))
    assert asked and asked <= set(catalogue.NEXT)
    noted = {m for path in FINDINGS.glob("*.py") for m in re.findall(r'note\(\s*"([a-z_.]+)"', path.read_text())}
    assert noted and noted <= set(catalogue.NOTES)


def test_the_catalogue_renders_every_key() -> None:
    """Every next step and every note, its fields filled in, reads as plain words (no field left unfilled)."""
    fields = {name: f"<{name}>" for text in (*catalogue.NEXT.values(), *catalogue.NOTES.values())
              for name in re.findall(r"(?<!{){([a-z_]+)}(?!})", text)}
    for key in catalogue.NEXT:
        words = catalogue.say(key, **fields)
        assert words and not re.search(r"(?<!{){[a-z_]+}(?!})", words), key
    for key in catalogue.NOTES:
        words = catalogue.note(key, **fields)
        assert words and not re.search(r"(?<!{){[a-z_]+}(?!})", words), key
    assert all(f"`{key}`" in catalogue.markdown() for key in (*catalogue.NEXT, *catalogue.NOTES))


def test_every_finding_names_its_case_and_notes_from_the_catalogue() -> None:
    """Over the corpus and the pasted fixtures: a finding's key and notes are catalogue entries (what tests match on)."""
    inputs = [p for p in sorted(CORPUS.iterdir()) if not p.name.endswith(".md")]
    inputs += sorted((DATA / "findings").glob("*.txt"))
    keys, notes = set(), set()
    for path in inputs:
        for f in analyze([InputSpec(str(path))]).findings:
            assert f.key in catalogue.NEXT and f.key.split(".")[0] == f.kind.value, (path, f)
            assert set(f.evidence.notes) <= set(catalogue.NOTES), (path, f)
            keys.add(f.key)
            notes.update(f.evidence.notes)
    assert len(keys) >= 8 and notes
