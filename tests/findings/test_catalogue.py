"""The catalogue of finding words: docs/findings.md is generated from it, every kind is described, every next step
a detector asks for exists."""

from __future__ import annotations

import os
import re

from cniscope.findings import catalogue
from cniscope.results import FindingKind
from tests.paths import REPO

DOC = REPO / "docs" / "findings.md"
FINDINGS = REPO / "src" / "cniscope" / "findings"


def test_docs_findings_md_is_the_catalogue() -> None:
    if os.environ.get("CNISCOPE_UPDATE_GOLDEN"):
        DOC.write_text(catalogue.markdown())
    assert DOC.read_text() == catalogue.markdown(), "regenerate: python -m cniscope.findings.catalogue > docs/findings.md"


def test_every_kind_is_described_once() -> None:
    assert sorted(k.kind.value for k in catalogue.KINDS) == sorted(k.value for k in FindingKind)


def test_every_next_step_asked_for_exists() -> None:
    asked = {m for path in FINDINGS.glob("*.py") for m in re.findall(r'say\(\s*"([a-z_.]+)"', path.read_text())}
    asked |= set(re.findall(r'"(drop\.[a-z_]+)"', (FINDINGS / "losses.py").read_text()))
    assert asked and asked <= set(catalogue.NEXT)
