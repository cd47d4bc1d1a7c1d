"""A capture directory as analysis input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cniscope.capture.manifest import MANIFEST, inputs, is_capture_dir
from cniscope.errors import InputError


def write(directory: Path, manifest: object) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest))


def test_inputs_are_the_node_files_with_node_names(tmp_path: Path) -> None:
    write(tmp_path, {"format": "cniscope-capture", "version": 1, "nodes": [{"name": "n1", "file": "n1.pcapng"}, {"name": "n2", "file": "n2.pcapng"}]})
    specs = inputs(str(tmp_path))
    assert [(s.node, Path(s.path).name) for s in specs] == [("n1", "n1.pcapng"), ("n2", "n2.pcapng")]
    assert all(Path(s.path).parent == tmp_path for s in specs)
    assert is_capture_dir(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        None,
        "{not json",
        json.dumps({"format": "something-else", "nodes": []}),
        json.dumps({"format": "cniscope-capture", "nodes": [{"name": "n1"}]}),
        json.dumps({"format": "cniscope-capture", "nodes": [{"name": "n1", "file": "../../etc/passwd"}]}),
    ],
)
def test_a_bad_directory_is_bad_input(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / MANIFEST).write_text(content)
    with pytest.raises(InputError, match=str(tmp_path)):
        inputs(str(tmp_path))
