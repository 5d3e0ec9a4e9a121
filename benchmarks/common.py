"""Timing helpers shared by the benchmark scripts.

Rules (these machines are noisy, ±30%): compile apart from steady state; warm up; median and
spread over repeats; compare frameworks by alternating them run by run in one process, so drift
hits both sides alike. Results are rows of plain dicts, written as JSON and Markdown.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nst_jax.kernels.conv import direct_convolutions


def block(x):
    return jax.tree.map(lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, x)


def compile_seconds(jitted, *args) -> tuple[Any, float, dict[str, float]]:
    """Lower + compile ``jitted`` for ``args``; return (compiled, seconds, cost) with XLA FLOPs."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    seconds = time.perf_counter() - t0
    return compiled, seconds, {"flops": nominal_flops(jitted, *args)}


def nominal_flops(jitted, *args, **static) -> float:
    """XLA's FLOP count of ``jitted`` for ``args``, lowered with direct convolutions: the computation
    as written (a Winograd layer, :mod:`nst_jax.kernels.conv`, executes 4x fewer multiplications,
    and counting those would understate the work and the percentage of the matmul peak)."""
    with direct_convolutions():
        cost = jitted.lower(*args, **static).cost_analysis()
    if isinstance(cost, list):  # older jax returns a list of dicts
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def timed_alternating(fns: dict[str, Callable[[], Any]], *, repeats: int, warmup: int = 2,
                      settle: bool = True) -> dict[str, list[float]]:
    """Run each function ``warmup`` times, then ``repeats`` rounds alternating between them.

    With ``settle``, in each round every function runs twice back to back and only the second run is
    timed (for calls of milliseconds to a second; multi-second ones can skip it): PyTorch's
    OpenMP workers busy-wait for a while after a parallel region, so a JAX run started right after a
    PyTorch one shares the two cores with them (one-off timing of a 256 px 64 -> 64 convolution: 17 ms right after a
    PyTorch call, 12 ms after its own), while pausing between runs instead lets both go cold.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if settle and len(fns) > 1:
                fn()  # absorbs the previous function's after-effects
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def summary(samples: list[float]) -> dict[str, float]:
    q = np.quantile(samples, [0.25, 0.75]) if len(samples) > 1 else [samples[0]] * 2
    return {"median_s": statistics.median(samples), "min_s": min(samples), "iqr_s": float(q[1] - q[0]),
            "repeats": len(samples)}


_PEAK_CACHE: dict[str, float] = {}


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Measured f32 matmul throughput of this machine through XLA (GFLOP/s): the roofline we quote."""
    if "jax" in _PEAK_CACHE:
        return _PEAK_CACHE["jax"]
    a = jax.random.normal(jax.random.key(0), (n, n), jax.numpy.float32)
    f = jax.jit(lambda x: x @ x)
    block(f(a))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(f(a))
        times.append(time.perf_counter() - t0)
    _PEAK_CACHE["jax"] = 2 * n**3 / min(times) / 1e9
    return _PEAK_CACHE["jax"]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()], "python": platform.python_version()}


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, default=float))


def markdown_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "| " + " | ".join(title for _, title in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = []
    for row in rows:
        cells = []
        for key, _ in columns:
            v = row.get(key, "")
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body])
