"""`--json`: the report as one JSON object, following report.schema.json (draft 2020-12).

Keys: schema_version, tool, inputs, packets, model, clocks, journeys,
journeys_total, flows, flows_total, selection, findings, warnings. With `--filter`/`--flow`
the counts are of the selected part; `selection` holds what the whole capture counted. Times are integers in ns, counted
as each input's clock says (inputs[].clock); addresses are text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from functools import cache
from importlib import resources
from typing import Any

import orjson

from cniscope import __version__
from cniscope.results import Flow, Hop, Report

SCHEMA_VERSION = "1.3"


def to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON values (report.schema.json)."""
    return _document(report, list)


def _document(report: Report, many: Callable[[Iterator[dict[str, Any]]], Iterable[dict[str, Any]]]) -> dict[str, Any]:
    """The report as JSON values, each of its long lists (journeys, flows, findings) made by `many` from a lazy
    iterator: `list` for a document, or the iterator itself for `dumps` to write each element as it is made."""
    sel = report.selection
    # a hop's changes as JSON values once per distinct tuple: materialising gives equal changes one shared tuple
    # (the hops of a conversation share it), kept alive by the report while its id is a key here
    shown: dict[int, list[dict[str, str]]] = {}

    def changes(hop: Hop) -> list[dict[str, str]]:
        found = shown.get(id(hop.changes))
        if found is None:
            found = shown[id(hop.changes)] = [{"kind": c.kind.value, "before": c.before, "after": c.after} for c in hop.changes]
        return found

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
        "journeys": many(
            {
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
            for j in report.journeys
        ),
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


def dumps(report: Report) -> bytes:
    """The report as ASCII JSON text (bytes, as written: no copy decoded and encoded again). One key of the report a line, and one element a line of its lists (a journey, a flow, a finding): as
    readable as an indented dump, and written by orjson, 6x faster than json's C encoder on the tens of megabytes
    of 20,000 journeys and conversations (the other stages of a small capture take about as long).

    The journeys are written by one call of orjson over the objects themselves (their fields are the JSON's keys in
    order; hops, changes and enums alike), the conversations over their values: 0.04 s for the 20,000 journeys of
    a report, where a dict per journey and hop, each written on its own, took 0.15-0.2 s."""
    document = _document(report, iter)  # a journey's or a flow's values made, written, let go: their memory reused
    document["journeys"] = _Whole(report.journeys, document["journeys"])
    document["flows"] = _Whole([_flow(f) for f in report.flows], document["flows"])

    def value(v: Any) -> list[bytes | memoryview]:
        """`v` as JSON text, in pieces (a list of 20,000 journeys is tens of megabytes: each copy of it counts)."""
        if isinstance(v, _Whole):
            whole = v.text()
            if whole is not None:
                return [b"[\n  ", whole, b"\n ]"] if whole else [b"[]"]
            v = v.each
        if isinstance(v, list | Iterator):
            elements = b",\n  ".join(map(_encode, v))
            return [b"[\n  ", elements, b"\n ]"] if elements else [b"[]"]
        return [_encode(v)]

    pieces: list[bytes | memoryview] = [b"{\n"]
    for n, (k, v) in enumerate(document.items()):
        pieces += [b",\n" if n else b"", b" " + _encode(k) + b": ", *value(v)]
    pieces.append(b"\n}")
    return b"".join(pieces)


class _Whole:
    """A list of the report written by one call of orjson, one element a line: `elements` (journeys or flows' values,
    each an object whose first key is "id", which no object inside them has), or `each` element written on its own
    when that cannot be (text beyond ASCII, an integer above 64 bits)."""

    def __init__(self, elements: list[Any], each: Iterator[dict[str, Any]]) -> None:
        self.elements, self.each = elements, each

    def text(self) -> memoryview | None:
        """The elements, one a line, without the list's brackets; None when they cannot be written at once."""
        if not self.elements:
            return memoryview(b"")
        try:
            text = orjson.dumps(self.elements)
        except orjson.JSONEncodeError:
            return None
        if not text.isascii():
            return None
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
