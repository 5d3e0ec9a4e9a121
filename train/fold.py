"""Fold a skip decoder's AdaIN skips into fixed affines: a plain mirror decoder from teacher-forced segments.

The AAMS / CBAM decoders (:meth:`nst_jax.modules.decoders.SkipDecoder.aams`) are trained segment by
segment (``--teacher_forcing``, :func:`train.common.segment_terms`): each segment maps VGG's
``relu{k+1}_1`` to ``relu{k}_1`` up to a per-image AdaIN, so their chain reconstructs photos well
(CBAM conv4_1: 20 dB held-out with its skips) after a few hundred cheap steps. End-to-end training of
a plain relu4_1 decoder gets nowhere near that on a CPU budget (the 800-step AdaIN decoder: 13.4 dB;
the WCT relu4_1 decoder: ~11 dB), and its outputs carry blocky hatching. A plain decoder has no skips,
though, and without them the chain's activations drift by an order of magnitude (the skips carried the
scale: the segments' outputs are only defined up to the AdaIN that follows).

The fold replaces each skip ``x -> AdaIN(x, relu{k}_1)`` by the fixed per-channel affine
``x -> s * x + b`` that gives the decoder's own activations the encoder features' average statistics
on calibration photos::

    s = E[sigma(f_k)] / E[sigma(x)],   b = E[mu(f_k)] - s * E[mu(x)]

(per channel; E over the images; a channel that is constant on every image gets ``s = 0``; ``x`` measured free-running from the start layer with the deeper
skips already replaced, so each affine sees the activations the folded decoder will produce), then
folds the affine into the convolutions around the skip (:func:`fold_affines`): ``s`` into the output
channels of ``dec{k}_2`` (through its ReLU: ``s >= 0``), ``b`` into the bias of ``dec{k}_1``::

    W_2' = W_2 * s,  bias_2' = bias_2 * s,   bias_1' = bias_1 + sum_{i, j, c} W_1[i, j, c, :] * b[c].

The fold is exact for reflect padding (a constant map stays constant under reflect padding), which
every plain decoder here uses. The result initialises a plain decoder by name (``dec{b}_{i}``) through
:func:`train.trainer.warm_start` (``--init SKIP_EXPORT --fold_skips N``): AdaIN's / SANet's decoder
or a WCT decoder of any level at or below the skip decoder's depth (a deeper skip decoder's lower
segments, started at the plain decoder's input layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from nst_jax import vgg19
from nst_jax.methods.common import encode
from nst_jax.modules.decoders import SkipDecoder

Params = dict[str, Any]


def find_decoder(tree: Mapping[str, Any]) -> Params:
    """The one ``decoder`` subtree of an export (``{"decoder": ...}`` or ``{"autoencoder": {"decoder": ...}}``)."""
    found = []

    def walk(node):
        for key, value in node.items():
            if isinstance(value, Mapping):
                (found.append(value) if key == "decoder" else walk(value))

    walk(tree)
    if len(found) != 1:
        raise ValueError(f"--fold_skips: expected one 'decoder' in the --init file, found {len(found)}")
    return dict(found[0])


def input_layer(decoder: Params) -> str:
    """Input layer ``relu{b}_1`` of a mirror decoder's parameters (its deepest ``dec{b}_1``)."""
    blocks = [int(name[3]) for name in decoder if name.startswith("dec") and name.endswith("_1")]
    if not blocks:
        raise ValueError(f"no mirror decoder layers (dec{{b}}_1) among {sorted(decoder)}")
    return f"relu{max(blocks)}_1"


def skip_decoder_layer(decoder: Params) -> str:
    """Input layer of an AAMS/CBAM skip decoder's parameters; an Avatar-Net decoder is an error."""
    if "head" in decoder:
        raise ValueError("--fold_skips: this decoder has a separate RGB head (Avatar-Net's 64->64 dec1_1 + 7x7 "
                         "head); only AAMS/CBAM skip decoders fold into the plain VGG mirror")
    layer = input_layer(decoder)
    if layer == "relu1_1":
        raise ValueError("--fold_skips: a relu1_1 decoder has no skips to fold")
    return layer


