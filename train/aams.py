"""Train the AAMS attention autoencoder (Yao et al. 2019): ``python -m train.aams``.

Network (:class:`nst_jax.modules.attention.AttentionAutoencoder`, ``kind="self"``): the deepest
encoder features ``f`` (relu4_1; ``--depth`` picks relu3_1/relu5_1 as in seed 000) are
instance-normalised, passed through SAGAN-style self-attention ``A``, modulated ``f_n * A + f_n``,
re-coloured with the input's own mean/std and decoded with AdaIN skips from the input's own lower
``relu{k}_1`` features. Trained for reconstruction on photos only. Loss of the official code::

    L = 10 || I' - I ||_2^2 + 1 sum_{l = relu1_1..depth} || phi_l(I') - phi_l(I) ||_2^2
        + 10 TV_L1(I') + 6 || A ||_1

(images in [0, 255] and raw Caffe-unit VGG19 features as in the TF code, ``--feature_units raw``;
``|| A ||_1`` as the mean absolute attention feature map).
Optimiser: Adam lr 1e-4 (no decay), beta2 0.99, **epsilon 1.0**, batch 8, 80k steps. The decoder
pads by reflection (``--decoder_padding``; the TF code's zero padding is ``zero``, and ``stylize``
refuses such an export: fine-tune it with ``reflect`` first).
The CBAM variant (seed 000) is ``python -m train.cbam``; it shares this spec.
``--teacher_forcing true`` (not in the papers; the shipped checkpoints' CPU recipe) trains only the
decoder, segment by segment between its skips on the encoder's own features
(:func:`train.common.segment_terms`); ``--style_weight W`` (a later CPU stage) trains the decoder
alone on stylization, AdaIN's loss with the style's skips (:func:`train.common.stylization_terms`).
"""

from __future__ import annotations

import dataclasses
import sys

import jax
import jax.numpy as jnp

from nst_jax.modules.attention import AttentionAutoencoder
from train import common
from train.config import field
from train.trainer import Method, main

DEPTHS = {"conv3_1": "relu3_1", "conv4_1": "relu4_1", "conv5_1": "relu5_1"}  # slim names -> ours (post-ReLU)


@dataclasses.dataclass(frozen=True)
class Config(common.SkipReconstructionConfig):
    pixel_weight: float = field(10.0, "weight of the pixel MSE (AAMS code: 10)")
    perceptual_weight: float = field(1.0, "weight of the perceptual MSE over relu1_1..depth (1)")
    tv_weight: float = field(10.0, "weight of the L1 total variation (10)")
    attention_weight: float = field(6.0, "weight of the L1 norm of the attention map (6)")
    pixel_scale: float = field(255.0, "pixel units of the pixel and TV terms (255: the TF code's [0, 255] images)")
    feature_units: str = field("raw", "units of the perceptual term: 'raw' Caffe-unit VGG19 features as the TF "
                                      "code's slim vgg_19 (its balance with the [0, 255] pixel term), or "
                                      "'normalised'", choices=common.FEATURE_UNITS)
    depth: str = field("conv4_1", "encoder depth (seed 000's three models)", choices=tuple(DEPTHS))
    width: float = field(1.0, "must stay 1: the attention module consumes the real VGG features")
    decoder_padding: str = field("reflect", "the decoder's convolution padding: 'reflect' (what stylize "
                                            "runs, DESIGN §3) or 'zero' (AAMS's TF code; such an export "
                                            "only warm-starts a reflect one)", choices=("reflect", "zero"))
    identity_init: bool = field(True, "AAMS: zero the value projection h, so the attention branch starts "
                                      "as the identity (f_n * 0 + f_n); CBAM: no effect")

    def validate(self) -> None:
        super().validate()
        if self.width != 1.0:
            raise ValueError("width must be 1 for AAMS/CBAM (the attention module takes the 512/256-channel "
                             "VGG features directly)")


