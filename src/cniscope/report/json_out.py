"""`--json`: the report as one JSON object, following report.schema.json (draft 2020-12).

Keys: schema_version, tool, inputs, packets, model, clocks, journeys,
journeys_total, flows, flows_total, selection, findings, warnings. With `--filter`/`--flow`
the counts are of the selected part; `selection` holds what the whole capture counted. Times are integers in ns, counted
as each input's clock says (inputs[].clock); addresses are text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, fields
from functools import cache
from importlib import resources
from typing import Any, BinaryIO

import orjson

from cniscope import __version__
from cniscope.results import Change, Endpoint, Flow, Hop, Journey, Report

SCHEMA_VERSION = "1.3"


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON values (report.schema.json)."""
    return _document(report, list)


def _document(report: Report, many: Callable[[Iterator[dict[str, Any]]], Iterable[dict[str, Any]]]) -> dict[str, Any]:
    """The report as JSON values, each of its long lists (journeys, flows, findings) made by `many` from a lazy
    iterator: `list` for a document, or the iterator itself for `dumps` to write each element as it is made."""
    sel = report.selection
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "cniscope", "version": __version__},
        "inputs": [
            {
                "index": i.index,
                "name": i.name,
                "format": i.format,
                "node": i.node,
                "clock": i.clock.value,
                "packets": i.packets,
                "unparsed_lines": i.unparsed_lines,
                "damaged": i.damaged,
                "warnings": [str(w) for w in i.warnings],
            }
            for i in report.inputs
        ],
        "packets": report.table.height,
        "model": {
            "name": report.model.name,
            "confidence": round(report.model.confidence, 3),
            "evidence": list(report.model.evidence),
            "runner_up": report.model.runner_up,
            "candidates": [{"name": n, "score": round(s, 3)} for n, s in report.model.candidates],
            "service_proxy": report.model.service_proxy,
            "forced": report.model.forced,
        },
        "clocks": [asdict(c) for c in report.clocks],
        "journeys": many(map(_journey(), report.journeys)),
        "journeys_total": report.journeys_total,
        "flows_total": report.flows_total,
        "selection": None if sel is None else {"filter": sel.text, "sightings": sel.sightings, "journeys": sel.journeys,
                                                "flows": sel.flows},
        "flows": many(map(_flow, report.flows)),
        "findings": many(
            {
                "kind": f.kind.value,
                "severity": f.severity.value,
                "title": f.title,
                "explanation": f.explanation,
                "next_step": f.next_step,
                "key": f.key,
                "node": f.node,
                "iface": f.iface,
                "journeys": list(f.journeys),
                "flows": list(f.flows),
                "rows": list(f.rows),
                "evidence": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(f.evidence).items()},
            }
            for f in report.findings
        ),
        "warnings": list(report.warnings),
    }


def _journey() -> Callable[[Journey], dict[str, Any]]:
    """A journey as JSON values; a hop's changes made once per distinct tuple: materialising gives equal changes one
    shared tuple (the hops of a conversation share it), kept alive by the report while its id is a key here."""
    shown: dict[int, list[dict[str, str]]] = {}

    def changes(hop: Hop) -> list[dict[str, str]]:
        found = shown.get(id(hop.changes))
        if found is None:
            found = shown[id(hop.changes)] = [{"kind": c.kind.value, "before": c.before, "after": c.after} for c in hop.changes]
        return found

    def journey(j: Journey) -> dict[str, Any]:
        return {
            "id": j.id,
            "flow": j.flow,
            "summary": j.summary,
            "retransmission_of": j.retransmission_of,
            "hops": [
                {
                    "row": h.row,
                    "node": h.node,
                    "iface": h.iface,
                    "direction": h.direction,
                    "ts": h.ts,
                    "delay_ns": h.delay_ns,
                    "point": h.point,
                    "role": h.role,
                    "changes": changes(h),
                    "mac_to": h.mac_to,
                    "mac_owner": h.mac_owner,
                }
                for h in j.hops
            ],
        }

    return journey


def _flow(f: Flow) -> dict[str, Any]:
    client, server = str(f.client), str(f.server)
    legs = f.legs  # most often one, the client's and server's own ends: their text once
    shown = [[client, server]] if len(legs) == 1 and legs[0][0] is f.client and legs[0][1] is f.server else \
        [[str(a), str(b)] for a, b in legs]
    return {
        "id": f.id,
        "key": f.key,
        "proto": f.proto,
        "client": client,
        "server": server,
        "legs": shown,
        "journeys": list(f.journeys),
        "packets": f.packets,
        "bytes": f.bytes,
        "first_ts": f.first_ts,
        "last_ts": f.last_ts,
        "state": f.state,
        "handshake": f.handshake,
        "retransmissions": f.retransmissions,
        "out_of_order": f.out_of_order,
        "zero_windows": f.zero_windows,
        "resets": list(f.resets),
        "notes": list(f.notes),
    }


def _flow_value(v: Any) -> Any:
    """orjson's `default` for a conversation written as the object itself (`OPT_PASSTHROUGH_DATACLASS`): its fields, in
    order, are `_flow`'s keys; its endpoints are written as text (0.08 -> 0.05 s over 20,000 conversations)."""
    if type(v) is Endpoint:
        return str(v)
    if type(v) is Flow:
        return {name: getattr(v, name) for name in _FLOW_FIELDS}
    raise TypeError(type(v).__name__)


_FLOW_FIELDS = tuple(f.name for f in fields(Flow))


def _flows(flows: list[Flow]) -> _Whole:
    """The conversations to write: the objects themselves, their endpoints as text."""
    return _Whole(flows, _flow, _flow_value, (Flow,), Endpoint)


