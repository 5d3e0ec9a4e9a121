"""Style-attentional network (Park & Lee, CVPR 2019, "Arbitrary Style Transfer with Style-Attentional
Networks"; seed 003).

:class:`SANet` (Eq. 1-2), at one encoder layer with C channels::

    F_cs  = softmax_j( f(norm(F_c))_i . g(norm(F_s))_j ) h(F_s)_j       (attention over style positions)
    F_csc = F_c + out(F_cs)                                             (1x1 output conv + residual)

with ``f``, ``g``, ``h``, ``out`` 1x1 convolutions C -> C (with bias) and ``norm`` the channel-wise
mean-variance normalisation (:func:`nst_jax.kernels.stats.mean_std`). The attention is computed in
chunks of content positions by :func:`nst_jax.kernels.attention.attention`, so memory is
O(chunk_size * H_s W_s) rather than O(H_c W_c * H_s W_s) (formula in that module).

:class:`SANetTransform` (Eq. 3): one SANet on relu4_1 and one on relu5_1; the relu5_1 result is
nearest-upsampled x2 (edge-padded or cropped to the relu4_1 size, so inputs that are not multiples of
16 work), added to the relu4_1 result and merged by a reflect-padded 3x3 conv 512 -> 512. With
``multi_level=False`` it is the paper's "relu4_1 only" variant: just the relu4_1 SANet, no merge conv.
The decoder is :class:`nst_jax.modules.decoders.AdaINDecoder`.

Parameters (C = 512): SANet 4 * (512 * 512 + 512) = 1,050,624; multi-level transform
2 * 1,050,624 + (9 * 512 * 512 + 512) = 4,461,056; relu4_1-only transform 1,050,624.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from nst_jax.kernels import stats
from nst_jax.kernels.attention import DEFAULT_CHUNK_SIZE, attention, attention_weights
from nst_jax.kernels.conv import upsample2x
from nst_jax.modules.layers import Conv, linear_init, match_size, mean_variance_norm

Array = jax.Array


def _flat_mask(mask: Array | None, features: Array) -> Array | None:
    """(N, H, W[, 1]) mask at the features' resolution -> (N, H*W) boolean key mask (> 0.5)."""
    if mask is None:
        return None
    if mask.ndim == 4:
        mask = mask[..., 0]
    n, h, w, _ = features.shape
    if mask.shape != (n, h, w):
        raise ValueError(f"style mask must be (N, H, W[, 1]) = {(n, h, w)} at the feature resolution, got {mask.shape}")
    return mask.reshape(n, h * w) > 0.5


class SANet(nn.Module):
    """One style-attentional module.

    Attributes:
      channels: C, the channels of the features it is applied to (512 at relu4_1/relu5_1).
      chunk_size: content positions per attention chunk (None: unchunked).
      dtype: computation dtype (softmax always in float32); param_dtype: parameter dtype.

    ``apply(variables, content, style, style_mask=None) -> F_csc`` with content (N, Hc, Wc, C),
    style (N, Hs, Ws, C) and an optional ``style_mask`` (N, Hs, Ws[, 1]) at the style feature
    resolution restricting attention to the masked style region (values > 0.5); the output has the
    content's shape. ``method=SANet.attention_weights`` returns the (N, Hc*Wc, Hs*Ws) softmax matrix.
    Params: ``{"f", "g", "h", "out"}``, each ``{"kernel": (1, 1, C, C), "bias": (C,)}``.
    """

    channels: int = 512
    chunk_size: int | None = DEFAULT_CHUNK_SIZE
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        conv = dict(kernel_size=1, dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=linear_init)
        self.f = Conv(self.channels, **conv)
        self.g = Conv(self.channels, **conv)
        self.h = Conv(self.channels, **conv)
        self.out = Conv(self.channels, **conv)

    def _qkv(self, content: Array, style: Array) -> tuple[Array, Array, Array]:
        for name, x in (("content", content), ("style", style)):
            if x.ndim != 4 or x.shape[-1] != self.channels:
                raise ValueError(
                    f"SANet({self.channels}) {name} features must be (N, H, W, {self.channels}), got {x.shape}"
                )
        n = content.shape[0]
        q = self.f(mean_variance_norm(content.astype(self.dtype)))
        k = self.g(mean_variance_norm(style.astype(self.dtype)))
        v = self.h(style.astype(self.dtype))
        return q.reshape(n, -1, self.channels), k.reshape(n, -1, self.channels), v.reshape(n, -1, self.channels)

    def __call__(self, content: Array, style: Array, style_mask: Array | None = None) -> Array:
        q, k, v = self._qkv(content, style)
        attended = attention(q, k, v, chunk_size=self.chunk_size, key_mask=_flat_mask(style_mask, style))
        return content.astype(self.dtype) + self.out(attended.reshape(content.shape))

    def attention_weights(self, content: Array, style: Array, style_mask: Array | None = None) -> Array:
        """(N, Hc*Wc, Hs*Ws) attention matrix; each row sums to one (O(Lc*Ls) memory: small inputs only)."""
        q, k, _ = self._qkv(content, style)
        return attention_weights(q, k, key_mask=_flat_mask(style_mask, style))


