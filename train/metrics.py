"""Training metrics: JSONL lines, a loss-curve PNG, optional TensorBoard, a progress bar.

``<workdir>/metrics.jsonl`` gets one JSON object per logged step: the step, every loss term
(averaged over the steps since the previous line), the learning rate, seconds per step and
images per second. On resume, lines beyond the restored step are dropped so the file always
describes exactly one training history.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from nst_jax.params_io import atomic_write


class MetricsWriter:
    """Writes metrics on process 0 only; every method is a no-op elsewhere."""

    def __init__(self, workdir: str | os.PathLike, *, resume_step: int, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(workdir) / "metrics.jsonl"
        self.plot_path = Path(workdir) / "loss.png"
        self.history: list[dict[str, Any]] = []
        self._tb = None
        if not enabled:
            return
        if self.path.exists():
            # Keep the history up to the checkpoint we resumed from; later lines belong to lost steps.
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut off by a kill
                if row.get("step", math.inf) <= resume_step:
                    self.history.append(row)
            atomic_write(self.path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in self.history).encode()))
        self._tb = _tensorboard_writer(Path(workdir) / "tensorboard")

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.history.append(row)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, row["step"])
            self._tb.flush()

    def plot(self, title: str = "") -> Path | None:
        """Write the loss curves (every ``loss*`` key, log scale) to ``loss.png``."""
        if not self.enabled or not self.history:
            return None
        import matplotlib  # pylint: disable=import-outside-toplevel

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

        keys = sorted({k for row in self.history for k in row if k.startswith("loss")})
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        for key in keys:
            pts = [(r["step"], r[key]) for r in self.history if key in r and r[key] > 0]
            if pts:
                ax.plot(*zip(*pts), label=key, linewidth=2.0 if key == "loss" else 1.0)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (weighted terms)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.lines:  # log scale shows positive values only
            ax.legend(fontsize=8)
        fig.tight_layout()

        def write(f):
            fig.savefig(f, format="png")

        atomic_write(self.plot_path, write)
        plt.close(fig)
        return self.plot_path

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _tensorboard_writer(logdir: Path):
    """A tensorboardX SummaryWriter when tensorboardX is installed; otherwise None (silently)."""
    try:
        from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return SummaryWriter(str(logdir))


def progress_bar(*, initial: int, total: int, enabled: bool):
    """A tqdm bar with ETA, or a stand-in with the same methods when disabled."""
    if enabled:
        from tqdm.auto import tqdm  # pylint: disable=import-outside-toplevel

        return tqdm(initial=initial, total=total, unit="step", dynamic_ncols=True, smoothing=0.1)
    return _NoBar()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def write(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass
