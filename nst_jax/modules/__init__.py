"""Learned modules (Flax Linen; parameters live outside: ``module.init`` / ``module.apply`` on dicts).

Decoders (:mod:`.decoders`): :class:`AdaINDecoder`, :class:`WCTDecoder`, :class:`StyleSwapDecoder`,
:class:`SkipDecoder` (Avatar-Net, and AAMS/CBAM via ``SkipDecoder.aams(layer)``).
SANet (:mod:`.sanet`): :class:`SANet`, :class:`SANetTransform`.
Attention (:mod:`.attention`): :class:`SelfAttention` (AAMS), :class:`CBAM`,
:class:`AttentionAutoencoder`, :class:`AttentionOutput`.

:func:`param_counts` gives every model's exact parameter count (computed shape-only with
``jax.eval_shape``, so it costs nothing); :func:`param_count_table` formats them next to seed 000's
Table 1.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from nst_jax import vgg19
from nst_jax.kernels.conv import upsample2x
from nst_jax.modules.attention import CBAM, AttentionAutoencoder, AttentionOutput, SelfAttention
from nst_jax.modules.decoders import (
    AdaINDecoder,
    StyleSwapDecoder,
    SkipDecoder,
    WCTDecoder,
    decoder_spec,
    spec_param_count,
)
from nst_jax.modules.layers import Conv, InstanceNorm, count_params, match_size
from nst_jax.modules.sanet import SANet, SANetTransform

__all__ = [
    "AdaINDecoder", "WCTDecoder", "StyleSwapDecoder", "SkipDecoder", "decoder_spec", "spec_param_count",
    "SANet", "SANetTransform", "SelfAttention", "CBAM", "AttentionAutoencoder", "AttentionOutput",
    "Conv", "InstanceNorm", "upsample2x", "match_size", "count_params", "param_counts", "param_count_table",
    "SEED000_TABLE1",
]

# Seed 000 (CBAM attention style transfer), Table 1 "パラメータ数": whole-model counts.
SEED000_TABLE1 = {
    "relu3_1": {"self": 145_579_187, "cbam": 145_432_793},
    "relu4_1": {"self": 155_167_859, "cbam": 154_579_865},
    "relu5_1": {"self": 183_485_555, "cbam": 182_897_561},
}
# The full VGG19 of the Caffe/Keras/TF-slim/torchvision releases including its three FC layers.
VGG19_WITH_CLASSIFIER = 143_667_240


def _feat(layer: str, size: int = 4) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((1, size, size, vgg19.CHANNELS[layer]), jnp.float32)


def _count(module, *args) -> int:
    variables = jax.eval_shape(functools.partial(module.init, jax.random.key(0)), *args)
    return count_params(variables["params"])


def _encoder_params(layer: str) -> int:
    names = [n for n in vgg19.LAYERS[: vgg19.LAYERS.index(layer) + 1] if n.startswith("conv")]
    specs = {f"conv{b}_{i}": (cin, cout) for b, i, cin, cout in vgg19.CONV_SPECS}
    return sum(9 * specs[n][0] * specs[n][1] + specs[n][1] for n in names)


@functools.cache
def param_counts() -> dict[str, int]:
    """Exact parameter counts of every learned model, from ``jax.eval_shape(module.init, ...)``."""
    counts: dict[str, int] = {}
    counts["adain_decoder"] = _count(AdaINDecoder(), _feat("relu4_1"))
    for level in range(1, 6):
        counts[f"wct_decoder{level}"] = _count(WCTDecoder(level=level), _feat(f"relu{level}_1"))
    counts["style_swap_decoder"] = _count(StyleSwapDecoder(), _feat("relu3_1"))
    counts["style_swap_decoder_no_norm"] = _count(StyleSwapDecoder(norm=None), _feat("relu3_1"))
    avatar = SkipDecoder.avatar_net()
    counts["avatar_net_decoder"] = _count(avatar, _feat("relu4_1"), {k: _feat(k) for k in avatar.skip_layers})
    counts["sanet_module"] = _count(SANet(), _feat("relu4_1"), _feat("relu4_1"))
    feats = {"relu4_1": _feat("relu4_1", 4), "relu5_1": _feat("relu5_1", 2)}
    counts["sanet_transform"] = _count(SANetTransform(), feats, feats)
    counts["sanet_transform_relu4_1_only"] = _count(SANetTransform(multi_level=False), feats, feats)
    for layer in ("relu3_1", "relu4_1", "relu5_1"):
        c = vgg19.CHANNELS[layer]
        counts[f"self_attention_{c}"] = _count(SelfAttention(channels=c), _feat(layer))
        counts[f"cbam_{c}"] = _count(CBAM(channels=c), _feat(layer))
        dec = SkipDecoder.aams(layer)
        counts[f"aams_decoder_{layer}"] = _count(dec, _feat(layer), {k: _feat(k) for k in dec.skip_layers})
        for kind in ("self", "cbam"):
            model = AttentionAutoencoder(layer=layer, kind=kind)
            counts[f"{'aams' if kind == 'self' else 'cbam'}_{layer}"] = _count(
                model, {k: _feat(k) for k in model.input_layers})
        counts[f"vgg19_encoder_to_{layer}"] = _encoder_params(layer)
    return counts


def param_count_table() -> str:
    """Plain-text table: our AAMS / CBAM totals per encoder depth beside seed 000's Table 1."""
    counts = param_counts()
    lines = [
        f"{'depth':8} {'AAMS (ours)':>12} {'CBAM (ours)':>12} {'+VGG19 full':>13} {'+VGG19 full':>13} "
        f"{'seed AAMS':>12} {'seed CBAM':>12}",
    ]
    for layer in ("relu3_1", "relu4_1", "relu5_1"):
        a, c = counts[f"aams_{layer}"], counts[f"cbam_{layer}"]
        seed = SEED000_TABLE1[layer]
        lines.append(
            f"{'conv' + layer[4:]:8} {a:12,} {c:12,} {a + VGG19_WITH_CLASSIFIER:13,} "
            f"{c + VGG19_WITH_CLASSIFIER:13,} {seed['self']:12,} {seed['cbam']:12,}"
        )
    return "\n".join(lines)
