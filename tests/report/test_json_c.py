"""The journeys and conversations `_json.c` writes are the text json_out writes without it (orjson's, and json's where
orjson cannot), byte for byte: on the reports of the corpus and on made-up values of every odd kind; what it cannot
write exactly (text beyond ASCII, integers beyond 64 bits, floats, other types, keys orjson would skip) it refuses, and
json_out writes those as before."""

from __future__ import annotations

import dataclasses
import io
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from cniscope.analyze import analyze
from cniscope.report import json_out
from cniscope.results import Change, ChangeKind, Endpoint, Flow, FlowState, Hop, Journey, Proto, Report, make_endpoint, make_flow
from cniscope.sources import InputSpec
from tests.compiled import compile_c
from tests.paths import CORPUS
from tests.report.build import service_call

SOURCE = Path(json_out.__file__).with_name("_json.c")
JOURNEY_TYPES = (Journey, Hop, Change)
CORPUS_FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".txt"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return compile_c(SOURCE, tmp_path_factory.mktemp("json"))


def written(report: Report, lines: Any, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """What `analyze --json` writes of `report`, with `_json.lines` or without (None)."""
    monkeypatch.setattr(json_out, "_lines", lines)
    out = io.BytesIO()
    json_out.write(report, out)
    assert out.getvalue() == json_out.dumps(report)
    return out.getvalue()


def same_both_ways(report: Report, compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> bytes:
    text = written(report, compiled.lines, monkeypatch)
    assert text == written(report, None, monkeypatch)
    return text


@pytest.mark.parametrize("path", CORPUS_FILES[:8], ids=lambda p: p.name)
def test_corpus_reports_are_written_the_same(path: Path, compiled: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    report = analyze([InputSpec(str(path))])
    assert report.journeys and report.flows
    # written in C, not refused
    assert compiled.lines(report.journeys, JOURNEY_TYPES, None) is not None
    assert compiled.lines(report.flows, (Flow,), Endpoint) is not None
    same_both_ways(report, compiled, monkeypatch)


def _put(frozen: object, **fields: Any) -> None:
    """Fields of a frozen dataclass (of slots: a conversation) set anew."""
    for name, value in fields.items():
        object.__setattr__(frozen, name, value)


@pytest.mark.parametrize("change", [
    lambda r: None,
    lambda r: object.__setattr__(r.journeys[1], "summary", "caf\u00e9 \x9b31m"),  # beyond ASCII: refused, escaped by json
    lambda r: object.__setattr__(r.journeys[1], "summary", "".join(map(chr, range(128))) + '"\\'),  # every ASCII character
    lambda r: object.__setattr__(r.journeys[1], "flow", 2**70),  # above orjson's 64 bits
    lambda r: (object.__setattr__(r.journeys[0], "flow", 2**64 - 1), object.__setattr__(r.journeys[0], "retransmission_of", 2**63)),  # at its bounds
    lambda r: r.journeys.clear(),
    lambda r: _put(r.flows[0], notes=("caf\u00e9",)),
    lambda r: _put(r.flows[0], handshake={"syn_to_synack_ns": 2**64, "synack_to_ack_ns": None}),
    lambda r: _put(r.flows[0], client=Endpoint("fd00::1", 80), server=Endpoint("node-a"), legs=()),
    lambda r: _put(r.flows[0], client=Endpoint("10.0.0.1", 2**70)),  # a port beyond 64 bits
], ids=["as made", "not ascii", "ascii", "big integer", "64-bit bounds", "no journeys", "note not ascii",
        "big handshake", "ends", "big port"])
@pytest.mark.parametrize("chunk", [json_out.CHUNK, 1, 2])
def test_made_reports_are_written_the_same(change: Any, chunk: int, compiled: ModuleType,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_out, "CHUNK", chunk)
    report = service_call()
    change(report)
    same_both_ways(report, compiled, monkeypatch)


def flow(n: int, client: Endpoint, server: Endpoint, legs: tuple[tuple[Endpoint, Endpoint], ...], made: bool) -> Flow:
    values = (n, f"1:key{n}", Proto.TCP, client, server, legs, (n, n + 3), 2, 20, 1, 2, FlowState.CLOSED,
              {"syn_to_synack_ns": 5, "synack_to_ack_ns": None}, 1, 0, 0, (n + 3,), ("a note",))
    return make_flow(*values) if made else Flow(*values)


def test_conversations_are_written_as_orjson_writes_the_objects(compiled: ModuleType) -> None:
    """IPv4, IPv6 and named ends, no port, ports beyond 16 bits, legs that are and are not the ends, made by the
    dataclass or by `make_flow`: orjson's text of the objects, their endpoints as `Endpoint.__str__` writes them."""
    ends = [Endpoint("10.0.0.1", 40000), make_endpoint("fd00::1", 80), Endpoint("node-a"), Endpoint("10.96.0.10", 0),
            Endpoint("fd00::2", 2**40), Endpoint("a\"b\\c\x01", -1), Endpoint("a" * 200, 65535)]
    flows = []
    for n, (a, b) in enumerate(zip(ends, ends[1:] + ends[:1])):
        flows.append(flow(n, a, b, ((a, b),), n % 2 == 0))
        flows.append(flow(n + 100, a, b, ((a, b), (Endpoint(a.addr, a.port), ends[3]), (ends[5], b)), n % 2 == 1))
    flows.append(flow(999, ends[0], ends[1], (), True))
    expected = b",\n  ".join(orjson.dumps(f, default=json_out._flow_value, option=orjson.OPT_PASSTHROUGH_DATACLASS) for f in flows)
    assert compiled.lines(flows, (Flow,), Endpoint) == expected
    assert b'"10.0.0.1:40000"' in expected and b'"[fd00::1]:80"' in expected and b'"a\\"b\\\\c\\u0001:-1"' in expected
    for refused in (Endpoint("caf\u00e9", 9), Endpoint("10.0.0.1", 2**64), Endpoint(7, 80), Endpoint("x", 1.5)):  # type: ignore[arg-type]
        assert compiled.lines([flow(1, ends[0], refused, (), True)], (Flow,), Endpoint) is None
    assert compiled.lines([flow(1, ends[0], Endpoint.__new__(Endpoint), (), True)], (Flow,), Endpoint) is None  # unset
    # an endpoint type with a dict (its fields not in slots) is not written here
    Ends = dataclasses.make_dataclass("Ends", [("addr", str), ("port", int)], frozen=True)
    assert compiled.lines([flow(1, Ends("10.0.0.1", 1), Ends("10.0.0.2", 2), (), True)], (Flow,), Ends) is None


class Kind(StrEnum):
    A = "a\tb"


@dataclasses.dataclass
class Thing:
    n: Any
    text: Any = "x"


@pytest.mark.parametrize("value", [
    0, 1, -1, 9, 10, 99, 100, 12345678901234567, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, None, True, False, "",
    "".join(map(chr, range(128))), Kind.A, [], (), [1, (2, [None])], {}, {"a": {"b": [1, "c"]}}, Thing(1, Thing(2)),
    "x" * 3_000_000,
], ids=lambda v: repr(v)[:40])
def test_values_are_written_as_orjson_writes_them(value: object, compiled: ModuleType) -> None:
    assert compiled.lines([Thing(value)], (Thing,), None) == orjson.dumps(Thing(value))
    assert compiled.lines([value, value], (Thing,), None) == orjson.dumps(value) + b",\n  " + orjson.dumps(value)


def test_text_escaped_wherever_it_needs_it(compiled: ModuleType) -> None:
    """Text is escaped as orjson escapes it whether what needs it comes first, inside or after runs of plain
    characters (taken 8 at a time) of every length, and next to the characters either side of each escaped one."""
    texts = [a * k + c + b * m for k in range(0, 19) for m in (0, 1, 7, 8, 9) for c in ('"', "\\", "\x00", "\x1f", "\n", "\x7f")
             for a, b in (("x", "y"), ("!", "]"), ("\x20", "#"), ("[", "\x7e"))]
    for text in texts:
        assert compiled.lines([text], (), None) == orjson.dumps(text), repr(text)
    assert compiled.lines(texts, (), None) == b",\n  ".join(map(orjson.dumps, texts))


@dataclasses.dataclass(slots=True)
class Slotted:
    z: Any  # (the fields out of the order of their names: written in the fields' order, as orjson writes them)
    a: Any = "x"


@dataclasses.dataclass(slots=True)
class Derived(Slotted):
    b: Any = 2


@dataclasses.dataclass(slots=True)
class Hidden:
    _n: Any = 1


def test_instances_of_slots_are_written_as_orjson_writes_them(compiled: ModuleType) -> None:
    values = [Slotted(1, [Slotted(2, None)]), Slotted("q\n", {"k": (True,)})]
    assert compiled.lines(values, (Slotted,), None) == b",\n  ".join(map(orjson.dumps, values))
    assert compiled.lines([Slotted.__new__(Slotted)], (Slotted,), None) is None  # a field unset
    assert compiled.lines([Derived(1)], (Derived,), None) is None  # fields of a base class: not written here
    assert compiled.lines([Hidden()], (Hidden,), None) is None  # orjson would leave it out
    assert compiled.lines([Slotted(Hidden())], (Slotted,), None) is None  # a type not given


def test_what_orjson_would_write_otherwise_is_refused(compiled: ModuleType) -> None:
    skipped = Thing(1)
    skipped.__dict__["_hidden"] = 2  # orjson leaves it out of a dataclass
    nested: list[Any] = []
    for _ in range(100):
        nested = [nested]
    for value in (2**64, -(2**63) - 1, 1.5, "caf\u00e9", {1: 2}, skipped, Endpoint("a"), object(), Kind, nested,
                  type("Listed", (list,), {})([1]), {"k": {"x\u00e9": 1}}):
        assert compiled.lines([1, value], (Thing,), None) is None, value
    assert compiled.lines([], (Thing,), None) == b""
    with pytest.raises(TypeError):
        compiled.lines((1,), (Thing,), None)
    with pytest.raises(TypeError):
        compiled.lines([1], [Thing], None)
    with pytest.raises(TypeError):
        compiled.lines([1], (Thing,), 3)


def test_journeys_are_written_as_orjson_writes_them(compiled: ModuleType) -> None:
    hop = Hop(3, "node1", "eth0", None, 10, None, "node1 eth0", "node NIC", (Change(ChangeKind.TTL, "64", "63"),))
    journeys = [Journey(1, None, "s", None, (hop, hop.sent_to("aa:bb", None))), Journey(2, 5, "t", 1, ())]
    assert compiled.lines(journeys, JOURNEY_TYPES, None) == b",\n  ".join(map(orjson.dumps, journeys))
    assert compiled.lines(journeys, (Journey,), None) is None  # a hop of a type not given
