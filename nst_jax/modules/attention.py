"""Attention modules for attention-aware style transfer: AAMS self-attention and its CBAM variant.

Both return an :class:`AttentionOutput` with the same meaning, so AAMS transfer code can use either::

    features  = x * (1 + attention)      (N, H, W, C)  what the decoder (after re-colouring) receives
    attention                            (N, H, W, C)  the multiplicative attention feature map
                                                       (the L1-penalised map of AAMS training)
    saliency                             (N, H, W, 1)  one-channel map for multi-stroke fusion,
                                                       object/background selection and display

* :class:`SelfAttention` -- SAGAN-style self-attention as in AAMS (Yao et al. CVPR 2019; Zhang et al.
  2019): ``f``, ``g`` 1x1 convs C -> C/2, ``h`` 1x1 conv C -> C, ``o = softmax(g f^T) h`` (softmax over
  positions of ``f``; no gamma, no residual inside). ``attention = o`` and AAMS feeds
  ``x * o + x`` to the decoder. ``saliency`` is the channel mean of ``|o|``: AAMS's fusion takes the
  channel mean of its filtered ``|o|`` (threshold at 2x mean, random 3x3 blur, min-max normalise;
  that filter belongs to the transfer code), so this is the same map before the filter.
  Parameters 2 * (C * C/2 + C/2) + (C * C + C) = 2C^2 + 2C: 525,312 at C = 512, 131,584 at C = 256.
* :class:`CBAM` -- Convolutional Block Attention Module (Woo et al. ECCV 2018) as used by seed 000
  (Eq. 1-3): channel gate ``Mc(F) = sigmoid(MLP(avgpool F) + MLP(maxpool F))`` with a shared MLP
  C -> C/r -> C (ReLU, r = 16); ``F' = Mc(F) * F`` (1); spatial gate
  ``Ms(F') = sigmoid(conv7x7([mean_c F'; max_c F']))`` (zero padding); ``F'' = Ms(F') * F'`` (2);
  ``A = F + F''`` (3). So ``attention = Mc * Ms`` (broadcast), ``features = A`` and ``saliency = Ms`` in
  (0, 1). The channel gate is also sown as ``intermediates/channel_gate`` (use
  ``mutable=["intermediates"]``).
  BatchNorm: the original CBAM puts a BatchNorm after the 7x7 conv; seed 000 describes the spatial
  gate as 7x7 conv then sigmoid, with no normalisation, and style transfer runs at batch size 1
  where batch statistics are meaningless. We follow the seed and give the 7x7 conv a bias instead
  (``spatial_bias=True``), which is what a BatchNorm folds into at inference. No ``batch_stats``.
  Parameters 2C^2/r + C/r + C + 7*7*2 + 1: 33,411 at C = 512, 8,563 at C = 256.
* :class:`AttentionAutoencoder` -- the AAMS/CBAM reconstruction network at a chosen encoder depth
  (relu3_1 / relu4_1 / relu5_1): instance-normalise the deepest features, attention, modulate,
  re-colour, decode with :class:`~nst_jax.modules.decoders.SkipDecoder` (AdaIN skips, zero padding).

Parameter totals (trainable: attention module + decoder; the frozen VGG19 encoder is not counted)
beside seed 000's Table 1 (``nst_jax.modules.param_count_table()`` recomputes ours)::

    depth     ours AAMS     ours CBAM     seed AAMS      seed "Ours" (CBAM)
    conv3_1      686,659       563,638    145,579,187    145,432,793
    conv4_1    4,030,531     3,538,630    155,167,859    154,579,865
    conv5_1   13,469,763    12,977,862    183,485,555    182,897,561

The seed counts whole models. They contain the full VGG19 with its three classifier layers
(143,667,240, as TF-slim/Keras/torchvision build it; AAMS's own code builds ``vgg_19`` with fc6-fc8).
Their conv4_1 -> conv5_1 increment is 28,317,696 in both columns = 3 x the four 512->512 3x3 convs
(9,439,232): the encoder layers are counted twice more (e.g. encoder + loss network) besides the
mirrored decoder, whose increment alone is ours (9,439,232). Removing VGG19-full + 2 x the encoder to
that depth + our decoder leaves 246,216 / 983,944 / 983,944 (AAMS) and 99,822 / 395,950 / 395,950
(CBAM) for their attention blocks, against our 131,584 / 525,312 (2C^2 + 2C, as AAMS's released
code) and 8,563 / 33,411; the seed does not describe those internals. The AAMS - CBAM gap is
146,394 / 587,994 in the seed and 123,021 / 491,901 here: both grow ~4x from 256 to 512 channels,
as C^2 attention weights do, and in both CBAM is the smaller module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from nst_jax import vgg19
from nst_jax.kernels import stats
from nst_jax.kernels.attention import DEFAULT_CHUNK_SIZE, attention, attention_weights
from nst_jax.modules.decoders import SkipDecoder, SkipStep, decoder_spec
from nst_jax.modules.layers import Conv, linear_init

Array = jax.Array
ATTENTION_KINDS = ("self", "cbam")


class AttentionOutput(NamedTuple):
    """What the attention modules return (see the module docstring)."""

    features: Array  # (N, H, W, C): x * (1 + attention)
    attention: Array  # (N, H, W, C): multiplicative attention feature map
    saliency: Array  # (N, H, W, 1): one-channel attention map


def _check_features(x: Array, channels: int, who: str) -> None:
    if x.ndim != 4 or x.shape[-1] != channels:
        raise ValueError(f"{who}({channels}) expects features (N, H, W, {channels}), got {x.shape}")


class SelfAttention(nn.Module):
    """SAGAN-style self-attention of AAMS.

    Attributes:
      channels: C of the input features.
      reduction: f and g project to C // reduction channels (AAMS: 2; SAGAN: 8).
      chunk_size: query positions per attention chunk (see :mod:`nst_jax.kernels.attention`).

    ``apply(variables, x) -> AttentionOutput``; ``method=SelfAttention.attention_weights`` returns
    the (N, HW, HW) softmax matrix (rows sum to one). Params ``{"f", "g", "h"}`` (1x1 convs).
    """

    channels: int = 512
    reduction: int = 2
    chunk_size: int | None = DEFAULT_CHUNK_SIZE
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        conv = dict(kernel_size=1, dtype=self.dtype, param_dtype=self.param_dtype, kernel_init=linear_init)
        inner = max(1, self.channels // self.reduction)
        self.f = Conv(inner, **conv)
        self.g = Conv(inner, **conv)
        self.h = Conv(self.channels, **conv)

    def _qkv(self, x: Array) -> tuple[Array, Array, Array]:
        _check_features(x, self.channels, "SelfAttention")
        n = x.shape[0]
        x = x.astype(self.dtype)
        # AAMS: s = g f^T, softmax over the last axis -> queries from g, keys from f.
        q, k, v = self.g(x), self.f(x), self.h(x)
        return q.reshape(n, -1, q.shape[-1]), k.reshape(n, -1, k.shape[-1]), v.reshape(n, -1, self.channels)

    def __call__(self, x: Array) -> AttentionOutput:
        q, k, v = self._qkv(x)
        o = attention(q, k, v, chunk_size=self.chunk_size).reshape(x.shape)
        x = x.astype(self.dtype)
        return AttentionOutput(features=x * o + x, attention=o, saliency=jnp.mean(jnp.abs(o), axis=-1, keepdims=True))

    def attention_weights(self, x: Array) -> Array:
        """(N, HW, HW) attention matrix, rows sum to one (O((HW)^2) memory: small inputs only)."""
        q, k, _ = self._qkv(x)
        return attention_weights(q, k)


class CBAM(nn.Module):
    """Convolutional Block Attention Module, channel gate then spatial gate, A = F + F'' (seed 000).

    Attributes:
      channels: C of the input features.
      reduction: r of the shared MLP C -> C/r -> C (16).
      kernel_size: spatial gate kernel (7), zero padding.
      spatial_bias: bias on the spatial conv (stands in for the original's BatchNorm shift).

    ``apply(variables, x) -> AttentionOutput`` with ``saliency = Ms`` and ``attention = Mc * Ms``.
    Params ``{"mlp_hidden", "mlp_out"}`` (Dense, kernel (in, out) + bias) and ``"spatial"``
    (``{"kernel": (7, 7, 2, 1)[, "bias": (1,)]}``; input channel 0 = channel mean, 1 = channel max).
    """

    channels: int = 512
    reduction: int = 16
    kernel_size: int = 7
    spatial_bias: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        dense = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        self.mlp_hidden = nn.Dense(max(1, self.channels // self.reduction), **dense)
        self.mlp_out = nn.Dense(self.channels, **dense)
        self.spatial = Conv(1, kernel_size=self.kernel_size, padding="zero", use_bias=self.spatial_bias,
                            kernel_init=linear_init, **dense)

    def _mlp(self, v: Array) -> Array:
        return self.mlp_out(nn.relu(self.mlp_hidden(v)))

    def __call__(self, x: Array) -> AttentionOutput:
        _check_features(x, self.channels, "CBAM")
        x = x.astype(self.dtype)
        n, _, _, c = x.shape
        mc = nn.sigmoid(self._mlp(jnp.mean(x, axis=(1, 2))) + self._mlp(jnp.max(x, axis=(1, 2))))  # (N, C)
        self.sow("intermediates", "channel_gate", mc)
        mc = mc.reshape(n, 1, 1, c)
        f1 = mc * x  # Eq. (1)
        pooled = jnp.concatenate([jnp.mean(f1, axis=-1, keepdims=True), jnp.max(f1, axis=-1, keepdims=True)], axis=-1)
        ms = nn.sigmoid(self.spatial(pooled))  # (N, H, W, 1)
        f2 = ms * f1  # Eq. (2)
        return AttentionOutput(features=x + f2, attention=mc * ms, saliency=ms)  # Eq. (3): A = F + F''


class AttentionAutoencoder(nn.Module):
    """AAMS (``kind="self"``) or its CBAM variant (``kind="cbam"``) at encoder depth ``layer``.

    Training graph (AAMS ``self_attention_autoencoder``): the deepest features are instance-normalised
    (``stats.mean_std``), passed through the attention module, modulated
    (``AttentionOutput.features``), re-coloured with the same mean/std and decoded by
    ``SkipDecoder.aams(layer)`` with AdaIN skips from the input's own lower ``relu{k}_1`` features.

    Attributes:
      layer: ``"relu3_1"``, ``"relu4_1"`` (AAMS) or ``"relu5_1"`` (seed 000's three depths).
      kind: ``"self"`` or ``"cbam"``.
      padding: decoder padding: ``"reflect"``, as every nst_jax decoder (DESIGN §3); AAMS's TF code
        pads with zeros (``"zero"``), which after a short training budget leaves a dark frame.
      width: decoder/attention width multiplier (tests only; 1.0 = the real network).

    ``apply(variables, feats) -> (rgb, AttentionOutput)`` where ``feats`` is a dict from
    :func:`nst_jax.vgg19.features` with :attr:`input_layers`. ``method="attend"`` maps features to an
    :class:`AttentionOutput`; ``method="decode"`` maps (features, skips) to RGB (transfer uses these
    two with the style's skips). Params ``{"attention": ..., "decoder": ...}``.
    """

    layer: str = "relu4_1"
    kind: str = "self"
    padding: str = "reflect"
    width: float = 1.0
    chunk_size: int | None = DEFAULT_CHUNK_SIZE
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(f"kind must be one of {ATTENTION_KINDS}, got {self.kind!r}")
        self.decoder = SkipDecoder.aams(self.layer, padding=self.padding, width=self.width,
                                        dtype=self.dtype, param_dtype=self.param_dtype)
        channels = vgg19.CHANNELS[self.layer]
        if self.width != 1.0:
            channels = max(1, int(round(channels * self.width)))
        common = dict(channels=channels, dtype=self.dtype, param_dtype=self.param_dtype)
        if self.kind == "self":
            self.attention = SelfAttention(chunk_size=self.chunk_size, **common)
        else:
            self.attention = CBAM(**common)

    @property
    def input_layers(self) -> tuple[str, ...]:
        """Encoder layers the network consumes: the input layer, then the skip layers."""
        skips = tuple(s.layer for s in decoder_spec(self.layer, skips=True) if isinstance(s, SkipStep))
        return (self.layer,) + skips

    def attend(self, x: Array) -> AttentionOutput:
        return self.attention(x)

    def decode(self, x: Array, skips: Mapping[str, Any], **segment: str | None) -> Array:
        """The decoder alone (``segment``: ``start`` / ``stop`` of :class:`SkipDecoder`)."""
        return self.decoder(x, skips, **segment)

    def __call__(self, feats: Mapping[str, Array]) -> tuple[Array, AttentionOutput]:
        missing = [layer for layer in self.input_layers if layer not in feats]
        if missing:
            raise ValueError(f"AttentionAutoencoder({self.layer}) needs features for {missing}")
        x = feats[self.layer].astype(self.dtype)
        mean, std = stats.mean_std(x)
        out = self.attention((x - mean) / std)
        hidden = out.features * std + mean
        rgb = self.decoder(hidden, {layer: feats[layer] for layer in self.input_layers[1:]})
        return rgb, out
