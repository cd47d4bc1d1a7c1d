"""Shared fixtures: paths to the shared corpus and seed, and the root check for namespace tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
SEED = SHARED / "seed" / "kube-router-curl-node3.txt"


def needs_root() -> pytest.MarkDecorator:
    return pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces")


@pytest.fixture
def corpus() -> Path:
    return CORPUS


@pytest.fixture
def seed() -> Path:
    return SEED


@pytest.fixture(autouse=True)
def json_reports_follow_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `--json` report a test makes in-process is checked against report.schema.json (tests/report)."""
    from cniscope.report import json_out

    made = json_out.to_dict

    def checked(report):  # type: ignore[no-untyped-def]
        document = made(report)
        json_out.validate(document)
        return document

    monkeypatch.setattr(json_out, "to_dict", checked)
