"""AdaIN (Huang & Belongie 2017, "Arbitrary Style Transfer in Real-time with Adaptive Instance
Normalization"): ``D(alpha * AdaIN(f(c), f(s)) + (1 - alpha) * f(c))`` at relu4_1 (Eq. 8, Sec. 7.1)."""

from __future__ import annotations

import jax

from nst_jax.kernels.adain import adain
from nst_jax.methods.common import FeedForward, blend, combine, encode, infer_width, masks_at, register
from nst_jax.modules.decoders import AdaINDecoder

LAYER = "relu4_1"


def init(key: jax.Array, *, width: float = 1.0):
    x = jax.numpy.zeros((1, 2, 2, 512))
    return {"decoder": AdaINDecoder(width=width).init(key, x)["params"]}


def forward(params, content, style_feats, weights, masks, alpha, key):
    del key
    c = encode(params["vgg"], content, (LAYER,))[LAYER]
    m = masks_at(masks, LAYER, c.shape[1:3])
    per_style = [adain(c, s[LAYER], content_mask=None if m is None else m[..., i:i + 1])
                 for i, s in enumerate(style_feats)]
    t = blend(combine(per_style, weights, m), c, alpha)
    decoder = AdaINDecoder(width=infer_width(params["decoder"]))
    return decoder.apply({"params": params["decoder"]}, t)


SPEC = register(FeedForward(
    name="adain", summary="AdaIN (Huang & Belongie 2017): relu4_1 statistics transfer + decoder",
    style_layers=(LAYER,), checkpoints=("adain",), init=init, forward=forward))
