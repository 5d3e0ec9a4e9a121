"""Learned modules: decoders, SANet, self-attention, CBAM, and the chunked attention kernel.

Real-size checks (parameter counts, full-width output shapes) are shape-only (``jax.eval_shape``);
everything that runs uses narrow widths / few channels and tiny maps. Module code runs under strict
dtype promotion and rank-promotion errors.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import vgg19
from nst_jax.kernels.attention import attention, attention_memory_bytes, attention_weights
from nst_jax.modules import (
    CBAM,
    AdaINDecoder,
    AttentionAutoencoder,
    SANet,
    SANetTransform,
    SelfAttention,
    SkipDecoder,
    StyleSwapDecoder,
    WCTDecoder,
    count_params,
    param_counts,
)

KEY = jax.random.key(0, impl="rbg")  # XLA RngBitGenerator: init compiles in ~1 s instead of ~8 s (threefry) on CPU


@pytest.fixture(autouse=True)
def _strict():
    with jax.numpy_dtype_promotion("strict"), jax.numpy_rank_promotion("raise"):
        yield


def _normal(seed, shape, scale=1.0):
    # NumPy RNG: eager jax.random compiles a threefry kernel per shape (seconds on CPU).
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * scale, jnp.float32)


def _relu_normal(seed, shape, scale=1.0):
    """ReLU of a normal sample, like post-ReLU VGG features."""
    return jnp.asarray(np.maximum(np.random.default_rng(seed).normal(size=shape) * scale, 0.0), jnp.float32)


def _shape(x):
    return tuple(x.shape)


# ---------------------------------------------------------------------------------------------------------------
# Analytic parameter counts from explicit layer lists (independent of the modules' spec table)

def conv(cin, cout, k=3, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


ADAIN = [(512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128), (128, 64), (64, 64), (64, 3)]
MIRROR = {
    1: [(64, 3)],
    2: [(128, 64), (64, 64), (64, 3)],
    3: [(256, 128), (128, 128), (128, 64), (64, 64), (64, 3)],
    4: ADAIN,
    5: [(512, 512)] * 4 + ADAIN,
}


def mirror_count(layers):
    return sum(conv(cin, cout) for cin, cout in layers)


def self_attention_count(c):
    return 2 * conv(c, c // 2, 1) + conv(c, c, 1)


def cbam_count(c, r=16):
    return (c * (c // r) + c // r) + ((c // r) * c + c) + 7 * 7 * 2 * 1 + 1


def test_parameter_counts_match_architectures():
    counts = param_counts()
    assert counts["adain_decoder"] == mirror_count(ADAIN) == 3_505_219
    for level, layers in MIRROR.items():
        assert counts[f"wct_decoder{level}"] == mirror_count(layers), level
    # Style-Swap: hidden convs without bias, each followed by instance norm (scale + shift).
    hidden = MIRROR[3][:-1]
    assert counts["style_swap_decoder"] == sum(conv(a, b, bias=False) + 2 * b for a, b in hidden) + conv(64, 3)
    assert counts["style_swap_decoder_no_norm"] == mirror_count(MIRROR[3])
    # Avatar-Net: AdaIN mirror but dec1_1 is 64 -> 64 + a 7x7 64 -> 3 head.
    assert counts["avatar_net_decoder"] == mirror_count(ADAIN[:-1] + [(64, 64)]) + conv(64, 3, k=7)
    sanet = 4 * conv(512, 512, 1)
    assert counts["sanet_module"] == sanet == 1_050_624
    assert counts["sanet_transform"] == 2 * sanet + conv(512, 512) == 4_461_056
    assert counts["sanet_transform_relu4_1_only"] == sanet
    for layer, c, level in (("relu3_1", 256, 3), ("relu4_1", 512, 4), ("relu5_1", 512, 5)):
        assert counts[f"self_attention_{c}"] == self_attention_count(c)
        assert counts[f"cbam_{c}"] == cbam_count(c)
        assert counts[f"aams_decoder_{layer}"] == mirror_count(MIRROR[level])
        assert counts[f"aams_{layer}"] == self_attention_count(c) + mirror_count(MIRROR[level])
        assert counts[f"cbam_{layer}"] == cbam_count(c) + mirror_count(MIRROR[level])
    assert counts["aams_relu4_1"] == 4_030_531 and counts["cbam_relu4_1"] == 3_538_630


def test_num_params_method_agrees_with_init():
    counts = param_counts()
    assert AdaINDecoder().num_params() == counts["adain_decoder"]
    assert StyleSwapDecoder().num_params() == counts["style_swap_decoder"]
    assert SkipDecoder().num_params() == counts["avatar_net_decoder"]
    assert WCTDecoder(level=2).num_params() == counts["wct_decoder2"]


# ---------------------------------------------------------------------------------------------------------------
# Decoders

def _vgg_shapes(h, w, layers=vgg19.STYLE_LAYERS):
    """Shape-only VGG19 features of an (1, h, w, 3) image (the encoder is outside the strict check)."""
    with jax.numpy_rank_promotion("allow"):
        params = jax.eval_shape(functools.partial(vgg19.init_params, depth="relu5_1"), KEY)
        return jax.eval_shape(lambda p, x: vgg19.features(p, x, layers, padding="reflect"), params,
                              jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32))


def _eval_apply(module, *args):
    variables = jax.eval_shape(functools.partial(module.init, KEY), *args)
    return jax.eval_shape(module.apply, variables, *args)


@pytest.mark.parametrize("decoder", [
    AdaINDecoder(), WCTDecoder(level=1), WCTDecoder(level=2), WCTDecoder(level=3), WCTDecoder(level=5),
    StyleSwapDecoder(), SkipDecoder.avatar_net(), SkipDecoder.aams("relu3_1"), SkipDecoder.aams("relu5_1"),
], ids=lambda d: f"{type(d).__name__}-{d.input_layer}")
def test_full_width_output_shape_odd_image(decoder):
    feats = _vgg_shapes(61, 97)
    x = feats[decoder.input_layer]
    skips = {k: feats[k] for k in decoder.skip_layers}
    out = _eval_apply(decoder, x, skips) if skips else _eval_apply(decoder, x)
    s = decoder.upsampling
    assert _shape(out) == (1, x.shape[1] * s, x.shape[2] * s, 3)
    if decoder.input_layer == "relu4_1":
        assert _shape(x)[1:3] == (7, 12) and _shape(out) == (1, 56, 96, 3)


def _small_feats(layer, h, w, width, seed=0):
    c = max(1, round(vgg19.CHANNELS[layer] * width))
    return _relu_normal(seed, (1, h, w, c))


@pytest.mark.parametrize("decoder", [
    AdaINDecoder(width=1 / 16), WCTDecoder(level=1, width=1 / 16), StyleSwapDecoder(width=1 / 16),
    SkipDecoder.avatar_net(width=1 / 16),  # AAMS's zero-padded SkipDecoder runs in test_attention_autoencoder_runs
], ids=lambda d: f"{type(d).__name__}-{d.input_layer}")
def test_decoder_runs_and_gradients_are_finite(decoder):
    width = decoder.width
    b = int(decoder.input_layer[4])
    x = _small_feats(decoder.input_layer, 5, 7, width)
    # Style skips of a *different* spatial size: AdaIN only uses their statistics.
    skips = {k: _small_feats(k, 3 * 2 ** (b - int(k[4])), 4 * 2 ** (b - int(k[4])), width, seed=i + 1)
             for i, k in enumerate(decoder.skip_layers)}
    args = (x, skips) if skips else (x,)
    variables = jax.jit(decoder.init)(KEY, *args)

    def loss(params):
        out = decoder.apply({"params": params}, *args)
        return jnp.mean(jnp.square(out - 0.5)), out

    (_, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
    s = 2 ** (b - 1)
    assert out.shape == (1, 5 * s, 7 * s, 3)
    assert bool(jnp.all(jnp.isfinite(out)))
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert sum(float(jnp.sum(jnp.abs(g))) for g in leaves) > 0.0


def test_skip_decoder_requires_skips_and_accepts_callables():
    dec = SkipDecoder.aams("relu2_1", width=1 / 16)
    x = _small_feats("relu2_1", 4, 4, 1 / 16)
    with pytest.raises(ValueError, match="relu1_1"):
        dec.init(KEY, x)
    own = {"relu1_1": _small_feats("relu1_1", 8, 8, 1 / 16)}
    variables = jax.eval_shape(functools.partial(dec.init, KEY), x, own)
    seen = []
    out = jax.eval_shape(lambda v, x: dec.apply(v, x, {"relu1_1": lambda a: seen.append(a.shape) or a}), variables, x)
    assert seen == [(1, 8, 8, 4)] and out.shape == (1, 8, 8, 3)


def test_skip_decoder_segments_compose_to_the_whole_decoder():
    """``start``/``stop`` cut a skip decoder at its skips (teacher-forced training runs the pieces):
    chaining the segments with AdaIN to the same skip features reproduces the whole decoder, and
    only skips are valid cut points."""
    from nst_jax.kernels.adain import adain

    dec = SkipDecoder.avatar_net(width=1 / 8)
    rng = np.random.default_rng(0)
    feats = {k: jnp.asarray(rng.random((2, 16 // vgg19.STRIDES[k], 24 // vgg19.STRIDES[k],
                                        max(1, vgg19.CHANNELS[k] // 8)), np.float32) * vgg19.MEAN_ACTIVATION[k])
             for k in ("relu1_1", "relu2_1", "relu3_1", "relu4_1")}
    variables = dec.init(KEY, feats["relu4_1"], feats)
    whole = dec.apply(variables, feats["relu4_1"], feats)
    x, start = feats["relu4_1"], None
    for stop in (*dec.skip_layers, None):
        h = dec.apply(variables, x, {}, start=start, stop=stop)
        if stop is not None:  # fuse as the decoder does, in its normalised units, then re-enter in encoder units
            scale = vgg19.MEAN_ACTIVATION[stop]
            x, start = adain(h, feats[stop] / scale) * scale, stop
    np.testing.assert_allclose(np.asarray(h), np.asarray(whole), rtol=1e-4, atol=1e-5)
    assert h.shape == (2, 16, 24, 3)
    with pytest.raises(ValueError, match="not a skip"):
        dec.apply(variables, feats["relu4_1"], feats, stop="relu4_1")


def test_decoder_rejects_wrong_channels_and_levels():
    with pytest.raises(ValueError, match="512 channels"):
        AdaINDecoder().init(KEY, jnp.zeros((1, 2, 2, 256)))
    with pytest.raises(ValueError, match="1..5"):
        WCTDecoder(level=6).init(KEY, jnp.zeros((1, 2, 2, 512)))


# ---------------------------------------------------------------------------------------------------------------
# Chunked attention kernel

def _np_attention(q, k, v, mask=None):
    s = np.einsum("nqd,nkd->nqk", q, k).astype(np.float64)
    if mask is not None:
        s = np.where(mask[:, None, :], s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    z = e.sum(-1, keepdims=True)
    p = e / np.where(z > 0, z, 1.0)
    return np.einsum("nqk,nkv->nqv", p, v), p


def test_chunked_attention_matches_unchunked_and_numpy():
    q, k, v = _normal(1, (2, 37, 6), 2.0), _normal(2, (2, 23, 6), 2.0), _normal(3, (2, 23, 5))

    @jax.jit
    def run(q, k, v):
        chunked = [attention(q, k, v, chunk_size=chunk) for chunk in (1, 8, 36, 64)]
        # Large logits stay finite (row max subtracted).
        big = attention(q * 1e3, k * 1e3, v, chunk_size=8)
        return attention(q, k, v, chunk_size=None), chunked, attention_weights(q, k), big

    full, chunked, p, big = run(q, k, v)
    for out in chunked:
        np.testing.assert_allclose(out, full, atol=1e-5, rtol=1e-5)
    ref, p_ref = _np_attention(*(np.asarray(a, np.float64) for a in (q, k, v)))
    np.testing.assert_allclose(full, ref, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(p, p_ref, atol=1e-6)
    assert bool(jnp.all(jnp.isfinite(big)))


def test_chunked_attention_gradients_match():
    q, k, v = _normal(4, (1, 19, 4)), _normal(5, (1, 11, 4)), _normal(6, (1, 11, 3))

    def loss(chunk, q, k, v):
        return jnp.sum(jnp.sin(attention(q, k, v, chunk_size=chunk)))

    g_full, g_chunk = jax.jit(lambda *a: (jax.grad(functools.partial(loss, None), argnums=(0, 1, 2))(*a),
                                          jax.grad(functools.partial(loss, 4), argnums=(0, 1, 2))(*a)))(q, k, v)
    for a, b in zip(g_full, g_chunk):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_attention_key_mask_and_empty_rows():
    q, k, v = _normal(7, (2, 9, 4)), _normal(8, (2, 6, 4)), _normal(9, (2, 6, 3))
    mask = jnp.array([[1, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], bool)  # second sample: no valid key

    @jax.jit
    def run(q, k, v):
        out, grads = jax.value_and_grad(
            lambda q, k, v: jnp.sum(attention(q, k, v, key_mask=mask, chunk_size=4)), argnums=(0, 1, 2))(q, k, v)
        return attention(q, k, v, key_mask=mask, chunk_size=4), attention_weights(q, k, key_mask=mask), grads

    out, p, grads = run(q, k, v)
    ref, _ = _np_attention(*(np.asarray(a, np.float64) for a in (q, k, v)), mask=np.asarray(mask))
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_array_equal(out[1], 0.0)
    np.testing.assert_array_equal(p[0][:, ~np.asarray(mask[0])], 0.0)
    np.testing.assert_allclose(p[0].sum(-1), 1.0, atol=1e-6)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_attention_memory_is_bounded_by_chunk():
    # 2048 px content at relu4_1 (256 x 256 positions) against a 512 px style (64 x 64), 512 channels.
    lq, lk, d = 256 * 256, 64 * 64, 512
    est = attention_memory_bytes(1, lq, lk, d, d, chunk_size=1024)
    assert est < 0.5e9 < attention_memory_bytes(1, lq, lk, d, d, chunk_size=None)
    spec = [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((1, lq, d), (1, lk, d), (1, lk, d))]
    compiled = jax.jit(functools.partial(attention, chunk_size=1024)).lower(*spec).compile()
    mem = compiled.memory_analysis()
    if mem is None:
        pytest.skip("backend reports no memory analysis")
    assert mem.temp_size_in_bytes < 0.5e9  # the unchunked logits alone would be 1.07 GB


# ---------------------------------------------------------------------------------------------------------------
# SANet

def _np_mvn(x):
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)


def _np_conv1x1(x, p):
    return x @ np.asarray(p["kernel"][0, 0], np.float64) + np.asarray(p["bias"], np.float64)


def test_sanet_matches_numpy_reference_and_chunking():
    c = 8
    content, style = _relu_normal(10, (2, 5, 6, c)), _relu_normal(11, (2, 4, 3, c))
    module = SANet(channels=c, chunk_size=7)

    @jax.jit
    def run(content, style):
        variables = module.init(KEY, content, style)
        return (variables, module.apply(variables, content, style),
                SANet(channels=c, chunk_size=None).apply(variables, content, style),
                module.apply(variables, content, style, method=SANet.attention_weights))

    variables, out, unchunked, w = run(content, style)
    p = variables["params"]
    cn, sn = np.asarray(content, np.float64), np.asarray(style, np.float64)
    q = _np_conv1x1(_np_mvn(cn), p["f"]).reshape(2, -1, c)
    k = _np_conv1x1(_np_mvn(sn), p["g"]).reshape(2, -1, c)
    v = _np_conv1x1(sn, p["h"]).reshape(2, -1, c)
    att, _ = _np_attention(q, k, v)
    ref = cn + _np_conv1x1(att.reshape(cn.shape), p["out"])
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out, unchunked, atol=1e-5, rtol=1e-5)
    assert w.shape == (2, 30, 12)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)


def test_sanet_identity_projections_and_zero_output_return_content_exactly():
    c = 8
    content = _relu_normal(12, (1, 5, 7, c))
    eye = {"kernel": jnp.eye(c).reshape(1, 1, c, c), "bias": jnp.zeros(c)}
    zero = {"kernel": jnp.zeros((1, 1, c, c)), "bias": jnp.zeros(c)}
    params = {"f": eye, "g": eye, "h": eye, "out": zero}
    out = jax.jit(SANet(channels=c, chunk_size=4).apply)({"params": params}, content, content)
    np.testing.assert_array_equal(out, content)
    # With an identity output conv the residual adds exactly the attended (raw) style features.
    params["out"] = eye
    out = jax.jit(SANet(channels=c).apply)({"params": params}, content, content)
    cn = np.asarray(content, np.float64)
    att, _ = _np_attention(_np_mvn(cn).reshape(1, -1, c), _np_mvn(cn).reshape(1, -1, c), cn.reshape(1, -1, c))
    np.testing.assert_allclose(out, cn + att.reshape(cn.shape), atol=1e-5)


def test_sanet_style_mask_restricts_attention():
    c = 4
    content, style = _normal(13, (1, 3, 3, c)), _normal(14, (1, 4, 4, c))
    mask = jnp.zeros((1, 4, 4, 1)).at[:, :2].set(1.0)
    module = SANet(channels=c)
    w = jax.jit(lambda c, s, m: module.apply(module.init(KEY, c, s), c, s, m, method=SANet.attention_weights))(
        content, style, mask)
    np.testing.assert_array_equal(w[0][:, 8:], 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("size", [(61, 97), (50, 50), (100, 36), (64, 64)])
def test_sanet_transform_full_size_shapes_not_multiple_of_16(size):
    feats = _vgg_shapes(*size, layers=("relu4_1", "relu5_1"))
    out = _eval_apply(SANetTransform(), feats, feats)
    assert _shape(out) == _shape(feats["relu4_1"])


def test_sanet_transform_runs_multi_level_and_relu4_only():
    c = 8
    content = {"relu4_1": _relu_normal(15, (1, 7, 13, c)), "relu5_1": _relu_normal(16, (1, 3, 6, c))}
    style = {"relu4_1": _relu_normal(17, (1, 5, 4, c)), "relu5_1": _relu_normal(18, (1, 2, 2, c))}
    module = SANetTransform(channels=c, chunk_size=16)
    variables = jax.jit(module.init)(KEY, content, style)
    assert set(variables["params"]) == {"sanet4_1", "sanet5_1", "merge"}
    # An image-resolution style mask (resized to each layer with stats.mask_for_layer).
    mask = jnp.ones((1, 40, 32, 1))

    def loss(p):
        out = module.apply({"params": p}, content, style)
        return jnp.sum(out ** 2), out

    (_, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
    assert out.shape == (1, 7, 13, c)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))
    assert jax.eval_shape(module.apply, variables, content, style, mask).shape == out.shape
    single = SANetTransform(channels=c, multi_level=False)
    v1 = jax.eval_shape(functools.partial(single.init, KEY), content, style)
    assert set(v1["params"]) == {"sanet4_1"}
    assert jax.eval_shape(single.apply, v1, content, style).shape == (1, 7, 13, c)


# ---------------------------------------------------------------------------------------------------------------
# Self-attention (AAMS) and CBAM

def test_self_attention_shapes_rows_and_reference():
    c = 8
    x = _relu_normal(19, (2, 5, 3, c))
    module = SelfAttention(channels=c, chunk_size=4)

    @jax.jit
    def run(x):
        variables = module.init(KEY, x)
        return variables, module.apply(variables, x), module.apply(variables, x, method=SelfAttention.attention_weights)

    variables, out, w = run(x)
    assert {k: _shape(v["kernel"]) for k, v in variables["params"].items()} == {
        "f": (1, 1, c, c // 2), "g": (1, 1, c, c // 2), "h": (1, 1, c, c)}
    assert out.features.shape == x.shape and out.attention.shape == x.shape and out.saliency.shape == (2, 5, 3, 1)
    assert w.shape == (2, 15, 15)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    p = variables["params"]
    xn = np.asarray(x, np.float64)
    o, _ = _np_attention(_np_conv1x1(xn, p["g"]).reshape(2, 15, -1), _np_conv1x1(xn, p["f"]).reshape(2, 15, -1),
                         _np_conv1x1(xn, p["h"]).reshape(2, 15, c))
    o = o.reshape(xn.shape)
    np.testing.assert_allclose(out.attention, o, atol=1e-5)
    np.testing.assert_allclose(out.features, xn * o + xn, atol=1e-5)
    np.testing.assert_allclose(out.saliency, np.abs(o).mean(-1, keepdims=True), atol=1e-5)


def _np_cbam(x, p):
    def mlp(v):
        h = np.maximum(v @ p["mlp_hidden"]["kernel"] + p["mlp_hidden"]["bias"], 0.0)
        return h @ p["mlp_out"]["kernel"] + p["mlp_out"]["bias"]

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    mc = sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))  # (N, C)
    f1 = mc[:, None, None, :] * x  # Eq. (1)
    pooled = np.concatenate([f1.mean(-1, keepdims=True), f1.max(-1, keepdims=True)], -1)
    n, h, w, _ = pooled.shape
    padded = np.pad(pooled, ((0, 0), (3, 3), (3, 3), (0, 0)))
    kern = p["spatial"]["kernel"]
    logits = np.zeros((n, h, w, 1)) + p["spatial"]["bias"]
    for dy in range(7):
        for dx in range(7):
            logits += padded[:, dy:dy + h, dx:dx + w, :] @ kern[dy, dx]
    ms = sigmoid(logits)
    f2 = ms * f1  # Eq. (2)
    return mc, ms, x + f2  # Eq. (3)


def test_cbam_gates_and_equations_match_numpy():
    c = 32
    x = _relu_normal(20, (2, 9, 11, c), 2.0)
    module = CBAM(channels=c)

    @jax.jit
    def run(x):
        variables = module.init(KEY, x)
        return variables, *module.apply(variables, x, mutable=["intermediates"])

    variables, out, state = run(x)
    assert _shape(variables["params"]["mlp_hidden"]["kernel"]) == (c, c // 16)
    assert _shape(variables["params"]["spatial"]["kernel"]) == (7, 7, 2, 1)
    mc = state["intermediates"]["channel_gate"][0]
    for gate in (mc, out.saliency, out.attention):
        assert bool(jnp.all((gate > 0.0) & (gate < 1.0)))
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), variables["params"])
    mc_ref, ms_ref, a_ref = _np_cbam(np.asarray(x, np.float64), p)
    np.testing.assert_allclose(mc, mc_ref, atol=1e-5)
    np.testing.assert_allclose(out.saliency, ms_ref, atol=1e-5)
    np.testing.assert_allclose(out.features, a_ref, atol=1e-4)
    np.testing.assert_allclose(out.attention, mc_ref[:, None, None, :] * ms_ref, atol=1e-5)


@pytest.mark.parametrize("layer,kind", [("relu3_1", "cbam"), ("relu3_1", "self")])  # relu4_1/5_1: shape-only below
def test_attention_autoencoder_runs(layer, kind):
    width = 1 / 16
    b = int(layer[4])
    model = AttentionAutoencoder(layer=layer, kind=kind, width=width, chunk_size=8)
    assert model.input_layers[0] == layer and len(model.input_layers) == b
    feats = {k: _small_feats(k, 3 * 2 ** (b - int(k[4])), 5 * 2 ** (b - int(k[4])), width, seed=i)
             for i, k in enumerate(model.input_layers)}
    variables = jax.jit(model.init)(KEY, feats)
    assert set(variables["params"]) == {"attention", "decoder"}

    def loss(p):
        rgb, att = model.apply({"params": p}, feats)
        return jnp.mean(jnp.square(rgb - 0.5)) + 6.0 * jnp.mean(jnp.abs(att.attention)), (rgb, att)

    (_, (rgb, att)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"])
    s = 2 ** (b - 1)
    assert rgb.shape == (1, 3 * s, 5 * s, 3) and att.saliency.shape == (1, 3, 5, 1)
    assert bool(jnp.all(jnp.isfinite(rgb)))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree_util.tree_leaves(grads))


@pytest.mark.parametrize("layer", ["relu3_1", "relu4_1", "relu5_1"])
def test_attention_autoencoder_full_width_shapes(layer):
    model = AttentionAutoencoder(layer=layer, kind="cbam")
    feats = _vgg_shapes(61, 97, layers=model.input_layers)
    variables = jax.eval_shape(functools.partial(model.init, KEY), feats)
    rgb, att = jax.eval_shape(model.apply, variables, feats)
    s = vgg19.STRIDES[layer]
    h, w = feats[layer].shape[1:3]
    assert _shape(rgb) == (1, h * s, w * s, 3) and _shape(att.saliency) == (1, h, w, 1)
    assert count_params(variables["params"]) == param_counts()[f"cbam_{layer}"]


def test_decoders_work_in_normalised_units():
    """Decoders divide their input and skips by vgg19.MEAN_ACTIVATION: a fresh decoder fed Caffe-scale
    relu4_1 features (mean ~440) outputs values near [0, 1] instead of hundreds, and a callable skip
    fusion (which receives encoder units) equals passing the features themselves."""
    from nst_jax import vgg19
    from nst_jax.kernels.adain import adain

    dec = SkipDecoder.avatar_net(width=1 / 8)
    x = _small_feats("relu4_1", 3, 3, 1 / 8)
    x = x / jnp.mean(x) * vgg19.MEAN_ACTIVATION["relu4_1"]
    skips = {k: _small_feats(k, 4, 4, 1 / 8, seed=i + 1) * vgg19.MEAN_ACTIVATION[k]
             for i, k in enumerate(dec.skip_layers)}
    variables = jax.jit(dec.init)(KEY, x, skips)
    out = dec.apply(variables, x, skips)
    assert float(jnp.mean(jnp.abs(out - 0.5))) < 5.0
    as_callables = {k: (lambda a, s=s: adain(a, s)) for k, s in skips.items()}
    # (up to the eps inside AdaIN's std, which sees different units on the two paths)
    # A missing conversion on either path changes every pixel by far more than this.
    assert float(jnp.mean(jnp.abs(dec.apply(variables, x, as_callables) - out))) < 0.05  # skipping the fusion: 0.39
