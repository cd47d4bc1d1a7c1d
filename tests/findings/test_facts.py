"""Facts derived once for every detector."""

from __future__ import annotations

import numpy as np

from cniscope.findings.facts import _partners


def test_partners_find_the_first_reply_way_sighting_from_each_position_on() -> None:
    """For each sighting, the first position at or after it going the other way between its two addresses (itself
    when source and destination are one address; the length when none): the definition, checked by brute force."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(0, 30))
        src = rng.integers(0, 4, n).astype(np.uint32)
        dst = rng.integers(0, 4, n).astype(np.uint32)
        if trial % 2:
            src, dst = src + np.uint32(2**32 - 4), dst + np.uint32(2**32 - 4)  # the top of the address space too
        expected = [next((p for p in range(i, n) if (src[p], dst[p]) == (dst[i], src[i])), n) for i in range(n)]
        assert _partners(src, dst).tolist() == expected
