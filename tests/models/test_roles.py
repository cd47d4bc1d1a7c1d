"""Hop roles (by name, or by position when the capture names no interface) and expected vs observed."""

from __future__ import annotations

import polars as pl
import pytest

from cniscope.models import roles
from cniscope.models.infer import infer
from cniscope.models.roles import compare, label
from cniscope.packets.schema import Direction, ip4_value, named_iface
from cniscope.results import Journey, set_roles
from tests.paths import CORPUS, SEED

from .helpers import CORPUS_TRUTH, inventory, journeys_of, load_capture, table_of

INBOUND = ["node NIC, in", "pod bridge kube-bridge, out", "veth to pod 10.244.3.10"]
OUTBOUND = ["veth from pod 10.244.3.10", "pod bridge kube-bridge, in", "node NIC, out"]


def test_seed_capture_points_by_position() -> None:
    loaded = load_capture(SEED)
    verdict = infer(loaded.table, loaded.journeys)
    labelled = label(loaded.journeys, loaded.table, verdict)
    assert len(labelled) == len(loaded.journeys) == 5
    for journey in labelled:
        roles = [h.role for h in journey.hops]
        assert roles == (INBOUND if journey.summary.startswith("TCP 192.168.200.21") else OUTBOUND), journey.summary


def test_seed_names_the_pod_from_the_inventory() -> None:
    loaded = load_capture(SEED)
    inv = inventory("seed-node3.yaml")
    verdict = infer(loaded.table, loaded.journeys, inv)
    first = label(loaded.journeys, loaded.table, verdict, inv)[0]
    assert [h.role for h in first.hops][-1] == "veth to pod default/nginx-7c5"


@pytest.mark.parametrize("name", sorted(CORPUS_TRUTH))
def test_every_hop_gets_a_role_and_clean_captures_raise_nothing(name: str) -> None:
    loaded = load_capture(CORPUS / name)
    verdict = infer(loaded.table, loaded.journeys)
    labelled = label(loaded.journeys, loaded.table, verdict)
    assert all(h.role for j in labelled for h in j.hops)
    assert compare(labelled, loaded.table, verdict) == []


def test_named_hops_take_the_model_roles() -> None:
    loaded = load_capture(CORPUS / "12-fluxop-flannel-any-inout-dns.txt")
    verdict = infer(loaded.table, loaded.journeys)
    roles = {tuple(h.role for h in j.hops) for j in label(loaded.journeys, loaded.table, verdict)}
    assert ("flannel.1 VTEP (decapsulated)", "pod bridge cni0, out", "veth veth78b87eb8 to pod 10.244.0.2") in roles
    assert ("veth veth78b87eb8 from pod 10.244.0.2", "pod bridge cni0, in", "flannel.1 VTEP (to be encapsulated)") in roles


def test_seed_without_its_veth_copy_is_a_drop() -> None:
    loaded = load_capture(SEED)
    table = loaded.table.filter(loaded.table["line"] != 3)  # the SYN's third copy: the pod veth
    journeys = journeys_of(table)
    verdict = infer(table, journeys)
    findings = compare(label(journeys, table, verdict), table, verdict)
    assert len(findings) == 1 and findings[0].expected is not None
    syn = next(j for j in journeys if "[S]" in j.summary)
    assert findings[0].journey.id == syn.id
    assert findings[0].expected.startswith("host veth") and findings[0].copies == (3, 2)
    assert {h.row for h in findings[0].hops} == {h.row for h in syn.hops}


def test_comparing_labelled_journeys_finds_what_comparing_afresh_finds() -> None:
    loaded = load_capture(SEED)
    table = loaded.table.filter(loaded.table["line"] != 3)
    journeys = journeys_of(table)
    verdict = infer(table, journeys)
    labelled = label(journeys, table, verdict)
    after_labelling = compare(labelled, table, verdict)  # with what labelling worked out of the same journeys
    assert not roles._last  # let go once compared
    assert after_labelling and compare(labelled, table, verdict) == after_labelling
    for other in (journeys_of(table)[:-1], journeys_of(table)[1:]):  # not labelling's journeys: with the SYN, without
        afresh = compare(other, table, verdict)
        assert len(afresh) == (1 if other[0].id == journeys[0].id else 0)
        label(journeys, table, verdict)
        assert compare(other, table, verdict) == afresh


