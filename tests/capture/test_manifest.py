"""manifest.json of a capture directory: written, read back, checked (`tests/test_ingest.py` reads the inputs it names)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cniscope.capture.manifest import MANIFEST, is_capture_dir, load, write_manifest
from cniscope.errors import InputError


def test_a_manifest_written_is_read_back(tmp_path: Path) -> None:
    manifest = {"format": "cniscope-capture", "version": 1, "nodes": [{"name": "n1", "file": "n1.pcapng"}]}
    assert not is_capture_dir(tmp_path)
    write_manifest(tmp_path, manifest)
    assert is_capture_dir(tmp_path) and load(tmp_path) == manifest


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"format": "something-else", "nodes": []}),
                                     json.dumps({"format": "cniscope-capture", "nodes": {}})])
def test_a_bad_manifest_is_bad_input(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / MANIFEST).write_text(content)
    with pytest.raises(InputError, match=str(tmp_path)):
        load(tmp_path)
