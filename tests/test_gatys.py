"""Gatys optimisation end to end on the real weights at tiny sizes."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import stylize
from nst_jax.errors import InputError
from nst_jax.kernels.color import rgb_to_yiq
from nst_jax.kernels.stats import gram
from nst_jax.optimize import GatysConfig, gatys, make_loss_fn, style_targets
from nst_jax import vgg19
from tests.conftest import image_at

FAST = GatysConfig(steps=25)


@pytest.fixture(scope="module")
def pair(dog, starry):
    return image_at(dog, 64, 96), image_at(starry, 64, 80)


@pytest.fixture(scope="module")
def plain(vgg_params, pair):
    """The default L-BFGS result, shared by the tests that compare against it."""
    return gatys(vgg_params, pair[0], [pair[1]], config=FAST)


def _style_loss(vgg, image, style, config=FAST):
    targets = style_targets(vgg, [jnp.asarray(style)], layers=config.style_layers, padding=config.padding,
                            pool=config.pool, blend=[1.0])
    loss_fn = make_loss_fn(vgg, jnp.asarray(image)[None], targets, config)
    return float(loss_fn(jnp.asarray(image)[None])[1]["style"])


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_style_loss_drops_far_below_the_content_image(vgg_params, pair, plain, optimizer):
    content, style = pair
    if optimizer == "lbfgs":
        out, history = plain
    else:
        out, history = gatys(vgg_params, content, [style], config=dataclasses.replace(FAST, optimizer=optimizer))
    assert out.shape == content.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert _style_loss(vgg_params, out, style) < 0.1 * _style_loss(vgg_params, content, style)
    assert history["total"].shape == (FAST.steps,) and history["total"][-1] < history["total"][0]


def test_stylize_entry_point_returns_history(vgg_params, pair):
    content, style = pair
    out, info = stylize(content, style, method="gatys", params={"vgg": vgg_params}, return_info=True, steps=3)
    assert out.shape == content.shape and len(info["history"]["total"]) == 3
    with pytest.raises(InputError, match="unknown method"):
        stylize(content, style, method="nope", params={"vgg": vgg_params})
    with pytest.raises(InputError, match="unknown Gatys option"):
        stylize(content, style, method="gatys", params={"vgg": vgg_params}, stepz=3)


def test_mask_keeps_unstyled_region_close_to_content(vgg_params, pair):
    content, style = pair
    mask = np.zeros(content.shape[:2], np.float32)
    mask[:, :48] = 1.0  # left half takes the style; the right half has only the content loss
    out, _ = gatys(vgg_params, content, [style], config=dataclasses.replace(FAST, steps=30), masks=[mask])
    change = np.abs(out - content).mean(axis=-1)
    styled, kept = change[:, :40].mean(), change[:, 56:].mean()  # leave the boundary out
    assert styled > 3 * kept, (styled, kept)


def test_two_styles_two_regions(vgg_params, pair, dog):
    content, style = pair
    second = image_at(dog.parent.parent / "style" / "great_wave.jpg", 64, 64)
    left = np.zeros(content.shape[:2], np.float32)
    left[:, :48] = 1
    out, history = gatys(vgg_params, content, [style, second], config=dataclasses.replace(FAST, steps=5),
                         masks=[left, 1 - left])
    assert out.shape == content.shape and np.isfinite(history["style"]).all()


def test_luminance_colour_preservation_keeps_content_chrominance(vgg_params, pair, plain):
    content, style = pair
    out, _ = gatys(vgg_params, content, [style], config=dataclasses.replace(FAST, color="luminance"))
    iq_out = np.asarray(rgb_to_yiq(jnp.asarray(out)))[..., 1:]
    iq_content = np.asarray(rgb_to_yiq(jnp.asarray(content)))[..., 1:]
    iq_plain = np.asarray(rgb_to_yiq(jnp.asarray(plain[0])))[..., 1:]
    err_preserved = np.abs(iq_out - iq_content).mean()
    assert err_preserved < 0.02 and err_preserved < 0.3 * np.abs(iq_plain - iq_content).mean()


def test_colour_matching_moves_colours_towards_the_content(vgg_params, pair, plain):
    content, style = pair
    matched, _ = gatys(vgg_params, content, [style], config=dataclasses.replace(FAST, color="match"))
    plain, _ = plain
    mean_c = content.reshape(-1, 3).mean(0)
    assert np.abs(matched.reshape(-1, 3).mean(0) - mean_c).sum() < np.abs(plain.reshape(-1, 3).mean(0) - mean_c).sum()


def test_style_blend_targets_are_weighted_grams(vgg_params, pair, dog):
    _, style = pair
    second = image_at(dog.parent.parent / "style" / "the_scream.jpg", 48, 48)
    layers = ("relu1_1", "relu3_1")
    kw = dict(layers=layers, padding="zero", pool="max")
    blended = style_targets(vgg_params, [jnp.asarray(style), jnp.asarray(second)], blend=[0.3, 0.7], **kw)[0]
    for layer in layers:
        g1 = gram(vgg19.features(vgg_params, jnp.asarray(style)[None], (layer,))[layer])
        g2 = gram(vgg19.features(vgg_params, jnp.asarray(second)[None], (layer,))[layer])
        np.testing.assert_allclose(blended[layer], 0.3 * g1 + 0.7 * g2, rtol=1e-5, atol=1e-3)


def test_pyramid_runs_coarse_to_fine(vgg_params, pair):
    content, style = pair
    config = dataclasses.replace(FAST, steps=4, pyramid_min_size=48)
    out, history = gatys(vgg_params, content, [style], config=config)
    assert out.shape == content.shape
    assert list(np.unique(history["level"])) == [0, 1]
    assert (history["level"] == 1).sum() == 2  # finer levels run a fraction of the steps


def test_noise_init_is_seeded(vgg_params, pair):
    content, style = pair
    config = dataclasses.replace(FAST, steps=2, init="noise")
    a, _ = gatys(vgg_params, content, [style], config=config, key=jax.random.key(1))
    b, _ = gatys(vgg_params, content, [style], config=config, key=jax.random.key(1))
    c, _ = gatys(vgg_params, content, [style], config=config, key=jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3
    with pytest.raises(InputError, match="PRNG key"):
        gatys(vgg_params, content, [style], config=config)


def test_selected_filters_restrict_the_style_loss(vgg_params, pair):
    content, style = pair
    out, history = gatys(vgg_params, content, [style], config=dataclasses.replace(FAST, steps=3),
                         style_channels={"relu4_1": [1, 5, 9], "relu5_1": list(range(16))})
    assert out.shape == content.shape and np.isfinite(history["total"]).all()
    with pytest.raises(InputError, match="indices"):
        gatys(vgg_params, content, [style], config=FAST, style_channels={"relu4_1": [600]})


@pytest.mark.parametrize("kwargs, message", [
    (dict(masks=[np.ones((10, 10), np.float32)]), "must match the content size"),
    (dict(masks=[np.ones((64, 96), np.float32)] * 2), "one mask per style"),
    (dict(masks=[np.full((64, 96), 2.0, np.float32)]), r"values in \[0, 1\]"),
    (dict(style_blend=[0.5, 0.7]), "summing to 1"),
    (dict(config=GatysConfig(content_layers=("relu9_9",))), "unknown VGG19 layer"),
    (dict(config=GatysConfig(optimizer="sgd")), "optimizer must be one of"),
    (dict(config=GatysConfig(style_weight=float("nan"))), "style_weight"),
])
def test_bad_input_is_reported_clearly(vgg_params, pair, kwargs, message):
    content, style = pair
    with pytest.raises((InputError, ValueError), match=message):
        gatys(vgg_params, content, [style], **kwargs)


def test_bad_images_are_reported_clearly(vgg_params, pair):
    content, style = pair
    bad = content.copy()
    bad[3, 3, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        gatys(vgg_params, bad, [style], config=FAST)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        gatys(vgg_params, content * 255, [style], config=FAST)
    with pytest.raises(InputError, match="at least 16 px"):
        gatys(vgg_params, content[:10], [style], config=FAST)
