"""Train SANet + its decoder (Park & Lee 2019, seed 003): ``python -m train.sanet``.

Model: ``F_csc^m = SANetTransform(E(c), E(s))`` (relu4_1 + relu5_1 SANets and the 3x3 merge, Eq. 3;
``--multi_level false`` for the relu4_1-only variant), ``I_cs = D(F_csc^m)`` (Eq. 4) with the AdaIN
decoder. Loss (Eqs. 6-9)::

    L       = lambda_c L_c + lambda_s L_s + L_identity
    L_c     = || norm(E(I_cs)^r4_1) - norm(F_c^r4_1) ||_2 + || norm(E(I_cs)^r5_1) - norm(F_c^r5_1) ||_2
    L_s     = sum_i || mu(phi_i(I_cs)) - mu(phi_i(I_s)) ||_2 + || sigma(phi_i(I_cs)) - sigma(phi_i(I_s)) ||_2
    L_ident = lambda_id1 (|| I_cc - I_c ||_2 + || I_ss - I_s ||_2)
            + lambda_id2 sum_i (|| phi_i(I_cc) - phi_i(I_c) ||_2 + || phi_i(I_ss) - phi_i(I_s) ||_2)

``norm`` is the channel-wise mean-variance normalisation, ``phi_i`` = relu1_1 .. relu5_1, ``I_cc`` /
``I_ss`` the outputs for the pairs (c, c) / (s, s). Weights default to the seed paper's text
(lambda_c = 1, lambda_s = 3, lambda_id1 = 1 on pixels, lambda_id2 = 50 on features). The most used
re-implementation (GlebSBrykin/SANET) swaps the identity weights (50 on pixels, 1 on features):
``--identity_pixel_weight 50 --identity_feature_weight 1`` reproduces it.

    python -m train.sanet --preset cpu --export weights/sanet_cpu.npz
"""

from __future__ import annotations

import dataclasses
import sys

import jax
import jax.numpy as jnp

from nst_jax import losses
from nst_jax.kernels.stats import mean_std
from nst_jax.modules.decoders import AdaINDecoder
from nst_jax.modules.layers import mean_variance_norm
from nst_jax.modules.sanet import SANetTransform
from train import common
from train.config import TrainConfig, field
from train.trainer import Method, main

LAYERS = common.relu_x1("relu5_1")


@dataclasses.dataclass(frozen=True)
class Config(TrainConfig):
    content_weight: float = field(1.0, "lambda_c (Eq. 6)")
    style_weight: float = field(3.0, "lambda_s (Eq. 6)")
    identity_pixel_weight: float = field(1.0, "lambda_identity1 on ||I_cc - I_c|| + ||I_ss - I_s|| (paper 1; SA code 50)")
    identity_feature_weight: float = field(50.0, "lambda_identity2 on the relu1_1..5_1 identity terms (paper 50; SA code 1)")
    multi_level: bool = field(True, "relu4_1 + relu5_1 SANets (true) or the relu4_1-only variant (false)")
    identity_init: bool = field(True, "start the transform as the identity on the content (zero output convs, "
                                      "identity merge conv) so a warm-started decoder sees in-distribution "
                                      "features from step 0 (false: the papers' random init)")
    width: float = field(1.0, "decoder hidden-channel multiplier (1 = the real network; tests use 0.125)")


def transform(cfg: Config) -> SANetTransform:
    return SANetTransform(channels=512, multi_level=cfg.multi_level)


def decoder(cfg: Config) -> AdaINDecoder:
    return AdaINDecoder(padding=common.ENCODER["padding"], width=cfg.width)


