"""Pictures people would rather look at than read: loss curves (contact sheets live in image.py)."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import numpy as np

from nst_jax.params_io import atomic_write


def loss_curve(history: Mapping[str, Sequence[float]], path: str | os.PathLike, *, title: str = "loss",
               x: Sequence[float] | None = None, xlabel: str = "step", log: bool = True) -> None:
    """Plot every series of ``history`` against ``x`` (default 0..n-1) and write a PNG atomically.

    Series that are all zero (e.g. an unused TV term) are skipped; ``log`` uses a log y-axis when
    every plotted value is positive.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    positive = True
    for name, values in history.items():
        values = np.asarray(values, np.float64)
        if values.size == 0 or not np.any(values) or name in ("level", "step"):
            continue
        xs = np.arange(values.size) if x is None else np.asarray(x)[: values.size]
        ax.plot(xs, values, label=name, linewidth=1.2)
        positive &= bool(np.all(values > 0))
    if log and positive:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
