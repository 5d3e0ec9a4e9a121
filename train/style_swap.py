"""Train the Style-Swap inverse network (Chen & Schmidt 2016): ``python -m train.style_swap``.

The inverse network ``D`` maps relu3_1 features back to images. It is trained in feature space
(paper Sec. 4 / ``train-vgg-decoder.lua``): each step encodes B content and B style crops, adds the
B x B style-swapped latents ``swap(E(c_i), E(s_j))`` (3x3 patches, stride 1), and asks that
re-encoding the decoded image gives the latent back::

    L = sum_z || E(D(z)) - z ||_2^2 + lambda_tv TV(D(z)),   z in {E(c_i)} u {E(s_j)} u {swap(E(c_i), E(s_j))}

so the network sees both natural and swapped latents. With the paper's B = 2 that is
2 + 2 + 4 = 8 latents per step. Optimiser: Adam lr 1e-3 with inverse decay 1e-4, 80k iterations
(both presets keep the paper's learning rate; ``cpu`` only shrinks sizes and steps).

Optional, not in the paper: ``--style_weight`` adds the AdaIN moment loss (Huang & Belongie 2017
Eq. 12) over relu1_1..relu3_1 between each decoded latent and the image its patches come from (the
content crop for ``E(c_i)``, the style crop for ``E(s_j)`` and for every swap with ``s_j``). A swapped
latent is no image's exact encoding, and the feature MSE alone is minimised by a low-contrast
compromise: a short CPU run's inverse net decoded swaps at ~0.5-0.6x the style's activation std at
every VGG layer, so its outputs measured further from the style's statistics than the unstylized
photo. Default 0 (the paper's loss).
"""

from __future__ import annotations

import dataclasses
import sys

import jax
import jax.numpy as jnp

from nst_jax import losses
from nst_jax.kernels.patch_swap import patch_swap
from nst_jax.kernels.stats import mean_std
from nst_jax.modules.decoders import StyleSwapDecoder
from train import common
from train.config import TrainConfig, field
from train.trainer import Method, main

LAYER = "relu3_1"
MOMENT_LAYERS = common.relu_x1(LAYER)


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    feature_weight: float = field(1.0, "weight of sum_z ||E(D(z)) - z||^2")
    tv_weight: float = field(1e-6, "weight of the (L2) total variation of D(z) (paper code: 1e-6)")
    style_weight: float = field(0.0, "weight of the mean/std loss over relu1_1..relu3_1 of D(z) to the image "
                                     "z's patches come from (not in the paper: 0)")
    patch_size: int = field(3, "style-swap patch size")
    norm: str = field("instance", "inverse-net normalisation: instance (released net) or none",
                      choices=("instance", "none"))
    width: float = field(1.0, "decoder hidden-channel multiplier (1 = the real network; tests use 0.125)")


def decoder(cfg: Config) -> StyleSwapDecoder:
    return StyleSwapDecoder(norm=None if cfg.norm == "none" else cfg.norm, padding=common.ENCODER["padding"],
                            width=cfg.width)


def init(cfg: Config, key: jax.Array):
    return {"decoder": decoder(cfg).init(key, common.example_features([LAYER])[LAYER])["params"]}


def latents(cfg: Config, fc: jax.Array, fs: jax.Array) -> jax.Array:
    """Natural latents of both streams plus every content x style swap (B + B + B^2)."""
    b = fc.shape[0]
    swapped = patch_swap(jnp.repeat(fc, b, axis=0), jnp.tile(fs, (b, 1, 1, 1)), patch_size=cfg.patch_size)
    return jax.lax.stop_gradient(jnp.concatenate([fc, fs, swapped]))


def loss(cfg: Config, params, vgg, batch, key):
    del key
    n = batch["content"].shape[0]
    layers = MOMENT_LAYERS if cfg.style_weight else (LAYER,)
    f = common.encode(vgg, jnp.concatenate([batch["content"], batch["style"]]), layers)
    z = latents(cfg, f[LAYER][:n], f[LAYER][n:])
    out = decoder(cfg).apply({"params": params["decoder"]}, z)
    out_feats = common.normalised(common.encode(vgg, out, layers))
    # Feature loss on normalised relu3_1 (common.normalised) so the TV weight keeps its meaning.
    terms = {"loss/feature": cfg.feature_weight * losses.mse(out_feats[LAYER], common.normalised({LAYER: z})[LAYER])}
    if cfg.tv_weight:
        terms["loss/tv"] = cfg.tv_weight * losses.tv_loss(out)
    if cfg.style_weight:
        # Latent order of `latents`: contents, styles, then swap (i, j) at i * n + j (style j).
        source = {k: jax.lax.stop_gradient(v) for k, v in common.normalised(f).items()}
        source = {k: jnp.concatenate([v, jnp.tile(v[n:], (n, 1, 1, 1))]) for k, v in source.items()}
        terms["loss/style"] = cfg.style_weight * losses.moment_loss(
            out_feats, {k: mean_std(v) for k, v in source.items()})
    return sum(terms.values()), terms


_PAPER_OPT = dict(lr=1e-3, lr_decay=1e-4)

METHOD = Method(
    name="style_swap",
    config=Config,
    presets={"paper": dict(batch_size=2, steps=80_000, **_PAPER_OPT), "cpu": dict(batch_size=2, **_PAPER_OPT)},
    sources=lambda cfg: ("content", "style"),
    encoder=lambda cfg: {**common.ENCODER, "layers": [LAYER], "loss_layers": [LAYER]},
    init=init,
    loss=loss,
    modules=lambda cfg: {"decoder": common.module_entry(
        StyleSwapDecoder, norm=None if cfg.norm == "none" else cfg.norm, padding="reflect", width=cfg.width)},
    description=__doc__,
)

if __name__ == "__main__":
    sys.exit(main(METHOD))
