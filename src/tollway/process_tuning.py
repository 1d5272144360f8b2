"""How a serving process sets up its memory management: the cyclic GC and glibc's malloc.

Both are process-wide, so they are set once, when a worker starts serving
(:meth:`tollway.gateway.Gateway.start`), never at import.

**malloc.**  A relayed agent request allocates several buffers of its prompt's size (the
body read from the client, the parsed strings, the upstream body) and frees them when it
ends.  With glibc's defaults each such free can give the pages back to the kernel: a buffer
above the mmap threshold (128 KiB at first, then raised by glibc to the size of the last
one freed, so a buffer of exactly that size is mapped again) is unmapped, and a free top of
the heap beyond the trim threshold is trimmed.  The next request then faults every page in
again, zeroed by the kernel.  Measured with ../shared/bench/load.py (200 KB prompts, 8
connections, two gateways side by side on this 2-core machine, their order rotated): 24 to
34 minor page faults per request, none with both thresholds set to 32 MiB, and 3 to 7 % less
gateway CPU per request (chat 0.982 -> 0.953 ms, Messages translated to chat 1.132 -> 1.055
ms).  Setting only the trim threshold is worse than the defaults: it also fixes the mmap
threshold at its 128 KiB start, so every large buffer is mapped afresh.  Thresholds of 4 to
16 MiB left 18 to 35 faults per request.

The cost is memory the process keeps: up to ``keep`` bytes of freed heap top stay resident
for the next request instead of going back to the kernel (buffers larger than ``keep`` are
still mapped and unmapped on their own).  Peak RSS under 64 connections of 200 KB prompts
did not tell the two apart: 201 against 186 MB with glibc's defaults in one sequence of
loads, 186 against 200 MB in another.  What it did keep resident was the slack of orjson's
output buffers (2 MB for a body with one 200 KB prompt), until :mod:`tollway.json_body`
gave upstream bodies allocations of their own length: 210 -> 123 MB at 64 connections.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os

log = logging.getLogger("tollway.server")

# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2: 32 MiB on 64-bit systems.
MALLOC_KEEP_MAX = 32 * 1024 * 1024


def is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):  # the name is unknown off glibc (musl, macOS)
        return False


def keep_freed_memory(keep: int) -> bool:
    """Have glibc's malloc keep up to ``keep`` bytes of freed memory for reuse (both
    thresholds, see the module's text); False where that is not possible (not glibc, or
    ``keep`` is 0, which leaves glibc's defaults)."""
    if keep <= 0 or not is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    keep = min(keep, MALLOC_KEEP_MAX)
    # The mmap threshold first: set alone, the trim threshold would pin it at 128 KiB.
    return bool(mallopt(_M_MMAP_THRESHOLD, keep)) and bool(mallopt(_M_TRIM_THRESHOLD, keep))


def tune_for_serving(malloc_keep_bytes: int) -> bool:
    """The GC and malloc settings of a serving process; whether malloc's were applied."""
    # Everything built so far (modules, catalog, config, engine) lives as long as the
    # process: move it out of the collector's sight, so the cyclic GC's full passes
    # only walk per-request garbage.  Profiles showed full collections, triggered by
    # request allocations, costing ~10% of a proxied request.
    gc.collect()
    gc.freeze()
    # Requests allocate many short-lived objects and few cycles: collect the young
    # generation less often (the default 700 made it run several times per request).
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 20_000), gen1, gen2)
    kept = keep_freed_memory(malloc_keep_bytes)
    if malloc_keep_bytes > 0 and not kept:
        # Not glibc (musl, macOS), or its mallopt refused: glibc's defaults stay.
        log.info("server.malloc_keep_bytes: not applied (needs glibc's mallopt); the C library's defaults stay")
    return kept
