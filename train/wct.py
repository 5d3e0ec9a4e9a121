"""Train one WCT decoder (Li et al. 2017): ``python -m train.wct --level 1..5``.

Universal style transfer needs five decoders, one per encoder level ``relu{L}_1``, each trained
only to invert the encoder (no style images). Loss (paper Eq. 1)::

    L = || I_o - I_i ||_2^2 + lambda || Phi(I_o) - Phi(I_i) ||_2^2,     I_o = D_L(Phi(I_i))

with ``Phi`` the VGG19 features at ``relu{L}_1`` and ``lambda = 1`` (the paper). Train all five:

    for L in 1 2 3 4 5; do python -m train.wct --level $L --export weights/wct_level$L.npz; done

Note: the paper's lambda = 1 balances pixels in [0, 1] against the *normalised* VGG19 ("vgg_normalised",
mean activation 1 per filter). Our encoder is the original ImageNet VGG19, whose activations are much
larger, so the perceptual term dominates; ``--pixel_weight`` / ``--pixel_scale`` rebalance it.
"""

from __future__ import annotations

import dataclasses
import sys

import jax

from nst_jax.modules.decoders import WCTDecoder
from train import common
from train.config import field
from train.trainer import Method, main


@dataclasses.dataclass(frozen=True)
class Config(common.ReconstructionConfig):
    level: int = field(5, "decoder level L: inverts relu{L}_1", choices=(1, 2, 3, 4, 5))


def layer(cfg: Config) -> str:
    return f"relu{cfg.level}_1"


def decoder(cfg: Config) -> WCTDecoder:
    return WCTDecoder(level=cfg.level, padding=common.ENCODER["padding"], width=cfg.width)


def init(cfg: Config, key: jax.Array):
    x = common.example_features([layer(cfg)])[layer(cfg)]
    return {"decoder": decoder(cfg).init(key, x)["params"]}


def loss(cfg: Config, params, vgg, batch, key):
    del key
    images = batch["content"]
    feats = common.encode(vgg, images, [layer(cfg)])
    out = decoder(cfg).apply({"params": params["decoder"]}, feats[layer(cfg)])
    terms = common.reconstruction_loss(cfg, images, out, feats, common.encode(vgg, out, [layer(cfg)]))
    return sum(terms.values()), terms


METHOD = Method(
    name="wct",
    config=Config,
    presets={},
    sources=lambda cfg: ("content",),
    encoder=lambda cfg: {**common.ENCODER, "layers": [layer(cfg)], "loss_layers": [layer(cfg)]},
    init=init,
    loss=loss,
    modules=lambda cfg: {"decoder": common.module_entry(WCTDecoder, level=cfg.level, padding="reflect",
                                                        width=cfg.width)},
    run_name=lambda cfg: f"wct_level{cfg.level}",
    description=__doc__,
)

if __name__ == "__main__":
    sys.exit(main(METHOD))
