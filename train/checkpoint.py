"""Resumable training checkpoints: a thin wrapper over orbax's ``CheckpointManager``.

This is the only module that imports orbax (its API moves; keep the blast radius small).

Layout: ``<workdir>/checkpoints/<step>/{state,meta}``. ``state`` is the train state pytree
``{"params", "opt", "step"}`` (never the frozen VGG weights); ``meta`` is JSON (config, elapsed
training time, bad-file counts).

Atomicity: orbax writes a step into ``<step>.orbax-checkpoint-tmp-*`` and renames it only after every
file is written, so a run killed mid-save leaves a temporary directory that is never listed as a
step, and the previous checkpoint is untouched. On top of that, :meth:`Checkpointer.restore` falls
back to the next older step if the newest one cannot be read (e.g. a step directory damaged by hand
or a full disk) and moves the unreadable one aside so a later save of that step can succeed; when no
step can be read (typically a changed model or optimizer), it stops with a clear error instead.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from nst_jax.errors import CheckpointError

log = logging.getLogger(__name__)


class Checkpointer:
    """Save/restore ``(state, meta)`` under ``directory``; keeps the newest ``keep`` steps."""

    def __init__(self, directory: str | os.PathLike, *, keep: int = 3, use_async: bool = True):
        self.directory = Path(directory).resolve()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=use_async)
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Start saving ``state`` at ``step`` (asynchronously; see :meth:`wait`). Idempotent per step."""
        if step in self.manager.all_steps():
            return
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)

    def wait(self) -> None:
        """Block until pending saves are committed (before exiting or reading them back)."""
        self.manager.wait_until_finished()

    def restore(self, like: Any) -> tuple[Any, dict[str, Any], int] | None:
        """Newest readable checkpoint as ``(state, meta, step)``, placed like ``like``; None if none.

        ``like`` is a pytree of arrays (or ShapeDtypeStructs) whose shapes, dtypes and shardings the
        restored state takes. Newer steps that cannot be read while an older one can are damaged:
        they are moved aside (renamed ``<step>.unreadable-<time>``, never deleted). If no step can be
        read, nothing is moved and CheckpointError explains (usually a changed model/optimizer config).
        """
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)), like)
        failed: list[tuple[int, str]] = []
        for step in reversed(self.steps()):
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
            except Exception as err:  # noqa: BLE001 - any failure means this step is unusable
                failed.append((step, f"{type(err).__name__}: {err}"))
                continue
            for bad_step, reason in failed:
                log.warning("checkpoint step %d in %s is unreadable (%s); moved aside, resuming from step %d",
                            bad_step, self.directory, reason[:300], step)
                self._move_aside(bad_step)
            return restored.state, dict(restored.meta), step
        if failed:
            step, reason = failed[0]
            raise CheckpointError(
                f"no checkpoint in {self.directory} can be restored into the current model/optimizer "
                f"(newest: step {step}: {reason[:500]}). Train with the configuration that wrote them, "
                "or use another --workdir.")
        return None

    def _move_aside(self, step: int) -> None:
        if jax.process_index() != 0:
            return
        path = self.directory / str(step)
        if path.exists():
            path.rename(self.directory / f"{step}.unreadable-{int(time.time())}")
        self.manager.reload()

    def close(self) -> None:
        self.wait()
        self.manager.close()
