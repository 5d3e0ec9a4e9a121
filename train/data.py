"""Host input pipeline: image folders (or TFDS) -> uint8 crops -> sharded global batches.

Determinism: batch ``step`` is a pure function of ``(seed, step)``. Example ``g = step * B + j`` of the
global batch takes item ``perm_e[g mod N]`` where ``perm_e`` is a seeded permutation of the ``N`` files
for epoch ``e = g // N``, and its crop offset and flip come from ``numpy.random.default_rng((seed,
stream, g))``. So a resumed run sees exactly the batches an uninterrupted run would, no matter how
many threads decoded them or in which order they finished.

Bad files: an image that cannot be decoded (truncated JPEG, not an image, absurd shape) is replaced by
the next item of the same permutation and counted (``Loader.bad``); a folder in which nothing can be
read is an error. The replacement is deterministic, so determinism survives bad files too.

Multi-host: every process builds only its rows of the global batch (rows ``[p * B/P, (p+1) * B/P)``)
and :func:`to_global` assembles the sharded ``jax.Array`` with
``jax.make_array_from_process_local_data``. Batches are uint8 (4x less host-to-device traffic); the
train step converts them to float32 in [0, 1].
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import math
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps

from nst_jax import image as nst_image
from nst_jax.errors import InputError

# Stream ids keep the content and style permutations / crops independent of each other.
STREAMS = {"content": 1, "style": 2}
MAX_ASPECT = 8.0  # wider panoramas would turn into huge arrays after the short-side resize


class BadImage(Exception):
    """An item that cannot be used for training (reason in the message)."""


class FolderSource:
    """Every image file under ``folder`` (recursive, sorted): WikiArt keeps styles in subfolders."""

    def __init__(self, folder: str | os.PathLike):
        self.root = Path(folder)
        if not self.root.is_dir():
            raise InputError(f"training image folder not found: {self.root}")
        self.files = sorted(p for p in self.root.rglob("*")
                            if p.suffix.lower() in nst_image.IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise InputError(f"no image files ({', '.join(nst_image.IMAGE_SUFFIXES)}) under {self.root}")
        self.name = str(self.root)

    def __len__(self) -> int:
        return len(self.files)

    def describe(self, index: int) -> str:
        return str(self.files[index])

    def load(self, index: int, short_side: int) -> np.ndarray:
        """Decode item ``index`` as uint8 RGB (H, W, 3) with its short side resized to ``short_side``."""
        path = self.files[index]
        try:
            with Image.open(path) as img:
                w, h = img.size
                _check_shape(w, h)
                # JPEG draft mode decodes directly at a reduced scale (>= the requested size): much
                # faster for large photos, and deterministic.
                scale = short_side / min(w, h)
                if scale < 1:
                    img.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
                img.load()
                return _finish(img, short_side)
        except BadImage:
            raise
        except Exception as err:  # noqa: BLE001 - any decoder failure means "skip this file"
            raise BadImage(f"{path}: {type(err).__name__}: {err}") from err


class TFDSSource:
    """``tfds:NAME[:SPLIT]`` as a random-access TFDS data source (needs prepared ArrayRecord data).

    Each record's ``image`` feature (uint8 HWC) is used; labels are ignored.
    """

    def __init__(self, spec: str):
        name, _, split = spec[len("tfds:"):].partition(":")
        try:
            import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
        except ImportError as err:
            raise InputError(f"{spec}: tensorflow-datasets is not installed (pip install 'nst_jax[tfds]')") from err
        try:
            self.records = tfds.data_source(name, split=split or "train")
        except Exception as err:  # noqa: BLE001 - tfds raises many types; all mean "not available"
            raise InputError(f"{spec}: cannot open TFDS dataset {name!r} split {split or 'train'!r} "
                             f"({type(err).__name__}: {err})") from err
        if len(self.records) == 0:
            raise InputError(f"{spec}: the dataset is empty")
        self.name = spec

    def __len__(self) -> int:
        return len(self.records)

    def describe(self, index: int) -> str:
        return f"{self.name}[{index}]"

    def load(self, index: int, short_side: int) -> np.ndarray:
        try:
            record = self.records[index]
            arr = np.asarray(record["image"] if isinstance(record, dict) else record)
            if arr.ndim == 2:
                arr = arr[..., None]
            if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
                raise BadImage(f"{self.describe(index)}: image of shape {arr.shape}")
            _check_shape(arr.shape[1], arr.shape[0])
            arr = arr[..., :3] if arr.shape[-1] != 1 else np.repeat(arr, 3, axis=-1)
            return _finish(Image.fromarray(arr.astype(np.uint8)), short_side)
        except BadImage:
            raise
        except Exception as err:  # noqa: BLE001
            raise BadImage(f"{self.describe(index)}: {type(err).__name__}: {err}") from err


def _check_shape(w: int, h: int) -> None:
    if min(w, h) < nst_image.MIN_SIDE:
        raise BadImage(f"{w}x{h} px is too small")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise BadImage(f"{w}x{h} px: aspect ratio above {MAX_ASPECT}")


def _finish(img: Image.Image, short_side: int) -> np.ndarray:
    """EXIF orientation, RGB conversion (alpha composited on white), short side -> ``short_side``."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    if img.mode.startswith("I") or img.mode == "F":
        # 16/32-bit and float images: let the library's loader scale them properly.
        img = Image.fromarray(nst_image.to_uint8(nst_image._to_rgb_float(img, "")))  # pylint: disable=protected-access
    img = img.convert("RGB")
    w, h = img.size
    scale = short_side / min(w, h)
    size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
    if size != (w, h):
        img = img.resize(size, Image.Resampling.BILINEAR)  # PIL's bilinear antialiases when shrinking
    return np.asarray(img, np.uint8)


