"""flows: the Community ID of a conversation."""

from __future__ import annotations

from cniscope import flows
from cniscope.analyze import analyze
from cniscope.sources import InputSpec
from tests.paths import DATA


def test_community_id_is_the_specifications() -> None:
    """The example of the Community ID specification (TCP 128.232.110.120:34855 > 66.35.250.204:80), either way
    round; IPv6; and what is no address at all."""
    assert flows.community_id(6, "128.232.110.120", "66.35.250.204", 34855, 80) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert flows.community_id(6, "66.35.250.204", "128.232.110.120", 80, 34855) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert flows.community_id(17, "fd00::1", "fd00::2", 5, 53) == flows.community_id(17, "fd00::2", "fd00::1", 53, 5)
    assert flows.community_id(1, "?", "node3", None, None) == "1:?-node3"


def test_an_arp_conversation_inside_envelopes_has_its_sender_and_target_as_its_leg() -> None:
    """weave carries ARP inside VXLAN: the sightings show no IP address, the conversation still names its ends."""
    report = analyze([InputSpec(str(DATA / "scenarios" / "weave" / "cross-node"))])
    arp = [f for f in report.flows if f.proto == "arp"]
    assert arp
    for flow in arp:
        assert flow.legs and all("?" not in str(a) + str(b) for a, b in flow.legs)
        assert {str(flow.client), str(flow.server)} == {str(e) for e in flow.legs[0]}
