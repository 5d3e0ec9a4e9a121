"""Stride-1 "same" convolution with zero or reflect padding (NHWC / HWIO): the one conv of the
VGG19 encoder and of every decoder.

Why not ``jnp.pad(mode="reflect")`` + a VALID convolution: XLA:CPU runs a VALID convolution on the
padded (H+2)x(W+2) map 2-3x slower than the same convolution with its padding folded in ("SAME" on
HxW). Reflect padding differs from zero padding only on a frame ``p = k // 2`` pixels wide, and
convolution is linear, so

    conv(reflect_pad(x)) = conv(zero_pad(x)) + conv(reflect_pad(x) - zero_pad(x)),

where the second term touches only the ``p`` outermost output rows and columns. Each of those rows
(columns) is a 1-D convolution of the few reflected input rows (columns) it reads, written as one
matmul over an im2col window ((W, taps * k * Cin) @ (taps * k * Cin, Cout)). Frame cells outside
both the row and the column range (the corners) belong to the row corrections, whose rows are
reflect-padded along W; the column corrections read their columns zero-padded along H. The
corrected border bands are written into the SAME output in place and bias + activation follow in
one fused pass, so a reflect conv needs no more memory than a zero-padded one. The result equals the
padded-VALID convolution up to float rounding (tested, values and gradients) at about the cost of
the SAME convolution alone (3x3, 2 cores: a 256x256x64 -> 64 conv 19 ms vs 20 ms zero-padded,
40 ms with band convolutions, 70 ms padded VALID).

The kernel gradient of the convolution is our own (:func:`_kernel_grad`): XLA:CPU computes it as a
convolution whose "kernel" is the whole output-gradient map, 4-14x slower than PyTorch's oneDNN
(one-off timings, a 4x256x256x64 -> 64 layer: 3.5-3.7 s against 0.26 s), which made every decoder's training step
~1.5x slower than the PyTorch twin's. Accumulating it one output row at a time, one matmul of the
row's im2col window per row, is 1.3-5.6x faster than XLA's on the decoders' layer shapes (one-off timings, a
12x256x256x64 -> 64 layer: 0.33 s against 1.27 s; one matmul per kernel tap over all positions, the
previous version, took 0.93 s: it re-reads the activation once per tap). The input gradient stays XLA's
transposed convolution, which is on par with PyTorch's; for reflect padding it is that of the
padded VALID convolution (see :func:`_reflect_conv`). When only the input gradient is used
(Gatys, a frozen VGG19) XLA drops the kernel gradient as dead code.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

PADDINGS = ("zero", "reflect")
_DN = ("NHWC", "HWIO", "NHWC")


def _xla_conv(x, kernel, padding):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DN)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv(x, kernel, padding):
    """Stride-1 convolution, ``padding`` "VALID" or ``((p, p), (p, p))`` zeros; see :func:`_kernel_grad`."""
    return _xla_conv(x, kernel, padding)


def _conv_fwd(x, kernel, padding):
    return _xla_conv(x, kernel, padding), (x, kernel)


def _conv_bwd(padding, residuals, dy):
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda v: _xla_conv(v, kernel, padding), x)
    return input_vjp(dy)[0], _kernel_grad(x, dy, kernel.shape, padding)


def _kernel_grad(x, dy, kernel_shape, padding):
    """``dL/dkernel[i, j] = sum_{n,h,w} x_pad[n, h + i, w + j, :]^T dy[n, h, w, :]`` of the stride-1
    convolution, accumulated one output row at a time: the row's im2col window (N, W, k_h k_w Cin)
    stays in cache and one matmul gives every tap. (One matmul per tap over all positions instead
    re-read the whole activation k_h k_w times, copied into a fresh slice for each tap: memory-bound,
    2-3x slower on a 12x256x256x64 layer, 0.93 s against 0.33 s.)"""
    k_h, k_w, c_in, c_out = kernel_shape
    if padding != "VALID":
        x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    w = dy.shape[2]

    def add_row(acc, r):
        lines = jax.lax.dynamic_slice_in_dim(x, r, k_h, axis=1)  # (N, k_h, W + k_w - 1, Cin)
        windows = jnp.concatenate([lines[:, i, j: j + w] for i in range(k_h) for j in range(k_w)], axis=-1)
        d_row = jax.lax.dynamic_index_in_dim(dy, r, axis=1, keepdims=False)  # (N, W, Cout)
        return acc + jnp.einsum("nwc,nwd->cd", windows, d_row, preferred_element_type=jnp.float32), None

    grad, _ = jax.lax.scan(add_row, jnp.zeros((k_h * k_w * c_in, c_out), jnp.float32), jnp.arange(dy.shape[1]))
    return grad.reshape(kernel_shape).astype(dy.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv2d_same(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *, padding: str = "zero",
                activation: Callable[[jax.Array], jax.Array] | None = None) -> jax.Array:
    """``activation(conv(x, kernel) + bias)``, ``k x k`` (odd) stride 1, output of the input's size.

    Args:
      x: (N, H, W, Cin). kernel: (k, k, Cin, Cout). bias: (Cout,) or None.
      padding: ``"zero"`` or ``"reflect"``.
      activation: an elementwise function (e.g. ``jax.nn.relu``) or None, applied with the bias in
        one elementwise pass that XLA fuses and runs in place on the convolution's output buffer
        (into which the reflect border bands were written): one activation-sized buffer per layer
        (2048 px: 1 GB per 64-channel map).
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    act = activation if activation is not None else (lambda v: v)
    if bias is not None:
        bias = bias.reshape(1, 1, 1, -1)
    k = kernel.shape[0]
    p = k // 2
    h, w = x.shape[1:3]
    if padding == "reflect" and min(h, w) <= p:
        raise ValueError(f"a {h}x{w} map is too small for reflect padding of {p} px")
    # Tiny maps, whose top and bottom frames would overlap, take the plain pad + VALID path.
    if padding == "reflect" and min(h, w) < 2 * p + 1:
        y = _padded_reflect_conv(x, kernel)
    elif padding == "zero" or p == 0:
        y = _conv(x, kernel, ((p, p), (p, p)))
    else:
        y = _reflect_conv(x, kernel)
    if bias is not None:
        y = y + bias
    return act(y)


