"""What may reach a terminal: text from captures with its control characters escaped.

Interface, node, DNS and host names come from the capture, and a crafted one
could carry ESC, OSC or BEL sequences that retitle or clear the terminal. Every
terminal output (the text report, the packet table, warnings, errors) passes
through `printable`, which shows them as Python would (`\\x1b`).
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the invisible format characters that reorder or hide text
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_LINE_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, lines: bool = False) -> str:
    """`text` with every control character escaped; with `lines`, newlines and tabs are kept."""
    return (_LINE_CONTROL if lines else CONTROL).sub(_escaped, text)
