"""Host memory reuse for XLA:CPU: :func:`reuse_freed_memory`.

XLA:CPU allocates every executable's temporary arena (all intermediate activations of a network:
~100-170 MB for AdaIN at 256 px) with ``posix_memalign`` on each call and frees it afterwards. On
glibc, an allocation that large made from one of XLA's worker threads cannot fit that thread's malloc
arena (64 MB heaps), so glibc maps fresh pages for it and unmaps them on free: every call then
page-faults its whole working set again, ~67,000 faults (265 MB) per AdaIN call at 256 px, a third
of its time. PyTorch's eager allocations hit the same path (~37,000 faults per AdaIN call at 256 px,
~330,000 at 512 px).

:func:`reuse_freed_memory` tells glibc to serve every thread from the main heap, never to ``mmap``
single blocks, and to keep freed memory instead of returning it to the operating system, so the
second and later calls of an executable reuse warm pages (AdaIN at 256 px: 265 MB -> 22 MB of faults
per call, 208 -> 152 ms; one-off timings, ``benchmarks/runtime.py`` measures the pipelines). The
cost: the process keeps its peak heap size until it exits, and freed blocks can fragment.

It changes process-global allocator settings, so importing :mod:`nst_jax` does not call it: the
``nst-jax`` command, ``train/``, ``benchmarks/`` and the test suite do, and a script opts in with one
call made before its first JAX computation (glibc gives each thread its malloc arena on its first
allocation). The same settings from the environment, for any process::

    GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647
"""

from __future__ import annotations

import ctypes
import sys

# mallopt(3) parameters (glibc malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))
_applied: bool | None = None


def reuse_freed_memory() -> bool:
    """Keep freed host memory for reuse (module docstring). Idempotent; returns whether the settings
    are in effect: False where the C library has no glibc ``mallopt`` (macOS, Windows, musl), where
    nothing changes. Call it before the first JAX computation (importing JAX or nst_jax runs none; a
    test keeps it so): a worker thread takes its malloc arena on its first allocation and keeps it."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _applied = all(mallopt(param, value) == 1 for param, value in _SETTINGS)
    return _applied
