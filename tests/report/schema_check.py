"""Validate `cniscope analyze --json` output against report.schema.json, for any test in the suite.

    from tests.report.schema_check import validate_report_json
    validate_report_json(result.stdout)   # text, bytes or an already parsed dict

or take the `validate_report_json` fixture (tests/report/conftest.py). Returns
the parsed document; fails the test with the schema error's path and message.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from cniscope.report.json_out import SCHEMA_VERSION, schema


def validate(document: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError (the first, most relevant error) when `document` breaks the schema."""
    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        raise error


def validate_report_json(output: str | bytes | dict[str, Any]) -> dict[str, Any]:
    document = json.loads(output) if isinstance(output, (str, bytes)) else output
    try:
        validate(document)
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        pytest.fail(f"--json output breaks report.schema.json at {where}: {error.message}")
    assert document["schema_version"] == SCHEMA_VERSION
    return document
