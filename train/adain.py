"""Train the AdaIN decoder (Huang & Belongie 2017): ``python -m train.adain``.

Model: ``t = AdaIN(f(c), f(s))`` at relu4_1 (alpha = 1 in training), ``g(t) = D(t)`` with
:class:`nst_jax.modules.decoders.AdaINDecoder`; the encoder ``f`` is the frozen VGG19.

Loss (paper Eqs. 11-13)::

    L   = L_c + lambda L_s
    L_c = || f(g(t)) - t ||_2                                                   (relu4_1; target t,
                                                                                 not the content)
    L_s = sum_i || mu(phi_i(g(t))) - mu(phi_i(s)) ||_2 + || sigma(phi_i(g(t))) - sigma(phi_i(s)) ||_2
          over phi_i = relu1_1, relu2_1, relu3_1, relu4_1

Style weight: the official Torch code (AO) uses 1e-2 (``decoder-content-similar``) or 1e-1 (the
released ``decoder.t7``) with summed (not size-averaged) criteria; the PyTorch port (AP) uses 10 with
mean-squared errors. Our terms are mean-squared errors like AP's, so the default is AP's
``style_weight=10``; AO's weights belong to a different normalisation and are not comparable.

    python -m train.adain --preset cpu --export weights/adain_cpu.npz
    python -m train.adain --preset paper --workdir runs/adain_paper        # on a GPU/TPU host
"""

from __future__ import annotations

import dataclasses
import sys

import jax

from nst_jax.modules.decoders import AdaINDecoder
from train import common
from train.config import TrainConfig, field
from train.trainer import Method, main

STYLE_LAYERS = common.relu_x1("relu4_1")


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    content_weight: float = field(1.0, "lambda_c on ||f(g(t)) - t|| at relu4_1")
    style_weight: float = field(10.0, "lambda_s on the mean/std style loss (AP's 10; see module docstring)")
    width: float = field(1.0, "decoder hidden-channel multiplier (1 = the real network; tests use 0.125)")


def decoder(cfg: Config) -> AdaINDecoder:
    return AdaINDecoder(padding=common.ENCODER["padding"], width=cfg.width)


def init(cfg: Config, key: jax.Array):
    return {"decoder": decoder(cfg).init(key, common.example_features(["relu4_1"])["relu4_1"])["params"]}


def loss(cfg: Config, params, vgg, batch, key):
    del key  # deterministic model
    terms = common.adain_objective(
        vgg, lambda t, _: decoder(cfg).apply({"params": params["decoder"]}, t), batch["content"], batch["style"],
        layer="relu4_1", content_weight=cfg.content_weight, style_weight=cfg.style_weight)
    return sum(terms.values()), terms


METHOD = Method(
    name="adain",
    config=Config,
    presets={},
    sources=lambda cfg: ("content", "style"),
    encoder=lambda cfg: {**common.ENCODER, "layers": ["relu4_1"], "loss_layers": list(STYLE_LAYERS)},
    init=init,
    loss=loss,
    modules=lambda cfg: {"decoder": common.module_entry(AdaINDecoder, padding="reflect", width=cfg.width)},
    description=__doc__,
)

if __name__ == "__main__":
    sys.exit(main(METHOD))