def open_source(spec: str) -> FolderSource | TFDSSource:
    """A folder path or ``tfds:NAME[:SPLIT]``."""
    return TFDSSource(spec) if spec.startswith("tfds:") else FolderSource(spec)


class Loader:
    """Deterministic, prefetching batches of random crops from one or more sources.

    Args:
      sources: e.g. ``{"content": FolderSource(...), "style": FolderSource(...)}``.
      batch_size: the GLOBAL batch size; this process builds rows ``[lo, hi)`` of it.
      resize, crop, flip: short side resize, square random crop, random horizontal flip.
      process_index, process_count: which rows this host owns (``jax.process_index()`` ...).
    """

    def __init__(self, sources: dict[str, Any], *, batch_size: int, resize: int, crop: int, flip: bool,
                 seed: int, workers: int = 4, prefetch: int = 4, process_index: int = 0, process_count: int = 1):
        if batch_size % process_count:
            raise ValueError(f"global batch {batch_size} is not divisible by {process_count} processes")
        self.sources = sources
        self.batch_size, self.resize, self.crop, self.flip, self.seed = batch_size, resize, crop, flip, seed
        per_process = batch_size // process_count
        self.rows = range(process_index * per_process, (process_index + 1) * per_process)
        self.workers, self.prefetch = workers, prefetch
        self.bad: dict[str, dict[str, str]] = {name: {} for name in sources}  # name -> {file: reason}
        self._lock = threading.Lock()
        # ImageFile.LOAD_TRUNCATED_IMAGES stays False: a truncated JPEG is a bad file, not grey pixels.
        ImageFile.LOAD_TRUNCATED_IMAGES = False

    @functools.lru_cache(maxsize=8)  # noqa: B019 - a handful of epochs' permutations, per loader
    def _permutation(self, stream: int, epoch: int) -> np.ndarray:
        n = len(self.sources[_stream_name(stream)])
        return np.random.default_rng((self.seed, stream, epoch)).permutation(n)

    def example(self, name: str, g: int) -> np.ndarray:
        """Global example ``g`` of source ``name``: a uint8 (crop, crop, 3) array."""
        source, stream = self.sources[name], STREAMS[name]
        n = len(source)
        epoch, pos = divmod(g, n)
        perm = self._permutation(stream, epoch)
        for k in range(n):  # deterministic replacement: the next item of the same permutation
            index = int(perm[(pos + k) % n])
            try:
                arr = source.load(index, self.resize)
                break
            except BadImage as err:
                with self._lock:
                    self.bad[name][source.describe(index)] = str(err)
        else:
            raise InputError(f"no readable image in {source.name} ({n} files tried)")
        rng = np.random.default_rng((self.seed, stream, g))
        h, w = arr.shape[:2]
        top, left = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        out = arr[top:top + self.crop, left:left + self.crop]
        if self.flip and rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """This process's rows of global batch ``step``: ``{name: uint8 (rows, crop, crop, 3)}``."""
        return {name: np.stack([self.example(name, step * self.batch_size + j) for j in self.rows])
                for name in self.sources}

    def iterate(self, start_step: int, stop_step: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Yield ``(step, batch)`` for ``start_step <= step < stop_step``, ``prefetch`` batches ahead."""
        pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="nst-data")
        pending: collections.deque = collections.deque()
        next_step = start_step
        try:
            while True:
                while next_step < stop_step and len(pending) < self.prefetch:
                    pending.append((next_step, pool.submit(self.batch, next_step)))
                    next_step += 1
                if not pending:
                    return
                step, future = pending.popleft()
                yield step, future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def bad_counts(self) -> dict[str, int]:
        with self._lock:
            return {name: len(files) for name, files in self.bad.items()}


def _stream_name(stream: int) -> str:
    return next(k for k, v in STREAMS.items() if v == stream)


def to_global(batch: dict[str, np.ndarray], sharding, global_batch: int) -> dict[str, Any]:
    """Assemble process-local rows into global ``jax.Array``s sharded along the batch axis."""
    import jax  # pylint: disable=import-outside-toplevel

    return {name: jax.make_array_from_process_local_data(sharding, rows, (global_batch, *rows.shape[1:]))
            for name, rows in batch.items()}


def describe(sources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For the export card: where each source lives and how many items it has."""
    return {name: {"source": s.name, "count": len(s)} for name, s in sources.items()}


def list_sources(cfg, names: Sequence[str]) -> dict[str, Any]:
    """Open the sources a method needs (``"content"`` and maybe ``"style"``) from a TrainConfig."""
    return {name: open_source(getattr(cfg, name)) for name in names}