_lines: Callable[[list[Any], tuple[type, ...], type | None], bytes | None] | None
try:
    from cniscope.report._json import lines as _lines
except ImportError:  # built without a C compiler
    _lines = None


def dumps(report: Report) -> bytes:
    """The report as ASCII JSON text (bytes): `pieces`, joined."""
    return b"".join(pieces(report))


def write(report: Report, out: BinaryIO) -> None:
    """`dumps` written to `out` a piece at a time (the command's standard output): the text is never held whole (30 MB
    at 20,000 journeys, where each fresh megabyte touched costs this machine's kind of VM about 5 ms)."""
    for piece in pieces(report):  # `write` each: not writelines, which a BytesIO (click's CliRunner) does by itself
        out.write(piece)


def pieces(report: Report) -> Iterator[bytes | memoryview]:
    """The report as ASCII JSON text, in pieces made as they are asked for. One key of the report a line, and one
    element a line of its lists (a journey, a flow, a finding): as readable as an indented dump, and written by orjson,
    6x faster than json's C encoder on the tens of megabytes of 20,000 journeys and conversations.

    The journeys and conversations are written by calls of orjson over the objects themselves (their fields are the
    JSON's keys in order; hops, changes, endpoints and enums alike), `CHUNK` of them a call: 0.04 s for the 20,000
    journeys of a report, where a dict per journey and hop, each written on its own, took 0.15-0.2 s; a chunk's text
    is let go before the next is made, so its memory is reused, not fresh."""
    document = _document(report, iter)  # a journey's or a flow's values made, written, let go: their memory reused
    document["journeys"] = _Whole(report.journeys, _journey(), objects=(Journey, Hop, Change))
    document["flows"] = _flows(report.flows)
    for n, (k, v) in enumerate(document.items()):
        yield (b",\n " if n else b"{\n ") + _encode(k) + b": "
        if isinstance(v, _Whole):
            yield from v.pieces()
        elif isinstance(v, list | Iterator):
            elements = b",\n  ".join(map(_encode, v))
            yield b"[\n  " + elements + b"\n ]" if elements else b"[]"
        else:
            yield _encode(v)
    yield b"\n}"


CHUNK = 512  # journeys or conversations written by one call of orjson (a journey is about 1 kB of text)
_SEPARATOR = b",\n  "


class _Whole:
    """A list of the report written `CHUNK` elements at a time, one element a line: `elements` (journeys or flows, each
    an object whose first key is "id", which no object inside them has). Each chunk is written in C where it was built
    (`_json.lines`: the text orjson writes, `objects` as their fields and `endpoint` as its text; the report of the 2M
    reference pcap, 20,000 of each, written in 0.12 -> 0.08 s of CPU), else by calls of orjson (`default`: the values of
    what it does not write itself), else element by element from their JSON values (`value`) when orjson cannot write
    them at once (text beyond ASCII, an integer above 64 bits): the same text, but for those escaped."""

    def __init__(self, elements: Sequence[Any], value: Callable[[Any], dict[str, Any]],
                 default: Callable[[Any], Any] | None = None, objects: tuple[type, ...] = (),
                 endpoint: type | None = None) -> None:
        self.elements, self.value, self.default = elements, value, default
        self.objects, self.endpoint = objects, endpoint

    def pieces(self) -> Iterator[bytes | memoryview]:
        if not self.elements:
            yield b"[]"
            return
        yield b"[\n  "
        for start in range(0, len(self.elements), CHUNK):
            if start:
                yield _SEPARATOR
            yield self._chunk(list(self.elements[start:start + CHUNK]))
        yield b"\n ]"

    def _chunk(self, elements: list[Any]) -> bytes | memoryview:
        """`elements`, one a line, without the list's brackets. Written without `default` (journeys), each element by a
        call of its own, joined: no search of the text for where they meet (20,000 journeys: 0.052 -> 0.039 s of CPU);
        with it (conversations), each call's `default` costs more than the search."""
        if _lines is not None and (written := _lines(elements, self.objects, self.endpoint)) is not None:
            return written
        try:
            if self.default is None:
                text = _SEPARATOR.join(map(orjson.dumps, elements))
            else:
                text = orjson.dumps(elements, default=self.default, option=orjson.OPT_PASSTHROUGH_DATACLASS)
        except orjson.JSONEncodeError:  # an integer above 64 bits
            text = None
        if text is None or not text.isascii():
            return _SEPARATOR.join(_encode(self.value(e)) for e in elements)
        if self.default is None:
            return text
        # `},{"id":` is only ever between two elements: a quote inside a string is written escaped
        return memoryview(text.replace(b'},{"id":', b'},\n  {"id":'))[1:-1]  # brackets left out, not copied


_ASCII = json.JSONEncoder(separators=(",", ":")).encode  # escapes all but ASCII, as orjson does not


def _encode(v: Any) -> bytes:
    """`v` as compact JSON, ASCII only: a name from a capture that is not (`\\x9b` is a terminal's CSI in UTF-8) is
    written escaped, `\\u009b`, as json.dumps does by default (orjson writes UTF-8; such values are rare)."""
    try:
        text = orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # an integer above 64 bits
        return _ASCII(v).encode()
    return text if text.isascii() else _ASCII(v).encode()


@cache
def schema() -> dict[str, Any]:
    """report.schema.json, shipped with the package."""
    loaded: dict[str, Any] = json.loads(resources.files("cniscope.report").joinpath("report.schema.json").read_text(encoding="utf-8"))
    return loaded
