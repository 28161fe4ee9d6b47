"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` for ``subprocess.Popen``: on Linux the child gets SIGTERM when its parent dies.

    Stopping children in order is the parent's job; this covers the parent being killed outright (SIGKILL,
    OOM), which would otherwise leave a Temporal server, API and workers running with nobody to stop them.
    Elsewhere it does nothing.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
