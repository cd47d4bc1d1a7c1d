"""flows: the Community ID of a conversation, and the flows it makes as the dataclasses would."""

from __future__ import annotations

import dataclasses

import pytest

from cniscope import flows
from cniscope.results import Endpoint, Flow, FlowState, Journey, Proto


def test_community_id_is_the_specifications() -> None:
    """The example of the Community ID specification (TCP 128.232.110.120:34855 > 66.35.250.204:80), either way
    round; IPv6; and what is no address at all."""
    assert flows.community_id(6, "128.232.110.120", "66.35.250.204", 34855, 80) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert flows.community_id(6, "66.35.250.204", "128.232.110.120", 80, 34855) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    assert flows.community_id(17, "fd00::1", "fd00::2", 5, 53) == flows.community_id(17, "fd00::2", "fd00::1", 53, 5)
    assert flows.community_id(1, "?", "node3", None, None) == "1:?-node3"


def test_made_is_what_the_dataclass_makes() -> None:
    client, server = Endpoint("10.0.0.1", 40000), Endpoint("10.96.0.10", 53)
    values = (7, "1:key", Proto.UDP, client, server, ((client, server),), (3, 4), 2, 20, 1, 2, FlowState.ANSWERED,
              {"syn_to_synack_ns": 5}, 1, 0, 0, (), ("DNS: 1 queries, 1 answered",))
    made, init = flows._made(Flow, *values), Flow(*values)
    assert made == init and vars(made) == vars(init)
    assert list(vars(made)) == [f.name for f in dataclasses.fields(Flow)]
    assert flows._made(Journey, 1, 7, "UDP", (), None) == Journey(1, 7, "UDP", ())
    with pytest.raises(ValueError):
        flows._made(Journey, 1, 7, "UDP", ())  # every field, or none
