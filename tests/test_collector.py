"""collector.paused: the cycle collector off for a block, what the block left alive aged, nothing lost."""

from __future__ import annotations

import gc
import weakref

from cniscope import collector


class _Node:
    partner: _Node


def test_what_a_pause_leaves_alive_goes_to_the_oldest_generation() -> None:
    assert gc.isenabled()
    thresholds = gc.get_threshold()
    gc.set_threshold(1 << 30)  # no collection of its own moves anything while this looks
    try:
        with collector.paused():
            assert not gc.isenabled()
            made = [[index] for index in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() == 0
        young = {id(x) for x in gc.get_objects(generation=0)}
        assert not any(id(x) in young for x in made)  # the next young collection does not go through them again
        oldest = {id(x) for x in gc.get_objects(generation=2)}
        assert all(id(x) in oldest for x in made)
    finally:
        gc.set_threshold(*thresholds)


def test_cycles_made_in_a_pause_are_still_collected() -> None:
    with collector.paused():
        node = _Node()
        node.partner = node
        ref = weakref.ref(node)
        del node
    assert ref() is not None  # paused: the cycle waits
    gc.collect()
    assert ref() is None


def test_a_pause_leaves_the_collector_as_it_found_it() -> None:
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    gc.freeze()  # what someone froze stays frozen
    try:
        frozen = gc.get_freeze_count()
        with collector.paused():
            [[1] for _ in range(10)]
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()
