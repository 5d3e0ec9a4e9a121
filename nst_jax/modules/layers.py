"""The few building blocks every learned module shares: padded conv, nearest x2 upsampling,
instance normalisation, size matching, and parameter counting.

Convolution parameters use the same layout as the VGG19 encoder: ``{"kernel": HWIO, "bias": (C,)}``,
so a decoder's tree looks like ``{"dec4_1": {"kernel": (3, 3, 512, 256), "bias": (256,)}, ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nst_jax.kernels import stats
from nst_jax.kernels.conv import conv2d_same, upsample_conv2d_same

Array = jax.Array
PADDINGS = ("reflect", "zero")

he_init = nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")  # convs followed by ReLU
linear_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")  # convs without activation


class Conv(nn.Module):
    """``k x k`` stride-1 convolution with "same" output size by reflect or zero padding (NHWC).

    Attributes:
      features: output channels.
      kernel_size: odd kernel size (1, 3, 7, ...).
      padding: ``"reflect"`` (AdaIN/WCT/SANet/Avatar-Net family) or ``"zero"`` (AAMS, TF "SAME").
      use_bias: add a per-channel bias.
      dtype: computation dtype (inputs and parameters are cast to it).
      param_dtype: storage dtype of the parameters.
      activation: elementwise function applied inside the convolution (in place on its output;
        see :func:`nst_jax.kernels.conv.conv2d_same`), e.g. ``nn.relu``; None for none.
      upsample: convolve the nearest x2 upsampling of the input (:func:`~nst_jax.kernels.conv.upsample2x`), computed
        without it where that is cheaper (:func:`nst_jax.kernels.conv.upsample_conv2d_same`).
    """

    features: int
    kernel_size: int = 3
    padding: str = "reflect"
    use_bias: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Any = he_init
    bias_init: Any = nn.initializers.zeros
    activation: Callable[[Array], Array] | None = None
    upsample: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), self.param_dtype)
        bias = None
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype).astype(self.dtype)
        # Inference parameters may carry the kernel's Winograd transform (conv.with_winograd_kernels).
        transformed = None
        if self.has_variable("params", "winograd_kernel"):
            transformed = self.get_variable("params", "winograd_kernel").astype(self.dtype)
        conv = upsample_conv2d_same if self.upsample else conv2d_same
        return conv(x.astype(self.dtype), kernel.astype(self.dtype), bias, padding=self.padding,
                    activation=self.activation, winograd_kernel=transformed)


class InstanceNorm(nn.Module):
    """Per-sample, per-channel normalisation over H, W with a learned scale and shift
    (Ulyanov et al. 2016). Uses :func:`nst_jax.kernels.stats.mean_std` (biased variance, eps 1e-5),
    so there are no batch statistics: batch-1 inference behaves exactly like training."""

    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), self.param_dtype).astype(self.dtype)
        bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype).astype(self.dtype)
        mean, std = stats.mean_std(x.astype(self.dtype))
        return (x.astype(self.dtype) - mean) / std * scale.reshape(1, 1, 1, c) + bias.reshape(1, 1, 1, c)


def match_size(x: Array, size: tuple[int, int]) -> Array:
    """Crop (bottom/right) or edge-pad ``x`` so its spatial size is ``size``.

    Used after :func:`~nst_jax.kernels.conv.upsample2x` when a coarser map came from floor-mode pooling of an odd size:
    ``2 * floor(h / 2)`` is ``h - 1`` for odd ``h``, and the dropped row is restored by repeating
    the last one (the same row the encoder's pooling discarded).
    """
    h, w = size
    x = x[:, :h, :w]
    ph, pw = h - x.shape[1], w - x.shape[2]
    if ph or pw:
        x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return x


def mean_variance_norm(x: Array, *, mask: Array | None = None) -> Array:
    """Channel-wise mean-variance normalisation over H, W (SANet's F-bar; stats.mean_std)."""
    mean, std = stats.mean_std(x, mask=mask)
    return (x - mean) / std


def count_params(tree: Any) -> int:
    """Number of scalars in a pytree of arrays or ``jax.ShapeDtypeStruct`` (e.g. from ``jax.eval_shape``).

    Pass ``variables["params"]`` (or the whole variables dict when it holds only params).
    """
    return int(sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(tree)))


def conv_param_count(cin: int, cout: int, kernel_size: int = 3, *, bias: bool = True) -> int:
    """Parameters of one ``kernel_size x kernel_size`` convolution: k*k*cin*cout (+ cout)."""
    return kernel_size * kernel_size * cin * cout + (cout if bias else 0)