def identity_start(params):
    """AAMS autoencoder parameters whose attention branch is the identity: a zero value projection
    ``h`` makes the attention output ``A = 0`` and the modulation ``f_n * A + f_n = f_n``.

    With a random ``h`` the decoder (warm-started from a reconstruction decoder) first sees
    ``f_n * A`` noise as large as ``f_n`` itself; the zero start decodes the photo from step 0 and
    ``f``, ``g`` receive gradients as soon as ``h`` moves (the zero-initialised residual branch of
    SAGAN's ``gamma = 0``).
    """
    attention = dict(params["attention"])
    attention["h"] = jax.tree_util.tree_map(jnp.zeros_like, attention["h"])
    return {**params, "attention": attention}


def make_method(kind: str, *, name: str, description: str, paper: dict, cpu: dict) -> Method:
    """The AAMS (``kind="self"``) or CBAM (``kind="cbam"``) method spec."""

    def layer(cfg: Config) -> str:
        return DEPTHS[cfg.depth]

    def model(cfg: Config) -> AttentionAutoencoder:
        return AttentionAutoencoder(layer=layer(cfg), kind=kind, padding=cfg.decoder_padding)

    def init(cfg: Config, key: jax.Array):
        feats = common.example_features(common.relu_x1(layer(cfg)))
        params = model(cfg).init(key, feats)["params"]
        if kind == "self" and cfg.identity_init:
            params = identity_start(params)
        return {"autoencoder": params}

    def loss(cfg: Config, params, vgg, batch, key):
        del key
        images = batch["content"]
        layers = common.relu_x1(layer(cfg))

        def decode(x, skips, **segment):  # the decoder alone (the attention module waits)
            return model(cfg).apply({"params": params["autoencoder"]}, x, skips, **segment, method="decode")

        if cfg.style_weight:
            terms = common.stylization_terms(cfg, vgg, decode, batch, layer(cfg))
            return sum(terms.values()), terms
        feats = common.encode(vgg, images, layers)
        if cfg.teacher_forcing:
            terms = common.segment_terms(cfg, decode, layer(cfg), layers[-2::-1], images, feats)
            return sum(terms.values()), terms
        out, attended = model(cfg).apply({"params": params["autoencoder"]}, feats)
        terms = common.reconstruction_loss(cfg, images, out, feats, common.encode(vgg, out, layers))
        terms["loss/attention"] = cfg.attention_weight * jnp.mean(jnp.abs(attended.attention))
        return sum(terms.values()), terms

    return Method(
        name=name,
        config=Config,
        presets={"paper": paper, "cpu": cpu},
        sources=common.skip_decoder_sources,
        encoder=lambda cfg: {**common.ENCODER, "layers": list(reversed(common.relu_x1(layer(cfg)))),
                             "loss_layers": list(common.relu_x1(layer(cfg)))},
        init=init,
        loss=loss,
        modules=lambda cfg: {"autoencoder": common.module_entry(
            AttentionAutoencoder, layer=layer(cfg), kind=kind, padding=cfg.decoder_padding)},
        run_name=lambda cfg: f"{name}_{cfg.depth}",
        description=description,
    )


_OPT = dict(lr_decay=0.0, adam_b2=0.99, adam_eps=1.0)  # AAMS: tf.train.AdamOptimizer(1e-4, beta2=0.99, epsilon=1.0)

# epsilon=1.0 damps every update whose gradient is below ~1: right for the anchors' summed losses in
# [0, 255] units over 80k steps, far too slow for a few hundred CPU steps on our normalised losses.
# Normalised feature units on CPU: at a few hundred steps the raw balance leaves decoders grey.
_CPU_OPT = dict(_OPT, adam_eps=1e-8, feature_units="normalised")

METHOD = make_method("self", name="aams", description=__doc__, paper=dict(steps=80_000, **_OPT), cpu=_CPU_OPT)

if __name__ == "__main__":
    sys.exit(main(METHOD))
