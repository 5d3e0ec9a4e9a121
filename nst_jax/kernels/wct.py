"""Whitening and colouring transforms (Li et al. 2017, "Universal Style Transfer via Feature
Transforms", Sec. 3.1) and the ZCA projection / re-colouring of Avatar-Net (Sheng et al. 2018,
Sec. 3.2) and AAMS (Yao et al. 2019).

With ``f_c`` the centred content features (C x HW), ``E_c D_c E_c^T`` the eigen-decomposition of
their covariance, and likewise for the style:

* whitening:   ``f_w = E_c D_c^{-1/2} E_c^T f_c``            (identity covariance)
* colouring:   ``f_cs = E_s D_s^{1/2} E_s^T f_w + m_s``      (the style's covariance)

Conventions (DESIGN §3): covariance from :func:`nst_jax.kernels.stats.covariance` (centred, divided
by HW - 1; weighted by a mask for per-region statistics), one ``jnp.linalg.eigh`` per covariance,
and eigenvalues below ``eps`` **masked** (``where(vals > eps, vals ** p, 0)``), never sliced, so
every shape is static under ``jit``. Everything stays float32 and every matrix product here runs
at ``Precision.HIGHEST`` (no TF32/bf16 passes on GPU/TPU), including the covariance products inside
``stats.covariance``. Accuracy: against a float64 reference the result agrees to ~1e-6 relative
for well-conditioned covariances, and for rank-deficient ones whose null space float32 resolves:
directions whose variance is below ~1e-7 of the largest cannot be resolved by a float32 covariance
(a null direction's eigenvalue comes out at up to ~2.5e-7 of the largest), so once the largest
eigenvalue exceeds ~40 such a direction can pass ``eps`` and be kept: colouring then adds up to its
square root, whitening multiplies by its inverse square root. VGG19's deep layers are in that regime
(relu5_1 of a 256 px image: rank <= 255 of 512; rms deviation from float64 ~1-3%), as is every float32
implementation of the paper's absolute threshold. :func:`wct` avoids it where it can: with no more
positions than channels it works on the positions' Gram matrices, which have no such null space
(same transform; relu5_1 of a 256 px pair: 2e-4 rms from float64, 8e-3 by covariance).

Cost: for HW positions and C channels, one HW x C x C product per covariance and one to apply the
transform; :func:`wct` fuses whitening and colouring into a single C x C matrix, so the features
are touched by one matmul.

CPU note: ``jnp.linalg.eigh`` calls LAPACK through scipy's multi-threaded OpenBLAS. On a busy
machine its threads oversubscribe the cores (a 512 x 512 ``eigh`` measured 160-5000 ms instead of
~20-40 ms); setting ``OPENBLAS_NUM_THREADS=1`` before the first ``eigh`` (before scipy's OpenBLAS
loads) avoids it. That is the entry point's decision, not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from nst_jax.errors import InputError
from nst_jax.kernels.stats import covariance

EPS = 1e-5
_HIGHEST = jax.lax.Precision.HIGHEST


def _highest():
    # Applies to every matmul traced inside the block, including those of stats.covariance.
    return jax.default_matmul_precision("highest")


def sym_powers(cov: jax.Array, powers: Sequence[float], *, eps: float = EPS,
               clamp: bool = False) -> tuple[jax.Array, ...]:
    """Powers ``cov ** p`` of symmetric PSD matrices (..., C, C) from **one** eigen-decomposition.

    ``E diag(d ** p) E^T`` for each ``p`` in ``powers``. By default (WCT/ZCA, DESIGN §3) eigenvalues
    not above ``eps`` are masked to zero for every power, positive or negative, as in
    Li et al. 2017 and Avatar-Net's ``zca_normalization``. ``clamp=True`` instead clamps them at
    ``eps`` (``max(d, eps) ** p``), the behaviour of the image-space linear colour transfer.
    """
    with _highest():
        vals, vecs = jnp.linalg.eigh(cov)
        if clamp:
            scaled = [jnp.maximum(vals, eps) ** p for p in powers]
        else:
            keep = vals > eps
            safe = jnp.where(keep, vals, 1.0)  # keeps 0 ** -0.5 (and its gradient) out of the graph
            scaled = [jnp.where(keep, safe ** p, 0.0) for p in powers]
        vecs_t = jnp.swapaxes(vecs, -1, -2)
        return tuple((vecs * d[..., None, :]) @ vecs_t for d in scaled)


def _apply(x: jax.Array, matrix: jax.Array, before: jax.Array | None, after: jax.Array | None) -> jax.Array:
    """``(x - before) @ matrix^T + after`` over the channel axis of NHWC ``x`` (matrix (N|1, C, C)).

    The means are folded into one bias, ``after - before @ matrix^T``, so the features go through a
    single matmul and one add (no separate centring pass). The extra rounding is ~``eps * |mean| /
    std`` relative, negligible for feature maps (ReLU features have mean ~ std).
    """
    n, h, w, c = x.shape
    mt = jnp.swapaxes(matrix, -1, -2)
    # matmul (not einsum) so a batch-1 style broadcasts against a batch of contents and vice versa.
    y = jnp.matmul(x.reshape(n, h * w, c), mt, precision=_HIGHEST)
    bias = None
    if before is not None:
        bias = -jnp.matmul(before[:, None, :], mt, precision=_HIGHEST)
    if after is not None:
        bias = after[:, None, :] if bias is None else bias + after[:, None, :]
    if bias is not None:
        y = y + bias
    return y.reshape(y.shape[0], h, w, c)


class ZCAStats(NamedTuple):
    """What re-colouring needs (Avatar-Net's ``style_kernels`` and ``mean_style_features``).

    mean: (N, C) channel means; coloring: (N, C, C) the symmetric square root of the covariance
    (small eigenvalues masked).
    """

    mean: jax.Array
    coloring: jax.Array


def whiten(x: jax.Array, *, mask: jax.Array | None = None, eps: float = EPS) -> jax.Array:
    """Centre and ZCA-whiten NHWC features: identity covariance (Li et al. 2017, Sec. 3.1, whitening).

    With ``mask`` (N, H, W, 1) the mean and covariance are those of the weighted region; the
    transform is applied at every position (blend the per-region results by the masks).
    """
    mean, cov = _moments(x, mask)
    (w,) = sym_powers(cov, (-0.5,), eps=eps)
    return _apply(x, w, mean, None)


def color(whitened: jax.Array, style: jax.Array, *, mask: jax.Array | None = None,
          eps: float = EPS) -> jax.Array:
    """Colour whitened features with the style's covariance and mean (Li et al. 2017, Sec. 3.1, colouring).

    ``style`` may have batch 1 (shared) or the same batch as ``whitened``; ``mask`` (of the style)
    restricts the statistics to a region.
    """
    mean, cov = _moments(style, mask)
    (k,) = sym_powers(cov, (0.5,), eps=eps)
    return _apply(whitened, k, None, mean)


def wct(content: jax.Array, style: jax.Array, *, content_mask: jax.Array | None = None,
        style_mask: jax.Array | None = None, eps: float = EPS) -> jax.Array:
    """Whitening and colouring transform (Li et al. 2017, Sec. 3.1): ``color(whiten(content), style)``.

    Whitening and colouring are composed into one C x C matrix first, so the features go through a
    single matmul. Without a content mask and with no more positions than channels (relu5_1 of
    images up to 256 px), the same transform goes through the positions' Gram matrices instead
    (:func:`_wct_by_gram`: smaller ``eigh``, no spurious null-space directions). The content-style
    ``alpha`` blend (Li et al. Sec. 3.1) is the caller's: ``alpha * wct(c, s) + (1 - alpha) * c``.
    Masks give per-region statistics (the transform is applied everywhere; composite regions with
    :func:`nst_jax.kernels.blend_by_masks`).
    """
    if content_mask is None and _few_positions(content):
        return _wct_by_gram(content, style, style_mask, eps)
    mean_c, cov_c = _moments(content, content_mask)
    mean_s, cov_s = _moments(style, style_mask)
    cov_s = ready_with(cov_s, cov_c)
    (w,) = sym_powers(cov_c, (-0.5,), eps=eps)
    (k,) = sym_powers(cov_s, (0.5,), eps=eps)
    with _highest():
        transform = k @ w
    return _apply(content, transform, mean_c, mean_s)


def _few_positions(x: jax.Array) -> bool:
    """Fewer positions than channels (e.g. relu5_1 of a 256 px image: 256 x 512): the Gram route."""
    return x.shape[1] * x.shape[2] <= x.shape[3]


def _centred_gram(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Rows (N, P, C) of NHWC ``x`` centred, their mean (N, C) and position Gram ``X X^T / (P - 1)``."""
    n, h, w, c = x.shape
    rows = x.reshape(n, h * w, c)
    mean = jnp.mean(rows, axis=1)
    centred = rows - mean[:, None, :]
    gram = jnp.matmul(centred, jnp.swapaxes(centred, -1, -2), precision=_HIGHEST) / (h * w - 1)
    # Centring leaves the all-ones direction an exact null vector of the Gram, but float32 puts its
    # eigenvalue at ~1e-7 of the largest, past eps; lifting it to the mean eigenvalue (other
    # eigenpairs untouched) keeps it out of the inverse square root. The rows have no component there.
    lift = jnp.trace(gram, axis1=-2, axis2=-1) / (h * w) ** 2
    return centred, mean, gram + lift[:, None, None]


def _wct_by_gram(content: jax.Array, style: jax.Array, style_mask: jax.Array | None, eps: float) -> jax.Array:
    """:func:`wct` through P x P position Gram matrices when P <= C positions (same value, exactly
    rank-aware).

    With centred rows ``X = U S V^T``, ``cov = X^T X / (P-1)`` and ``G = X X^T / (P-1)`` share their
    non-zero eigenvalues ``D``, and ``X cov^{-1/2} = G^{-1/2} X`` (both ``sqrt(P-1) U V^T``); likewise
    ``cov^{1/2} = X^T G^{-1/2} X / (P-1)``. The same ``eps`` masks the same eigenvalues, so this is
    the covariance route's transform, but the covariance's C - P + 1 null directions never arise:
    in float32 those come out at up to ~2.5e-7 of the largest eigenvalue and can pass ``eps``, which
    is the covariance route's error at relu5_1 (rms deviation from float64 on a 256 px photo/painting
    pair: 8e-3 by covariance, 2e-4 by Gram). And the ``eigh`` is P x P: 256 x 256 instead of 512 x 512.
    """
    with _highest():
        xc, _, gram_c = _centred_gram(content)
        (g_c,) = sym_powers(gram_c, (-0.5,), eps=eps)
        whitened = jnp.matmul(g_c, xc)  # (N, P, C) = X_c cov_c^{-1/2}
        if style_mask is None and _few_positions(style):
            xs, mean_s, gram_s = _centred_gram(style)
            (g_s,) = sym_powers(ready_with(gram_s, gram_c), (-0.5,), eps=eps)
            coloring = jnp.matmul(jnp.swapaxes(xs, -1, -2), jnp.matmul(g_s, xs)) / (xs.shape[1] - 1)
        else:
            mean_s, cov_s = _moments(style, style_mask)
            (coloring,) = sym_powers(ready_with(cov_s, gram_c), (0.5,), eps=eps)
    return _apply(whitened.reshape(content.shape), coloring, None, mean_s)


def ready_with(x: jax.Array, anchor: jax.Array) -> jax.Array:
    """``x``, made to depend on ``anchor`` (adds zero times one element of it; the value is ``x``'s).

    A scheduling hint for the style side of a transform: LAPACK's ``eigh`` runs on one core. The
    content's ``eigh`` is on the critical path, the style's is ready from the start; left alone, XLA
    runs the style ones first, two at a time, and then the second core idles during every content
    ``eigh``. Making the style's statistics wait for the content's pairs them, one per core (WCT at
    256 px: 424 vs 436 ms, 437 vs 456 ms and 477 vs 488 ms in one-off side-by-side runs).
    ``lax.optimization_barrier`` would say this more plainly, but XLA:CPU drops it before
    scheduling; ``0.0 * a`` is kept (IEEE: not foldable). No gradient reaches ``anchor``.
    """
    return x + jax.lax.stop_gradient(anchor.reshape(-1)[0]) * 0.0


def zca_project(x: jax.Array, *, mask: jax.Array | None = None,
                eps: float = EPS) -> tuple[jax.Array, ZCAStats]:
    """ZCA projection (Avatar-Net ``zca_normalization``; Sheng et al. 2018, Sec. 3.2).

    Returns the whitened features and the :class:`ZCAStats` that :func:`zca_recolor` needs to map
    features back into this input's colour (both from a single ``eigh``). Under ``jit`` the unused
    colouring kernel of a content projection is never computed.
    """
    mean, cov = _moments(x, mask)
    w, k = sym_powers(cov, (-0.5, 0.5), eps=eps)
    return _apply(x, w, mean, None), ZCAStats(mean=mean, coloring=k)


def zca_recolor(projected: jax.Array, stats: ZCAStats) -> jax.Array:
    """Re-colour projected features with ``stats`` (Avatar-Net ``zca_colorization``): ``K f + m``."""
    return _apply(projected, stats.coloring, None, stats.mean)


def _moments(x: jax.Array, mask: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    if x.ndim != 4:
        raise InputError(f"features must be NHWC, got shape {x.shape}")
    with _highest():
        return covariance(x, mask=mask)
