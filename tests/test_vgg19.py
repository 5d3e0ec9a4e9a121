"""VGG19 forward pass against an independent float64 numpy reference, and its contracts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import vgg19
from nst_jax.errors import InputError
from tests.conftest import image_at


def np_conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, padding: str) -> np.ndarray:
    """Naive 3x3 'same' convolution: nine shifted copies times the kernel taps (NHWC, HWIO)."""
    mode = "reflect" if padding == "reflect" else "constant"
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=mode)
    h, w = x.shape[1:3]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("nhwc,cd->nhwd", xp[:, dy:dy + h, dx:dx + w], kernel[dy, dx])
    return out + bias


def np_pool(x: np.ndarray, kind: str) -> np.ndarray:
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return x.max(axis=(2, 4)) if kind == "max" else x.mean(axis=(2, 4))


def np_features(params, images, layers, padding, pool):
    # Caffe preprocessing written out the long way: RGB->BGR, x255, minus the BGR mean; the ported
    # conv1_1 kernel takes RGB, so flip its input channels back to BGR for this reference.
    bgr = images[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])
    x, out = bgr.astype(np.float64), {}
    for name in vgg19.LAYERS[: max(vgg19.LAYERS.index(n) for n in layers) + 1]:
        if name.startswith("conv"):
            kernel = np.asarray(params[name]["kernel"], np.float64)
            if name == "conv1_1":
                kernel = kernel[:, :, ::-1, :]
            x = np_conv3x3(x, kernel, np.asarray(params[name]["bias"], np.float64), padding)
        elif name.startswith("relu"):
            x = np.maximum(x, 0)
        else:
            x = np_pool(x, pool)
        if name in layers:
            out[name] = x
    return out


LAYERS = ("conv1_1", "relu1_2", "pool1", "relu2_1", "relu3_1", "conv4_2", "relu4_1", "pool4", "relu5_1")


@pytest.mark.parametrize("padding", ["zero", "reflect"])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_forward_matches_numpy_reference(vgg_params, dog, padding, pool):
    images = image_at(dog, 34, 40)[None]  # odd pooled sizes on the way down (17x20 -> 8x10 -> 4x5 -> 2x2)
    got = jax.jit(vgg19.features, static_argnames=("layers", "padding", "pool"))(
        vgg_params, images, layers=LAYERS, padding=padding, pool=pool)
    want = np_features(vgg_params, images, LAYERS, padding, pool)
    for name in LAYERS:
        assert got[name].shape == want[name].shape, name
        err = np.linalg.norm(np.asarray(got[name], np.float64) - want[name]) / np.linalg.norm(want[name])
        assert err < 2e-5, (name, err)


def test_only_computes_as_deep_as_needed(vgg_params):
    # Params truncated after conv2_1 suffice for relu2_1: deeper layers are never touched.
    shallow = {k: v for k, v in vgg_params.items() if k in ("input", "conv1_1", "conv1_2", "conv2_1")}
    out = vgg19.features(shallow, jnp.zeros((1, 16, 16, 3)), ("relu1_1", "relu2_1"))
    assert set(out) == {"relu1_1", "relu2_1"}
    assert out["relu2_1"].shape == (1, 8, 8, 128)
    with pytest.raises(KeyError):
        vgg19.features(shallow, jnp.zeros((1, 16, 16, 3)), ("relu3_1",))


def test_batching_and_single_image(random_vgg_params):
    x = jax.random.uniform(jax.random.key(1), (3, 32, 24, 3))
    batched = vgg19.features(random_vgg_params, x, ("relu3_1",))["relu3_1"]
    single = vgg19.features(random_vgg_params, x[1], ("relu3_1",))["relu3_1"]
    assert batched.shape == (3, 8, 6, 256) and single.shape == (8, 6, 256)
    np.testing.assert_allclose(batched[1], single, rtol=1e-5, atol=1e-5)


def test_max_pool_gradient_matches_reduce_window(random_vgg_params):
    # Our custom max-pool VJP (mask of the first window maximum) against XLA's select-and-scatter.
    x = jax.random.normal(jax.random.key(2), (2, 10, 14, 5))
    g = jax.random.normal(jax.random.key(3), (2, 5, 7, 5))

    def ours(x):
        return jnp.sum(vgg19.pool2x2(x, "max") * g)

    def reference(x):
        y = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        return jnp.sum(y * g)

    np.testing.assert_allclose(jax.grad(ours)(x), jax.grad(reference)(x), rtol=1e-6, atol=1e-6)
    # Ties: the gradient goes to one element of the window, never duplicated.
    tied = jnp.zeros((1, 2, 2, 1))
    assert float(jax.grad(lambda t: vgg19.pool2x2(t, "max").sum())(tied).sum()) == 1.0


def test_differentiable_wrt_params_and_image(random_vgg_params):
    x = jax.random.uniform(jax.random.key(4), (1, 32, 32, 3))

    def loss(p, img):
        return jnp.mean(vgg19.features(p, img, ("relu3_1",))["relu3_1"] ** 2)

    gp, gx = jax.grad(loss, argnums=(0, 1))(random_vgg_params, x)
    assert np.all(np.isfinite(gx)) and float(jnp.abs(gx).sum()) > 0
    assert float(jnp.abs(gp["conv3_1"]["kernel"]).sum()) > 0
    assert float(jnp.abs(gp["conv4_1"]["kernel"]).sum()) == 0  # beyond relu3_1: untouched


def test_gradients_match_a_plain_conv_bias_relu_pool_network(random_vgg_params):
    """``features`` pools a block's last conv before its bias and relu (they commute with max
    pooling); values and gradients equal those of the textbook order, built from XLA's primitives."""
    x = jax.random.uniform(jax.random.key(5), (2, 22, 26, 3))  # odd pooled sizes: 11x13 -> 5x6
    target = "relu3_1"

    def plain(p, img):
        h = vgg19.preprocess(p, img)
        for name in vgg19.LAYERS[: vgg19.LAYERS.index(target) + 1]:
            if name.startswith("conv"):
                h = jax.lax.conv_general_dilated(h, p[name]["kernel"], (1, 1), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC")) + p[name]["bias"]
            elif name.startswith("relu"):
                h = jnp.maximum(h, 0.0)
            else:
                h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        return h

    weights = jax.random.normal(jax.random.key(6), (2, 5, 6, 256))
    ours = lambda p, img: jnp.sum(vgg19.features(p, img, (target,))[target] * weights)  # noqa: E731
    reference = lambda p, img: jnp.sum(plain(p, img) * weights)  # noqa: E731
    np.testing.assert_allclose(ours(random_vgg_params, x), reference(random_vgg_params, x), rtol=1e-5)
    (gp, gx), (rp, rx) = (jax.grad(f, argnums=(0, 1))(random_vgg_params, x) for f in (ours, reference))
    np.testing.assert_allclose(gx, rx, rtol=1e-4, atol=1e-6 * float(jnp.abs(rx).max()))
    for name in ("conv1_2", "conv2_2", "conv3_1"):  # last convs of pooled blocks, and one after
        for leaf in ("kernel", "bias"):
            scale = float(jnp.abs(rp[name][leaf]).max())
            np.testing.assert_allclose(gp[name][leaf], rp[name][leaf], rtol=1e-4, atol=1e-5 * scale)


def test_bad_arguments(random_vgg_params):
    x = jnp.zeros((1, 32, 32, 3))
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        vgg19.features(random_vgg_params, x, ("relu4_5",))
    with pytest.raises(ValueError, match="padding"):
        vgg19.features(random_vgg_params, x, ("relu1_1",), padding="same")
    with pytest.raises(ValueError, match="pool"):
        vgg19.features(random_vgg_params, x, ("relu1_1",), pool="min")
    with pytest.raises(ValueError, match="RGB"):
        vgg19.features(random_vgg_params, jnp.zeros((1, 32, 32, 4)), ("relu1_1",))
    assert not issubclass(InputError, KeyError)


def test_layer_tables():
    assert len(vgg19.CONV_NAMES) == 16
    assert vgg19.LAYERS[-1] == "pool5" and vgg19.LAYERS.count("pool3") == 1
    assert vgg19.CHANNELS["relu3_1"] == 256 and vgg19.STRIDES["relu4_1"] == 8 and vgg19.STRIDES["pool2"] == 4


@pytest.mark.parametrize("h, w, k", [(5, 7, 3), (9, 11, 7), (4, 4, 3), (20, 13, 5), (3, 3, 3), (7, 9, 7), (5, 5, 5),
                                     (2, 5, 3), (6, 5, 1)])
def test_reflect_conv_equals_padded_valid_conv(h, w, k):
    # conv2d_same computes reflect padding as a zero-padded conv plus a border correction (faster on
    # XLA:CPU) and its kernel gradient as one matmul per tap; it must equal the plain reflect-pad + VALID
    # convolution differentiated by XLA, values and gradients (2x5: the tiny-map pad + VALID path; 1x1).
    from nst_jax.kernels.conv import conv2d_same

    x = jax.random.normal(jax.random.key(0), (2, h, w, 4))
    kernel = jax.random.normal(jax.random.key(1), (k, k, 4, 3))

    def plain(x):
        p = k // 2
        xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
        return jax.lax.conv_general_dilated(xp, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    np.testing.assert_allclose(conv2d_same(x, kernel, padding="reflect"), plain(x), rtol=1e-5, atol=2e-5)
    g = jax.grad(lambda x: jnp.sum(conv2d_same(x, kernel, padding="reflect") ** 2))(x)
    np.testing.assert_allclose(g, jax.grad(lambda x: jnp.sum(plain(x) ** 2))(x), rtol=1e-4, atol=1e-3)
    # With a bias and the relu applied inside (the border bands are written into relu(y) in place):
    # values, and gradients with respect to the input, kernel and bias, for both paddings.
    bias = jax.random.normal(jax.random.key(2), (3,))

    def reference(x, kernel, bias, padding):
        p = k // 2
        mode = "reflect" if padding == "reflect" else "constant"
        xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode)
        y = jax.lax.conv_general_dilated(xp, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.nn.relu(y + bias)

    for padding in ("reflect", "zero"):
        def fused(x, kernel, bias, padding=padding):
            return conv2d_same(x, kernel, bias, padding=padding, activation=jax.nn.relu)

        np.testing.assert_allclose(fused(x, kernel, bias), reference(x, kernel, bias, padding), rtol=1e-5, atol=2e-5)
        grads = jax.grad(lambda *a: jnp.sum(fused(*a) ** 2), argnums=(0, 1, 2))(x, kernel, bias)
        expected = jax.grad(lambda *a: jnp.sum(reference(*a, padding) ** 2), argnums=(0, 1, 2))(x, kernel, bias)
        for got, want in zip(grads, expected):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_mean_activation_table_matches_the_real_weights(vgg_params):
    """vgg19.MEAN_ACTIVATION (measured on 128 px training images) within a factor 2 of the bundled
    images' means at 96 px (measured: 0.9-1.36): a wrong constant (another source's scale, a
    swapped layer) would mis-weight every trainer's feature loss and every decoder's input."""
    from pathlib import Path

    assets = Path(vgg19.__file__).parent / "assets"
    images = jnp.stack([jnp.asarray(image_at(p, 96, 96)) for p in sorted((assets / "content").glob("*.jpg"))
                        + sorted((assets / "style").glob("*.jpg"))])
    feats = vgg19.features(vgg_params, images, list(vgg19.MEAN_ACTIVATION), padding="reflect")
    for layer, expected in vgg19.MEAN_ACTIVATION.items():
        measured = float(jnp.mean(feats[layer]))
        assert 0.5 < measured / expected < 2.0, (layer, measured, expected)
