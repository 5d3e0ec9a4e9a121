"""Attention-aware multi-stroke style transfer: AAMS (Yao et al., CVPR 2019) and its CBAM variant
(seed 000), one implementation parameterised by the attention kind and the encoder depth.

Transfer (AAMS ``transfer``; PRIOR_ART §2.7), at the autoencoder's encoder layer ``l``
(relu4_1 for AAMS; relu3_1 / relu4_1 / relu5_1 for CBAM):

1. ZCA-project the content and each style features at ``l`` (:func:`~nst_jax.kernels.wct.zca_project`).
2. Attention of the projected content through the trained module (``AttentionAutoencoder`` method
   ``"attend"``): ``A``; the content becomes ``c <- c * A + c`` (``AttentionOutput.features``).
3. Attention *filter* (:func:`attention_filter`): ``|A| > 2 mean|A|`` -> binary, channel mean, blurred
   by a 3x3 kernel drawn from a truncated normal (mean 6, std 5, cut at 2 std like
   ``tf.truncated_normal``; normalised to sum 1; :func:`blur_kernel`), min-max normalised to [0, 1].
   (AAMS blurs each channel's mask with a kernel tiled over all input and output channels, so every
   output channel is the blurred channel *sum*; after min-max that equals the blurred channel mean.)
4. Multi-scale style swap (:func:`multi_scale_swap`): the projected style bilinearly resized by 1/2,
   1/sqrt(2) and 1, each swapped with 5x5 patches into the modulated content
   (:func:`~nst_jax.kernels.patch_swap.patch_swap`, normalised cross-correlation; content reflect-padded,
   style zero-padded as AAMS's ``extract_image_patches(padding="SAME")``); the un-swapped modulated
   content is the 4th stroke (coarsest strokes first, content last).
5. Multi-stroke fusion: 1-D k-means of the filtered map into 4 clusters (:func:`kmeans_1d`, 80 Lloyd
   iterations in a ``lax.fori_loop``, centroids sorted ascending so the least attended cluster takes
   the coarsest stroke and the most attended one the content), per-pixel weights
   ``softmax_k(theta (1 - |a - centroid_k|))`` with theta = 50 (:func:`fusion_weights`), weighted sum.
6. ``alpha`` (AAMS ``inter_weight``): ``alpha * fused + (1 - alpha) * modulated content``.
7. ZCA re-colour with the style's colouring kernel and mean; decode with ``SkipDecoder.aams(l)``
   (reflect padding, :data:`DECODER_PADDING`; AdaIN skips from the *style's* lower relu{k}_1 features;
   several styles / masks fused exactly as Avatar-Net's :func:`nst_jax.methods.avatar.skip_fusion`).

**Randomness.** Only two steps use the ``key`` (``key -> split -> (k_blur, k_init)``): the 3x3 blur
kernel (step 3) and the k-means initialisation (step 5; k-means++ seeding drawn from the filtered map,
where AAMS samples 4 points uniformly -- k-means++ picks one point per well-separated cluster with
high probability, so the clustering rarely collapses). Everything else is deterministic: same inputs
+ same key = same output; passing :class:`Draws` to :func:`transfer` fixes both draws and removes
the key's influence entirely.

Several styles: the content-side work (projection, attention, filter, k-means, fusion weights) is
done once; steps 4-7 per style, and the re-coloured features are combined by ``style_weights`` or
region ``masks`` (:func:`nst_jax.methods.common.combine`).

Methods: ``"aams"`` (self-attention, conv4_1; checkpoint ``aams``), ``"cbam"`` (CBAM at conv4_1;
checkpoint ``cbam_conv4_1``), ``"cbam_conv3_1"``, ``"cbam_conv5_1"`` (checkpoints of the same names).
Static options: ``depth`` (``None``, or the method's own depth as ``"conv4_1"`` / ``"relu4_1"``; another
depth is an error naming the method that has it), ``patch_size`` (5), ``theta`` (50.0),
``iterations`` (80), ``chunk_size`` (attention and swap chunking).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nst_jax import vgg19
from nst_jax.errors import CheckpointError, InputError
from nst_jax.kernels.attention import DEFAULT_CHUNK_SIZE
from nst_jax.kernels.patch_swap import patch_swap
from nst_jax.kernels.wct import zca_project, zca_recolor
from nst_jax.methods.avatar import skip_fusion
from nst_jax.methods.common import FeedForward, blend, combine, encode, masks_at, register
from nst_jax.methods.common import fast_key
from nst_jax.modules.attention import AttentionAutoencoder

DEPTHS = {"conv3_1": "relu3_1", "conv4_1": "relu4_1", "conv5_1": "relu5_1"}  # seed 000's names -> ours
SCALES = (0.5, 2 ** -0.5, 1.0)  # style resize factors of the multi-scale swap (coarse strokes first)
STROKES = len(SCALES) + 1  # + the un-swapped content
THETA = 50.0
ITERATIONS = 80
BLUR_SIZE, BLUR_MEAN, BLUR_STD = 3, 6.0, 5.0
_HIGHEST = jax.lax.Precision.HIGHEST


class Draws(NamedTuple):
    """The two random draws of a transfer, fixed: ``blur`` (3, 3) kernel, ``init`` (STROKES,) centroids."""

    blur: jax.Array
    init: jax.Array


# ------------------------------------------------------------------------------------ the pieces

def blur_kernel(key: jax.Array, size: int = BLUR_SIZE, mean: float = BLUR_MEAN, std: float = BLUR_STD) -> jax.Array:
    """AAMS's random blur: ``size x size`` truncated normal (mean, std, cut at 2 std), divided by its sum."""
    w = mean + std * jax.random.truncated_normal(key, -2.0, 2.0, (size, size), jnp.float32)
    return w / jnp.sum(w)


