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
