"""Where the tests' data lives: everything inside the repository (a fresh clone has nothing beside it)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
CORPUS = DATA / "corpus"  # real published captures, each with the .meta.md note of where it came from
SEED = DATA / "seed" / "kube-router-curl-node3.txt"  # the project's seed capture (node3, each packet seen 3 times)
