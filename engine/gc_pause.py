"""Pause Python's cyclic garbage collector while a definition is parsed and compiled.

Defining a workflow allocates a few hundred objects per node (the YAML node tree, the plain
data, the validated spec, compiled resolvers) and frees most of them by reference counting: none
of them form cycles. The cyclic collector still counts every allocation, and once a definition's
objects outnumber the rest of the heap it runs full collections over all of them again and
again, which roughly doubles the time to define 10,000 nodes. Pausing it for the duration leaves
one collection of what survives, when it next runs.

The collector is process-wide and definitions may be compiled on several threads at once: a
count of the callers inside keeps it paused until the last one leaves, and it is switched back
on only if it was on when the first one came in.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]

_lock = threading.Lock()
_inside = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off; nested and concurrent uses are safe."""
    global _inside, _was_enabled
    with _lock:
        if _inside == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _was_enabled:
                gc.enable()
