"""Softmax attention computed in chunks of query rows, so memory never grows with Lq x Lk.

One implementation serves SANet (content queries attend to style keys; Park & Lee 2019, Eq. 1) and
the SAGAN-style self-attention of AAMS (Zhang et al. 2019; Yao et al. 2019)::

    out[n, i] = sum_j softmax_j(scale * q[n, i] . k[n, j]) v[n, j]

Memory. The unchunked product materialises the (N, Lq, Lk) logits and probabilities: at SANet's
relu4_1 a 2048 px content against a 2048 px style gives Lq = Lk = 256^2 = 65,536 and 17 GB of float32
logits alone. Here the query rows are processed ``chunk_size`` at a time with :func:`jax.lax.map`
(a sequential loop), and each chunk is wrapped in :func:`jax.checkpoint` so that reverse-mode
differentiation stores only the chunk's inputs and recomputes its probabilities. Peak memory is::

    inputs/outputs:  4 bytes * N * (Lq * D + Lk * (D + Dv) + Lq * Dv)      (q, k, v, out; float32)
    + per chunk:     4 bytes * N * chunk_size * Lk * ~3                   (logits, exp, probabilities)
    (+ up to one re-laid-out copy of q and of out for the chunked layout)

Example, one 2048 px content at relu4_1 (Lq = 65,536, D = Dv = 512) with a 512 px style
(Lk = 64^2 = 4,096), chunk_size = 1024: q + out = 256 MB, k + v = 16 MB, the chunk's
temporaries 1024 * 4096 * 12 B = 48 MB. XLA's own accounting of the compiled function
(``jit(...).lower(...).compile().memory_analysis()``, CPU backend) is 0.29 GB of arguments and
output plus 0.17 GB of temporaries (0.20 GB for the gradient), against 2.1 GB of temporaries
unchunked. With a 2048 px style too (Lk = 65,536) the temporaries are 0.67 GB at chunk_size = 1024
and 0.27 GB at chunk_size = 256 (unchunked: 17 GB of logits alone). So 2048 px content with any
style up to 2048 px fits well under 8 GB; :func:`attention_memory_bytes` gives the (conservative)
estimate for other sizes.

Numerics: the row maximum is subtracted before ``exp`` and the probabilities are computed in
float32 whatever the input dtype. ``key_mask`` (N, Lk) restricts each row's softmax to the
selected keys (spatial control: attend only to one region of the style); a row with no valid key
gets all-zero weights and a zero output instead of NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_CHUNK_SIZE = 1024


def _check(q: jax.Array, k: jax.Array, v: jax.Array | None, key_mask: jax.Array | None) -> None:
    if q.ndim != 3 or k.ndim != 3:
        raise ValueError(f"q and k must be (N, L, D); got {q.shape} and {k.shape}")
    if q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        raise ValueError(f"q {q.shape} and k {k.shape} must share batch size and feature size D")
    if v is not None and (v.ndim != 3 or v.shape[:2] != k.shape[:2]):
        raise ValueError(f"v must be (N, Lk, Dv) with (N, Lk) = {k.shape[:2]}; got {v.shape}")
    if key_mask is not None and key_mask.shape != k.shape[:2]:
        raise ValueError(f"key_mask must have shape (N, Lk) = {k.shape[:2]}; got {key_mask.shape}")


def _weights(q: jax.Array, k: jax.Array, key_mask: jax.Array | None, scale: float) -> jax.Array:
    """float32 softmax over the last axis of scale * q k^T, masked and guarded."""
    logits = jnp.einsum("nqd,nkd->nqk", q, k, preferred_element_type=jnp.float32)
    if scale != 1.0:
        logits = logits * scale
    if key_mask is not None:
        logits = jnp.where(key_mask[:, None, :], logits, -jnp.inf)
    row_max = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    row_max = jnp.where(jnp.isfinite(row_max), row_max, 0.0)  # rows with no valid key
    e = jnp.exp(logits - row_max)
    total = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(total > 0.0, total, 1.0)


def attention_weights(
    q: jax.Array, k: jax.Array, *, key_mask: jax.Array | None = None, scale: float = 1.0
) -> jax.Array:
    """The full (N, Lq, Lk) float32 attention matrix (for tests and visualisation; O(Lq Lk) memory).

    Each row sums to one (or is all zeros when ``key_mask`` leaves the row no valid key).
    """
    _check(q, k, None, key_mask)
    return _weights(q, k, None if key_mask is None else key_mask.astype(bool), scale)


def attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
    key_mask: jax.Array | None = None,
    scale: float = 1.0,
) -> jax.Array:
    """Softmax attention ``softmax(scale * q k^T) v`` chunked over query rows.

    Args:
      q: queries (N, Lq, D).
      k: keys (N, Lk, D).
      v: values (N, Lk, Dv).
      chunk_size: query rows per chunk; ``None`` (or >= Lq) computes everything at once. Peak
        temporary memory is about 12 bytes * N * chunk_size * Lk (module docstring).
      key_mask: optional (N, Lk) boolean (or 0/1) array; False keys get zero weight. A row whose
        keys are all masked returns zeros.
      scale: multiplies the logits (SANet and SAGAN use 1; transformers use D**-0.5).

    Returns:
      (N, Lq, Dv) in ``v.dtype``. Jittable and differentiable; under ``jax.grad`` each chunk is
      recomputed in the backward pass, so gradient memory is bounded the same way.
    """
    _check(q, k, v, key_mask)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
    mask = None if key_mask is None else key_mask.astype(bool)
    n, lq, d = q.shape

    def block(q_block: jax.Array) -> jax.Array:
        p = _weights(q_block, k, mask, scale)
        return jnp.einsum("nqk,nkv->nqv", p.astype(v.dtype), v, preferred_element_type=jnp.float32).astype(v.dtype)

    if chunk_size is None or chunk_size >= lq:
        return block(q)
    num_chunks = -(-lq // chunk_size)
    padded = num_chunks * chunk_size
    q_pad = jnp.pad(q, ((0, 0), (0, padded - lq), (0, 0)))
    q_chunks = q_pad.reshape(n, num_chunks, chunk_size, d).transpose(1, 0, 2, 3)
    out = jax.lax.map(jax.checkpoint(block), q_chunks)  # (num_chunks, N, chunk, Dv)
    out = out.transpose(1, 0, 2, 3).reshape(n, padded, v.shape[-1])
    return out[:, :lq]


def attention_memory_bytes(
    n: int, lq: int, lk: int, d: int, dv: int, *, chunk_size: int | None = DEFAULT_CHUNK_SIZE, itemsize: int = 4
) -> int:
    """Estimated peak bytes of :func:`attention` (forward): inputs, output and one chunk's temporaries."""
    rows = lq if chunk_size is None else min(chunk_size, lq)
    io = itemsize * n * (lq * d + lk * (d + dv) + lq * dv)
    return io + 4 * 3 * n * rows * lk
