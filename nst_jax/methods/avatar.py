"""Avatar-Net (Sheng et al. 2018, "Avatar-Net: Multi-scale Zero-shot Style Transfer by Feature
Decoration"): the style decorator at relu4_1 (ZCA projection, 5x5 patch swap, blend, re-colour;
Sec. 3.2, Eq. 3-5), then the hourglass decoder with AdaIN skips from the style's relu3_1, relu2_1,
relu1_1 (Sec. 3.3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nst_jax.kernels.adain import adain
from nst_jax.kernels.patch_swap import style_decorator
from nst_jax.methods.common import FeedForward, combine, encode, infer_width, masks_at, register
from nst_jax.modules.decoders import SkipDecoder

LAYER = "relu4_1"
SKIPS = ("relu3_1", "relu2_1", "relu1_1")


def init(key: jax.Array, *, width: float = 1.0):
    skips = {k: jnp.zeros((1, 4, 4, c)) for k, c in (("relu3_1", 256), ("relu2_1", 128), ("relu1_1", 64))}
    return {"decoder": SkipDecoder.avatar_net(width=width).init(key, jnp.zeros((1, 2, 2, 512)), skips)["params"]}


def skip_fusion(style_feats, weights, masks):
    """AdaIN skips from the styles: weighted (or region-composited) per-style AdaIN of the activations."""

    def make(layer):
        def fuse(x):
            m = masks_at(masks, layer, x.shape[1:3])
            per_style = [adain(x, s[layer], content_mask=None if m is None else m[..., i:i + 1])
                         for i, s in enumerate(style_feats)]
            return combine(per_style, weights, m)
        return fuse

    return {layer: make(layer) for layer in SKIPS}


def forward(params, content, style_feats, weights, masks, alpha, key, *, patch_size=5, chunk_size=1024):
    del key
    c = encode(params["vgg"], content, (LAYER,))[LAYER]
    m = masks_at(masks, LAYER, c.shape[1:3])
    per_style = [style_decorator(c, s[LAYER], alpha=alpha, patch_size=patch_size, chunk_size=chunk_size)
                 for s in style_feats]
    t = combine(per_style, weights, m)
    decoder = SkipDecoder.avatar_net(width=infer_width(params["decoder"]))
    return decoder.apply({"params": params["decoder"]}, t, skip_fusion(style_feats, weights, masks))


SPEC = register(FeedForward(
    name="avatar", summary="Avatar-Net (Sheng et al. 2018): style decorator + hourglass decoder",
    style_layers=(LAYER, *SKIPS), checkpoints=("avatar",), init=init, forward=forward,
    static=("patch_size", "chunk_size"), options={"patch_size": 5, "chunk_size": 1024},
    # The reference script's --inter_weight is 0.8. With our short-budget decoder the style ratio is
    # flat in alpha while the photo reads better the less of the swap is kept: on 8 *training* pairs
    # (256 px) style 0.313 / 0.316 / 0.307 / 0.308 and content 0.93 / 0.89 / 0.85 / 0.83 at alpha 1 /
    # 0.8 / 0.5 / 0.3 (README, Quality). 0.5 is where the style ratio is lowest.
    default_alpha=0.5))
