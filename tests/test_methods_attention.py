"""SANet, AAMS and CBAM transfer (nst_jax.methods.sanet / .aams) and the attention applications
(nst_jax.attention_apps): controls, the random steps of the multi-stroke fusion, attention maps,
compositing and the ``attention`` CLI.

Real VGG19 encoder, randomly initialised learned modules (``spec.random_params``); tiny images (content
61x97 -- odd on purpose -- and 64x64 styles, the sizes of tests/test_methods.py so compilations are
shared when both run).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # eigh on a busy 2-core machine (kernels/wct.py note)

import functools  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from nst_jax import attention_apps, checkpoints, cli, params_io  # noqa: E402
from nst_jax.errors import CheckpointError, InputError  # noqa: E402
from nst_jax.image import pad_to_multiple  # noqa: E402
from nst_jax.kernels.adain import adain, blend_by_masks  # noqa: E402
from nst_jax.methods import FEEDFORWARD, apply, encode_styles  # noqa: E402
from nst_jax.methods import aams  # noqa: E402
from nst_jax.methods.common import ENCODER, MULTIPLE, encode, masks_at  # noqa: E402
from nst_jax.modules.decoders import AdaINDecoder  # noqa: E402
from nst_jax.modules.sanet import SANetTransform  # noqa: E402
from tests.conftest import ASSETS, image_at  # noqa: E402

H, W = 61, 97


@pytest.fixture(scope="module")
def images():
    return {"content": image_at(ASSETS / "content" / "dog_kira.jpg", H, W),
            "style": image_at(ASSETS / "style" / "starry_night.jpg", 64),
            "style2": image_at(ASSETS / "style" / "great_wave.jpg", 64)}


@pytest.fixture(scope="module")
def params(vgg_params):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = FEEDFORWARD[name].random_params(jax.random.key(0), vgg_params)
        return cache[name]

    return get


def run(name, p, images, styles=("style",), **kw):
    spec = FEEDFORWARD[name]
    return apply(spec, p, images["content"], encode_styles(spec, p, [images[s] for s in styles]), **kw)


# ------------------------------------------------------------------------------ every method

@pytest.mark.parametrize("name", ["sanet", "sanet_r41", "aams", "cbam"])
def test_odd_size_output_and_alpha_is_traced(name, images, params):
    spec = FEEDFORWARD[name]
    p = params(name)
    out = run(name, p, images)
    assert out.shape == (H, W, 3) and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and 0.0 <= out.min() and out.max() <= 1.0
    compiled = spec.jitted._cache_size()
    other = run(name, p, images, alpha=0.3)
    assert spec.jitted._cache_size() == compiled, "changing alpha must not recompile"
    assert np.abs(other - out).max() > 1e-4


def test_missing_checkpoints_name_their_training_command(vgg_params, monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints, "shipped_path", lambda ckpt: tmp_path / f"{ckpt}.npz")
    for name, ckpt in [("sanet", "sanet"), ("sanet_r41", "sanet_r41"), ("aams", "aams"),
                       ("cbam", "cbam_conv4_1"), ("cbam_conv3_1", "cbam_conv3_1"), ("cbam_conv5_1", "cbam_conv5_1")]:
        with pytest.raises(CheckpointError, match=rf"(?s){ckpt}.*python -m train\.\w+ .*--export"):
            FEEDFORWARD[name].load_params(vgg_params)


def test_checkpoint_of_the_other_variant_is_refused(params):
    r41, multi = params("sanet_r41"), params("sanet")
    with pytest.raises(CheckpointError, match="relu4_1-only.*sanet_r41"):
        FEEDFORWARD["sanet"].merge({}, {"sanet": {"transform": r41["transform"], "decoder": r41["decoder"]}})
    merged = FEEDFORWARD["sanet"].merge({}, {"sanet": {"transform": multi["transform"], "decoder": multi["decoder"]}})
    assert set(merged) == {"transform", "decoder"}
    with pytest.raises(CheckpointError, match="'self'.*method 'aams'"):
        FEEDFORWARD["cbam"].merge({}, {"cbam_conv4_1": {"autoencoder": params("aams")["autoencoder"]}})
    assert aams.autoencoder_config(params("cbam")["autoencoder"]) == ("cbam", "relu4_1")


# ------------------------------------------------------------------------------ SANet controls

def test_sanet_alpha_zero_is_the_identity_path(images, params):
    p = params("sanet")
    out = run("sanet", p, images, alpha=0.0)
    padded, _ = pad_to_multiple(jnp.asarray(images["content"])[None], MULTIPLE)

    @jax.jit
    def identity(p, x):
        c = encode(p["vgg"], x, ("relu4_1", "relu5_1"))
        t = SANetTransform(multi_level=True).apply({"params": p["transform"]}, c, c)
        return AdaINDecoder().apply({"params": p["decoder"]}, t)

    expected = np.clip(np.asarray(identity(p, padded))[0, :H, :W], 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_sanet_mask_of_one_style_equals_single_style(images, params):
    p = params("sanet_r41")
    single = run("sanet_r41", p, images)
    ones, zeros = np.ones((H, W), np.float32), np.zeros((H, W), np.float32)
    masked = run("sanet_r41", p, images, styles=("style", "style2"), masks=[ones, zeros])
    np.testing.assert_allclose(masked, single, atol=1e-5)
    blended = run("sanet_r41", p, images, styles=("style", "style2"), style_weights=[1.0, 0.0])
    np.testing.assert_allclose(blended, single, atol=1e-5)


@pytest.mark.parametrize("masks, message", [
    (lambda: [np.ones((H, W), np.float32)], "1 masks for 2 styles"),
    (lambda: [np.ones((H, W + 1), np.float32)] * 2, "must match the content size"),
])
def test_wrong_masks_are_refused(images, params, masks, message):
    with pytest.raises(InputError, match=message):
        run("aams", params("aams"), images, styles=("style", "style2"), masks=masks())


# ------------------------------------------------------------------------------ AAMS fusion

def test_aams_output_depends_on_the_key_only_through_its_random_draws(images, params):
    p = params("cbam")
    k1, k2 = jax.random.key(1), jax.random.key(2)
    a = run("cbam", p, images, key=k1)
    np.testing.assert_array_equal(a, run("cbam", p, images, key=k1))
    assert np.abs(a - run("cbam", p, images, key=k2)).max() > 1e-4

    spec = FEEDFORWARD["cbam"]
    feats = encode_styles(spec, p, [images["style"]])
    padded, _ = pad_to_multiple(jnp.asarray(images["content"])[None], MULTIPLE)
    draws = aams.Draws(blur=aams.blur_kernel(jax.random.key(7)), init=jnp.array([0.0, 0.3, 0.6, 1.0]))
    fixed = jax.jit(functools.partial(aams.transfer, kind="cbam", layer="relu4_1", return_parts=True))
    args = (p, padded, feats, jnp.ones(1), None, jnp.float32(1.0))
    out1, parts = fixed(*args, k1, draws=draws)
    out2, _ = fixed(*args, k2, draws=draws)
    np.testing.assert_array_equal(np.asarray(out1), np.asarray(out2))
    w = np.asarray(parts["weights"])
    assert w.shape[-1] == aams.STROKES and np.allclose(w.sum(-1), 1.0, atol=1e-5)
    s = np.asarray(parts["saliency"])
    assert s.min() == 0.0 and abs(s.max() - 1.0) < 1e-6
    assert np.all(np.diff(np.asarray(parts["centroids"])) >= 0)


def test_kmeans_recovers_four_obvious_clusters():
    rng = np.random.default_rng(0)
    truth = np.array([0.05, 0.3, 0.62, 0.93])
    points = jnp.asarray(np.concatenate([c + 0.01 * rng.standard_normal(150) for c in truth]))
    init_fn = jax.jit(aams.kmeans_init, static_argnums=1)
    kmeans = jax.jit(aams.kmeans_1d)
    for seed in range(5):
        centroids = np.asarray(kmeans(points, init_fn(points, 4, jax.random.key(seed))))
        np.testing.assert_allclose(centroids, truth, atol=0.01)
    # Fixed init -> fixed answer; a degenerate (constant) map gives finite centroids.
    flat = kmeans(jnp.zeros(600), init_fn(jnp.zeros(600), 4, jax.random.key(0)))
    assert np.all(np.asarray(flat) == 0.0)


def test_fusion_weights_sum_to_one_and_filter_is_normalised():
    rng = np.random.default_rng(1)
    sal = jnp.asarray(rng.random((1, 5, 7, 1)), jnp.float32)
    w = aams.fusion_weights(sal, jnp.array([0.1, 0.4, 0.6, 0.9]))
    np.testing.assert_allclose(np.asarray(w.sum(-1)), 1.0, atol=1e-6)
    assert np.all(np.argmax(np.asarray(w), -1) == np.argmin(np.abs(np.asarray(sal) - [0.1, 0.4, 0.6, 0.9]), -1))
    k = aams.blur_kernel(jax.random.key(3))
    assert k.shape == (3, 3) and abs(float(k.sum()) - 1.0) < 1e-5
    assert not np.allclose(np.asarray(k), np.asarray(aams.blur_kernel(jax.random.key(4))))
    att = jnp.asarray(rng.standard_normal((1, 6, 8, 16)), jnp.float32)
    f = np.asarray(aams.attention_filter(att, k))
    assert f.shape == (1, 6, 8, 1) and f.min() == 0.0 and abs(f.max() - 1.0) < 1e-6


def test_relu5_1_skip_fusion_matches_per_style_adain_with_masks():
    rng = np.random.default_rng(2)
    styles = [{"relu4_1": jnp.asarray(rng.random((1, 3, 5, 8)), jnp.float32)} for _ in range(2)]
    masks = jnp.asarray(np.stack([np.tile(np.linspace(0, 1, 48), (32, 1)), np.ones((32, 48))], -1)[None],
                        jnp.float32)
    x = jnp.asarray(rng.random((1, 4, 6, 8)), jnp.float32)
    fuse = aams._skips(styles, jnp.array([0.5, 0.5]), masks, "relu5_1")["relu4_1"]
    m = masks_at(masks, "relu4_1", (4, 6))
    expected = blend_by_masks([adain(x, s["relu4_1"], content_mask=m[..., i:i + 1]) for i, s in enumerate(styles)], m)
    np.testing.assert_allclose(np.asarray(fuse(x)), np.asarray(expected), atol=1e-6)


def test_depth_option(images, params):
    with pytest.raises(InputError, match="cbam_conv3_1"):
        run("cbam", params("cbam"), images, depth="conv3_1")
    with pytest.raises(InputError, match="depth must be one of"):
        run("cbam", params("cbam"), images, depth="conv9_1")


# ------------------------------------------------------------------------------ attention apps

def test_attention_map_is_in_unit_range_at_image_size(images, params):
    m = attention_apps.attention_map(params("cbam"), images["content"], method="cbam")
    assert m.shape == (H, W) and m.dtype == np.float32
    assert m.min() >= 0.0 and m.max() <= 1.0 and m.max() - m.min() > 0.5
    with pytest.raises(InputError, match="'cbam' attention autoencoder, not the 'aams' kind"):
        attention_apps.attention_map(params("cbam"), images["content"], method="aams")


def test_composite_and_region_stylization(images, params):
    obj, bg = images["content"], image_at(ASSETS / "content" / "lake_sherburne.jpg", H, W)
    np.testing.assert_array_equal(attention_apps.composite(obj, np.ones((H, W)), bg), obj)
    np.testing.assert_array_equal(attention_apps.composite(obj, np.zeros((H, W)), bg), bg)
    wide = image_at(ASSETS / "content" / "lake_sherburne.jpg", 40, 120)  # fitted: scaled + centre-cropped
    assert attention_apps.composite(obj, np.zeros((H, W)), wide).shape == (H, W, 3)
    with pytest.raises(InputError, match="must match the image size"):
        attention_apps.composite(obj, np.ones((H, W + 2)), bg)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        attention_apps.composite(obj, np.full((H, W), 2.0), bg)

    p = params("cbam")
    mask = attention_apps.attention_map(p, obj, method="cbam")
    full = run("cbam", p, images)
    for region, keep in (("object", mask), ("background", 1.0 - mask)):
        out = attention_apps.stylize_region(obj, images["style"], method="cbam", region=region, params=p)
        np.testing.assert_allclose(out, keep[..., None] * full + (1 - keep[..., None]) * obj, atol=1e-5)
    with pytest.raises(InputError, match="region must be one of"):
        attention_apps.stylize_region(obj, images["style"], method="cbam", region="sky", params=p)


def test_attention_cli_end_to_end(images, params, tmp_path, capsys):
    ckpt = params_io.save(tmp_path / "cbam.npz", {"autoencoder": params("cbam")["autoencoder"]},
                          {"method": "cbam", "encoder": dict(ENCODER)})
    photo = tmp_path / "photo.png"
    Image.fromarray(np.round(images["content"] * 255).astype(np.uint8)).save(photo)
    out = tmp_path / "map.png"
    argv = ["attention", str(photo), "-o", str(out), "--checkpoint", str(ckpt), "--size", str(W)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    picture = np.asarray(Image.open(out))
    assert picture.shape == (H, W, 3) and picture.max() - picture.min() > 128
    assert cli.main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert cli.main(argv + ["--overwrite", "--overlay"]) == 0
    # Bad input: a missing image, and a checkpoint that is not an attention autoencoder.
    assert cli.main(["attention", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "x.png"),
                     "--checkpoint", str(ckpt)]) == 2
    assert "not found" in capsys.readouterr().err
    sanet = params_io.save(tmp_path / "sanet.npz", {"decoder": {"b": np.zeros(1, np.float32)}},
                           {"method": "sanet", "encoder": dict(ENCODER)})
    assert cli.main(["attention", str(photo), "-o", str(tmp_path / "y.png"), "--checkpoint", str(sanet)]) == 2
    assert "not an attention autoencoder" in capsys.readouterr().err


def test_composite_cli_with_a_mask_file(images, tmp_path, capsys):
    photo, background, mask = tmp_path / "photo.png", tmp_path / "bg.png", tmp_path / "mask.png"
    obj = np.round(images["content"] * 255).astype(np.uint8)
    bg = np.round(image_at(ASSETS / "content" / "lake_sherburne.jpg", H, W) * 255).astype(np.uint8)
    half = np.zeros((H, W), np.uint8)
    half[:, : W // 2] = 255  # object = left half
    Image.fromarray(obj).save(photo)
    Image.fromarray(bg).save(background)
    Image.fromarray(half).save(mask)
    out = tmp_path / "out.png"
    argv = ["composite", str(photo), str(background), "-o", str(out), "--mask", str(mask), "--size", str(W)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    got = np.asarray(Image.open(out))
    np.testing.assert_array_equal(got[:, : W // 2], obj[:, : W // 2])
    np.testing.assert_array_equal(got[:, W // 2:], bg[:, W // 2:])
    Image.fromarray(half[:, : W // 3]).save(mask)  # another aspect ratio: not a mask of this photo
    assert cli.main(argv + ["--overwrite"]) == 2 and "aspect ratios differ" in capsys.readouterr().err
