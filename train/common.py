"""Pieces several method specs share: the encoder convention, module cards, reconstruction loss.

Every loss below is written on the global batch and returns (total, weighted terms). ``||.||_2``
in the papers' equations is implemented as the mean squared error (as the reference code does:
``nn.MSECriterion`` / ``nn.MSELoss`` / ``tf.losses.mean_squared_error``), so weights carry over
from the code, not from a summed norm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from nst_jax import losses, vgg19
from nst_jax.kernels.adain import adain
from nst_jax.kernels.stats import mean_std
from train.config import TrainConfig, field

# DESIGN §3: feed-forward methods use reflect padding + max pooling (AdaIN/SANet family). Recorded in
# every export card; stylize refuses a checkpoint loaded with another encoder configuration. One
# definition for training and inference.
from nst_jax.methods.common import ENCODER, encode  # noqa: E402,F401


def normalised(feats: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Features divided by their layer's :data:`nst_jax.vgg19.MEAN_ACTIVATION`: every trainer's feature
    loss sees these (the papers' normalised-VGG19 balance at layer granularity; encoder untouched)."""
    return {k: v / vgg19.MEAN_ACTIVATION[k] for k, v in feats.items()}


def relu_x1(upto: str) -> tuple[str, ...]:
    """``relu1_1, relu2_1, ...`` up to and including block ``upto`` (``relu4_1`` -> four layers)."""
    return tuple(f"relu{b}_1" for b in range(1, int(upto[4]) + 1))


def module_entry(cls: type, **kwargs: Any) -> dict[str, Any]:
    """How the export card names a module: dotted class path + constructor kwargs."""
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "kwargs": kwargs}