def identity_start(params):
    """SANet transform parameters whose output is the content's relu4_1 (+ its upsampled relu5_1).

    Each SANet is ``content + out(attention)``: a zero ``out`` conv makes it the identity while ``f``,
    ``g``, ``h`` keep their random init (they receive gradients as soon as ``out`` moves, as in
    zero-initialised residual branches); the 3x3 merge conv becomes the centre-tap identity. A first
    SANet run (random transform, AdaIN-trained decoder, lr 5e-4) fed the decoder zero-mean features
    it had never seen and collapsed to a grey image within 200 steps; this start does not.
    """
    params = jax.tree_util.tree_map(lambda a: a, params)
    for name in ("sanet4_1", "sanet5_1"):
        if name in params:
            params[name]["out"] = jax.tree_util.tree_map(jnp.zeros_like, params[name]["out"])
    if "merge" in params:
        kernel = params["merge"]["kernel"]
        eye = jnp.zeros_like(kernel).at[kernel.shape[0] // 2, kernel.shape[1] // 2].set(
            jnp.eye(kernel.shape[2], kernel.shape[3], dtype=kernel.dtype))
        params["merge"] = {"kernel": eye, "bias": jnp.zeros_like(params["merge"]["bias"])}
    return params


def init(cfg: Config, key: jax.Array):
    k_t, k_d = jax.random.split(key)
    feats = common.example_features(["relu4_1", "relu5_1"])
    transform_params = transform(cfg).init(k_t, feats, feats)["params"]
    if cfg.identity_init:
        transform_params = identity_start(transform_params)
    return {"transform": transform_params, "decoder": decoder(cfg).init(k_d, feats["relu4_1"])["params"]}


def loss(cfg: Config, params, vgg, batch, key):
    del key
    c, s = batch["content"], batch["style"]
    n = c.shape[0]
    both = common.encode(vgg, jnp.concatenate([c, s]), LAYERS)
    fc = {k: v[:n] for k, v in both.items()}
    fs = {k: v[n:] for k, v in both.items()}
    # One batched pass for the three pairs (c, s), (c, c), (s, s): attention is per example.
    queries = {k: jnp.concatenate([fc[k], fc[k], fs[k]]) for k in ("relu4_1", "relu5_1")}
    keys = {k: jnp.concatenate([fs[k], fc[k], fs[k]]) for k in ("relu4_1", "relu5_1")}
    hidden = transform(cfg).apply({"params": params["transform"]}, queries, keys)
    out = decoder(cfg).apply({"params": params["decoder"]}, hidden)
    # Losses see the normalised features (common.normalised); the transform saw the raw ones.
    both = common.normalised(both)
    fc = {k: v[:n] for k, v in both.items()}
    fs = {k: v[n:] for k, v in both.items()}
    out_feats = common.normalised(common.encode(vgg, out, LAYERS))
    cs = {k: v[:n] for k, v in out_feats.items()}
    cc_ss = {k: v[n:] for k, v in out_feats.items()}  # E(I_cc) then E(I_ss)
    content_term = sum(losses.mse(mean_variance_norm(cs[k]), mean_variance_norm(fc[k])) for k in ("relu4_1", "relu5_1"))
    style_term = losses.moment_loss(cs, {k: mean_std(fs[k]) for k in LAYERS})
    # mse over the stacked (cc, ss) halves == mean of the two per-pair mses (equal sizes): x2 for the sum.
    id_pixel = 2 * losses.mse(out[n:], jnp.concatenate([c, s]))
    id_feature = sum(2 * losses.mse(cc_ss[k], both[k]) for k in LAYERS)
    terms = {
        "loss/content": cfg.content_weight * content_term,
        "loss/style": cfg.style_weight * style_term,
        "loss/identity_pixel": cfg.identity_pixel_weight * id_pixel,
        "loss/identity_feature": cfg.identity_feature_weight * id_feature,
    }
    return sum(terms.values()), terms


METHOD = Method(
    name="sanet",
    config=Config,
    presets={"paper": {"batch_size": 5}},  # the SANet code's batch size
    sources=lambda cfg: ("content", "style"),
    encoder=lambda cfg: {**common.ENCODER,
                         "layers": ["relu4_1", "relu5_1"] if cfg.multi_level else ["relu4_1"],
                         "loss_layers": list(LAYERS)},
    init=init,
    loss=loss,
    modules=lambda cfg: {
        "transform": common.module_entry(SANetTransform, channels=512, multi_level=cfg.multi_level),
        "decoder": common.module_entry(AdaINDecoder, padding="reflect", width=cfg.width),
    },
    run_name=lambda cfg: "sanet" if cfg.multi_level else "sanet_relu4_1",
    description=__doc__,
)

if __name__ == "__main__":
    sys.exit(main(METHOD))
