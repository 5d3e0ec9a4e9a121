"""Train one WCT decoder (Li et al. 2017): ``python -m train.wct --level 1..5``.

Universal style transfer needs five decoders, one per encoder level ``relu{L}_1``, each trained
only to invert the encoder (no style images). Loss (paper Eq. 1)::

    L = || I_o - I_i ||_2^2 + lambda || Phi(I_o) - Phi(I_i) ||_2^2,     I_o = D_L(Phi(I_i))

with ``Phi`` the VGG19 features at ``relu{L}_1`` and ``lambda = 1`` (the paper). Train all five:

    for L in 1 2 3 4 5; do python -m train.wct --level $L --export weights/wct_level$L.npz; done

The relu1_1 decoder is a single linear 3x3 conv, so its pixel loss has a closed-form optimum:
``--lstsq_crops N`` starts level 1 from the least-squares fit over N training crops (seconds on a
CPU; the Adam steps that follow then only trade a little pixel error for the perceptual term).

Note: the paper's lambda = 1 balances pixels in [0, 1] against the *normalised* VGG19 ("vgg_normalised",
mean activation 1 per filter). Our encoder is the original ImageNet VGG19, whose activations are much
larger, so the perceptual term dominates; ``--pixel_weight`` / ``--pixel_scale`` rebalance it.
"""

from __future__ import annotations

import dataclasses
import sys

import math

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import vgg19
from nst_jax.modules.decoders import WCTDecoder
from train import common
from train.config import field
from train.trainer import Method, main


@dataclasses.dataclass(frozen=True)
class Config(common.ReconstructionConfig):
    level: int = field(5, "decoder level L: inverts relu{L}_1", choices=(1, 2, 3, 4, 5))
    lstsq_crops: int = field(0, "level 1 only: start from the closed-form least-squares fit of the "
                                "(linear) decoder over this many training crops (0 = random init)")

    def validate(self) -> None:
        super().validate()
        if self.lstsq_crops < 0 or (self.lstsq_crops and self.level != 1):
            raise ValueError(f"lstsq_crops needs --level 1 and a count >= 0 (got level {self.level}, "
                             f"{self.lstsq_crops}): only the relu1_1 decoder is linear")


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


def least_squares_decoder(features: np.ndarray, images: np.ndarray) -> dict[str, np.ndarray]:
    """Normal equations of ``min_W ||conv3x3(reflect_pad(f / m), W) + b - I||^2`` for the one-conv
    relu1_1 decoder (Li et al. 2017 Eq. 1, pixel term), as sufficient statistics.

    Args:
      features: (N, H, W, 64) relu1_1 activations (Caffe scale; divided by the decoder's
        :data:`nst_jax.vgg19.MEAN_ACTIVATION` here, as the decoder does). images: (N, H, W, 3) in [0, 1].
    Returns ``{"gram": X^T X, "cross": X^T Y}`` in float64 over the im2col rows ``X = [windows, 1]``;
    sum them over batches and pass the sums to :func:`solve_decoder`.
    """
    f = np.asarray(features, np.float64) / vgg19.MEAN_ACTIVATION["relu1_1"]
    f = np.pad(f, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = images.shape[1:3]
    # Tap-major (dy, dx, channel) columns: the row-major flattening of an HWIO (3, 3, 64, 3) kernel.
    cols = [f[:, dy: dy + h, dx: dx + w] for dy in range(3) for dx in range(3)]
    x = np.concatenate(cols + [np.ones(images.shape[:3] + (1,))], axis=-1).reshape(-1, 9 * f.shape[-1] + 1)
    y = np.asarray(images, np.float64).reshape(-1, 3)
    return {"gram": x.T @ x, "cross": x.T @ y}


def solve_decoder(gram: np.ndarray, cross: np.ndarray, *, ridge: float = 1e-6) -> dict[str, np.ndarray]:
    """The relu1_1 decoder's ``{"kernel": (3, 3, C, 3), "bias": (3,)}`` from summed normal equations;
    a ridge of ``ridge * mean(diag)`` keeps near-collinear channels (dead ReLUs) harmless."""
    reg = ridge * np.trace(gram) / len(gram) * np.eye(len(gram))
    sol = np.linalg.solve(gram + reg, cross)
    return {"kernel": sol[:-1].reshape(3, 3, -1, 3).astype(np.float32), "bias": sol[-1].astype(np.float32)}


def fit_relu1_1_decoder(vgg, loader, crops: int, batch_size: int) -> dict[str, np.ndarray]:
    """The least-squares relu1_1 decoder over the first ``crops`` training crops (``ceil(crops /
    batch_size)`` of ``loader``'s batches): shared by ``--lstsq_crops`` and Avatar-Net's head start."""
    encode = jax.jit(lambda v, x: common.encode(v, x.astype(jnp.float32) / 255.0, ["relu1_1"])["relu1_1"])
    stats = None
    for step in range(math.ceil(crops / batch_size)):
        images = loader.batch(step)["content"]
        part = least_squares_decoder(np.asarray(encode(vgg, images)), images / 255.0)
        stats = part if stats is None else {k: stats[k] + part[k] for k in stats}
    return solve_decoder(stats["gram"], stats["cross"])


def fit(cfg: Config, params, vgg, loader):
    """Trainer hook: the closed-form start of the relu1_1 decoder (``--lstsq_crops``)."""
    if not cfg.lstsq_crops:
        return params
    params = jax.tree_util.tree_map(lambda a: a, params)
    params["decoder"]["dec1_1"] = fit_relu1_1_decoder(vgg, loader, cfg.lstsq_crops, cfg.batch_size)
    return params


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
    fit=fit,
)

if __name__ == "__main__":
    sys.exit(main(METHOD))
