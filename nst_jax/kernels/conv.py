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

Layers with many channels on small maps (:func:`winograd_eligible`: relu2_1 to relu5_1 of the
VGG19 encoders and decoders at 256 px) are computed by Winograd's minimal filtering F(4x4, 3x3)
(Lavin & Gray 2016) instead: 4x fewer multiplications (36 per 4x4 output tile instead of 144), as
one batched matmul over 36 transformed tile planes between two elementwise tile transforms, so
XLA:CPU's matmul runs it near its peak. The padding (zero or reflect) is explicit there: the tiles
are copied anyway. The transformed kernel (``G g G^T``, 4x the kernel) depends only on the weights:
:func:`with_winograd_kernels` stores it beside each kernel once, at load time, for inference
(``FeedForward.load_params`` does); otherwise every call makes it again, which costs a 512 -> 512
layer on a 32x32 map as much as its matmul.

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

import contextlib
import functools
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

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
                activation: Callable[[jax.Array], jax.Array] | None = None,
                winograd_kernel: jax.Array | None = None) -> jax.Array:
    """``activation(conv(x, kernel) + bias)``, ``k x k`` (odd) stride 1, output of the input's size.

    Args:
      x: (N, H, W, Cin). kernel: (k, k, Cin, Cout). bias: (Cout,) or None.
      padding: ``"zero"`` or ``"reflect"``.
      activation: an elementwise function (e.g. ``jax.nn.relu``) or None, applied with the bias in
        one elementwise pass that XLA fuses and runs in place on the convolution's output buffer
        (into which the reflect border bands were written): one activation-sized buffer per layer
        (2048 px: 1 GB per 64-channel map).
      winograd_kernel: ``winograd_kernel(kernel)`` made ahead (see :func:`with_winograd_kernels`),
        used when the layer takes the Winograd path; gradients still flow to ``kernel`` only.
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
    elif winograd_eligible(x.shape, kernel.shape, x.dtype, prepared=winograd_kernel is not None):
        y = _winograd_conv(x, kernel, winograd_kernel, padding)
    elif padding == "zero" or p == 0:
        y = _conv(x, kernel, ((p, p), (p, p)))
    else:
        y = _reflect_conv(x, kernel)
    if bias is not None:
        y = y + bias
    return act(y)


def upsample2x(x: jax.Array) -> jax.Array:
    """Nearest-neighbour x2 upsampling of NHWC features (each pixel becomes a 2x2 block)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _phase_taps(kernel: jax.Array, axis: int) -> jax.Array:
    """The 2-tap kernels of the two phases of a 3-tap ``axis`` after nearest x2 upsampling: even
    outputs read (i-1, i) with (K0, K1 + K2), odd ones (i, i+1) with (K0 + K1, K2). (2, 2, ...)."""
    k0, k1, k2 = (jnp.take(kernel, i, axis=axis) for i in range(3))
    return jnp.stack([jnp.stack([k0, k1 + k2]), jnp.stack([k0 + k1, k2])])


def upsample_conv2d_same(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, *,
                         padding: str = "zero", activation: Callable[[jax.Array], jax.Array] | None = None,
                         winograd_kernel: jax.Array | None = None) -> jax.Array:
    """``conv2d_same(upsample2x(x), ...)``: a decoder's nearest x2 upsampling and the 3x3 convolution
    after it, without the upsampled map where the convolution would run directly.

    Each of the four output phases (row parity a, column parity b) of a 3x3 convolution of a
    nearest-upsampled map is a 2x2 convolution of the original map whose taps are sums of the 3x3
    taps: even rows read rows (i-1, i) with (K0, K1 + K2), odd rows (i, i+1) with (K0 + K1, K2),
    likewise for columns ("sub-pixel" form, cf. Shi et al. 2016; Odena et al. 2016 on resize-convolution).
    So 16 instead of 36 multiply-adds per input position and channel pair (2.25x fewer), and no 4x
    larger upsampled map in memory. Reflect padding of the upsampled map is edge padding of the
    original (its first two rows are equal), zero padding stays zero padding. Layers that take
    Winograd's algorithm on the upsampled map (:func:`winograd_eligible`: fewer multiplications
    still, 2.25 per output) and other kernel sizes upsample first. Agrees with the two-step form
    to float rounding (tested, values and gradients). Its four phases and the workspace of their
    2x2 convolution take ~2x the memory of the upsampled map (SANet at 2048 px: 5.3 GB peak RSS
    against 4.4 GB), so phases over ``SUBPIXEL_MAX_BYTES`` upsample first. One-off timings, reflect
    padding, 64 -> 64 channels: 128x128 -> 256x256 13.2 -> 6.8 ms, 256x256 -> 512x512 48.7 -> 25.1
    ms; the whole AdaIN decoder at 256 px 43 -> 39 ms.
    """
    n, h, w, c_in = x.shape
    up_shape = (n, 2 * h, 2 * w, c_in)
    phase_bytes = n * (h + 1) * (w + 1) * 4 * kernel.shape[-1] * x.dtype.itemsize
    if (not _fast_algorithms or kernel.shape[:2] != (3, 3) or padding not in PADDINGS
            or phase_bytes > SUBPIXEL_MAX_BYTES
            or winograd_eligible(up_shape, kernel.shape, x.dtype, prepared=winograd_kernel is not None)):
        return conv2d_same(upsample2x(x), kernel, bias, padding=padding, activation=activation,
                           winograd_kernel=winograd_kernel)
    c_out = kernel.shape[3]
    # Row phases, then column phases of each: (b, j, a, i, Cin, Cout).
    taps = _phase_taps(_phase_taps(kernel, 0), 2)
    # One VALID 2x2 convolution gives all four phases as 4 Cout channels, phase (a, b) read at offset (a, b).
    phases = jnp.transpose(taps, (3, 1, 4, 2, 0, 5)).reshape(2, 2, c_in, 4 * c_out)
    y = _edge_padded_conv2x2(x, phases) if padding == "reflect" else _conv(x, phases, ((1, 1), (1, 1)))
    # Bias and activation on the phases (elementwise, so before the interleave): the interleaving copy
    # is then the last pass and writes the output directly.
    if bias is not None:
        y = y + jnp.tile(bias, 4).reshape(1, 1, 1, -1)
    if activation is not None:
        y = activation(y)
    y = y.reshape(n, h + 1, w + 1, 2, 2, c_out)
    out = jnp.stack([jnp.stack([y[:, a: a + h, b: b + w, a, b] for b in (0, 1)], 3) for a in (0, 1)], 2)
    return out.reshape(n, 2 * h, 2 * w, c_out)


# Largest phase tensor (N, H + 1, W + 1, 4 Cout) of a sub-pixel convolution: a 64-channel decoder
# layer at 512 px for one image, or a 256 px training batch of 12 (SANet's decoder, batch 4).
SUBPIXEL_MAX_BYTES = 256 * 2**20


def _edge_padded_conv2x2(x, kernel):
    """``conv(edge_pad(x, 1), kernel, VALID)`` for a 2x2 kernel: (N, H + 1, W + 1, Cout), as the
    zero-padded convolution plus the padded frame's terms (a VALID convolution of a materialised
    padded map runs ~1.5x slower on XLA:CPU; module docstring). Output row 0 reads the top padded
    row with kernel row 0, row H the bottom one with kernel row 1; columns likewise, their corner
    cells counted in the rows."""
    h, w = x.shape[1:3]
    c_in, c_out = kernel.shape[2:]
    y = _conv(x, kernel, ((1, 1), (1, 1)))

    def line_terms(line, taps):  # (N, L + 2, Cin) padded line -> (N, L + 1, Cout)
        return jnp.concatenate([line[:, :-1], line[:, 1:]], -1) @ taps.reshape(2 * c_in, c_out)

    edge = ((0, 0), (1, 1), (0, 0))
    y = y.at[:, 0].add(line_terms(jnp.pad(x[:, 0], edge, mode="edge"), kernel[0]))
    y = y.at[:, h].add(line_terms(jnp.pad(x[:, h - 1], edge, mode="edge"), kernel[1]))
    y = y.at[:, :, 0].add(line_terms(jnp.pad(x[:, :, 0], edge), kernel[:, 0]))
    return y.at[:, :, w].add(line_terms(jnp.pad(x[:, :, w - 1], edge), kernel[:, 1]))


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


# ------------------------------------------------------------------------------------------ Winograd
# F(4x4, 3x3) transforms (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR
# 2016, Sec. 4.2; interpolation points 0, +-1, +-2, infinity): Y = A^T [(G g G^T) * (B^T d B)] A.
_WINO_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
            (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_WINO_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
           (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
_WINO_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))
# G g G^T for every tap pair at once: (36, 9), applied to a kernel reshaped (9, Cin Cout).
_WINO_G_TAPS = np.einsum("ai,bj->abij", _WINO_G, _WINO_G).reshape(36, 9).astype(np.float32)
# The extra memory a Winograd layer may take: its transformed input and output planes (2.25x its
# maps). Larger layers (512 px and up for the 64/128-channel maps) take the direct convolution.
WINOGRAD_MAX_BYTES = 96 * 2**20
# A kernel whose transform is larger than this (512 -> 512: 38 MB) and made on every call must have at
# least 32x32 output positions to amortise it (whole pipelines at 256 px, host memory reuse on:
# SANet 274 -> 218 ms and WCT 583 -> 515 ms with the 32x32 ones included; with the 16x16 ones too,
# in an earlier run without reuse, both were slightly slower than without them). A transform made
# ahead (:func:`with_winograd_kernels`) needs no amortising: a 16x16x512 -> 512 layer then takes
# 2.1 ms against 5.6 ms direct (one-off timing).
_LARGE_KERNEL_BYTES = 16 * 2**20
_fast_algorithms = True


