"""Feed-forward methods: every method registered in ``FEEDFORWARD``, the runtime controls, checkpoint
loading and colour preservation.

The real VGG19 encoder with randomly initialised decoders (``spec.random_params``): every property
tested here (shapes, crop-back, controls, recompilation, reuse of style features, checkpoint
plumbing) holds for any decoder weights. Images are tiny (content 61x97, styles 64x64); no timing
is asserted.

Random decoders and exact comparisons. A random decoder's pixels are of order 1 around its 0.5
bias, so many clamp to 0 or 1 and the clamped ones hide differences; and float32 rounding differs
between two differently-fused XLA programs. Comparisons between *different* compiled programs
(masks vs no masks, two styles vs one, alpha=0 vs a hand-written decode) therefore use "tamed"
random parameters: the RGB-producing convolution (``dec1_1``) scaled so the output deviates from its
0.5 bias by ~0.2. Every decoder here is positively homogeneous in that kernel (zero-initialised
biases, ReLU), so this only rescales the output around mid-grey and keeps every pixel informative.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import checkpoints, params_io
from nst_jax.errors import CheckpointError, InputError
from nst_jax.image import pad_to_multiple
from nst_jax.kernels.color import rgb_to_yiq
from nst_jax.methods import FEEDFORWARD, apply, encode_styles
from nst_jax.methods.common import ENCODER, MULTIPLE, encode
from nst_jax.modules.decoders import AdaINDecoder
from nst_jax.stylize import stylize
from tests.conftest import ASSETS, image_at

METHODS = sorted(FEEDFORWARD)
H, W = 61, 97  # odd on purpose: padded to 64 x 112 inside, cropped back


@pytest.fixture(scope="module")
def images():
    return {"content": image_at(ASSETS / "content" / "dog_kira.jpg", H, W),
            "other": image_at(ASSETS / "content" / "lake_sherburne.jpg", H, W),
            "style": image_at(ASSETS / "style" / "starry_night.jpg", 64),
            "style2": image_at(ASSETS / "style" / "great_wave.jpg", 64)}


def _scale_rgb_kernels(tree, gain: float):
    def scale(path, leaf):
        return leaf * gain if jax.tree_util.keystr(path).endswith("['dec1_1']['kernel']") else leaf

    return jax.tree_util.tree_map_with_path(scale, tree)


@pytest.fixture(scope="module")
def params(vgg_params, images):
    """``params(name)``: VGG19 + random learned parameters (built once per method);
    ``params(name, tamed=True)``: the same with the output gain tamed (module docstring)."""
    cache = {}

    def get(name, tamed=False):
        if name not in cache:
            cache[name] = FEEDFORWARD[name].random_params(jax.random.key(0), vgg_params)
        if not tamed:
            return cache[name]
        if (name, "tamed") not in cache:
            spec, raw = FEEDFORWARD[name], cache[name]
            feats = encode_styles(spec, raw, [images["style"]])
            padded, _ = pad_to_multiple(jnp.asarray(images["content"])[None], MULTIPLE)
            key = jax.random.key(0) if spec.uses_key else None
            out = spec.jitted(raw, padded, feats, jnp.ones(1), None, jnp.float32(1.0), key, **spec.options)
            gain = 0.2 / float(jnp.sqrt(jnp.mean(jnp.square(out - 0.5))))
            learned = {k: v for k, v in raw.items() if k != "vgg"}
            cache[name, "tamed"] = {"vgg": vgg_params, **_scale_rgb_kernels(learned, gain)}
        return cache[name, "tamed"]

    return get


# ------------------------------------------------------------------------------ every method

@pytest.mark.parametrize("name", METHODS)
def test_any_size_in_range_alpha_traced_and_style_features_reusable(name, images, params):
    spec, p = FEEDFORWARD[name], params(name)
    out = stylize(images["content"], images["style"], method=name, params=p)
    assert out.shape == (H, W, 3) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0

    compiled = spec.jitted._cache_size()
    half = stylize(images["content"], images["style"], method=name, params=p, alpha=0.5)
    assert spec.jitted._cache_size() == compiled, "a new alpha must not recompile (alpha is traced)"
    assert half.shape == (H, W, 3) and np.all(np.isfinite(half))

    # Encode the style once, apply it to two contents: the same as stylizing each.
    feats = encode_styles(spec, p, [images["style"]])
    np.testing.assert_array_equal(apply(spec, p, images["content"], feats), out)
    np.testing.assert_array_equal(apply(spec, p, images["other"], feats),
                                  stylize(images["other"], images["style"], method=name, params=p))
    assert spec.jitted._cache_size() == compiled


@pytest.mark.parametrize("name", METHODS)
def test_missing_checkpoint_names_the_training_command(name, images, vgg_params, monkeypatch, tmp_path):
    from nst_jax.weights import port

    monkeypatch.setattr(checkpoints, "shipped_path", lambda ckpt: tmp_path / f"{ckpt}.npz")
    monkeypatch.setattr(port, "load", lambda *a, **k: vgg_params)  # only the decoder is missing
    with pytest.raises(CheckpointError) as err:
        stylize(images["content"], images["style"], method=name)
    message = str(err.value)
    assert "python -m train." in message and "--export" in message
    assert str(tmp_path) in message


# ------------------------------------------------------------------------------ colour

@pytest.mark.parametrize("name", ["adain", "style_swap"])
def test_luminance_keeps_the_content_chrominance(name, images, params):
    p = params(name, tamed=True)
    out = stylize(images["content"], images["style"], method=name, params=p, color="luminance")
    plain = stylize(images["content"], images["style"], method=name, params=p)
    yiq_out, yiq_plain = np.asarray(rgb_to_yiq(jnp.asarray(out))), np.asarray(rgb_to_yiq(jnp.asarray(plain)))
    iq_content = np.asarray(rgb_to_yiq(jnp.asarray(images["content"])))[..., 1:]
    # Only the final clip to [0, 1] may move the chrominance, and only where it clips.
    err = np.abs(yiq_out[..., 1:] - iq_content)
    assert err.mean() < 2e-3 and err.mean() < 0.1 * np.abs(yiq_plain[..., 1:] - iq_content).mean()
    # ... and the luminance is the stylized image's.
    assert np.abs(yiq_out[..., 0] - yiq_plain[..., 0]).mean() < 2e-3


# ------------------------------------------------------------------------------ controls

@pytest.mark.parametrize("name", [m for m in ("adain", "style_swap", "avatar") if m in FEEDFORWARD])
def test_a_mask_that_is_all_one_style_equals_the_single_style_output(name, images, params):
    p = params(name, tamed=True)
    single = stylize(images["content"], images["style"], method=name, params=p)
    ones, zeros = np.ones((H, W), np.float32), np.zeros((H, W), np.float32)
    masked = stylize(images["content"], [images["style"], images["style2"]], method=name, params=p,
                     masks=[ones, zeros])
    np.testing.assert_allclose(masked, single, atol=1e-5)
    assert single.std() > 0.05  # an informative image, not flat grey or saturated


def test_wct_mask_that_is_all_one_style_equals_the_single_style_output(images, params):
    """WCT at one level (relu1_1), before clipping, with a relative tolerance.

    The masked and single-style programs compute the same numbers fused differently, so they differ
    by float32 rounding, which whitening amplifies by ~sqrt(condition number) of the content
    covariance. At 64 x 112 px the relu3_1..relu5_1 covariances are (near) rank-deficient (448 / 112
    / 28 positions for 256 / 512 / 512 channels; eigenvalues of Caffe-scale features span ~1e-12..1e8
    against the absolute 1e-5 cut-off), so those levels alone differ by 1e-3..2e-2 relative and five
    chained random decoders turn that into different pixels. relu1_1 is well conditioned: the two
    programs agree to ~4e-5 relative.
    """
    spec, p = FEEDFORWARD["wct"], params("wct")
    feats = encode_styles(spec, p, [images["style"], images["style2"]])
    padded, _ = pad_to_multiple(jnp.asarray(images["content"])[None], MULTIPLE)
    masks = jnp.stack([jnp.ones(padded.shape[1:3]), jnp.zeros(padded.shape[1:3])], axis=-1)[None]
    one = jnp.float32(1.0)
    single = spec.jitted(p, padded, feats[:1], jnp.ones(1), None, one, None, levels=(1,))
    masked = spec.jitted(p, padded, feats, jnp.full(2, 0.5), masks, one, None, levels=(1,))
    assert float(jnp.linalg.norm(masked - single) / jnp.linalg.norm(single)) < 3e-4


def test_interpolation_weights_must_sum_to_one(images, params):
    p = params("adain", tamed=True)
    styles = [images["style"], images["style2"]]
    with pytest.raises(InputError, match="sum to 1"):
        stylize(images["content"], styles, method="adain", params=p, style_weights=[0.5, 0.6])
    with pytest.raises(InputError, match="2 non-negative numbers"):
        stylize(images["content"], styles, method="adain", params=p, style_weights=[1.0])
    with pytest.raises(InputError, match="non-negative"):
        stylize(images["content"], styles, method="adain", params=p, style_weights=[1.5, -0.5])
    ones = np.ones((H, W), np.float32)
    with pytest.raises(InputError, match="exclusive"):
        stylize(images["content"], styles, method="adain", params=p, style_weights=[0.5, 0.5], masks=[ones, ones])
    # Weights that sum to one interpolate: [1, 0] is the first style alone, [0.5, 0.5] lies between.
    first = stylize(images["content"], styles, method="adain", params=p, style_weights=[1.0, 0.0])
    np.testing.assert_allclose(first, stylize(images["content"], styles[0], method="adain", params=p), atol=1e-5)
    second = stylize(images["content"], styles, method="adain", params=p, style_weights=[0.0, 1.0])
    mixed = stylize(images["content"], styles, method="adain", params=p, style_weights=[0.5, 0.5])
    assert np.abs(first - second).mean() > 1e-2
    assert np.abs(mixed - first).mean() < np.abs(second - first).mean()


@pytest.mark.parametrize("shape, count, message", [
    ((H - 1, W), 2, "masks must match the content size"),
    ((H, W + 3), 2, "masks must match the content size"),
    ((H, W), 1, "give one mask per style"),
    ((H, W), 3, "give one mask per style"),
])
def test_masks_of_the_wrong_size_or_count_are_rejected(shape, count, message, images, params):
    masks = [np.ones(shape, np.float32)] * count
    with pytest.raises(InputError, match=message):
        stylize(images["content"], [images["style"], images["style2"]], method="adain", params=params("adain"),
                masks=masks)


def test_mask_values_outside_the_unit_interval_are_rejected(images, params):
    bad = [np.full((H, W), 2.0, np.float32), np.zeros((H, W), np.float32)]
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        stylize(images["content"], [images["style"], images["style2"]], method="adain", params=params("adain"),
                masks=bad)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
@pytest.mark.parametrize("name", ["adain", "wct"])
def test_alpha_outside_the_unit_interval_is_rejected(name, alpha, images, params):
    with pytest.raises(InputError, match="alpha"):
        stylize(images["content"], images["style"], method=name, params=params(name), alpha=alpha)


# WCT's reference code's default; the patch-swap methods' measured one (nst_jax.methods.avatar/aams); others 1
DEFAULT_ALPHA = {"wct": 0.6, "avatar": 0.5, "aams": 0.5, "cbam": 0.5, "cbam_conv3_1": 0.5, "cbam_conv5_1": 0.5}


@pytest.mark.parametrize("name", ["adain", "wct", "avatar"])
def test_alpha_default_is_the_methods_own(name, images, params):
    """No ``alpha``: the method's ``default_alpha`` (WCT 0.6 like its reference code, Avatar-Net 0.5,
    others 1)."""
    spec, p = FEEDFORWARD[name], params(name, tamed=True)
    assert {n: s.default_alpha for n, s in FEEDFORWARD.items() if s.default_alpha != 1.0} == DEFAULT_ALPHA
    assert spec.default_alpha == DEFAULT_ALPHA.get(name, 1.0)
    run = lambda **kw: stylize(images["content"], images["style"], method=name, params=p, **kw)  # noqa: E731
    default = run()
    np.testing.assert_array_equal(default, run(alpha=spec.default_alpha))
    other = 1.0 if name == "wct" else 0.6
    assert np.abs(default - run(alpha=other)).mean() > 1e-3


def test_unknown_option_is_rejected(images, params):
    with pytest.raises(InputError, match="unknown option"):
        stylize(images["content"], images["style"], method="adain", params=params("adain"), patch_size=3)


def test_adain_alpha_zero_decodes_the_content_features(images, params, vgg_params):
    p = params("adain", tamed=True)
    out = stylize(images["content"], images["style"], method="adain", params=p, alpha=0.0)
    padded, _ = pad_to_multiple(jnp.asarray(images["content"])[None], MULTIPLE)
    decode = jax.jit(lambda vgg, dec, x: AdaINDecoder().apply({"params": dec}, encode(vgg, x, ("relu4_1",))["relu4_1"]))
    expected = np.clip(np.asarray(decode(vgg_params, p["decoder"], padded))[0, :H, :W], 0.0, 1.0)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert np.abs(out - stylize(images["content"], images["style"], method="adain", params=p)).mean() > 1e-2


# ------------------------------------------------------------------------------ checkpoints

def test_inference_params_carry_winograd_kernels_and_stylize_alike(images, params, vgg_params):
    """``inference_params`` (what ``load_params`` returns) adds each Winograd-eligible kernel's
    transform, shares one prepared VGG19 across methods, and stylizes as the plain parameters do."""
    from nst_jax.methods.common import inference_params

    plain = params("adain")
    prepared = inference_params(plain)
    assert inference_params(params("wct"))["vgg"] is prepared["vgg"]  # same VGG19 tree: prepared once
    assert "winograd_kernel" in prepared["vgg"]["conv2_1"] and "winograd_kernel" not in prepared["vgg"]["conv1_2"]
    assert "winograd_kernel" not in prepared["vgg"].get("conv5_2", {})  # deeper than any method reaches
    assert any("winograd_kernel" in layer for layer in prepared["decoder"].values())
    assert "winograd_kernel" not in plain["vgg"]["conv2_1"]  # the input is left as it was
    want = stylize(images["content"], images["style"], method="adain", params=plain)
    got = stylize(images["content"], images["style"], method="adain", params=prepared)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_checkpoint_round_trip_and_encoder_check(images, params, vgg_params, tmp_path):
    learned = {k: v for k, v in params("adain").items() if k != "vgg"}
    card = {"method": "adain", "encoder": {"padding": "reflect", "pool": "max"}}
    path = params_io.save(tmp_path / "adain.npz", learned, card)
    loaded, loaded_card = checkpoints.load("adain", path=path, encoder=ENCODER)
    assert loaded_card["method"] == "adain" and loaded_card["encoder"] == card["encoder"]
    assert jax.tree.structure(loaded) == jax.tree.structure(learned)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(learned)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    out = stylize(images["content"], images["style"], method="adain", params={"vgg": vgg_params, **loaded})
    np.testing.assert_array_equal(out, stylize(images["content"], images["style"], method="adain",
                                               params=params("adain")))

    # int8 kernels + float16 biases (the shipped files) load as float32 and stylize alike.
    half = params_io.save(tmp_path / "adain8.npz", params_io.quantize_int8(jax.device_get(learned)), card)
    assert half.stat().st_size < 0.3 * path.stat().st_size
    by_path = FEEDFORWARD["adain"].load_params(vgg=vgg_params, paths={"adain": str(half)})
    assert all(a.dtype == np.float32 for a in jax.tree.leaves(by_path))
    quantised = stylize(images["content"], images["style"], method="adain", params=by_path)
    assert float(np.mean(np.abs(quantised - out))) < 5e-3 and float(np.max(np.abs(quantised - out))) < 0.1
    with pytest.raises(InputError, match="no checkpoint named"):
        FEEDFORWARD["adain"].load_params(vgg=vgg_params, paths={"sanet": str(half)})
    # The CLI takes the same file.
    from nst_jax import cli, image
    image.save_image(tmp_path / "c.png", images["content"])
    image.save_image(tmp_path / "s.png", images["style"])
    assert cli.main(["stylize", str(tmp_path / "c.png"), "-s", str(tmp_path / "s.png"), "-m", "adain",
                     "--size", "0", "--checkpoint", str(half), "-o", str(tmp_path / "o.png")]) == 0
    assert image.load_image(tmp_path / "o.png").shape == images["content"].shape
    assert cli.main(["stylize", str(tmp_path / "c.png"), "-s", str(tmp_path / "s.png"), "-m", "wct",
                     "--checkpoint", str(half), "-o", str(tmp_path / "w.png")]) == 2

    zero = params_io.save(tmp_path / "adain_zero.npz", learned,
                          {"method": "adain", "encoder": {"padding": "zero", "pool": "max"}})
    with pytest.raises(CheckpointError, match="encoder configuration") as err:
        checkpoints.load("adain", path=zero, encoder=ENCODER)
    assert "'zero'" in str(err.value) and "'reflect'" in str(err.value)


def test_module_configuration_on_the_card_is_checked(params, vgg_params, tmp_path):
    """AAMS/CBAM decoders run with reflect padding; a checkpoint whose card records the TF code's zero
    padding is refused by name (it would draw a dark frame), one recording reflect padding loads."""
    learned = {k: v for k, v in params("aams").items() if k != "vgg"}
    assert FEEDFORWARD["aams"].module_config == {"autoencoder": {"padding": "reflect"}}

    def card(padding):
        return {"method": "aams", "encoder": dict(ENCODER),
                "modules": {"autoencoder": {"class": "nst_jax.modules.attention.AttentionAutoencoder",
                                            "kwargs": {"layer": "relu4_1", "kind": "self", "padding": padding}}}}

    zero = params_io.save(tmp_path / "aams_zero.npz", jax.device_get(learned), card("zero"))
    with pytest.raises(CheckpointError, match="'autoencoder'") as err:
        FEEDFORWARD["aams"].load_params(vgg=vgg_params, paths={"aams": str(zero)}, prepare=False)
    assert "trained with 'zero'" in str(err.value) and "runs 'reflect'" in str(err.value)
    ok = params_io.save(tmp_path / "aams_reflect.npz", jax.device_get(learned), card("reflect"))
    loaded = FEEDFORWARD["aams"].load_params(vgg=vgg_params, paths={"aams": str(ok)}, prepare=False)
    assert jax.tree.structure(loaded["autoencoder"]) == jax.tree.structure(learned["autoencoder"])
