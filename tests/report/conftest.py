"""Fixtures of the report tests; `validate_report_json` is also importable from tests.report.schema_check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.report.schema_check import validate_report_json as _validate


@pytest.fixture
def validate_report_json() -> Callable[[str | bytes | dict[str, Any]], dict[str, Any]]:
    return _validate