def fit_affines(decoder: Params, vgg: Params, images: jax.Array, *, start: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel ``(s, b)`` for every skip below ``start``, deepest first (module docstring).

    ``s`` scales and ``b`` shifts the activations in encoder (Caffe-scale) units, which is how skips
    see them. ``images``: (N, H, W, 3) photos in [0, 1], H and W multiples of 16.
    """
    layer = skip_decoder_layer(decoder)
    if int(start[4]) > int(layer[4]):
        raise ValueError(f"--fold_skips: the plain decoder starts at {start}, deeper than the skip decoder ({layer})")
    skips = [f"relu{k}_1" for k in range(int(start[4]) - 1, 0, -1)]
    model = SkipDecoder.aams(layer, padding="reflect")
    feats = encode(vgg, images, (start, *skips))
    affines: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for target in skips:
        captured = {}

        def fuse(x, name):
            if name == target:
                captured["x"] = x
            if name in affines:
                s, b = affines[name]
                return x * s + b
            return x

        model.apply({"params": decoder}, feats[start], {k: (lambda x, k=k: fuse(x, k)) for k in skips},
                    start=None if start == layer else start)
        x = np.asarray(captured["x"], np.float64)
        f = np.asarray(feats[target], np.float64)
        sd_x, sd_f = x.std((1, 2)).mean(0), f.std((1, 2)).mean(0)
        live = sd_x > 1e-6 * max(float(sd_x.max()), 1e-30)
        s = np.where(live, sd_f / np.where(live, sd_x, 1.0), 0.0)  # a dead channel becomes the constant E[mu(f)]
        b = f.mean((1, 2)).mean(0) - s * x.mean((1, 2)).mean(0)
        affines[target] = (s.astype(np.float32), b.astype(np.float32))
    return affines


def fold_affines(decoder: Params, affines: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Params:
    """``decoder`` with each skip's affine ``s * x + b`` folded into the convs around it (module docstring).

    The skip at ``relu{k}_1`` sits between ``dec{k}_2`` (conv + ReLU) and ``dec{k}_1``. Since ``s >= 0``
    and ``relu(z) * s = relu(s * z)``, ``s`` scales ``dec{k}_2``'s output channels; ``b`` (a constant
    map) becomes part of ``dec{k}_1``'s bias. Scaling ``dec{k}_1``'s *input* channels instead would be
    as exact in float32, but its per-channel factors (0.0004-0.6 in our decoders) would spread within
    each output channel, where the per-output-channel int8 export (``params_io.quantize_int8``) cannot
    follow them (relu5_1 WCT decoder: 13.4 dB in float32, 11.1 dB in int8). The skip decoder's fusion
    works in encoder units and its convs see ``x / MEAN_ACTIVATION``, hence the rescale of ``b``.
    """
    out = {name: {k: np.asarray(v, np.float32) for k, v in p.items()} for name, p in decoder.items()}
    for layer, (s, b) in affines.items():
        previous, following = out[f"dec{layer[4]}_2"], out[f"dec{layer[4]}_1"]
        previous["kernel"] = previous["kernel"] * s
        previous["bias"] = previous["bias"] * s
        following["bias"] = following["bias"] + np.einsum("ijco,c->o", following["kernel"],
                                                          b / vgg19.MEAN_ACTIVATION[layer])
    return out


def folded_source(tree: Mapping[str, Any], vgg: Params, images: jax.Array, *, start: str) -> Params:
    """``{"decoder": plain decoder params}`` for :func:`train.trainer.warm_start`, from an export ``tree``."""
    decoder = jax.tree.map(np.asarray, find_decoder(tree))
    return {"decoder": fold_affines(decoder, fit_affines(decoder, vgg, images, start=start))}