def _dns(query_id: int, ts: int, iface: str, direction: Direction) -> dict:
    return {"ts": ts, "node": "host0", "iface": iface, "direction": int(direction), "ip_version": 4, "proto": 17,
            "src": ip4_value("10.244.13.2"), "dst": ip4_value("10.244.0.2"), "sport": 55999, "dport": 53,
            "dns_id": query_id, "dns_qr": False, "payload_len": 70, "ttl": 63}


FLANNEL_NAMES = {"iface": "eth0", "tunnel": 1, "outer_dport": 8472, "vni": 1,
                 "outer_src": ip4_value("10.100.0.2"), "outer_dst": ip4_value("10.100.0.1")}


def test_named_drop_after_the_bridge() -> None:
    rows = []
    for n, qid in enumerate((11, 12, 13)):
        t = n * 1_000_000_000
        rows.append({**_dns(qid, t, "eth0", Direction.IN), **FLANNEL_NAMES})
        rows.append(_dns(qid, t + 10_000, "flannel.1", Direction.IN))
        rows.append(_dns(qid, t + 20_000, "cni0", Direction.OUT))
        if qid != 13:
            rows.append(_dns(qid, t + 30_000, "veth78b87eb8", Direction.OUT))
    table = table_of(rows)
    journeys = journeys_of(table)
    verdict = infer(table, journeys)
    assert verdict.name == "flannel-vxlan"
    findings = compare(label(journeys, table, verdict), table, verdict)
    assert len(findings) == 1 and findings[0].expected is not None
    assert findings[0].hops[-1].iface == "cni0"
    assert findings[0].expected.startswith("host veth")


def test_named_path_the_model_does_not_have_is_a_deviation() -> None:
    rows = []
    for n, qid in enumerate((21, 22)):
        t = n * 1_000_000_000
        rows.append({**_dns(qid, t, "eth0", Direction.IN), **FLANNEL_NAMES})
        rows.append(_dns(qid, t + 10_000, "veth78b87eb8", Direction.OUT))
        rows.append(_dns(qid, t + 20_000, "flannel.1", Direction.OUT))
    table = table_of(rows)
    journeys = journeys_of(table)
    verdict = infer(table, journeys)
    findings = compare(label(journeys, table, verdict), table, verdict)
    assert [f.expected for f in findings] == [None, None]  # deviations: no expected path crosses these points


def test_single_interface_captures_say_nothing() -> None:
    rows = [_dns(31, 0, "cni0", Direction.OUT), _dns(32, 1_000_000_000, "cni0", Direction.OUT)]
    table = table_of(rows)
    journeys = journeys_of(table)
    verdict = infer(table, journeys, force="flannel-vxlan")
    assert compare(label(journeys, table, verdict), table, verdict) == []


