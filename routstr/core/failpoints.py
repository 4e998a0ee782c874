"""Named crash points for the crash tests: ``ROUTSTR_FAILPOINT=<name>`` kills the process there.

The crash tests start a real node with a failpoint armed, let it die with SIGKILL at that line,
restart it, and check that nothing was lost. Unarmed (always, in production) a point costs one
string comparison.
"""

from __future__ import annotations

import os
import signal

_ARMED = os.environ.get("ROUTSTR_FAILPOINT", "")


def hit(name: str) -> None:
    if _ARMED and _ARMED == name:
        os.kill(os.getpid(), signal.SIGKILL)
