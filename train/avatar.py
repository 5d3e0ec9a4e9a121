"""Train the Avatar-Net hourglass decoder (Sheng et al. 2018): ``python -m train.avatar``.

Avatar-Net's decoder is trained for reconstruction only (no style images; the style decorator has
no parameters): ``I' = D(E(I)^relu4_1; skips)`` where the AdaIN skips before ``dec3_1``, ``dec2_1``,
``dec1_1`` take the *input's own* relu3_1 / relu2_1 / relu1_1 statistics (the style's at transfer
time). Loss of the official TF code::

    L = 10 || I' - I ||_2^2 + 1 sum_{l = relu1_1..relu4_1} || phi_l(I') - phi_l(I) ||_2^2 + 10 TV_L1(I')

with images in [0, 255] as in the TF code (``--pixel_scale 255``) and ``phi`` its slim vgg_19, which
is our encoder in Caffe units (``--feature_units raw``), L2 weight decay 5e-4 on the convolution
kernels, Adam 1e-4 without decay, batch 8, 120k steps.

``--teacher_forcing true`` (not in the paper; the shipped checkpoint's CPU recipe) trains the decoder
segment by segment between its skips on the encoder's own features instead
(:func:`train.common.segment_terms`); ``--style_weight W`` (a later CPU stage) trains it on
stylization, AdaIN's loss with the style's skips (:func:`train.common.stylization_terms`).
"""

from __future__ import annotations

import dataclasses
import sys

import jax
import numpy as np

from nst_jax.modules.decoders import SkipDecoder
from train import common
from train.config import field
from train.trainer import Method, main

LAYERS = common.relu_x1("relu4_1")


@dataclasses.dataclass(frozen=True)
class Config(common.SkipReconstructionConfig):
    pixel_weight: float = field(10.0, "weight of the pixel MSE (Avatar-Net code: 10)")
    perceptual_weight: float = field(1.0, "weight of the perceptual MSE over relu1_1..relu4_1 (1)")
    tv_weight: float = field(10.0, "weight of the L1 total variation (10)")
    pixel_scale: float = field(255.0, "pixel units of the pixel and TV terms (255: the TF code's [0, 255] images)")
    feature_units: str = field("raw", "units of the perceptual term: 'raw' Caffe-unit VGG19 features as the TF "
                                      "code's slim vgg_19 (its balance with the [0, 255] pixel term), or "
                                      "'normalised'", choices=common.FEATURE_UNITS)
    width: float = field(1.0, "must stay 1: the AdaIN skips take the real VGG features")
    head_lstsq_crops: int = field(0, "start dec1_1 as the identity and the 7x7 RGB head as the closed-form "
                                     "least-squares relu1_1 decoder over this many crops (0 = keep)")

    def validate(self) -> None:
        super().validate()
        if self.width != 1.0:
            raise ValueError("width must be 1 for Avatar-Net (its AdaIN skips take the VGG features directly)")
        if self.head_lstsq_crops < 0:
            raise ValueError(f"head_lstsq_crops must be >= 0, got {self.head_lstsq_crops}")


def decoder(cfg: Config) -> SkipDecoder:
    return SkipDecoder.avatar_net(padding=common.ENCODER["padding"], width=cfg.width)


def init(cfg: Config, key: jax.Array):
    feats = common.example_features(LAYERS)
    return {"decoder": decoder(cfg).init(key, feats["relu4_1"], feats)["params"]}


def loss(cfg: Config, params, vgg, batch, key):
    del key
    images = batch["content"]

    def decode(x, skips, **segment):
        return decoder(cfg).apply({"params": params["decoder"]}, x, skips, **segment)

    if cfg.style_weight:
        terms = common.stylization_terms(cfg, vgg, decode, batch, "relu4_1")
        return sum(terms.values()), terms
    feats = common.encode(vgg, images, LAYERS)
    if cfg.teacher_forcing:
        terms = common.segment_terms(cfg, decode, "relu4_1", decoder(cfg).skip_layers, images, feats)
        return sum(terms.values()), terms
    out = decode(feats["relu4_1"], feats)  # own skips
    terms = common.reconstruction_loss(cfg, images, out, feats, common.encode(vgg, out, LAYERS))
    return sum(terms.values()), terms


def fit(cfg: Config, params, vgg, loader):
    """Trainer hook (``--head_lstsq_crops N``): the last segment (relu1_1 -> ``dec1_1`` 64->64 + ReLU
    -> 7x7 ``head``) starts as the identity followed by the least-squares relu1_1 decoder of
    :func:`train.wct.least_squares_decoder` in the centre of the 7x7 kernel (with reflect padding
    the same map as its 3x3 form). The relu1_1 features are non-negative, so the ReLU passes them."""
    if not cfg.head_lstsq_crops:
        return params
    from train import wct  # pylint: disable=import-outside-toplevel

    head = wct.fit_relu1_1_decoder(vgg, loader, cfg.head_lstsq_crops, cfg.batch_size)
    channels = head["kernel"].shape[2]
    identity = np.zeros((3, 3, channels, channels), np.float32)
    identity[1, 1] = np.eye(channels, dtype=np.float32)
    kernel = np.zeros((7, 7, channels, 3), np.float32)
    kernel[2:5, 2:5] = head["kernel"]
    dec = dict(params["decoder"])
    dec["dec1_1"] = {"kernel": identity, "bias": np.zeros(channels, np.float32)}
    dec["head"] = {"kernel": kernel, "bias": head["bias"]}
    return {**params, "decoder": dec}


_OPT = dict(lr_decay=0.0, weight_decay=5e-4)

METHOD = Method(
    name="avatar",
    config=Config,
    # cpu: normalised feature units -- at a few hundred steps the raw balance (relu4_1's errors ~400x
    # relu1_1's) leaves the decoder grey (train/ship.py, session 6).
    presets={"paper": dict(steps=120_000, **_OPT), "cpu": dict(_OPT, feature_units="normalised")},
    sources=common.skip_decoder_sources,
    encoder=lambda cfg: {**common.ENCODER, "layers": list(reversed(LAYERS)), "loss_layers": list(LAYERS)},
    init=init,
    loss=loss,
    modules=lambda cfg: {"decoder": common.module_entry(SkipDecoder, layer="relu4_1", padding="reflect",
                                                        head_kernel=7, width=cfg.width)},
    description=__doc__,
    fit=fit,
)

if __name__ == "__main__":
    sys.exit(main(METHOD))
