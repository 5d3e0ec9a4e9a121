"""Feature statistics shared by every method: per-channel moments, Gram matrices, covariances.

All functions take NHWC features and an optional ``mask`` of shape (N, H, W, 1) (or (N, H, W)) with
values in [0, 1] that weights the spatial positions. With a mask, every statistic is the weighted
version (sum of m * ... / sum of m): for a binary mask this is the statistic of the region alone,
which gives per-region AdaIN/WCT and Gatys et al. 2017's guided Gram matrices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nst_jax import vgg19

EPS = 1e-5


def _weights(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    n, h, w, _ = x.shape
    if mask is None:
        return jnp.ones((n, h, w, 1), x.dtype)
    if mask.ndim == 3:
        mask = mask[..., None]
    if mask.shape[1:3] != (h, w):
        raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[2]} but features are {h}x{w}; "
                         "resize it with mask_for_layer")
    return jnp.broadcast_to(mask.astype(x.dtype), (n, h, w, 1))


def _area(weights: jax.Array) -> jax.Array:
    # Guard an empty region: statistics of nothing are zero rather than NaN.
    return jnp.maximum(weights.sum(axis=(1, 2), keepdims=True), 1e-8)


def mean_std(x: jax.Array, *, mask: jax.Array | None = None, eps: float = EPS) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and std over H, W: biased variance, ``sqrt(var + eps)`` (DESIGN §3).

    Returns arrays of shape (N, 1, 1, C). (Huang & Belongie 2017, Eq. 8.)
    """
    w = _weights(x, mask)
    area = _area(w)
    mean = (x * w).sum(axis=(1, 2), keepdims=True) / area
    var = (jnp.square(x - mean) * w).sum(axis=(1, 2), keepdims=True) / area
    return mean, jnp.sqrt(var + eps)


@jax.custom_vjp
def _weighted_gram(flat: jax.Array, weights: jax.Array | None) -> jax.Array:
    """``sum_p w_p f_pc f_pd`` (N, C, C) of ``flat`` (N, P, C), ``weights`` (N, P, 1) or None (all 1)."""
    return jnp.einsum("npc,npd->ncd", flat if weights is None else flat * weights, flat)


def _weighted_gram_fwd(flat, weights):
    return _weighted_gram(flat, weights), (flat, weights)


def _weighted_gram_bwd(residuals, g):
    # One (P, C) x (C, C) matmul per gradient, already in the features' layout. Autodiff of the einsum
    # instead computes the two products (g F^T and g^T F^T) separately in (C, P) layout and transposes
    # their sum back: ~10% of a Gatys step at 256 px on XLA:CPU (benchmarks/gatys_step.py).
    flat, weights = residuals
    d_flat = jnp.einsum("npc,ncd->npd", flat, g + jnp.swapaxes(g, 1, 2))
    if weights is None:
        return d_flat, None
    d_weights = jnp.sum(jnp.einsum("npc,ncd->npd", flat, g) * flat, axis=-1, keepdims=True)
    return weights * d_flat, d_weights


_weighted_gram.defvjp(_weighted_gram_fwd, _weighted_gram_bwd)


def gram(x: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
    """Gram matrix ``F^T F / (H W)`` (N, C, C); with a mask, ``F^T diag(m) F / sum(m)``.

    Gatys et al. 2016 Eq. 3 (normalised by the number of positions); guided Gram of Gatys et al. 2017.
    Reverse-mode only (a custom VJP: ``dF = F (G' + G'^T)``, Gatys et al. 2016 Eq. 6).
    """
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)
    if mask is None:
        return _weighted_gram(flat, None) / (h * w)
    weights = _weights(x, mask).reshape(n, h * w, 1)
    return _weighted_gram(flat, weights) / _area(weights[:, :, None]).reshape(n, 1, 1)


def covariance(x: jax.Array, *, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Mean (N, C) and covariance (N, C, C) over positions, centred, divided by (count - 1).

    (Li et al. 2017, WCT, Sec. 3.1.) With a mask the count is ``sum(m)``.
    """
    n, h, w, c = x.shape
    weights = _weights(x, mask).reshape(n, h * w, 1)
    count = jnp.maximum(weights.sum(axis=1), 1e-8)  # (N, 1)
    mean = (x.reshape(n, h * w, c) * weights).sum(axis=1) / count
    centred = x.reshape(n, h * w, c) - mean[:, None, :]
    cov = jnp.einsum("npc,npd->ncd", centred * weights, centred) / jnp.maximum(count - 1.0, 1.0)[:, :, None]
    return mean, cov


def mask_for_layer(mask: jax.Array, layer: str, shape: tuple[int, int] | None = None) -> jax.Array:
    """Resize an image-resolution mask (N, H, W, 1) to the feature map of a VGG19 ``layer``.

    Uses the network's own 2x2 average pools (area averaging aligned exactly with the encoder's
    floor-mode pooling); ``shape`` optionally crops to an explicit feature size.
    """
    if mask.ndim == 3:
        mask = mask[..., None]
    for _ in range(vgg19.STRIDES[layer].bit_length() - 1):
        mask = vgg19.pool2x2(mask, "avg")
    if shape is not None:
        mask = mask[:, : shape[0], : shape[1]]
    return mask