@jax.custom_vjp
def _reflect_conv(x, kernel):
    """``conv(reflect_pad(x), kernel, VALID)`` as the SAME convolution with its border bands
    corrected (module docstring). The corrected bands are written into the SAME output in place, so
    the layer holds one activation-sized buffer. Its gradient is that of
    :func:`_padded_reflect_conv`, the same function computed plainly (XLA's transposed convolution,
    10-25% dearer than the SAME one's, then the padding's transpose folds the reflected rows back),
    which costs far less than differentiating the band corrections (a decoder's input gradient took
    1.9x as long as with zero padding that way)."""
    k = kernel.shape[0]
    p = k // 2
    h, w = x.shape[1:3]
    y = _xla_conv(x, kernel, ((p, p), (p, p)))
    top, bottom, left, right = _frame_correction(x, kernel, p)
    # The corners get both their row and column terms.
    zeros = jnp.zeros((x.shape[0], p, w - 2 * p, kernel.shape[-1]), y.dtype)
    top = y[:, :p] + top + jnp.concatenate([left[:, :p], zeros, right[:, :p]], axis=2)
    bottom = y[:, h - p:] + bottom + jnp.concatenate([left[:, h - p:], zeros, right[:, h - p:]], axis=2)
    left = y[:, p: h - p, :p] + left[:, p: h - p]
    right = y[:, p: h - p, w - p:] + right[:, p: h - p]
    for band, start in ((top, (0, 0, 0, 0)), (bottom, (0, h - p, 0, 0)), (left, (0, p, 0, 0)),
                        (right, (0, p, w - p, 0))):
        y = jax.lax.dynamic_update_slice(y, band, start)
    return y


