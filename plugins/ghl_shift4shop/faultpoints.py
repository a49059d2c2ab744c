"""Named points where a test can kill the worker (SIGKILL, no clean-up) to prove crash safety.

``GHL_S4S_KILL_AT=<point>`` kills the process the first time that point is reached. Unset (always,
outside tests), a checkpoint is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

# Where customers are written, and where CRM tickets and messages are (only with tickets on).
POINTS = ("after_extract", "after_validate", "mid_create", "mid_load", "after_load")
CRM_POINTS = ("mid_crm_create", "mid_crm")


def checkpoint(name: str) -> None:
    if os.environ.get("GHL_S4S_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
