"""`--json` follows report.schema.json (draft 2020-12), and the schema catches what breaks it."""

from __future__ import annotations

import copy
import io
import json

import jsonschema
import pytest
from click.testing import CliRunner

import cniscope.analyze as analysis
from cniscope.cli import cli, main
from cniscope.report import json_out
from cniscope.report.json_out import SCHEMA_VERSION, dumps, schema, to_dict
from tests.paths import CORPUS, SEED
from tests.report.build import service_call
from tests.report.schema_check import validate, validate_report_json

CORPUS_FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".txt"))


def test_schema_is_draft_2020_12_and_carries_the_version():
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema()["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_hand_built_report_validates_and_keeps_its_hops():
    report = service_call()
    document = validate_report_json(dumps(report))
    syn = document["journeys"][0]
    assert [h["point"] for h in syn["hops"]][:3] == ["node1 veth3f2a9c1d In", "node1 kube-bridge In", "node1 eth0 Out"]
    assert syn["hops"][1]["changes"] == [{"kind": "dnat", "before": "10.96.0.10:80", "after": "10.244.3.10:80"}]
    assert document["findings"][0]["kind"] == "nat"


@pytest.mark.parametrize("path", [SEED, *CORPUS_FILES], ids=lambda p: p.name)
def test_cli_json_of_every_real_capture_validates(path, validate_report_json):
    result = CliRunner().invoke(cli, ["analyze", "--json", str(path)])
    assert result.exit_code in (0, 3), result.output  # 3: a damaged input still gives its report
    document = validate_report_json(result.stdout)
    assert document["packets"] > 0
    assert document["inputs"][0]["name"] == str(path)


@pytest.mark.parametrize("breakage", [
    lambda d: d.pop("model"),
    lambda d: d["findings"].append({**d["findings"][0], "kind": "gremlins"}),
    lambda d: d["journeys"][0]["hops"][0].update(direction="sideways"),
    lambda d: d["flows"][0].update(packets=-1),
    lambda d: d.update(schema_version="0.9"),
    lambda d: d["inputs"][0].update(extra=1),
], ids=["no model", "unknown finding kind", "bad direction", "negative count", "old version", "unknown key"])
def test_schema_rejects_broken_documents(breakage):
    document = copy.deepcopy(to_dict(service_call()))
    validate(document)
    breakage(document)
    with pytest.raises(jsonschema.ValidationError):
        validate(document)


def test_json_is_plain_json_with_integer_nanoseconds():
    document = json.loads(dumps(service_call()))
    hop = document["journeys"][0]["hops"][1]
    assert isinstance(hop["ts"], int) and isinstance(hop["delay_ns"], int)
    assert hop["delay_ns"] == 4_000


def test_json_is_the_report_one_element_a_line_and_ascii_only():
    """dumps writes what to_dict holds: each key of the report on its line, each journey, flow and finding on its
    own; text beyond ASCII (a C1 control from a capture, a letter) escaped as json.dumps does by default."""
    report = service_call()
    report.warnings.append("caf\u00e9 \x9b31m")
    written = dumps(report)
    assert isinstance(written, bytes)  # what the command writes, as it writes it
    text = written.decode("ascii")
    document = to_dict(report)
    assert json.loads(text) == json.loads(json.dumps(document))
    assert text.isascii() and "caf\\u00e9 \\u009b31m" in text
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert [line.split(":")[0] for line in lines if line.startswith(' "')] == [f' "{key}"' for key in document]
    for key in ("journeys", "flows", "findings"):
        start = lines.index(f' "{key}": [')
        assert [json.loads(line.rstrip(",")) for line in lines[start + 1 : start + 1 + len(document[key])]] == document[key]
        assert lines[start + 1 + len(document[key])] in (" ],", " ]")
    assert json_out._encode({"n": 2**70, "ok": [1]}) == b'{"n":1180591620717411303424,"ok":[1]}'  # above orjson's 64 bits


def _each_on_its_own(report) -> bytes:  # type: ignore[no-untyped-def]
    """What dumps wrote before it wrote journeys and flows by one call: each element of to_dict's lists on its own."""
    document = to_dict(report)

    def value(v):  # type: ignore[no-untyped-def]
        if isinstance(v, list) and v:
            return b"[\n  " + b",\n  ".join(map(json_out._encode, v)) + b"\n ]"
        return json_out._encode(v)

    return b"{\n" + b",\n".join(b" " + json_out._encode(k) + b": " + value(v) for k, v in document.items()) + b"\n}"


@pytest.mark.parametrize("change", [
    lambda r: None,
    lambda r: object.__setattr__(r.journeys[1], "summary", "caf\u00e9 \x9b31m"),  # beyond ASCII: each journey on its own, escaped
    lambda r: object.__setattr__(r.journeys[1], "flow", 2**70),  # above orjson's 64 bits: the same
    lambda r: r.journeys.clear(),
], ids=["as made", "not ascii", "big integer", "no journeys"])
@pytest.mark.parametrize("chunk", [json_out.CHUNK, 1, 2])
def test_json_journeys_and_flows_written_at_once_are_each_written_on_its_own(change, chunk, monkeypatch):
    """The journeys and conversations are written by calls of orjson over the objects, `CHUNK` at a time: the same
    text, byte for byte, as each element of to_dict written on its own (keys in the same order), and where orjson
    cannot (text beyond ASCII, big integers) each element of that chunk on its own."""
    monkeypatch.setattr(json_out, "CHUNK", chunk)
    report = service_call()
    change(report)
    assert len(report.journeys) != 1 and len(report.flows) >= 1
    assert dumps(report) == _each_on_its_own(report)


@pytest.mark.parametrize("chunk", [json_out.CHUNK, 1])
def test_json_written_a_piece_at_a_time_is_dumps(chunk, monkeypatch):
    """`write` (what analyze --json prints) writes `dumps`' text, the journeys and flows a chunk at a time."""
    monkeypatch.setattr(json_out, "CHUNK", chunk)
    report = service_call()
    out = io.BytesIO()
    json_out.write(report, out)
    assert out.getvalue() == dumps(report) == _each_on_its_own(report)


def _enum(*path: str) -> set:
    node = schema()
    for key in path:
        node = node[key]
    return set(node["enum"])


def test_schema_enums_match_the_result_types():
    """A new change kind, finding kind or model must be added to the schema too (and the version bumped)."""
    from cniscope.models import NAMES, UNKNOWN
    from cniscope.packets.schema import Clock
    from cniscope.results import ChangeKind, FindingKind, Severity

    defs = ("$defs",)
    assert _enum(*defs, "hop", "properties", "changes", "items", "properties", "kind") == {k.value for k in ChangeKind}
    assert _enum(*defs, "finding", "properties", "kind") == {k.value for k in FindingKind}
    assert _enum(*defs, "finding", "properties", "severity") == {s.value for s in Severity}
    assert _enum(*defs, "model_name") == {*NAMES, UNKNOWN}
    assert _enum(*defs, "input", "properties", "clock") == {c.value for c in Clock}


def test_every_in_process_json_report_is_checked(monkeypatch, capsys):
    """tests/conftest.py wraps to_dict and pieces (dumps, write) for the whole suite: a report that breaks the schema fails the test
    making it, as a document or as the text `analyze --json` prints."""
    from cniscope.results import ModelVerdict

    report = service_call()
    report.model = ModelVerdict(name="made-up-model", confidence=0.5)
    for made in (json_out.to_dict, json_out.dumps):
        with pytest.raises(jsonschema.ValidationError):
            made(report)
    monkeypatch.setattr(analysis, "analyze_capture", lambda *args, **kwargs: report)
    assert main(["analyze", "--json", str(SEED)]) == 70  # the command's report, caught as a bug
    assert "ValidationError: 'made-up-model'" in capsys.readouterr().err