@contextlib.contextmanager
def direct_convolutions() -> Iterator[None]:
    """Functions traced inside compute every convolution directly (no Winograd layers, and decoders
    upsample before convolving: no sub-pixel phases): for counting a network's nominal FLOPs
    (``benchmarks/runtime.py``; XLA's cost analysis of the fast forms counts their fewer
    multiplications) or comparing the algorithms. Clears JAX's caches on entry and exit,
    since jitted functions would otherwise reuse what they traced before."""
    global _fast_algorithms
    jax.clear_caches()
    _fast_algorithms = False
    try:
        yield
    finally:
        _fast_algorithms = True
        jax.clear_caches()


def winograd_eligible(x_shape, kernel_shape, dtype, *, prepared: bool = False) -> bool:
    """Whether :func:`conv2d_same` computes this layer with Winograd F(4x4, 3x3): float32 3x3 layers
    with at least 64 channels in and out and 128 on one side (4x fewer multiplications do not pay
    for the tile transforms on thinner layers, whose batched matmuls run far below peak), whose
    transformed maps fit ``WINOGRAD_MAX_BYTES``. At 256 px that is every VGG19 encoder and decoder
    layer from relu2_1 down but the 16x16 512 -> 512 ones, at 512 px from relu3_1 down; in one-off timings
    1.3-2x faster than XLA:CPU's direct convolution (64x64x256 -> 256: 5.5 ms against 11 ms;
    128x128x64 -> 128: 3.9 ms against 5.3 ms). Whole AdaIN pipelines, one-off timings without host
    memory reuse: 291 -> 230 ms at 256 px, 1056 -> 816 ms at 512 px. ``prepared``: the transformed
    kernel was made ahead (:func:`with_winograd_kernels`), so large kernels need no more positions
    than small ones."""
    n, h, w, _ = x_shape
    if not _fast_algorithms or dtype != jnp.float32 or not _winograd_kernel_shape(kernel_shape):
        return False
    c_in, c_out = kernel_shape[2:]
    tiles = n * -(-h // 4) * -(-w // 4)
    min_tiles = 64 if 36 * 4 * c_in * c_out > _LARGE_KERNEL_BYTES and not prepared else 16
    return tiles >= min_tiles and 36 * 4 * tiles * max(c_in, c_out) <= WINOGRAD_MAX_BYTES


def _winograd_kernel_shape(kernel_shape) -> bool:
    # 4x fewer multiplications do not pay for the tile transforms on thinner layers.
    k_h, k_w, c_in, c_out = kernel_shape
    return (k_h, k_w) == (3, 3) and min(c_in, c_out) >= 64 and max(c_in, c_out) >= 128


def winograd_kernel(kernel: jax.Array) -> jax.Array:
    """``G g G^T`` of a (3, 3, Cin, Cout) kernel for every (Cin, Cout) pair: (36, Cin, Cout), as one
    matmul over the 9 taps, (36, 9) @ (9, Cin Cout) (Lavin & Gray 2016, Eq. 8)."""
    c_in, c_out = kernel.shape[2:]
    return (_WINO_G_TAPS @ kernel.reshape(9, -1)).reshape(36, c_in, c_out)


_winograd_kernel_jit = jax.jit(winograd_kernel)


def with_winograd_kernels(params):
    """``params`` with ``"winograd_kernel": winograd_kernel(kernel)`` beside every float32 3x3
    ``"kernel"`` that may take the Winograd path (:func:`winograd_eligible`), for inference: the VGG19
    encoder and the decoders pass it to :func:`conv2d_same`, so the transform is made once instead of
    on every call (whole pipelines at 256 px, one-off timings side by side: WCT 522 -> 447 ms, SANet
    214 -> 190 ms, AdaIN 142 -> 139 ms). Costs 4x those kernels' memory (VGG19 to relu5_1: +206 MB).
    Gradients still flow to ``kernel`` alone, so training keeps the plain parameters. Nested dicts
    are walked; every other leaf is kept as is (not copied). Idempotent."""
    if not isinstance(params, dict):
        return params
    out = {k: with_winograd_kernels(v) for k, v in params.items()}
    kernel = params.get("kernel")
    if (kernel is not None and "winograd_kernel" not in params and getattr(kernel, "ndim", 0) == 4
            and kernel.dtype == jnp.float32 and _winograd_kernel_shape(kernel.shape)):
        out["winograd_kernel"] = _winograd_kernel_jit(kernel)
    return out


def _combine(coefficients, terms):
    """``sum_i coefficients[i] * terms[i]`` over the non-zero coefficients: one fused elementwise pass."""
    out = None
    for c, t in zip(coefficients, terms):
        if c:
            t = t if c == 1 else -t if c == -1 else t * jnp.float32(c)
            out = t if out is None else out + t
    return out


def _winograd_tiles(x, padding):
    """``B^T d B`` of every overlapping 6x6 input tile (stride 4) of the padded map: (36, N T_h T_w, C),
    as two one-dimensional passes (rows, then columns) of a fused elementwise combination."""
    n, h, w, c = x.shape
    t_h, t_w = -(-h // 4), -(-w // 4)
    if padding == "reflect":
        x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        x = jnp.pad(x, ((0, 0), (0, 4 * t_h + 2 - h), (0, 4 * t_w + 2 - w), (0, 0)))
    else:
        x = jnp.pad(x, ((0, 0), (1, 4 * t_h + 3 - h), (1, 4 * t_w + 3 - w), (0, 0)))
    # Padded to 4 (T + 1) rows and columns: tile t reads rows 4t .. 4t + 5, i.e. all four rows of
    # group t and the first two of group t + 1.
    groups = x.reshape(n, t_h + 1, 4, 4 * (t_w + 1), c)
    rows = [groups[:, :t_h, i] for i in range(4)] + [groups[:, 1:, i] for i in range(2)]
    by_rows = jnp.stack([_combine(b, rows) for b in _WINO_BT]).reshape(6, n, t_h, t_w + 1, 4, c)
    cols = [by_rows[:, :, :, :t_w, j] for j in range(4)] + [by_rows[:, :, :, 1:, j] for j in range(2)]
    return jnp.stack([_combine(b, cols) for b in _WINO_BT], 1).reshape(36, n * t_h * t_w, c)


def _winograd_conv_impl(x, kernel, transformed, padding):
    n, h, w, _ = x.shape
    c_in, c_out = kernel.shape[2:]
    t_h, t_w = -(-h // 4), -(-w // 4)
    v = _winograd_tiles(x, padding)
    if transformed is not None:
        m = jnp.einsum("btc,bcd->btd", v, transformed)
    else:
        # The transformed kernel is 4x the kernel; one over WINOGRAD_MAX_BYTES (wider than VGG19's) is
        # made and used in output-channel groups that stay under it.
        groups = -(-36 * 4 * c_in * c_out // WINOGRAD_MAX_BYTES)
        m = jnp.concatenate([jnp.einsum("btc,bcd->btd", v, winograd_kernel(part))
                             for part in jnp.array_split(kernel, groups, axis=3)], axis=2)
    m = m.reshape(6, 6, n, t_h, t_w, c_out)
    rows = [_combine(a, [m[i] for i in range(6)]) for a in _WINO_AT]  # 4 x (6, N, T_h, T_w, Cout)
    y = jnp.stack([jnp.stack([_combine(a, [r[j] for j in range(6)]) for a in _WINO_AT], 3) for r in rows], 2)
    return y.reshape(n, 4 * t_h, 4 * t_w, c_out)[:, :h, :w]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _winograd_conv(x, kernel, transformed, padding):
    """The 3x3 ``zero`` / ``reflect`` same convolution by Winograd F(4x4, 3x3) (:func:`winograd_eligible`),
    with ``transformed`` = :func:`winograd_kernel` of ``kernel`` or None (made here). Agrees with the
    direct convolution to ~1e-5 relative (float32; tested against a float64 reference). Its
    gradient is the direct convolution's (XLA's transposed convolution and :func:`_kernel_grad`),
    the same function's, with respect to ``x`` and ``kernel``; ``transformed`` is a cache of
    ``kernel`` and gets a zero gradient."""
    return _winograd_conv_impl(x, kernel, transformed, padding)


def _winograd_conv_fwd(x, kernel, transformed, padding):
    return _winograd_conv_impl(x, kernel, transformed, padding), (x, kernel)


def _winograd_conv_bwd(padding, residuals, dy):
    if padding == "reflect":
        dx, dk = _reflect_conv_bwd(residuals, dy)
    else:
        dx, dk = _conv_bwd(((1, 1), (1, 1)), residuals, dy)
    return dx, dk, None  # None: a zero cotangent for the stored transform


_winograd_conv.defvjp(_winograd_conv_fwd, _winograd_conv_bwd)
