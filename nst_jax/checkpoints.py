"""Inference checkpoints of the learned models (decoders, attention modules).

A checkpoint is an :mod:`nst_jax.params_io` file written by ``python -m train.<method> --export``:
the module parameters plus a card that records, among the training facts, the **encoder
configuration** the model was trained against (``{"padding": ..., "pool": ...}``) and the module's
hyper-parameters. The shipped ones live in ``weights/`` (package ``nst_jax.weights``) under
``<name>.npz``; a user can pass any other file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nst_jax import params_io
from nst_jax.errors import CheckpointError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

# name -> the command that trains and exports it (shown when the file is missing).
TRAIN_COMMANDS = {
    "adain": "python -m train.adain --preset cpu --export weights/adain.npz",
    "sanet": "python -m train.sanet --preset cpu --export weights/sanet.npz",
    "sanet_r41": "python -m train.sanet --preset cpu --multi_level false --export weights/sanet_r41.npz",
    "style_swap": "python -m train.style_swap --preset cpu --export weights/style_swap.npz",
    "avatar": "python -m train.avatar --preset cpu --export weights/avatar.npz",
    "aams": "python -m train.aams --preset cpu --export weights/aams.npz",
    **{f"wct_relu{k}_1": f"python -m train.wct --level {k} --preset cpu --export weights/wct_relu{k}_1.npz"
       for k in range(1, 6)},
    **{f"cbam_{d}": f"python -m train.cbam --depth {d} --preset cpu --export weights/cbam_{d}.npz"
       for d in ("conv3_1", "conv4_1", "conv5_1")},
}


def _weights_dir() -> Path:
    try:  # installed wheel: nst_jax.weights is a real package directory
        import nst_jax.weights as pkg

        return Path(pkg.__file__).resolve().parent
    except ImportError:  # pragma: no cover - a bare source tree
        return WEIGHTS_DIR


def shipped_path(name: str) -> Path:
    return _weights_dir() / f"{name}.npz"


def load(name: str, *, path: str | os.PathLike | None = None,
         encoder: dict[str, Any] | None = None,
         modules: dict[str, dict[str, Any]] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load checkpoint ``name`` (or the file ``path``); check it was trained for ``encoder``.

    ``modules`` maps a parameter key of the card's ``modules`` entry (e.g. ``"autoencoder"``) to
    constructor settings the caller will build that module with (e.g. ``{"padding": "reflect"}``);
    a card that records another value is an error (a card without the entry is not checked).

    Raises:
      CheckpointError: missing (naming the training command), corrupt, of another kind, or trained
        with another encoder or module configuration.
    """
    file = Path(path) if path else shipped_path(name)
    if not file.is_file():
        command = TRAIN_COMMANDS.get(name, f"python -m train.{name.split('_')[0]} --export {file}")
        raise CheckpointError(f"no checkpoint for {name!r} at {file}. Train and export one with:\n    {command}")
    params, card = params_io.load(file)
    # Shipped checkpoints are stored as int8 kernels + float16 biases; every model computes in float32.
    params = params_io.dequantize(params)
    kind = card.get("name") or card.get("method")
    if kind is not None and path is None and not name.startswith(kind):
        raise CheckpointError(f"{file} holds a {kind!r} checkpoint, not {name!r}")
    if encoder is not None:
        trained = card.get("encoder", {})
        mismatched = {k: (trained.get(k), v) for k, v in encoder.items() if trained.get(k) != v}
        if mismatched:
            detail = ", ".join(f"{k}: trained with {t!r}, asked for {v!r}" for k, (t, v) in mismatched.items())
            raise CheckpointError(f"{file} was trained for another encoder configuration ({detail})")
    for key, expected in (modules or {}).items():
        built = card.get("modules", {}).get(key, {}).get("kwargs", {})
        mismatched = {k: (built[k], v) for k, v in expected.items() if k in built and built[k] != v}
        if mismatched:
            detail = ", ".join(f"{k}: trained with {t!r}, this method runs {v!r}" for k, (t, v) in mismatched.items())
            raise CheckpointError(f"{file}: its {key!r} was trained with another configuration ({detail}); "
                                  "retrain it, or fine-tune it from this file with the setting changed")
    return params, card
