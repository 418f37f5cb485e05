"""Keep the process's memory flat while pages stream through the fetch threads.

The Python heap of a listing stays constant (records are streamed, never collected),
but glibc's malloc lets the arenas of the fetch threads grow with the pages they parse
and rarely gives the memory back: peak RSS then grew ~0.7 MiB per 1,000 keys (see
benchmarks/README.md). A fixed trim threshold — what MALLOC_TRIM_THRESHOLD_=131072
does from the environment — returns freed memory to the OS, and keeps RSS flat.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter number (malloc.h)
TRIM_THRESHOLD_BYTES = 128 * 1024


def limit_heap_growth() -> bool:
    """Ask glibc to trim freed memory past 128 KiB; False where that does not apply."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, say): nothing to tune
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
