"""A run in the caller's process leaves the caller's process as it found it: its random
generators (Python's, numpy's global one, torch's on the CPU and on every initialised
GPU), its environment (Lightning's ``seed_everything`` sets ``PL_GLOBAL_SEED`` and
``PL_SEED_WORKERS``) and its SIGINT/SIGTERM handlers (Lightning ignores SIGINT after a
Ctrl-C, and its signal connector installs its own).

Example:
    >>> import random
    >>> state = random.getstate()
    >>> with caller_state_kept():
    ...     random.seed(1)
    >>> random.getstate() == state
    True
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
from collections.abc import Iterator

__all__ = ["caller_state_kept"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def caller_state_kept() -> Iterator[None]:
    """Run the block, then put back the random generators, the environment and the
    signal handlers as they were before it (also when it raises)."""
    import numpy as np
    import torch

    python, numpy_state = random.getstate(), np.random.get_state()
    environment = dict(os.environ)
    main_thread = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in _SIGNALS} if main_thread else {}
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)
        for key in set(os.environ) - set(environment):
            del os.environ[key]
        os.environ.update(environment)
        for number, handler in handlers.items():
            if handler is not None:  # None: a handler installed outside Python
                signal.signal(number, handler)