def attention_filter(attention: jax.Array, kernel: jax.Array) -> jax.Array:
    """AAMS ``attention_filter``: (N, H, W, C) attention -> (N, H, W, 1) map in [0, 1].

    ``|A| > 2 mean|A|`` (per image) as 0/1, mean over channels, convolved with ``kernel`` (zero "SAME"
    padding), min-max normalised per image (a constant map becomes all zeros).
    """
    a = jnp.abs(attention.astype(jnp.float32))
    binary = (a > 2.0 * jnp.mean(a, axis=(1, 2, 3), keepdims=True)).astype(jnp.float32)
    m = jnp.mean(binary, axis=-1, keepdims=True)
    blurred = jax.lax.conv_general_dilated(m, kernel.astype(jnp.float32)[:, :, None, None], (1, 1), "SAME",
                                           dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HIGHEST)
    lo = jnp.min(blurred, axis=(1, 2, 3), keepdims=True)
    hi = jnp.max(blurred, axis=(1, 2, 3), keepdims=True)
    return (blurred - lo) / jnp.maximum(hi - lo, 1e-12)


def kmeans_init(points: jax.Array, k: int, key: jax.Array) -> jax.Array:
    """k-means++ seeding of 1-D ``points`` (any shape, flattened): (k,) initial centroids from ``key``."""
    x = points.reshape(-1).astype(jnp.float32)
    keys = jax.random.split(key, k)
    centroids = [x[jax.random.randint(keys[0], (), 0, x.size)]]
    for i in range(1, k):
        d2 = jnp.min(jnp.stack([(x - c) ** 2 for c in centroids]), axis=0)
        logits = jnp.where(jnp.sum(d2) > 0, jnp.log(d2), 0.0)  # all points on centroids: uniform
        centroids.append(x[jax.random.categorical(keys[i], logits)])
    return jnp.stack(centroids)


