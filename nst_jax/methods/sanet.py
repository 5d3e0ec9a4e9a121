"""SANet (Park & Lee, CVPR 2019, "Arbitrary Style Transfer with Style-Attentional Networks"; seed 003).

``I_cs = D(F_csc^m)`` with ``F_csc^m = SANetTransform(E(c), E(s))`` (Eq. 1-4): one style-attentional
module on relu4_1 and one on relu5_1, merged by a 3x3 conv (method ``"sanet"``), or the relu4_1
module alone (``"sanet_r41"``, the paper's "relu4_1 only" row of Table 1); ``D`` is the AdaIN decoder.

Runtime controls (Sec. 4.3 of the paper):

* ``alpha``: content-style trade-off ``D(alpha * SANet(c, s) + (1 - alpha) * SANet(c, c))`` -- the
  blend partner is the transform of the content with *itself* (the identity path the identity loss
  trains to reconstruct the content), not the raw relu4_1 features, so ``alpha = 0`` is the
  decoder's reconstruction of the content. ``alpha`` is traced: changing it never recompiles.
* style interpolation: ``style_weights`` blend the per-style transformed features.
* spatial control: ``masks`` composite the per-style transformed features by content region
  (:func:`nst_jax.methods.common.combine`, i.e. ``blend_by_masks`` at relu4_1).
* colour preservation and any input size: the framework (:mod:`nst_jax.methods.common`).

Checkpoints: ``python -m train.sanet`` exports ``{"transform": SANetTransform params, "decoder":
AdaINDecoder params}``; the multi-level transform has ``sanet4_1``, ``sanet5_1`` and ``merge``, the
relu4_1-only one (trained with ``--multi_level false``) only ``sanet4_1``. Loading checks that the file
holds the variant the method needs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nst_jax.errors import CheckpointError
from nst_jax.kernels.attention import DEFAULT_CHUNK_SIZE
from nst_jax.methods.common import FeedForward, blend, combine, encode, fast_key, infer_width, masks_at, register
from nst_jax.modules.decoders import AdaINDecoder
from nst_jax.modules.sanet import SANetTransform

LAYER = "relu4_1"  # the decoder's input layer


def _layers(multi_level: bool) -> tuple[str, ...]:
    return ("relu4_1", "relu5_1") if multi_level else ("relu4_1",)


def make_init(multi_level: bool):
    def init(key: jax.Array, *, width: float = 1.0):
        k_t, k_d = jax.random.split(key)
        feats = {"relu4_1": jnp.zeros((1, 2, 2, 512)), "relu5_1": jnp.zeros((1, 1, 1, 512))}
        feats = {k: v for k, v in feats.items() if k in _layers(multi_level)}
        transform = jax.jit(SANetTransform(multi_level=multi_level).init)(fast_key(k_t), feats, feats)
        decoder = jax.jit(AdaINDecoder(width=width).init)(fast_key(k_d), feats["relu4_1"])
        return {"transform": transform["params"], "decoder": decoder["params"]}
    return init


def make_forward(multi_level: bool):
    layers = _layers(multi_level)

    def forward(params, content, style_feats, weights, masks, alpha, key, *, chunk_size=DEFAULT_CHUNK_SIZE):
        del key
        transform = SANetTransform(multi_level=multi_level, chunk_size=chunk_size)
        variables = {"params": params["transform"]}
        c = encode(params["vgg"], content, layers)
        per_style = [transform.apply(variables, c, s) for s in style_feats]
        stylized = combine(per_style, weights, masks_at(masks, LAYER, c[LAYER].shape[1:3]))
        # SANet(c, c) is the alpha = 0 end; at alpha = 1 (the default) its weight is zero, so a
        # cond skips the second attention at run time (~10% of the pipeline) without recompiling.
        identity = jax.lax.cond(jnp.all(alpha == 1.0), lambda: jnp.zeros_like(stylized),
                                lambda: transform.apply(variables, c, c).astype(stylized.dtype))
        t = blend(stylized, identity, alpha)
        decoder = AdaINDecoder(width=infer_width(params["decoder"]))
        return decoder.apply({"params": params["decoder"]}, t)

    return forward


def make_merge(name: str, multi_level: bool):
    def merge(params, loaded):
        tree = loaded[name]
        missing = sorted({"transform", "decoder"} - set(tree))
        if missing:
            raise CheckpointError(f"checkpoint {name!r} lacks {missing} (it holds {sorted(tree)}): "
                                  "not a `python -m train.sanet` export")
        has_r51 = "sanet5_1" in tree["transform"]
        if has_r51 != multi_level:
            held = "multi-level (relu4_1 + relu5_1)" if has_r51 else "relu4_1-only"
            other = "sanet" if has_r51 else "sanet_r41"
            raise CheckpointError(f"checkpoint {name!r} holds the {held} SANet; use method {other!r} for it, "
                                  f"or train {name!r} with `python -m train.sanet --multi_level "
                                  f"{str(multi_level).lower()}`")
        params.update(transform=tree["transform"], decoder=tree["decoder"])
        return params
    return merge


def _spec(name: str, multi_level: bool, summary: str) -> FeedForward:
    return register(FeedForward(
        name=name, summary=summary, style_layers=_layers(multi_level), checkpoints=(name,),
        init=make_init(multi_level), forward=make_forward(multi_level), static=("chunk_size",),
        options={"chunk_size": DEFAULT_CHUNK_SIZE}, merge=make_merge(name, multi_level)))


SPEC = _spec("sanet", True, "SANet (Park & Lee 2019): style attention at relu4_1 + relu5_1, AdaIN decoder")
SPEC_R41 = _spec("sanet_r41", False, "SANet (Park & Lee 2019), relu4_1-only variant")
