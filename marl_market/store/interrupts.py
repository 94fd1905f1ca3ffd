"""Ctrl-C held back while a write transaction runs, then delivered.

DuckDB checks for signals while it executes: a SIGINT that lands mid-query makes it abandon the
query with its own ``RuntimeError: Query interrupted``, so a Ctrl-C (or the Train page's Stop)
that happened to arrive during a save would surface as a failed write, and a training run
would be marked failed instead of stopped. Writes are short, so the interrupt waits for the
commit (or the rollback) and is then raised as the ``KeyboardInterrupt`` the user asked for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Run the block with SIGINT recorded, not acted on; afterwards hand a recorded SIGINT to
    the handler that was in place (Python's default raises ``KeyboardInterrupt``).

    Signals reach Python's main thread only: elsewhere (a Streamlit page's thread) and where
    SIGINT is ignored, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, None)
            else:  # SIG_DFL: what the process would have done at once
                os.kill(os.getpid(), signal.SIGINT)
