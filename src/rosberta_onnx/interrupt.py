"""SIGTERM handled like Ctrl-C, for the commands that write large temporary files (export, demo, benchmarks)."""

from __future__ import annotations

import signal
import threading

__all__ = ["end_like_ctrl_c_on_sigterm"]


def end_like_ctrl_c_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a CI or ``timeout`` limit) end the process the way Ctrl-C does: ``finally`` blocks
    and exit handlers run, so work folders (GBs at full size: a partial export, quantised models) are removed
    instead of left behind. A no-op off the main thread, where Python cannot set handlers."""

    def stop(signum, frame):
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