def example_features(layers: Sequence[str], size: int = 2) -> dict[str, jax.Array]:
    """Zeros shaped like encoder features (batch 1, tiny spatial size) for ``module.init``."""
    return {layer: jnp.zeros((1, size * (16 // vgg19.STRIDES[layer]), size * (16 // vgg19.STRIDES[layer]),
                              vgg19.CHANNELS[layer])) for layer in layers}


def adain_objective(vgg, decode, content: jax.Array, style: jax.Array, *, layer: str, content_weight: float,
                    style_weight: float) -> dict[str, jax.Array]:
    """AdaIN's training loss (Huang & Belongie 2017 Eqs. 11-13) for any decoder from ``layer``.

    ``t = AdaIN(f(c), f(s))`` at ``layer``; ``decode(t, style_feats) -> image`` (``style_feats``: the
    style's encoder features at ``relu1_1..layer``, for decoders with AdaIN skips from the style);
    ``L = w_c ||f(g) - t||^2 + w_s sum_l (||mu(phi_l(g)) - mu(phi_l(s))||^2 + ||sigma(..) - sigma(..)||^2)``
    over ``phi_l = relu1_1..layer``, all in :func:`normalised` units.
    """
    layers = relu_x1(layer)
    style_feats = encode(vgg, style, layers)
    t = adain(encode(vgg, content, (layer,))[layer], style_feats[layer])
    out = decode(t, style_feats)
    out_feats = normalised(encode(vgg, out, layers))
    target = normalised(style_feats)
    return {
        "loss/content": content_weight * losses.mse(out_feats[layer], normalised({layer: t})[layer]),
        "loss/style": style_weight * losses.moment_loss(out_feats, {k: mean_std(target[k]) for k in layers}),
    }


FEATURE_UNITS = ("normalised", "raw")


@dataclasses.dataclass(frozen=True)
class ReconstructionConfig(TrainConfig):
    """Loss weights of reconstruction-trained decoders (WCT, Avatar-Net, AAMS, CBAM)."""

    pixel_weight: float = field(1.0, "weight of the pixel MSE ||D(E(I)) - I||^2")
    perceptual_weight: float = field(1.0, "weight of the perceptual MSE sum_l ||phi_l(D(E(I))) - phi_l(I)||^2")
    tv_weight: float = field(0.0, "weight of the L1 total variation of the output")
    pixel_scale: float = field(1.0, "pixel units of the pixel and TV terms: 1 = [0,1] images (Torch anchors), "
                                    "255 = [0,255] (the TF anchors Avatar-Net/AAMS)")
    feature_units: str = field("normalised", "units of the perceptual term: 'normalised' (features / the layer's "
                                             "mean activation, our convention) or 'raw' (Caffe-unit VGG19 "
                                             "features, as the TF anchors' slim vgg_19)", choices=FEATURE_UNITS)
    width: float = field(1.0, "decoder hidden-channel multiplier (1 = the real network; tests use 0.125)")


def reconstruction_loss(cfg: ReconstructionConfig, images: jax.Array, output: jax.Array,
                        target_feats: dict[str, jax.Array], output_feats: dict[str, jax.Array]):
    """``w_p ||s (I' - I)||^2 + w_f sum_l ||phi_l(I') - phi_l(I)||^2 + w_tv TV_L1(s I')``, s = pixel_scale,
    with ``phi_l`` the :func:`normalised` features, or the raw ones (``feature_units="raw"``).

    (Li et al. 2017 Eq. 1 for WCT; Sheng et al. 2018 / Yao et al. 2019 training losses.) The units
    decide the balance: the TF anchors' [0, 255] pixel term against *raw* VGG features (their slim
    vgg_19 is in our encoder's Caffe units) is of the same order as the perceptual term; against
    normalised features it is ~1000x larger and the decoder learns a blurred pixel-MSE fit.
    """
    s = cfg.pixel_scale
    units = normalised if cfg.feature_units == "normalised" else (lambda feats: feats)
    terms = {
        "loss/pixel": cfg.pixel_weight * losses.mse(s * output, s * images),
        "loss/perceptual": cfg.perceptual_weight * losses.feature_loss(units(output_feats), units(target_feats)),
    }
    if cfg.tv_weight:
        terms["loss/tv"] = cfg.tv_weight * losses.tv_l1_loss(s * output)
    return terms


@dataclasses.dataclass(frozen=True)
class SkipReconstructionConfig(ReconstructionConfig):
    """Reconstruction training of the decoders with AdaIN skips (Avatar-Net, AAMS, CBAM)."""

    teacher_forcing: bool = field(False, "train the decoder segment by segment between its skips on the "
                                         "encoder's own features (segment_terms; not in the papers: a "
                                         "CPU-budget first stage)")
    style_weight: float = field(0.0, "> 0: train the decoder on stylization with AdaIN's loss (content weight 1, "
                                     "this style weight; stylization_terms; not in the papers: a CPU-budget "
                                     "later stage) instead of reconstruction")

    def validate(self) -> None:
        super().validate()
        if self.style_weight < 0 or (self.style_weight and self.teacher_forcing):
            raise ValueError(f"style_weight must be >= 0 and excludes teacher_forcing, got {self.style_weight} "
                             f"with teacher_forcing={self.teacher_forcing}")


def skip_decoder_sources(cfg: SkipReconstructionConfig) -> tuple[str, ...]:
    """The image streams a skip decoder's stage reads: photos, and paintings for the stylization stage."""
    return ("content", "style") if cfg.style_weight else ("content",)


def stylization_terms(cfg: SkipReconstructionConfig, vgg, decode, batch, input_layer: str) -> dict[str, jax.Array]:
    """A skip decoder trained on stylization (``--style_weight``): :func:`adain_objective` at its input
    layer, ``decode(t, skips)`` given the *style's* features as skips, as at transfer time.

    Why (not in Avatar-Net/AAMS): a reconstruction-trained decoder regresses each level to its
    conditional mean given the coarser one, detail the skips' statistics cannot restore; at transfer
    time that is blur, whose missing texture the style statistics of relu2_1..relu4_1 measure.
    """
    return adain_objective(vgg, decode, batch["content"], batch["style"], layer=input_layer, content_weight=1.0,
                           style_weight=cfg.style_weight)


def segment_terms(cfg: SkipReconstructionConfig, decode, input_layer: str, skip_layers: Sequence[str],
                  images: jax.Array, feats: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Teacher-forced reconstruction of a skip decoder, one segment between skips at a time.

    A skip decoder from ``relu{b}_1`` is a chain of segments separated by its AdaIN skips
    (``relu{b-1}_1 .. relu1_1``). Each segment gets the encoder's own features of its entry layer
    (the input, or what a perfect fusion at its entry skip would produce) and must predict the next
    layer's features up to per-channel statistics, which the skip then replaces::

        L = sum_k || AdaIN(h_k, phi_k) - phi_k ||^2  +  w_p || s (D_1(phi_1) - I) ||^2

    ``h_k`` = the segment's activations before skip ``k``, ``phi_k`` = normalised ``relu{k}_1`` of
    the input, ``D_1`` = the last segment (relu1_1 -> RGB). Segments share no parameters, so each
    term trains its own segment. Why (not in Avatar-Net/AAMS, which reach this over 80k-120k steps of
    end-to-end reconstruction): the skips overwrite the decoder's channel statistics with VGG's, which
    carries information only where the decoder's channels are VGG-like; end-to-end training from any
    warm start stayed unrecognisable within a CPU budget (train/ship.py). After this stage a decoder's
    skips are a multi-level AdaIN at transfer time; an end-to-end stage with the paper's loss follows.
    """
    starts, stops = (None, *skip_layers), (*skip_layers, None)
    feature = 0.0
    terms = {}
    for start, stop in zip(starts, stops):
        h = decode(feats[start or input_layer], {}, start=start, stop=stop)
        if stop is None:
            terms["loss/pixel"] = cfg.pixel_weight * losses.mse(cfg.pixel_scale * h, cfg.pixel_scale * images)
        else:
            target = feats[stop] / vgg19.MEAN_ACTIVATION[stop]
            feature = feature + losses.mse(adain(h, target), target)
    terms["loss/segments"] = feature
    return terms
