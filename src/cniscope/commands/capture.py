"""`cniscope capture`: the capture package's command, its `--via lab:NAME` resolved by the lab.

The lab records through the capture package, so the capture package never imports the lab; the two meet here,
above both.
"""

from __future__ import annotations

from cniscope.capture.cli import command
from cniscope.lab.record import lab_transport

capture_command = command(lab_transport)
