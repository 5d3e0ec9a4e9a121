"""Adaptive instance normalisation (Huang & Belongie 2017) and region compositing.

``adain`` is Eq. 8 of the paper, ``AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y)``, with the
per-channel statistics of :func:`nst_jax.kernels.stats.mean_std` (biased variance,
``sqrt(var + eps)``, DESIGN §3). ``blend_by_masks`` composites per-region results, which is how every
feed-forward method offers "a style per region" (AdaIN's ``-mask`` option generalised to K regions).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from nst_jax.errors import InputError
from nst_jax.kernels.stats import EPS, mean_std


def adain(content: jax.Array, style: jax.Array, *, content_mask: jax.Array | None = None,
          style_mask: jax.Array | None = None, eps: float = EPS) -> jax.Array:
    """AdaIN (Huang & Belongie 2017, Eq. 8) on NHWC features.

    Args:
      content: (N, H, W, C) content features.
      style: (N, Hs, Ws, C) or (1, Hs, Ws, C) style features (any spatial size).
      content_mask, style_mask: optional (N, H, W, 1) weights in [0, 1] at feature resolution: the
        statistics are those of the weighted region (the transform is applied at every position; for
        a style per region composite the results with :func:`blend_by_masks`).
      eps: added to the variances.

    Returns:
      (N, H, W, C): the content normalised per channel and rescaled to the style's mean and std.
      The content-style ``alpha`` blend is the caller's: ``alpha * t + (1 - alpha) * content``.
    """
    mean_c, std_c = mean_std(content, mask=content_mask, eps=eps)
    mean_s, std_s = mean_std(style, mask=style_mask, eps=eps)
    return (content - mean_c) * (std_s / std_c) + mean_s


def blend_by_masks(features: Sequence[jax.Array], masks: Sequence[jax.Array] | jax.Array) -> jax.Array:
    """Composite per-region results: ``sum_r m_r f_r / sum_r m_r``.

    ``features`` is a sequence of K arrays (N, H, W, C), e.g. ``adain(c, s_r, content_mask=m_r)`` for
    K styles; ``masks`` is K arrays (N, H, W, 1) or one array (N, H, W, K) at the same resolution.
    Masks are normalised to sum to one where they overlap; a position no mask covers (sum 0) gets the
    unweighted mean of the K results.
    """
    features = list(features)
    if hasattr(masks, "ndim"):  # one (N, H, W, K) array
        if masks.shape[-1] != len(features):
            raise InputError(f"{len(features)} feature maps but masks have {masks.shape[-1]} channels")
        masks = [masks[..., r:r + 1] for r in range(masks.shape[-1])]
    masks = list(masks)
    if len(masks) != len(features) or not features:
        raise InputError(f"need one mask per feature map, got {len(masks)} masks for {len(features)} maps")
    stacked_m = jnp.stack([m if m.ndim == 4 else m[..., None] for m in masks]).astype(features[0].dtype)
    total = stacked_m.sum(axis=0, keepdims=True)
    uncovered = total <= 0
    weights = jnp.where(uncovered, 1.0 / len(features), stacked_m / jnp.where(uncovered, 1.0, total))
    return sum(w * f for w, f in zip(weights, features))