class SANetTransform(nn.Module):
    """SANet style transform on relu4_1 (+ relu5_1), producing the AdaIN decoder's relu4_1 input.

    Attributes:
      channels: 512 for VGG19 (smaller only in tests).
      multi_level: True: relu4_1 and relu5_1 SANets + merge conv (Eq. 3); False: relu4_1 only.
      chunk_size: passed to each :class:`SANet`.

    ``apply(variables, content_feats, style_feats, style_mask=None) -> (N, H4, W4, C)`` where the
    feature arguments are dicts from :func:`nst_jax.vgg19.features` holding :attr:`input_layers`, and
    ``style_mask`` is an optional image-resolution mask (N, H, W[, 1]) of the *style* image, resized to
    each layer with :func:`nst_jax.kernels.stats.mask_for_layer`.
    Params: ``{"sanet4_1", "sanet5_1", "merge"}`` (``{"sanet4_1"}`` when ``multi_level=False``).
    """

    channels: int = 512
    multi_level: bool = True
    chunk_size: int | None = DEFAULT_CHUNK_SIZE
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @property
    def input_layers(self) -> tuple[str, ...]:
        return ("relu4_1", "relu5_1") if self.multi_level else ("relu4_1",)

    def setup(self) -> None:
        sanet = dict(channels=self.channels, chunk_size=self.chunk_size, dtype=self.dtype, param_dtype=self.param_dtype)
        self.sanet4_1 = SANet(**sanet)
        if self.multi_level:
            self.sanet5_1 = SANet(**sanet)
            self.merge = Conv(self.channels, kernel_size=3, padding="reflect", dtype=self.dtype,
                              param_dtype=self.param_dtype, kernel_init=linear_init)

    def __call__(
        self, content: Mapping[str, Array], style: Mapping[str, Array], style_mask: Array | None = None
    ) -> Array:
        for name, feats in (("content", content), ("style", style)):
            missing = [layer for layer in self.input_layers if layer not in feats]
            if missing:
                raise ValueError(f"SANetTransform needs {name} features for {missing}")

        def mask_at(layer: str) -> Array | None:
            if style_mask is None:
                return None
            return stats.mask_for_layer(style_mask, layer, shape=style[layer].shape[1:3])

        out4 = self.sanet4_1(content["relu4_1"], style["relu4_1"], mask_at("relu4_1"))
        if not self.multi_level:
            return out4
        out5 = self.sanet5_1(content["relu5_1"], style["relu5_1"], mask_at("relu5_1"))
        return self.merge(out4 + match_size(upsample2x(out5), out4.shape[1:3]))
