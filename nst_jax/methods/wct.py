"""Universal style transfer via feature transforms (Li et al. 2017, WCT), multi-level coarse-to-fine:
relu5_1 -> decoder5 -> image -> relu4_1 -> ... -> decoder1 (Sec. 3.2, Fig. 2(c)). At each level the
current image's features are whitened and coloured with the style's (Eq. 1-3) and blended with
``alpha`` (Eq. 4) before decoding. Default ``alpha`` 0.6, the reference Torch code's ``-alpha``
(PRIOR_ART §2.3): on held-out pairs it also scores better than 1 with our CPU-trained decoders
(style ratio 0.56 vs 0.68, content ratio 0.97 vs 0.99; ``benchmarks/quality.py``), the full
transform at the coarse relu5_1 level mostly erasing the photo."""

from __future__ import annotations

import jax

from nst_jax.kernels.wct import wct
from nst_jax.methods.common import FeedForward, blend, combine, encode, infer_width, masks_at, register
from nst_jax.modules.decoders import WCTDecoder
from nst_jax import vgg19

LEVELS = (5, 4, 3, 2, 1)
LAYERS = tuple(f"relu{k}_1" for k in LEVELS)


def init(key: jax.Array, *, width: float = 1.0):
    keys = jax.random.split(key, len(LEVELS))
    return {"decoders": {
        f"relu{k}_1": WCTDecoder(level=k, width=width).init(
            kk, jax.numpy.zeros((1, 2, 2, vgg19.CHANNELS[f"relu{k}_1"])))["params"]
        for k, kk in zip(LEVELS, keys)}}


def forward(params, content, style_feats, weights, masks, alpha, key, *, levels=LEVELS):
    del key
    x = content
    for k in levels:
        layer = f"relu{k}_1"
        c = encode(params["vgg"], x, (layer,))[layer]
        m = masks_at(masks, layer, c.shape[1:3])
        per_style = [wct(c, s[layer], content_mask=None if m is None else m[..., i:i + 1])
                     for i, s in enumerate(style_feats)]
        t = blend(combine(per_style, weights, m), c, alpha)
        dec = params["decoders"][layer]
        x = WCTDecoder(level=k, width=infer_width(dec)).apply({"params": dec}, t)
    return x


def _load(params, names):
    params["decoders"] = {}
    for k in LEVELS:
        params["decoders"][f"relu{k}_1"] = names[f"wct_relu{k}_1"]["decoder"]
    return params


SPEC = register(FeedForward(
    name="wct", summary="WCT (Li et al. 2017): whitening/colouring at relu5_1..relu1_1, five decoders",
    style_layers=LAYERS, checkpoints=tuple(f"wct_relu{k}_1" for k in LEVELS), init=init, forward=forward,
    static=("levels",), options={"levels": LEVELS}, merge=_load, default_alpha=0.6))