def kmeans_1d(points: jax.Array, init: jax.Array, *, iterations: int = ITERATIONS) -> jax.Array:
    """Lloyd's k-means of 1-D ``points`` from ``init`` centroids, ``iterations`` fixed steps
    (``lax.fori_loop``); an empty cluster keeps its centroid. Returns the centroids sorted ascending."""
    x = points.reshape(-1).astype(jnp.float32)
    k = init.shape[0]

    def step(_, c):
        assign = jnp.argmin(jnp.abs(x[:, None] - c[None, :]), axis=1)
        onehot = jax.nn.one_hot(assign, k, dtype=jnp.float32)
        count = jnp.sum(onehot, axis=0)
        total = jnp.sum(onehot * x[:, None], axis=0)
        return jnp.where(count > 0, total / jnp.maximum(count, 1.0), c)

    return jnp.sort(jax.lax.fori_loop(0, iterations, step, init.astype(jnp.float32)))


def fusion_weights(saliency: jax.Array, centroids: jax.Array, theta: float = THETA) -> jax.Array:
    """(N, H, W, 1) map and (k,) centroids -> (N, H, W, k) weights ``softmax_k(theta (1 - |a - c_k|))``
    (they sum to one at every position)."""
    return jax.nn.softmax(theta * (1.0 - jnp.abs(saliency - centroids.reshape(1, 1, 1, -1))), axis=-1)