@pytest.mark.parametrize(("path", "merged"), [
    (SEED, ""), (CORPUS / "12-fluxop-flannel-any-inout-dns.txt", ""), (CORPUS / "22-weave3014-nodeport-any-dnat-snat.txt", ""),
    (CORPUS / "04-msazure-flannel-vxlan-e.txt", "veth"), (CORPUS / "07-virtnest-calico-ipip-4ifaces.txt", "veth"),  # pod veths, named
    (CORPUS / "06-plantegg-flannel-vxlan-nnetvv.txt", "copies"), (CORPUS / "10-inksnw-kuberouter-bgp-any-v.txt", "copies"),
], ids=lambda p: getattr(p, "name", str(p)))
def test_shapes_over_the_table_label_alike(path, merged, monkeypatch) -> None:  # merged: what merges some signatures
    """Journeys numbered into shapes over the table's columns, without the addresses of the sightings: each shape's
    journeys share their signature but for those addresses, and, on a node where their sightings do not all name their
    interface, whether the ends there are pods and the most copies between them; labelling and comparing say the same
    as over the signatures themselves (addresses and all, each pod veth worded from its own hop's)."""
    loaded = load_capture(path)
    verdict = infer(loaded.table, loaded.journeys)
    ctx = roles._context(loaded.journeys, loaded.journeys, loaded.table, verdict, None)
    numbered = roles._shape_numbers(loaded.journeys, loaded.table, roles._hops_of(loaded.journeys), ctx)
    assert numbered is not None
    shape_of, copies = numbered[0].tolist(), numbered[1]
    assert len(shape_of) == len(loaded.journeys)
    # the copies as labelling counted them over every journey's groups, in Python
    assert copies == roles._covered([roles._groups(j, ctx) for j in loaded.journeys], ctx).copies

    def coarse(journey: Journey) -> tuple[object, ...]:
        hops = []
        for (key, _, _, t), *rest in roles._signature(journey, ctx):
            group = [h for h in journey.hops if ctx.keys[h.row] == key]
            ends = (ctx.src[group[0].row], ctx.dst[group[-1].row])
            fitted = None if all(named_iface(h.iface) for h in group) else (*map(ctx.is_pod, ends), copies[(key, *ends)])
            hops.append((key, t, fitted, *rest))
        return roles._addressed(ctx.dst[journey.hops[0].row]), tuple(hops)

    coarse_of: dict[int, tuple[object, ...]] = {}
    for journey, shape in zip(loaded.journeys, shape_of):
        assert coarse_of.setdefault(shape, coarse(journey)) == coarse(journey)
    assert sorted(set(shape_of)) == list(range(max(shape_of) + 1)) and shape_of[0] == 0
    labelled = label(loaded.journeys, loaded.table, verdict)
    worded = [[h.role for h in j.hops] for j in labelled]  # (labelling sets the roles of the journeys' own hops)
    compared = compare(labelled, loaded.table, verdict)
    set_roles(labelled, [None for j in labelled for h in j.hops])
    monkeypatch.setattr(roles, "_shape_numbers", lambda journeys, table, hops, probe: None)  # the signatures, as Python tuples
    assert [[h.role for h in j.hops] for j in label(loaded.journeys, loaded.table, verdict)] == worded
    assert compare(labelled, loaded.table, verdict) == compared
    signatures = len({roles._signature(j, ctx) for j in loaded.journeys})
    assert signatures > len(set(shape_of)) if merged else signatures == len(set(shape_of))
    if merged == "veth":
        assert any("veth" in (role or "") for of_journey in worded for role in of_journey)
    elif merged == "copies":  # between other addresses
        assert any(not named_iface(h.iface) for j in loaded.journeys for h in j.hops)


def test_any_rewrite_is_a_hop_with_dnat_or_snat() -> None:
    """Inference skips its walks over every hop's changes when no distinct changes rewrite an address."""
    from cniscope.models.evidence import any_rewrite, nat_changes

    for path, rewritten in ((SEED, False), (CORPUS / "22-weave3014-nodeport-any-dnat-snat.txt", True)):
        journeys = load_capture(path).journeys
        assert any_rewrite(journeys) is rewritten
        assert any(nat_changes(h) for j in journeys for h in j.hops) is rewritten


@pytest.mark.parametrize("widest", [roles._WIDEST, 0])
def test_journeys_hop_sequences_are_numbered_in_order_of_first_appearance(widest: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shapes: each journey's sequence of hop codes numbered as first seen, a column a hop or a list a journey alike."""
    import numpy as np

    monkeypatch.setattr(roles, "_WIDEST", widest)
    rng = np.random.default_rng(widest)
    for _ in range(100):
        lengths = rng.integers(1, int(rng.integers(2, 9)), int(rng.integers(1, 300)))
        codes = rng.integers(0, int(rng.integers(1, 6)), int(lengths.sum()))
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        seen: dict[tuple[int, ...], int] = {}
        want = [seen.setdefault(tuple(codes[s:s + n].tolist()), len(seen)) for s, n in zip(starts, lengths)]
        assert roles._sequences_numbered(codes, lengths, starts).tolist() == want


def test_unicast_destinations_from_their_numbers_are_the_texts_ones() -> None:
    """`roles._unicast_at` (IPv4 destinations judged by their numbers) says what `_addressed` says of their text."""
    ip4 = [0x0A000001, 0xE0000001, 0xEFFFFFFA, 0xF0000001, 0x0A0000FF, 0xFFFFFFFF, 0xDFFFFFFE, 0, None, None, None, None]
    ip6 = [None, None, None, None, None, None, None, None, "ff02::1", "fd00::1", "::ffff:10.0.0.255", None]
    at = pl.DataFrame({"src": pl.Series([None] * len(ip4), dtype=pl.UInt32), "dst": pl.Series(ip4, dtype=pl.UInt32),
                       "src6": pl.Series([None] * len(ip4), dtype=pl.Categorical), "dst6": pl.Series(ip6, dtype=pl.Categorical)})
    want = roles._unicast_flags(roles._texts(at)[1])
    assert roles._unicast_at(at).tolist() == want.tolist() == [True, False, False, True, False, False, True, True, False, True,
                                                               False, False]
