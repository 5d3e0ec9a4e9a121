"""Losses shared by Gatys optimisation and every trainer.

Each takes feature dicts keyed by VGG19 layer name (see :mod:`nst_jax.vgg19`). Targets are computed
once outside loops (representation/score split, as in pystiche) and passed in.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from nst_jax.kernels.stats import gram, mean_std


def mse(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.mean(jnp.square(a - b))


def feature_loss(feats: Mapping[str, jax.Array], targets: Mapping[str, jax.Array],
                 weights: Mapping[str, float] | None = None) -> jax.Array:
    """Sum over layers of weight * MSE(features, target): Gatys' content loss (Eq. 1) and the
    perceptual loss of the reconstruction-trained decoders."""
    return sum((1.0 if weights is None else weights[k]) * mse(feats[k], targets[k]) for k in targets)


def gram_loss(feats: Mapping[str, jax.Array], target_grams: Mapping[str, jax.Array],
              weights: Mapping[str, float], masks: Mapping[str, jax.Array] | None = None,
              channels: Mapping[str, jax.Array] | None = None) -> jax.Array:
    """Gatys et al. 2016 style loss (Eq. 4–5): sum_l w_l ||G_l(x) - A_l||^2, summed over entries.

    Args:
      masks: optional per-layer guidance masks (N, H, W, 1) at feature resolution: guided Gram
        matrices of Gatys et al. 2017. Targets must then be the style's guided Grams.
      channels: optional per-layer integer indices: the loss uses only these filters (object-specific
        transfer by filter selection, seed 001).
    """
    total = 0.0
    for layer, target in target_grams.items():
        f = feats[layer]
        if channels is not None and layer in channels:
            f = jnp.take(f, channels[layer], axis=-1)
        g = gram(f, mask=None if masks is None else masks.get(layer))
        total = total + weights[layer] * jnp.sum(jnp.square(g - target))
    return total


def moment_loss(feats: Mapping[str, jax.Array], targets: Mapping[str, tuple[jax.Array, jax.Array]]) -> jax.Array:
    """AdaIN/SANet style loss (Huang & Belongie 2017 Eq. 12): per layer, MSE of channel means plus
    MSE of channel stds against the target (mean, std) pairs."""
    total = 0.0
    for layer, (t_mean, t_std) in targets.items():
        mean, std = mean_std(feats[layer])
        total = total + mse(mean, t_mean) + mse(std, t_std)
    return total


def tv_loss(images: jax.Array) -> jax.Array:
    """Total variation: mean squared difference of neighbouring pixels (anisotropic, L2)."""
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return jnp.mean(jnp.square(dy)) + jnp.mean(jnp.square(dx))


def tv_l1_loss(images: jax.Array) -> jax.Array:
    """L1 total variation (Avatar-Net/AAMS training)."""
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return jnp.mean(jnp.abs(dy)) + jnp.mean(jnp.abs(dx))
