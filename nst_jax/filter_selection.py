"""Object-specific style transfer by selecting VGG19 filters (seed 001), with automatic selection.

Seed 001 (object-specific style transfer by selecting VGG-19 filters; in Japanese) restricts Gatys'
style loss to the few filters of a layer that respond to one object class, so that only that object
takes the style: the Gram matrix is computed over the selected feature maps only. The paper picked the
filters by hand, looking at each filter's nine top-activating ILSVRC2012 images in Yosinski's Deep
Visualization Toolbox and keeping those whose nine images all showed a dog (6 filters of conv4_1 and
16 of conv5_1), and names automatic selection as future work. This module implements that future work:

* :func:`select_filters_from_mask` -- from an object mask on the content image: every filter is ranked
  by how concentrated its activation is inside the mask (mean inside / mean outside, see
  :func:`concentration_ratio`);
* :func:`select_filters_from_examples` -- from a handful of example images of the object class versus
  other images: every filter is ranked by how well its peak activation separates the two sets (the
  Deep Visualization Toolbox ranks images by a filter's peak activation too);
* :func:`top_activations` / :func:`render_filter_sheet` -- the toolbox's view: a filter's top images
  over a folder with the filter's activation map laid over each (``nst-jax filters``).

The selection plugs into :func:`nst_jax.optimize.gatys` as ``style_channels`` with a config whose
``style_layers`` are the selected layers (:func:`object_gatys` does both). The seed's layer names
conv4_1/conv5_1 are our ``relu4_1``/``relu5_1``: the Gram uses the post-ReLU feature maps.

Weights (:func:`seed001_config`). The seed used content 5.0, style 0.002, TV 0.001, layer weights 0.5,
1000 L-BFGS iterations, without stating its loss normalisation. Its content and TV weights are exactly
the defaults of Johnson's neural-style, so we read the numbers in that convention (content = a *
mean((F - P)^2); per layer style = b * w_l * mean((G/(k H W) - A/(k H W))^2) over the k selected
filters; TV = g/2 * sum of squared neighbour differences of the Caffe-scaled image) and convert them to
ours (content = w_c * mean((F - P)^2); style = w_s * sum_l 1e3/C_l^2 * mean((G/(H W) - A/(H W))^2)
with C_l = 512 whatever k is; TV = w_tv * (mean(dx^2) + mean(dy^2)) on [0, 1] pixels). Dividing every
weight by a = 5 (only ratios matter) gives ``content_weight = 1``, ``style_weight = (b w_l / a) (512^2
/ 1e3) / k^2 = 0.0524 / k^2`` (k = 6 -> 1.5e-3, k = 16 -> 2.0e-4; we use the geometric mean of the
per-layer counts, 5.5e-4 for the seed's 6 and 16, because our config has one style weight for all
layers) and ``tv_weight = (g / a) * 255^2 * 3 H W / 2 = 19.5 H W`` (JJ's TV is a sum, ours a mean, so
this depends on the image size: 3.4e6 at 512x341). Equal layer weights (0.5, 0.5) are equal in ours
too since both layers have 512 channels.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import vgg19
from nst_jax.errors import InputError
from nst_jax.image import check_image
from nst_jax.kernels.stats import mask_for_layer
from nst_jax.optimize import GatysConfig, gatys

# The seed's selection: 6 filters of conv4_1 and 16 of conv5_1 (our relu4_1 / relu5_1).
SEED001_COUNTS: dict[str, int] = {"relu4_1": 6, "relu5_1": 16}
SEED001_STEPS = 1000
# Size (H, W) at which the preset's TV weight is computed when none is given: Johnson's default
# 512 px long side at the 3:2 aspect of the seed's dog photos.
SEED001_REFERENCE_SIZE = (341, 512)
# A filter's activation is floored at this fraction of its layer's mean activation before taking
# ratios, so that filters silent both inside and outside rank as neutral (ratio ~1), not as extremes.
RATIO_FLOOR = 0.05


def seed001_config(height: int = SEED001_REFERENCE_SIZE[0], width: int = SEED001_REFERENCE_SIZE[1],
                   counts: Mapping[str, int] = SEED001_COUNTS, **overrides: Any) -> GatysConfig:
    """A :class:`GatysConfig` carrying seed 001's weights translated to our loss normalisation.

    Style layers = the layers of ``counts`` (seed: relu4_1, relu5_1); content 1, style
    ``0.0524 / k^2`` with k the geometric mean of ``counts``, TV ``19.5 * height * width`` (see the
    module docstring for the derivation); 1000 L-BFGS steps from the content image. ``overrides``
    replace any field (e.g. ``steps=200``).
    """
    counts = dict(counts)
    if not counts or any(int(k) < 1 for k in counts.values()):
        raise InputError(f"filter counts must be positive integers per layer, got {counts}")
    k = math.exp(sum(math.log(int(v)) for v in counts.values()) / len(counts))
    cfg = GatysConfig(
        steps=SEED001_STEPS, optimizer="lbfgs", init="content",
        style_layers=tuple(sorted(counts, key=vgg19.LAYERS.index)),
        content_weight=1.0, style_weight=0.0524 / k**2, tv_weight=19.5 * height * width,
    )
    return dataclasses.replace(cfg, **overrides).validate()


SEED001_CONFIG = seed001_config()


@dataclasses.dataclass(frozen=True)
class FilterSelection:
    """Selected filters per layer, with the evidence for them.

    Attributes:
      channels: ``{layer: filter indices}``, best first -- pass as ``gatys(style_channels=...)``.
      ratios: ``{layer: (C,) array}`` for every filter of the layer: mean activation inside / outside
        the mask (``source="mask"``), or mean peak activation on positives / negatives
        (``source="examples"``).
      scores: ``{layer: (C,) array}`` the ranking score (the ratio for masks; a separation score,
        see :func:`select_filters_from_examples`, for examples). ``-inf`` marks excluded filters.
      source: ``"mask"`` or ``"examples"``.
    """

    channels: dict[str, tuple[int, ...]]
    ratios: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    source: str

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(sorted(self.channels, key=vgg19.LAYERS.index))

    def style_channels(self) -> dict[str, list[int]]:
        """``{layer: [indices]}`` for :func:`nst_jax.optimize.gatys`."""
        return {layer: list(idx) for layer, idx in self.channels.items()}

    def gatys_config(self, config: GatysConfig) -> GatysConfig:
        """``config`` with ``style_layers`` restricted to the selected layers (the other layers would
        otherwise keep all their filters and stylise the whole image)."""
        return dataclasses.replace(config, style_layers=self.layers).validate()

    def report(self) -> str:
        """One line per layer: ``relu5_1: 133 (x45.9), 237 (x30.0), ...``."""
        what = "inside/outside" if self.source == "mask" else "positives/negatives"
        lines = [f"selected filters ({self.source}; ratio = mean activation {what}):"]
        for layer in self.layers:
            r = self.ratios[layer]
            items = ", ".join(f"{i} (x{r[i]:.1f})" for i in self.channels[layer])
            lines.append(f"  {layer} [{len(self.channels[layer])}]: {items}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source,
                "channels": {layer: [int(i) for i in self.channels[layer]] for layer in self.layers},
                "ratios": {layer: [round(float(self.ratios[layer][i]), 4) for i in self.channels[layer]]
                           for layer in self.layers}}


def _check_layer(layer: str) -> str:
    if layer not in vgg19.LAYERS:
        raise InputError(f"unknown VGG19 layer {layer!r}; valid names are {', '.join(vgg19.LAYERS)}")
    return layer


def parse_counts(spec: str | Mapping[str, int] | None) -> dict[str, int]:
    """``"relu4_1=6,relu5_1=16"`` -> ``{"relu4_1": 6, "relu5_1": 16}`` (``None``: the seed's counts)."""
    if spec is None:
        return dict(SEED001_COUNTS)
    if isinstance(spec, Mapping):
        items = list(spec.items())
    else:
        items = []
        for part in str(spec).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise InputError(f"filter counts look like relu4_1=6,relu5_1=16; got {spec!r}")
            layer, count = part.split("=", 1)
            items.append((layer.strip(), count.strip()))
    counts = {}
    for layer, count in items:
        if layer not in vgg19.LAYERS or not layer.startswith("relu"):
            raise InputError(f"unknown layer {layer!r} in filter counts; use relu layers such as relu4_1")
        try:
            n = int(count)
        except ValueError:
            raise InputError(f"filter count for {layer} must be an integer, got {count!r}") from None
        if not 1 <= n <= vgg19.CHANNELS[layer]:
            raise InputError(f"filter count for {layer} must be in [1, {vgg19.CHANNELS[layer]}], got {n}")
        counts[layer] = n
    if not counts:
        raise InputError("no filter counts given")
    return counts


# ------------------------------------------------------------------------------ statistics


@functools.partial(jax.jit, static_argnames=("layers", "padding", "pool"))
def _mask_means(params, image, mask, layers, padding, pool):
    feats = vgg19.features(params, image[None], layers, padding=padding, pool=pool)
    out = {}
    for layer in layers:
        f = feats[layer][0]
        m = mask_for_layer(mask[None, ..., None], layer, f.shape[:2])[0]
        inside = (f * m).sum((0, 1)) / jnp.maximum(m.sum(), 1e-8)
        outside = (f * (1 - m)).sum((0, 1)) / jnp.maximum((1 - m).sum(), 1e-8)
        out[layer] = (inside, outside, f.mean())
    return out


def concentration_ratio(inside: np.ndarray, outside: np.ndarray, floor: float) -> np.ndarray:
    """``(inside + floor) / (outside + floor)`` per filter: how much more a filter fires in the object
    than around it; the floor (a fraction of the layer's mean activation) keeps silent filters at ~1."""
    return (np.asarray(inside, np.float64) + floor) / (np.asarray(outside, np.float64) + floor)


def mask_activation_stats(params, image: np.ndarray, mask: np.ndarray, layers: Sequence[str], *,
                          padding: str = "zero", pool: str = "max") -> dict[str, dict[str, np.ndarray]]:
    """Per filter of each layer: mean activation inside and outside ``mask`` and the concentration ratio.

    Returns ``{layer: {"inside": (C,), "outside": (C,), "ratio": (C,)}}``.
    """
    image, mask = _check_image_mask(image, mask)
    layers = tuple(vgg19.check_layers(layers))
    raw = _mask_means(params, jnp.asarray(image), jnp.asarray(mask), layers, padding, pool)
    out = {}
    for layer, (inside, outside, mean) in raw.items():
        inside, outside = np.asarray(inside), np.asarray(outside)
        floor = RATIO_FLOOR * max(float(mean), 1e-6)
        out[layer] = {"inside": inside, "outside": outside, "ratio": concentration_ratio(inside, outside, floor)}
    return out


def _check_image_mask(image, mask) -> tuple[np.ndarray, np.ndarray]:
    image = check_image(np.asarray(image, np.float32), kind="content image")
    mask = np.asarray(mask, np.float32)
    if mask.ndim == 3 and mask.shape[-1] in (1, 3):
        mask = mask.mean(-1)
    if mask.shape != image.shape[:2]:
        raise InputError(f"object mask is {mask.shape[1] if mask.ndim > 1 else '?'}x{mask.shape[0]} but the "
                         f"content is {image.shape[1]}x{image.shape[0]}: the mask must match the content size")
    if not np.all(np.isfinite(mask)) or mask.min() < 0 or mask.max() > 1:
        raise InputError("object mask values must lie in [0, 1]")
    frac = float(mask.mean())
    if not 0.005 <= frac <= 0.995:
        raise InputError(f"object mask covers {100 * frac:.1f}% of the image; it must mark an object "
                         "(white) against some background (black)")
    return image, mask


def _take_top(scores: dict[str, np.ndarray], counts: Mapping[str, int], ratios: dict[str, np.ndarray],
              min_ratio: float | None) -> dict[str, tuple[int, ...]]:
    channels = {}
    for layer, k in counts.items():
        order = np.argsort(-scores[layer], kind="stable")[:k]
        order = [int(i) for i in order if np.isfinite(scores[layer][i])]
        if min_ratio is not None:
            kept = [i for i in order if ratios[layer][i] >= min_ratio]
            order = kept or order[:1]  # always keep the best filter so the layer is not silently dropped
        if not order:
            raise InputError(f"no usable filter in {layer}")
        channels[layer] = tuple(order)
    return channels


def select_filters_from_mask(
    params, content: np.ndarray, mask: np.ndarray, *, counts: Mapping[str, int] | str | None = None,
    min_ratio: float | None = None, padding: str = "zero", pool: str = "max",
) -> FilterSelection:
    """Pick, per layer, the filters whose activation is most concentrated inside an object mask.

    Automatic version of seed 001's manual selection (its stated future work): for each filter of each
    layer the mean post-ReLU activation inside the mask (area-resampled to the layer) is divided by the
    mean outside (:func:`concentration_ratio`), and the ``counts[layer]`` filters with the largest
    ratio are kept.

    Args:
      params: VGG19 parameters.
      content: the content image, float RGB (H, W, 3) in [0, 1], at the size it will be stylised
        (responses depend on scale).
      mask: (H, W) in [0, 1], white = the object that should take the style.
      counts: filters per layer, ``{"relu4_1": 6, "relu5_1": 16}`` (the seed's, default) or the string
        form ``"relu4_1=6,relu5_1=16"``.
      min_ratio: optionally drop selected filters whose ratio is below this (at least one is kept).

    Example::

        sel = select_filters_from_mask(vgg, content, mask)
        print(sel.report())
        out, _ = gatys(vgg, content, [style], config=sel.gatys_config(seed001_config(*content.shape[:2])),
                       style_channels=sel.style_channels())
    """
    counts = parse_counts(counts)
    stats = mask_activation_stats(params, content, mask, tuple(counts), padding=padding, pool=pool)
    ratios = {layer: s["ratio"] for layer, s in stats.items()}
    channels = _take_top(ratios, counts, ratios, min_ratio)
    return FilterSelection(channels=channels, ratios=ratios, scores=dict(ratios), source="mask")


@functools.partial(jax.jit, static_argnames=("layers", "padding", "pool"))
def _peaks(params, image, layers, padding, pool):
    feats = vgg19.features(params, image[None], layers, padding=padding, pool=pool)
    return {layer: feats[layer][0].max(axis=(0, 1)) for layer in layers}


def filter_peaks(params, images: Sequence[np.ndarray], layers: Sequence[str], *, padding: str = "zero",
                 pool: str = "max", progress: bool = False, desc: str = "images") -> dict[str, np.ndarray]:
    """Peak (spatial max) activation of every filter on every image: ``{layer: (N, C)}``."""
    layers = tuple(vgg19.check_layers(layers))
    rows: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    iterator = images
    if progress:
        from tqdm import tqdm

        iterator = tqdm(images, desc=desc, unit="img", file=sys.stderr)
    for i, image in enumerate(iterator):
        image = check_image(np.asarray(image, np.float32), kind=f"{desc} {i}")
        peaks = _peaks(params, jnp.asarray(image), layers, padding, pool)
        for layer in layers:
            rows[layer].append(np.asarray(peaks[layer]))
    return {layer: np.stack(v) for layer, v in rows.items()}


def separation_score(pos: np.ndarray, neg: np.ndarray, tau: float = 0.1) -> np.ndarray:
    """Per filter, a regularised d' between log peak activations of positives and negatives:
    ``(mean_p - mean_n) / sqrt((var_p + var_n) / 2 + tau)`` on ``log1p`` of (N, C) peaks.
    ``tau`` keeps a handful of examples (near-zero variance) from producing huge scores."""
    lp, ln = np.log1p(np.asarray(pos, np.float64)), np.log1p(np.asarray(neg, np.float64))
    return (lp.mean(0) - ln.mean(0)) / np.sqrt(0.5 * (lp.var(0) + ln.var(0)) + tau)


def select_filters_from_examples(
    params, positives: Sequence[np.ndarray], negatives: Sequence[np.ndarray], *,
    counts: Mapping[str, int] | str | None = None, content: np.ndarray | None = None,
    min_ratio: float | None = None, padding: str = "zero", pool: str = "max", progress: bool = False,
) -> FilterSelection:
    """Pick the filters that fire on example images of the object class and not on other images.

    Automatic version of seed 001's selection by top-activating images: every filter's peak (spatial
    max) activation is measured on each image, and filters are ranked by :func:`separation_score`
    between ``positives`` (images showing the object, e.g. a handful of dog photos) and ``negatives``
    (other images). With ``content``, only filters that fire on the content at least as strongly as the
    layer's median filter are eligible: a filter silent on the content cannot carry any style to it.

    Args:
      positives / negatives: float RGB images (any sizes; a few hundred pixels is plenty).
      counts: filters per layer (default: the seed's ``relu4_1=6, relu5_1=16``).
      content: the content image to be stylised (optional, see above).
      min_ratio: optionally drop filters whose mean peak positives / negatives ratio is below this.
    """
    counts = parse_counts(counts)
    if len(positives) < 1 or len(negatives) < 1:
        raise InputError(f"need at least one positive and one negative example image "
                         f"(got {len(positives)} and {len(negatives)})")
    layers = tuple(counts)
    pos = filter_peaks(params, positives, layers, padding=padding, pool=pool, progress=progress, desc="positives")
    neg = filter_peaks(params, negatives, layers, padding=padding, pool=pool, progress=progress, desc="negatives")
    on_content = None if content is None else filter_peaks(params, [content], layers, padding=padding, pool=pool)
    return select_from_peaks(pos, neg, counts, content_peaks=on_content, min_ratio=min_ratio)


def select_from_peaks(pos: Mapping[str, np.ndarray], neg: Mapping[str, np.ndarray], counts: Mapping[str, int], *,
                      content_peaks: Mapping[str, np.ndarray] | None = None,
                      min_ratio: float | None = None) -> FilterSelection:
    """:func:`select_filters_from_examples` on precomputed :func:`filter_peaks` (``{layer: (N, C)}``)."""
    scores, ratios = {}, {}
    for layer in counts:
        floor = RATIO_FLOOR * max(float(np.concatenate([pos[layer], neg[layer]]).mean()), 1e-6)
        ratios[layer] = concentration_ratio(pos[layer].mean(0), neg[layer].mean(0), floor)
        score = separation_score(pos[layer], neg[layer])
        if content_peaks is not None:
            c = np.asarray(content_peaks[layer]).reshape(-1)
            score = np.where(c >= np.median(c), score, -np.inf)
        scores[layer] = score
    channels = _take_top(scores, counts, ratios, min_ratio)
    return FilterSelection(channels=channels, ratios=ratios, scores=scores, source="examples")


def object_gatys(
    vgg_params, content: np.ndarray, styles: Sequence[np.ndarray], *, mask: np.ndarray | None = None,
    positives: Sequence[np.ndarray] | None = None, negatives: Sequence[np.ndarray] | None = None,
    selection: FilterSelection | None = None, counts: Mapping[str, int] | str | None = None,
    config: GatysConfig | None = None, **gatys_kwargs: Any,
) -> tuple[np.ndarray, dict[str, np.ndarray], FilterSelection]:
    """Object-specific Gatys transfer (seed 001): only the object takes the style.

    Selects filters from ``mask`` (:func:`select_filters_from_mask`) or from ``positives`` /
    ``negatives`` (:func:`select_filters_from_examples`), or uses a given ``selection``, then runs
    :func:`nst_jax.optimize.gatys` with the style loss restricted to them. ``config`` defaults to
    :func:`seed001_config` at the content's size; its ``style_layers`` are always replaced by the
    selected layers. Returns ``(image, history, selection)``.
    """
    base = config or GatysConfig()
    if selection is None:
        if mask is not None:
            selection = select_filters_from_mask(vgg_params, content, mask, counts=counts, padding=base.padding,
                                                 pool=base.pool)
        elif positives is not None and negatives is not None:
            selection = select_filters_from_examples(vgg_params, positives, negatives, counts=counts, content=content,
                                                     padding=base.padding, pool=base.pool)
        else:
            raise InputError("object_gatys needs a mask, positives and negatives, or a selection")
    if config is None:
        config = seed001_config(*np.shape(content)[:2], counts={k: len(v) for k, v in selection.channels.items()})
    image, history = gatys(vgg_params, content, styles, config=selection.gatys_config(config),
                           style_channels=selection.style_channels(), **gatys_kwargs)
    return image, history, selection


# -------------------------------------------------------------------------- visualisation


@functools.partial(jax.jit, static_argnames=("layer", "padding", "pool"))
def _filter_maps(params, image, idx, layer, padding, pool):
    f = vgg19.features(params, image[None], (layer,), padding=padding, pool=pool)[layer][0]
    return jnp.take(f, idx, axis=-1)  # (h, w, F)


def top_activations(params, images: Sequence[np.ndarray], layer: str, filters: Sequence[int], *,
                    top: int = 9, padding: str = "zero", pool: str = "max",
                    progress: bool = False) -> list[list[tuple[int, float, np.ndarray]]]:
    """For each filter, its ``top`` images by peak activation (as the Deep Visualization Toolbox shows).

    Returns, per filter, a list of ``(image index, peak activation, activation map (h, w))``, best first.
    """
    _check_layer(layer)
    filters = [int(i) for i in filters]
    if any(not 0 <= i < vgg19.CHANNELS[layer] for i in filters):
        raise InputError(f"filter indices of {layer} must be in [0, {vgg19.CHANNELS[layer]})")
    idx = jnp.asarray(filters)
    maps = []
    iterator = images
    if progress:
        from tqdm import tqdm

        iterator = tqdm(images, desc=f"{layer} activations", unit="img", file=sys.stderr)
    for i, image in enumerate(iterator):
        image = check_image(np.asarray(image, np.float32), kind=f"image {i}")
        maps.append(np.asarray(_filter_maps(params, jnp.asarray(image), idx, layer, padding, pool)))
    out = []
    for j in range(len(filters)):
        peaks = np.array([m[..., j].max() for m in maps])
        order = np.argsort(-peaks, kind="stable")[:top]
        out.append([(int(i), float(peaks[i]), maps[i][..., j]) for i in order])
    return out


def overlay(image: np.ndarray, activation: np.ndarray, vmax: float, alpha: float = 0.55) -> np.ndarray:
    """Lay an activation map (h, w), upsampled to the image, over it as a heat map (0..vmax)."""
    import matplotlib

    from nst_jax.image import resize

    h, w = image.shape[:2]
    a = np.clip(np.asarray(activation, np.float32) / max(vmax, 1e-8), 0, 1)
    up = resize(np.repeat(a[..., None], 3, -1), h, w)[..., 0]
    heat = matplotlib.colormaps["inferno"](up)[..., :3].astype(np.float32)
    weight = alpha * np.clip(up, 0.15, 1.0)[..., None]
    return (1 - weight) * (0.6 * image + 0.4 * image.mean(-1, keepdims=True)) + weight * heat


def render_filter_sheet(images: Sequence[np.ndarray],
                        rows: Sequence[tuple[str, int, list[tuple[int, float, np.ndarray]]]], *,
                        cell: int = 160, title: str | None = None) -> np.ndarray:
    """A contact sheet with one row per ``(layer, filter, top_activations result)``: the filter's top
    images, each with its activation map overlaid (scaled by the row's highest peak)."""
    from nst_jax.image import contact_sheet

    grid, labels = [], []
    for layer, f, res in rows:
        vmax = max((peak for _, peak, _ in res), default=1.0)
        grid.append([overlay(images[i], amap, vmax) for i, _, amap in res])
        labels.append(f"{layer} #{f}")
    return contact_sheet(grid, row_labels=labels, cell=cell, title=title)


# ------------------------------------------------------------------------------------ CLI


def _load_folder(folder, size: int, kind: str) -> tuple[list[np.ndarray], list[str]]:
    from nst_jax.image import list_images, load_image

    files = list_images(folder)
    if not files:
        raise InputError(f"no image files in {folder}")
    return [load_image(f, size=size, kind=kind) for f in files], [f.name for f in files]


def example_folders(examples: str | Path, negatives: str | Path | None = None) -> tuple[Path, Path]:
    """Resolve ``--object-examples DIR [--object-negatives NEG]``: DIR holds the positives, or has
    ``positive/`` and ``negative/`` sub-folders (``pos``/``neg`` and plurals are accepted too)."""
    examples = Path(examples)
    if not examples.is_dir():
        raise InputError(f"--object-examples {examples} is not a folder")
    if negatives is not None:
        negatives = Path(negatives)
        if not negatives.is_dir():
            raise InputError(f"--object-negatives {negatives} is not a folder")
        return examples, negatives
    for pos_name, neg_name in (("positive", "negative"), ("positives", "negatives"), ("pos", "neg")):
        if (examples / pos_name).is_dir() and (examples / neg_name).is_dir():
            return examples / pos_name, examples / neg_name
    raise InputError(f"--object-examples {examples}: give images of other things too, either as "
                     f"{examples}/positive/ + {examples}/negative/ or with --object-negatives DIR")


_PEAK_CACHE: dict[tuple, tuple[dict, dict]] = {}


def selection_for_args(args, vgg_params, content: np.ndarray, *, padding: str = "zero", pool: str = "max",
                       content_path: str | Path | None = None) -> FilterSelection | None:
    """The :class:`FilterSelection` that ``--object-mask`` / ``--object-examples`` ask for (or ``None``)."""
    from nst_jax.image import load_mask

    counts = parse_counts(getattr(args, "object_filters", None))
    mask_arg = getattr(args, "object_mask", None)
    examples = getattr(args, "object_examples", None)
    if mask_arg and examples:
        raise InputError("--object-mask and --object-examples are exclusive: choose one way to select filters")
    if mask_arg:
        mask_path = _mask_path(Path(mask_arg), content_path)
        mask = load_mask(mask_path, *content.shape[:2])
        return select_filters_from_mask(vgg_params, content, mask, counts=counts, padding=padding, pool=pool)
    if examples:
        pos_dir, neg_dir = example_folders(examples, getattr(args, "object_negatives", None))
        size = int(getattr(args, "object_example_size", 224) or 224)
        layers = tuple(counts)
        key = (str(pos_dir.resolve()), str(neg_dir.resolve()), layers, size, padding, pool)
        if key not in _PEAK_CACHE:  # a folder of contents reuses the examples' activations
            positives, _ = _load_folder(pos_dir, size, "example")
            negatives, _ = _load_folder(neg_dir, size, "negative example")
            kw = dict(padding=padding, pool=pool, progress=True)
            _PEAK_CACHE[key] = (filter_peaks(vgg_params, positives, layers, desc="positives", **kw),
                                filter_peaks(vgg_params, negatives, layers, desc="negatives", **kw))
        pos, neg = _PEAK_CACHE[key]
        on_content = None
        if content is not None:
            on_content = filter_peaks(vgg_params, [content], layers, padding=padding, pool=pool)
        return select_from_peaks(pos, neg, counts, content_peaks=on_content)
    return None


def _mask_path(mask: Path, content_path: str | Path | None) -> Path:
    """``--object-mask`` is a file, or a folder with one mask per content (``STEM_mask.*`` or ``STEM.*``)."""
    if not mask.is_dir():
        return mask
    if content_path is None:
        raise InputError(f"--object-mask {mask} is a folder; give a mask file")
    from nst_jax.image import IMAGE_SUFFIXES

    stem = Path(content_path).stem
    for name in (f"{stem}_mask", stem):
        for suffix in IMAGE_SUFFIXES:
            if (mask / f"{name}{suffix}").is_file():
                return mask / f"{name}{suffix}"
    raise InputError(f"no mask for {Path(content_path).name} in {mask} (expected {stem}_mask.png or {stem}.png)")


def add_stylize_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--object-mask``, ``--object-examples``, ``--object-negatives``, ``--object-filters``,
    ``--object-preset`` on the ``stylize`` parser (consumed by :func:`stylize_options`)."""
    g = parser.add_argument_group("object-specific style (seed 001: style loss on selected VGG filters)")
    g.add_argument("--object-mask", metavar="MASK",
                   help="mask of the object that alone should take the style (white = object); selects the "
                        "filters concentrated inside it. A folder: one STEM_mask.png per content")
    g.add_argument("--object-examples", metavar="DIR",
                   help="example images of the object class (DIR/positive + DIR/negative, or DIR with "
                        "--object-negatives); selects filters that fire on them and not on the others")
    g.add_argument("--object-negatives", metavar="DIR", help="images without the object (with --object-examples)")
    g.add_argument("--object-filters", metavar="SPEC", default=None,
                   help="filters per layer, e.g. relu4_1=6,relu5_1=16 (the seed's, default)")
    g.add_argument("--object-preset", choices=("seed001", "none"), default="seed001",
                   help="seed001: the seed's content/style/TV weights translated to ours; none: use "
                        "--content-weight/--style-weight/--tv-weight as given")
    g.add_argument("--object-example-size", type=int, default=224, help=argparse.SUPPRESS)


def stylize_options(args, vgg_params, content: np.ndarray, config: GatysConfig, *,
                    content_path: str | Path | None = None,
                    report: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Turn the object options of ``stylize`` into keyword arguments of ``gatys``/``stylize``.

    Returns ``{}`` when no object option is given, else ``{"config": ..., "style_channels": ...}``: the
    config has ``style_layers`` set to the selected layers (and, with ``--object-preset seed001``, the
    seed's weights at the content's size, keeping ``steps`` and the other settings of ``config``).
    The selection is reported through ``report`` (default: stderr).
    """
    selection = selection_for_args(args, vgg_params, content, padding=config.padding, pool=config.pool,
                                   content_path=content_path)
    if selection is None:
        return {}
    if getattr(args, "object_preset", "seed001") == "seed001":
        preset = seed001_config(*content.shape[:2], counts={k: len(v) for k, v in selection.channels.items()})
        config = dataclasses.replace(config, content_weight=preset.content_weight,
                                     style_weight=preset.style_weight, tv_weight=preset.tv_weight)
    (report or (lambda s: print(s, file=sys.stderr)))(selection.report())
    return {"config": selection.gatys_config(config), "style_channels": selection.style_channels()}


def add_cli(subparsers) -> None:
    """Register ``nst-jax filters`` (see :func:`cmd_filters`)."""
    p = subparsers.add_parser(
        "filters", help="show which images of a folder (and where) excite chosen VGG19 filters",
        description="Render each filter's top images over FOLDER with its activation map overlaid (the view "
                    "of the Deep Visualization Toolbox used by seed 001). Filters are given with --layer/"
                    "--index, or selected automatically with --content + --object-mask, or --object-examples.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("folder", help="folder of images to rank")
    p.add_argument("--layer", default="relu5_1", help="layer of the --index filters")
    p.add_argument("--index", type=int, nargs="+", metavar="I", help="filter indices in --layer")
    p.add_argument("--content", help="content image for --object-mask selection")
    p.add_argument("--object-mask", help="object mask on --content: show the filters it selects")
    p.add_argument("--object-examples", help="example folder: show the filters it selects (see stylize)")
    p.add_argument("--object-negatives", help="negative examples (with --object-examples)")
    p.add_argument("--object-filters", default=None, help="filters per layer, e.g. relu4_1=6,relu5_1=16")
    p.add_argument("--top", type=int, default=9, help="images per filter (the seed looked at 9)")
    p.add_argument("--size", type=int, default=224, help="long side of the images in pixels")
    p.add_argument("--cell", type=int, default=160, help="cell size of the contact sheet in pixels")
    p.add_argument("-o", "--output", default="filters.png", help="contact sheet PNG")
    p.add_argument("--json", dest="json_path", default=None, help="also write the selection and rankings as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(handler=cmd_filters)


def cmd_filters(args, vgg_params=None) -> int:
    """Handler of ``nst-jax filters``; returns the exit code."""
    from nst_jax.image import load_image, save_image

    out = Path(args.output)
    for path in (out, Path(args.json_path) if args.json_path else None):
        if path is not None and path.exists() and not args.overwrite:
            raise InputError(f"output exists: {path}; pass --overwrite to replace")
    if args.top < 1 or args.size < 16:
        raise InputError("--top must be >= 1 and --size >= 16")
    if vgg_params is None:
        from nst_jax.weights import port

        vgg_params = port.load()
    wanted: list[tuple[str, list[int]]] = []
    selection = None
    if args.index:
        _check_layer(args.layer)
        wanted.append((args.layer, list(args.index)))
    elif args.object_mask or args.object_examples:
        content = None
        if args.object_mask:
            if not args.content:
                raise InputError("--object-mask needs --content (the image the mask belongs to)")
            content = load_image(args.content, size=args.size, kind="content")
        args.object_example_size = args.size
        selection = selection_for_args(args, vgg_params, content, content_path=args.content)
        print(selection.report())
        wanted = [(layer, list(selection.channels[layer])) for layer in selection.layers]
    else:
        raise InputError("say which filters: --layer L --index I [I ...], or --content C --object-mask M, "
                         "or --object-examples DIR")
    images, names = _load_folder(args.folder, args.size, "image")
    rows, rankings = [], {}
    for layer, filters in wanted:
        results = top_activations(vgg_params, images, layer, filters, top=args.top, progress=True)
        for f, res in zip(filters, results):
            rows.append((layer, f, res))
            rankings[f"{layer}:{f}"] = [{"image": names[i], "peak": round(peak, 3)} for i, peak, _ in res]
            print(f"{layer} #{f}: " + ", ".join(f"{names[i]} ({peak:.0f})" for i, peak, _ in res))
    sheet = render_filter_sheet(images, rows, cell=args.cell,
                                title=f"top {args.top} images per filter over {Path(args.folder).name}/")
    save_image(out, sheet)
    print(f"wrote {out}", file=sys.stderr)
    if args.json_path:
        from nst_jax.params_io import atomic_write

        payload = {"selection": selection.to_dict() if selection else None, "rankings": rankings}
        atomic_write(args.json_path, lambda f: f.write(json.dumps(payload, indent=2).encode()))
    return 0
