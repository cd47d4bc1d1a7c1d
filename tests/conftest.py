"""Suite-wide hooks: the skip for `root`-marked tests, and the JSON schema check of every report made in-process.

Paths to the data live in `tests/paths.py`, the root mark in `tests/marks.py`.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

ROOT_TOOLS = ("ip", "iptables", "tcpdump")  # installed by `make test` (the Makefile's APT_PACKAGES)


def _root_missing() -> str | None:
    """Why `root`-marked tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veths, iptables, tcpdump on them)"
    absent = [tool for tool in ROOT_TOOLS if shutil.which(tool) is None]
    return f"needs {', '.join(absent)} (run `make install`)" if absent else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _root_missing()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def json_reports_follow_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `--json` report a test makes in-process is checked against report.schema.json (tests/report)."""
    from cniscope.report import json_out
    from tests.report.schema_check import validate

    made, written = json_out.to_dict, json_out.pieces

    def checked(report):  # type: ignore[no-untyped-def]
        document = made(report)
        validate(document)
        return document

    def checked_text(report):  # type: ignore[no-untyped-def]  # the text dumps and write (analyze --json) make
        pieces = list(written(report))
        validate(json.loads(b"".join(pieces)))
        yield from pieces

    monkeypatch.setattr(json_out, "to_dict", checked)
    monkeypatch.setattr(json_out, "pieces", checked_text)
