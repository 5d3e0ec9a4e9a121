"""Style-Swap (Chen & Schmidt 2016, "Fast Patch-based Style Transfer of Arbitrary Style"): every
3x3 patch of the content's relu3_1 is replaced by its best-matching (normalised cross-correlation)
style patch (Sec. 3.1, Eq. 2-3), then the inverse network decodes (Sec. 3.2)."""

from __future__ import annotations

import jax

from nst_jax.kernels.patch_swap import patch_swap
from nst_jax.methods.common import FeedForward, blend, combine, encode, masks_at, register
from nst_jax.modules.decoders import StyleSwapDecoder

LAYER = "relu3_1"


def init(key: jax.Array):
    return {"decoder": StyleSwapDecoder().init(key, jax.numpy.zeros((1, 2, 2, 256)))["params"]}


def forward(params, content, style_feats, weights, masks, alpha, key, *, patch_size=3, chunk_size=1024):
    del key
    c = encode(params["vgg"], content, (LAYER,))[LAYER]
    m = masks_at(masks, LAYER, c.shape[1:3])
    per_style = [patch_swap(c, s[LAYER], patch_size=patch_size, padding="reflect", chunk_size=chunk_size)
                 for s in style_feats]
    t = blend(combine(per_style, weights, m), c, alpha)
    norm = "instance" if "dec3_1_norm" in params["decoder"] else None
    return StyleSwapDecoder(norm=norm).apply({"params": params["decoder"]}, t)


SPEC = register(FeedForward(
    name="style_swap", summary="Style-Swap (Chen & Schmidt 2016): relu3_1 patch swap + inverse network",
    style_layers=(LAYER,), checkpoints=("style_swap",), init=init, forward=forward,
    static=("patch_size", "chunk_size"), options={"patch_size": 3, "chunk_size": 1024}))