def multi_scale_swap(content: jax.Array, style: jax.Array, *, scales=SCALES, patch_size: int = 5,
                     chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[jax.Array]:
    """Style swap of ``content`` against ``style`` bilinearly resized by each of ``scales``.

    Content reflect-padded (zero-padded when the map is smaller than half a patch + 1), style
    zero-padded (AAMS's ``extract_image_patches(padding="SAME")``); sizes ``floor(side * scale)``.
    """
    c_pad = "reflect" if min(content.shape[1:3]) > patch_size // 2 else "zero"
    out = []
    for beta in scales:
        s = style
        if beta != 1.0:
            h, w = (max(1, int(side * beta)) for side in style.shape[1:3])
            s = jax.image.resize(style, (style.shape[0], h, w, style.shape[3]), "bilinear", antialias=False)
        out.append(patch_swap(content, s, patch_size=patch_size, stride=1, padding=c_pad, style_padding="zero",
                              chunk_size=chunk_size))
    return out


def autoencoder_config(tree: dict[str, Any]) -> tuple[str, str]:
    """(kind, layer) of an ``AttentionAutoencoder`` parameter tree: ``"self"`` / ``"cbam"`` from the
    attention module's parameters, the depth from the deepest ``dec{b}_1`` of the decoder."""
    try:
        attention, decoder = tree["attention"], tree["decoder"]
    except (KeyError, TypeError):
        raise CheckpointError(f"not an attention autoencoder: expected 'attention' and 'decoder', got "
                              f"{sorted(tree) if isinstance(tree, dict) else type(tree).__name__}") from None
    if {"f", "g", "h"} <= set(attention):
        kind = "self"
    elif {"mlp_hidden", "mlp_out", "spatial"} <= set(attention):
        kind = "cbam"
    else:
        raise CheckpointError(f"unknown attention module with parameters {sorted(attention)}")
    blocks = [b for b in range(1, 6) if f"dec{b}_1" in decoder]
    if not blocks or blocks[-1] < 2:
        raise CheckpointError(f"unknown AAMS decoder with parameters {sorted(decoder)}")
    return kind, f"relu{blocks[-1]}_1"


def _depth_name(layer: str) -> str:
    return next(k for k, v in DEPTHS.items() if v == layer)


def _method_for(kind: str, layer: str) -> str:
    """Which registered method runs a ``kind`` autoencoder at ``layer`` (in words)."""
    if kind == "self":
        return "method 'aams'" if layer == "relu4_1" else "no registered method (AAMS is registered at conv4_1)"
    return "method 'cbam'" if layer == "relu4_1" else f"method 'cbam_{_depth_name(layer)}'"


def _skips(style_feats, weights, masks, layer: str):
    """AdaIN skip fusion for ``SkipDecoder.aams(layer)``: Avatar-Net's :func:`skip_fusion` (relu3_1,
    relu2_1, relu1_1; the relu3_1 depth simply never asks for relu3_1). The relu5_1 depth also fuses
    relu4_1: the same function one level down -- relu4_1 features under the relu3_1 name and the masks
    pre-pooled once, so its mask resizing (two 2x2 average pools) lands on the relu4_1 grid exactly
    like ``masks_at(masks, "relu4_1")``."""
    skips = skip_fusion(style_feats, weights, masks)
    if layer == "relu5_1":
        shifted = [{"relu3_1": s["relu4_1"]} for s in style_feats]
        pooled = None if masks is None else vgg19.pool2x2(masks, "avg")
        skips["relu4_1"] = skip_fusion(shifted, weights, pooled)["relu3_1"]
    return skips


# ------------------------------------------------------------------------------------ transfer

def transfer(params, content, style_feats, weights, masks, alpha, key, *, kind: str, layer: str,
             patch_size: int = 5, theta: float = THETA, iterations: int = ITERATIONS,
             chunk_size: int = DEFAULT_CHUNK_SIZE, draws: Draws | None = None,
             return_parts: bool = False):
    """The AAMS/CBAM transfer (module docstring) on a padded (1, H, W, 3) content: the framework's
    ``forward`` with the kind/depth spelled out, and optionally fixed random ``draws`` (then ``key`` is
    unused). ``return_parts=True`` also returns ``{"saliency", "centroids", "weights"}`` (fusion state)."""
    got = autoencoder_config(params["autoencoder"])
    if got != (kind, layer):
        raise InputError(f"these parameters hold a {got[0]!r} autoencoder at {got[1]}, but the method runs "
                         f"{kind!r} at {layer}; they belong to {_method_for(*got)}")
    model = AttentionAutoencoder(layer=layer, kind=kind, padding=DECODER_PADDING, chunk_size=chunk_size)
    variables = {"params": params["autoencoder"]}
    c = encode(params["vgg"], content, (layer,))[layer]
    projected, _ = zca_project(c)
    attended = model.apply(variables, projected, method="attend")
    modulated = attended.features
    if draws is None:
        k_blur, k_init = jax.random.split(key)
        saliency = attention_filter(attended.attention, blur_kernel(k_blur))
        init = kmeans_init(saliency, STROKES, k_init)
    else:
        saliency = attention_filter(attended.attention, draws.blur)
        init = draws.init
    centroids = kmeans_1d(saliency, init, iterations=iterations)
    fw = fusion_weights(saliency, centroids, theta)
    per_style = []
    for s in style_feats:
        projected_s, stats = zca_project(s[layer])
        strokes = multi_scale_swap(modulated, projected_s, patch_size=patch_size, chunk_size=chunk_size) + [modulated]
        fused = sum(fw[..., i:i + 1] * stroke for i, stroke in enumerate(strokes))
        per_style.append(zca_recolor(blend(fused, modulated, alpha), stats))
    t = combine(per_style, weights, masks_at(masks, layer, c.shape[1:3]))
    out = model.apply(variables, t, _skips(style_feats, weights, masks, layer), method="decode")
    if return_parts:
        return out, {"saliency": saliency, "centroids": centroids, "weights": fw}
    return out


def _check_depth(depth, layer: str, kind: str, name: str) -> None:
    if depth is None:
        return
    asked = DEPTHS.get(depth, depth)
    if asked not in DEPTHS.values():
        raise InputError(f"depth must be one of {sorted(DEPTHS)} (or {sorted(DEPTHS.values())}), got {depth!r}")
    if asked != layer:
        raise InputError(f"method {name!r} is the {_depth_name(layer)} model; depth {depth!r} is "
                         f"{_method_for(kind, asked)}")


def make_forward(kind: str, layer: str, name: str):
    def forward(params, content, style_feats, weights, masks, alpha, key, *, depth=None, patch_size=5,
                theta=THETA, iterations=ITERATIONS, chunk_size=DEFAULT_CHUNK_SIZE):
        _check_depth(depth, layer, kind, name)
        return transfer(params, content, style_feats, weights, masks, alpha, key, kind=kind, layer=layer,
                        patch_size=patch_size, theta=theta, iterations=iterations, chunk_size=chunk_size)
    return forward


def make_init(kind: str, layer: str):
    def init(key: jax.Array):
        layers = tuple(f"relu{b}_1" for b in range(1, int(layer[4]) + 1))
        feats = {lay: jnp.zeros((1, 32 // vgg19.STRIDES[lay], 32 // vgg19.STRIDES[lay], vgg19.CHANNELS[lay]))
                 for lay in layers}
        model = AttentionAutoencoder(layer=layer, kind=kind, padding=DECODER_PADDING)
        return {"autoencoder": jax.jit(model.init)(fast_key(key), feats)["params"]}
    return init


def make_merge(kind: str, layer: str, checkpoint: str):
    def merge(params, loaded):
        tree = loaded[checkpoint]
        if "autoencoder" not in tree:
            raise CheckpointError(f"checkpoint {checkpoint!r} holds {sorted(tree)}, not an 'autoencoder' "
                                  "(`python -m train.aams` / `train.cbam` exports)")
        got = autoencoder_config(tree["autoencoder"])
        if got != (kind, layer):
            raise CheckpointError(f"checkpoint {checkpoint!r} holds a {got[0]!r} autoencoder at {got[1]}, "
                                  f"not {kind!r} at {layer}; it belongs to {_method_for(*got)}")
        params["autoencoder"] = tree["autoencoder"]
        return params
    return merge


# The decoders pad by reflection, as every nst_jax decoder (DESIGN §3). AAMS's TF code pads with zeros;
# our zero-padded decoders drew a dark frame around every image after their short training, gone
# after 300 steps of their stylization loss with reflect padding (train/ship.py). A checkpoint whose
# card records another padding is refused at load time.
DECODER_PADDING = "reflect"

# AAMS's inter_weight is 1 in its reference script. With our short-budget decoders the style ratio is
# flat in alpha (within 0.03 from 1 to 0.3) while the photo reads better the less of the fused swap is
# kept: on 8 *training* pairs (256 px) at alpha 1 / 0.5, style / content AAMS 0.347 / 0.897 -> 0.320 /
# 0.853, CBAM conv4_1 0.316 / 0.899 -> 0.320 / 0.843, conv5_1 0.413 / 0.976 -> 0.405 / 0.952 (README,
# Quality). 0.5 keeps half of the swap, at or within 0.005 of each one's lowest style ratio.
DEFAULT_ALPHA = 0.5


def _spec(name: str, kind: str, depth: str, checkpoint: str, summary: str) -> FeedForward:
    layer = DEPTHS[depth]
    return register(FeedForward(
        name=name, summary=summary, style_layers=tuple(f"relu{b}_1" for b in range(int(layer[4]), 0, -1)),
        checkpoints=(checkpoint,), init=make_init(kind, layer), forward=make_forward(kind, layer, name),
        static=("depth", "patch_size", "theta", "iterations", "chunk_size"),
        options={"depth": None, "patch_size": 5, "theta": THETA, "iterations": ITERATIONS,
                 "chunk_size": DEFAULT_CHUNK_SIZE},
        uses_key=True, merge=make_merge(kind, layer, checkpoint), default_alpha=DEFAULT_ALPHA,
        module_config={"autoencoder": {"padding": DECODER_PADDING}}))


SPEC = _spec("aams", "self", "conv4_1", "aams",
             "AAMS (Yao et al. 2019): self-attention, multi-scale swap, multi-stroke fusion (conv4_1)")
CBAM_SPECS = {
    "conv4_1": _spec("cbam", "cbam", "conv4_1", "cbam_conv4_1",
                     "AAMS with CBAM attention (seed 000), encoder depth conv4_1"),
    **{d: _spec(f"cbam_{d}", "cbam", d, f"cbam_{d}", f"AAMS with CBAM attention (seed 000), encoder depth {d}")
       for d in ("conv3_1", "conv5_1")},
}