def _padded_reflect_conv(x, kernel):
    """``conv(reflect_pad(x), kernel, VALID)`` computed plainly (tiny maps; :func:`_reflect_conv`'s gradient)."""
    p = kernel.shape[0] // 2
    return _conv(jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect"), kernel, "VALID")


def _reflect_conv_fwd(x, kernel):
    return _reflect_conv(x, kernel), (x, kernel)


def _reflect_conv_bwd(residuals, dy):
    _, vjp = jax.vjp(_padded_reflect_conv, *residuals)
    return vjp(dy)


_reflect_conv.defvjp(_reflect_conv_fwd, _reflect_conv_bwd)


def _edge_windows(lines: jax.Array, p: int, k: int) -> jax.Array:
    """im2col along axis 2 of (N, R, L + 2p, C) lines: (N, R, L, k * C), tap-major like ``kernel[d]``."""
    length = lines.shape[2] - 2 * p
    return jnp.concatenate([lines[:, :, d: d + length] for d in range(k)], axis=-1)


def _frame_correction(x: jax.Array, kernel: jax.Array, p: int):
    """``conv(reflect_pad(x) - zero_pad(x))``, non-zero only on the outer ``p`` rows and columns, as
    its four bands: top/bottom (N, p, W, Cout) including the row terms of the corners, and
    left/right (N, H, p, Cout) holding the column terms (their corner rows are added to top/bottom)."""
    _, h, w, cin = x.shape
    k, cout = kernel.shape[0], kernel.shape[-1]

    def correction(rows_of, axis_len, taps_of):
        # Output line r < p (and its mirror axis_len - 1 - r) reads the reflected input lines
        # p - r - d for the kernel rows d < p - r (resp. the mirrored ones).
        head, tail = [], []
        for r in range(p):
            ds = range(p - r)
            head.append(jnp.concatenate([rows_of(p - r - d) for d in ds], -1)
                        @ jnp.concatenate([taps_of(d) for d in ds], 0))
            tail.append(jnp.concatenate([rows_of(axis_len - 1 - (p - r - d)) for d in ds], -1)
                        @ jnp.concatenate([taps_of(k - 1 - d) for d in ds], 0))
        return head, tail[::-1]

    # Rows (corners included): input rows reflect-padded along W.
    row_lines = jnp.pad(x[:, : p + 1], ((0, 0), (0, 0), (p, p), (0, 0)), mode="reflect")
    row_lines_end = jnp.pad(x[:, h - p - 1:], ((0, 0), (0, 0), (p, p), (0, 0)), mode="reflect")
    top_win, bottom_win = _edge_windows(row_lines, p, k), _edge_windows(row_lines_end, p, k)
    top, bottom = correction(
        lambda i: top_win[:, i] if i <= p else bottom_win[:, i - (h - p - 1)], h,
        lambda d: kernel[d].reshape(k * cin, cout))
    # Columns: input columns zero-padded along H (the corners are in the rows' share).
    col_lines = jnp.pad(jnp.swapaxes(x[:, :, : p + 1], 1, 2), ((0, 0), (0, 0), (p, p), (0, 0)))
    col_lines_end = jnp.pad(jnp.swapaxes(x[:, :, w - p - 1:], 1, 2), ((0, 0), (0, 0), (p, p), (0, 0)))
    left_win, right_win = _edge_windows(col_lines, p, k), _edge_windows(col_lines_end, p, k)
    left, right = correction(
        lambda j: left_win[:, j] if j <= p else right_win[:, j - (w - p - 1)], w,
        lambda d: kernel[:, d].reshape(k * cin, cout))
    return jnp.stack(top, 1), jnp.stack(bottom, 1), jnp.stack(left, 2), jnp.stack(right, 2)
