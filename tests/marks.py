"""The one mark for tests that need root (network namespaces, iptables, tcpdump on veths).

`-m "not root"` selects every other test; without root, or without the tools, the root conftest skips
the marked tests and says which is missing.
"""

from __future__ import annotations

import pytest

needs_root = pytest.mark.root
