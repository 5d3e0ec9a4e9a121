"""Colour preservation in image space (Gatys et al. 2017, "Controlling Perceptual Factors", Sec. 5).

* ``luminance``: keep the stylized image's luminance (Y of YIQ) and the content's chrominance (I, Q).
* ``match``: linear colour transfer — give the style image the content's per-channel mean and RGB
  covariance (whiten with the style's, colour with the content's; matrix square roots by ``eigh``)
  before stylizing, so the result takes the content's colours.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.kernels.stats import covariance
from nst_jax.kernels.wct import sym_powers

COLOR_MODES = ("luminance", "match")

# RGB -> YIQ (NTSC); its inverse is computed so the pair is exact. numpy constants: a jnp array made
# at import would run a JAX computation then (see nst_jax.host_memory).
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.59590059, -0.27455667, -0.32134392],
                        [0.21153661, -0.52273617, 0.31119955]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)
_RGB_TO_YIQ = _RGB_TO_YIQ.astype(np.float32)


def rgb_to_yiq(x: jax.Array) -> jax.Array:
    return jnp.matmul(x, _RGB_TO_YIQ.T)


def yiq_to_rgb(x: jax.Array) -> jax.Array:
    return jnp.matmul(x, _YIQ_TO_RGB.T)


def luminance_transfer(stylized: jax.Array, content: jax.Array) -> jax.Array:
    """Luminance of ``stylized`` with the chrominance of ``content`` (same shape, RGB in [0, 1])."""
    y = rgb_to_yiq(stylized)[..., :1]
    iq = rgb_to_yiq(content)[..., 1:]
    return jnp.clip(yiq_to_rgb(jnp.concatenate([y, iq], axis=-1)), 0.0, 1.0)


def _sym_power(cov: jax.Array, power: float, eps: float) -> jax.Array:
    # Small eigenvalues clamped at eps (not masked as in WCT): see wct.sym_powers.
    return sym_powers(cov, (power,), eps=eps, clamp=True)[0]


def linear_color_transfer(source: jax.Array, target: jax.Array, *, eps: float = 1e-5) -> jax.Array:
    """Recolour ``source`` (N, H, W, 3) so its RGB mean and covariance equal ``target``'s.

    ``x' = C_t^{1/2} C_s^{-1/2} (x - mu_s) + mu_t`` (Gatys et al. 2017, Eq. 11 with the symmetric
    square root, as AdaIN's ``-preserveColor``); small eigenvalues are clamped at ``eps``.
    """
    mu_s, cov_s = covariance(source)
    mu_t, cov_t = covariance(target)
    transform = _sym_power(cov_t, 0.5, eps) @ _sym_power(cov_s, -0.5, eps)
    n, h, w, c = source.shape
    flat = source.reshape(n, h * w, c) - mu_s[:, None]
    out = jnp.einsum("nij,npj->npi", transform, flat) + mu_t[:, None]
    return jnp.clip(out.reshape(n, h, w, c), 0.0, 1.0)
