"""One small file format for every parameter set nst_jax loads: VGG19 and exported models.

A ``.npz`` whose entries are the pytree's leaves under ``/``-joined paths (``conv1_1/kernel``), plus
``__card__``: a JSON document (provenance, encoder configuration, training card...). Writes are
atomic (temporary file + rename), so an interrupted write never leaves a half file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nst_jax.errors import CheckpointError

CARD_KEY = "__card__"


class ParamsFileError(CheckpointError):
    """A parameter file is missing, truncated, corrupt or of the wrong kind."""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        if "/" in key:
            raise ValueError(f"parameter names may not contain '/': {key!r}")
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "/"))
        else:
            flat[path] = np.asarray(value)
    return flat


def unflatten(flat: dict[str, np.ndarray]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


# An int8-quantised array is stored as a dict with these two leaves (see quantize_int8).
Q_VALUES, Q_SCALE = "__int8__", "__scale__"


def quantize_int8(tree: dict[str, Any], *, min_size: int = 4096) -> dict[str, Any]:
    """Symmetric per-output-channel int8 quantisation of the large float arrays of ``tree``.

    An array with at least ``min_size`` elements and 2+ dimensions (a conv kernel, HWIO) becomes
    ``{Q_VALUES: int8, Q_SCALE: float32 per last-axis channel}`` with ``w ~ q * scale`` and
    ``scale = max|w| / 127`` per output channel (error <= scale / 2); smaller arrays (biases, norms)
    are kept as float16. A quarter of float32, half of float16, for the shipped decoders.
    """
    def convert(value):
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        a = np.asarray(value)
        if not np.issubdtype(a.dtype, np.floating):
            return a
        if a.ndim < 2 or a.size < min_size:
            return a.astype(np.float16)
        a = a.astype(np.float32)
        peak = np.max(np.abs(a.reshape(-1, a.shape[-1])), axis=0)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        return {Q_VALUES: np.clip(np.round(a / scale), -127, 127).astype(np.int8), Q_SCALE: scale}

    return convert(tree)


def dequantize(tree: dict[str, Any], dtype=np.float32) -> dict[str, Any]:
    """Inverse of :func:`quantize_int8` (and float16 -> ``dtype``); other leaves are unchanged."""
    def convert(value):
        if isinstance(value, dict):
            if set(value) == {Q_VALUES, Q_SCALE}:
                return (value[Q_VALUES].astype(dtype) * value[Q_SCALE].astype(dtype)).astype(dtype)
            return {k: convert(v) for k, v in value.items()}
        a = np.asarray(value)
        return a.astype(dtype) if a.dtype == np.float16 else a

    return convert(tree)


def tree_digest(tree: dict[str, Any]) -> str:
    """sha256 over names, dtypes, shapes and bytes of every leaf (independent of file container)."""
    h = hashlib.sha256()
    for path, value in sorted(flatten(tree).items()):
        value = np.ascontiguousarray(value)
        h.update(f"{path}|{value.dtype.str}|{value.shape}|".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save(path: str | os.PathLike, tree: dict[str, Any], card: dict[str, Any] | None = None) -> Path:
    """Write ``tree`` (nested dicts of arrays) and its ``card`` to ``path`` atomically."""
    flat = flatten(tree)
    card = dict(card or {})
    card.setdefault("digest", tree_digest(tree))
    flat[CARD_KEY] = np.frombuffer(json.dumps(card, sort_keys=True).encode(), dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez_compressed(f, **flat))


def load(path: str | os.PathLike, *, verify: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a parameter file; return ``(tree, card)``. Raises ParamsFileError with a clear reason."""
    path = Path(path)
    if not path.is_file():
        raise ParamsFileError(f"parameter file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            flat = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ParamsFileError(f"{path} is truncated or not an nst_jax parameter file ({err})") from err
    if CARD_KEY not in flat:
        raise ParamsFileError(f"{path} has no {CARD_KEY} entry: not an nst_jax parameter file")
    card = json.loads(flat.pop(CARD_KEY).tobytes().decode())
    tree = unflatten(flat)
    if verify and "digest" in card and tree_digest(tree) != card["digest"]:
        raise ParamsFileError(f"{path} is corrupt: its contents do not match the digest recorded in it")
    return tree, card
