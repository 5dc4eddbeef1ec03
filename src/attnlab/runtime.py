"""Process-level settings that make CPU training faster without changing any result."""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Stop glibc from handing big tensor buffers back to the OS after every step.

    By default glibc serves large allocations with mmap and unmaps them on free, so every
    training step page-faults its activations in again. Raising the mmap and trim thresholds
    keeps freed memory in the heap for reuse: 13-15% more tokens/s for a small Transformer on
    this 2-core machine (page faults down 3x). Memory peaks are unchanged; it is simply reused.
    """
    libc = _glibc()
    if libc is None:
        return False
    ok = (
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1
        and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31) == 1
    )
    if not ok:
        log.debug("mallopt not available; keeping the allocator defaults")
    return ok


def release_freed_memory() -> bool:
    """Hand the heap's free pages back to the OS (glibc's ``malloc_trim(0)``); live memory is
    untouched. It lowers the resident size for a while, for instance before a long evaluation,
    but training faults the same pages back in: released every 50 updates, a Transformer run
    grew back from 1.5-1.7 to 2.5-3.6 GB each time, about 0.7 s per release
    (``outputs/measured/2026-12-07_s26_zen3``). What bounded its growth was rounding packed row
    counts (``models.attention.rounded_rows``). Returns whether memory was released."""
    libc = _glibc()
    trim = None if libc is None else getattr(libc, "malloc_trim", None)
    return bool(trim(0)) if trim is not None else False


def _glibc() -> ctypes.CDLL | None:
    """The C library on Linux (glibc's allocator knobs); ``None`` elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None
