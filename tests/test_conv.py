"""The convolution kernels' algorithms (Winograd F(4x4, 3x3)) and the host-memory reuse of XLA:CPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax.kernels import conv


def conv_reference(x, kernel, padding):
    """float64 numpy ``same`` 3x3 convolution, tap by tap."""
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    h, w = x.shape[1:3]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect" if padding == "reflect" else "constant")
    return sum(xp[:, i: i + h, j: j + w] @ kernel[i, j] for i in range(3) for j in range(3))


@pytest.mark.parametrize("shape, c_out", [((2, 13, 18, 64), 128), ((1, 16, 16, 128), 64), ((1, 21, 9, 96), 160)])
@pytest.mark.parametrize("padding", ["zero", "reflect"])
def test_winograd_layers_match_a_float64_reference(shape, c_out, padding):
    x = jax.random.normal(jax.random.key(0), shape)
    kernel = jax.random.normal(jax.random.key(1), (3, 3, shape[-1], c_out)) / np.sqrt(9 * shape[-1])
    bias = jax.random.normal(jax.random.key(2), (c_out,))
    assert conv.winograd_eligible(x.shape, kernel.shape, x.dtype)  # these shapes take the Winograd path
    want = conv_reference(x, kernel, padding)
    got = conv.conv2d_same(x, kernel, padding=padding)
    # F(4x4, 3x3) rounds a little more than the direct sum: ~1e-6 of the output's scale here.
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())
    fused = conv.conv2d_same(x, kernel, bias, padding=padding, activation=jax.nn.relu)
    np.testing.assert_allclose(fused, np.maximum(want + np.asarray(bias), 0), rtol=0, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("padding", ["zero", "reflect"])
def test_winograd_gradients_are_the_direct_convolutions(padding):
    """The custom VJP differentiates the direct convolution: input, kernel and bias gradients equal
    those of XLA's convolution of the explicitly padded input."""
    x = jax.random.normal(jax.random.key(3), (1, 16, 20, 64))
    kernel = jax.random.normal(jax.random.key(4), (3, 3, 64, 128)) / 24
    bias = jax.random.normal(jax.random.key(5), (128,))
    assert conv.winograd_eligible(x.shape, kernel.shape, x.dtype)
    mode = "reflect" if padding == "reflect" else "constant"

    def plain(x, kernel, bias):
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=mode)
        y = jax.lax.conv_general_dilated(xp, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.nn.relu(y + bias)

    def fused(x, kernel, bias):
        return conv.conv2d_same(x, kernel, bias, padding=padding, activation=jax.nn.relu)

    probe = jax.random.normal(jax.random.key(6), (1, 16, 20, 128))
    got = jax.grad(lambda *a: jnp.sum(fused(*a) * probe), argnums=(0, 1, 2))(x, kernel, bias)
    want = jax.grad(lambda *a: jnp.sum(plain(*a) * probe), argnums=(0, 1, 2))(x, kernel, bias)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-4 * float(jnp.abs(w).max()))


def test_winograd_kernel_groups_and_eligibility(monkeypatch):
    x = jax.random.normal(jax.random.key(7), (1, 10, 14, 64))
    kernel = jax.random.normal(jax.random.key(8), (3, 3, 64, 192)) / 24
    want = conv_reference(x, kernel, "reflect")
    # A transformed kernel over the byte budget is made and used in output-channel groups (three here).
    monkeypatch.setattr(conv, "WINOGRAD_MAX_BYTES", 36 * 4 * 64 * 64)
    got = conv._winograd_conv(x, kernel, None, "reflect")
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())
    monkeypatch.undo()
    f32 = jnp.float32
    # VGG19 at 256 px: relu2_1 .. relu4_1 layers take Winograd; conv1_x (3 or 64 channels) and
    # full-size 64-channel maps do not, nor 512 -> 512 below 32x32, nor bfloat16 or 1x1 kernels.
    assert conv.winograd_eligible((1, 64, 64, 256), (3, 3, 256, 256), f32)
    assert conv.winograd_eligible((1, 128, 128, 64), (3, 3, 64, 128), f32)
    assert conv.winograd_eligible((1, 32, 32, 512), (3, 3, 512, 512), f32)
    assert not conv.winograd_eligible((1, 16, 16, 512), (3, 3, 512, 512), f32)
    assert not conv.winograd_eligible((1, 256, 256, 3), (3, 3, 3, 64), f32)
    assert not conv.winograd_eligible((1, 256, 256, 64), (3, 3, 64, 64), f32)
    assert not conv.winograd_eligible((1, 64, 64, 256), (3, 3, 256, 256), jnp.bfloat16)
    assert not conv.winograd_eligible((1, 64, 64, 256), (1, 1, 256, 256), f32)
    assert not conv.winograd_eligible((4, 256, 256, 128), (3, 3, 128, 128), f32)  # transformed map > budget


def test_winograd_kernels_made_ahead():
    """``with_winograd_kernels`` stores G g G^T (float64 reference) beside exactly the kernels that may
    take the Winograd path; a layer given it computes the same convolution, large kernels then take
    Winograd on smaller maps, and gradients flow to ``kernel`` as before (zero to the stored copy)."""
    keys = jax.random.split(jax.random.key(9), 4)
    kernel = jax.random.normal(keys[0], (3, 3, 64, 128)) / 24
    params = {"enc": {"conv": {"kernel": kernel, "bias": jnp.zeros(128)},
                      "thin": {"kernel": jax.random.normal(keys[1], (3, 3, 3, 64))},  # 3 channels in
                      "pointwise": {"kernel": jax.random.normal(keys[2], (1, 1, 128, 128))}},
              "half": {"kernel": kernel.astype(jnp.bfloat16)}, "scale": jnp.ones(3)}
    prepared = conv.with_winograd_kernels(params)
    assert set(prepared["enc"]["conv"]) == {"kernel", "bias", "winograd_kernel"}
    for untouched in (prepared["enc"]["thin"], prepared["enc"]["pointwise"], prepared["half"]):
        assert "winograd_kernel" not in untouched
    assert prepared["scale"] is params["scale"] and "winograd_kernel" not in params["enc"]["conv"]
    g = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
    want = np.einsum("ai,ijcd,bj->abcd", g, np.asarray(kernel, np.float64), g).reshape(36, 64, 128)
    np.testing.assert_allclose(prepared["enc"]["conv"]["winograd_kernel"], want, rtol=0, atol=1e-6)
    again = conv.with_winograd_kernels(prepared)
    assert again["enc"]["conv"]["winograd_kernel"] is prepared["enc"]["conv"]["winograd_kernel"]

    x = jax.random.normal(keys[3], (1, 16, 12, 64))
    transformed = prepared["enc"]["conv"]["winograd_kernel"]
    for padding in ("zero", "reflect"):
        ref = conv_reference(x, kernel, padding)
        got = conv.conv2d_same(x, kernel, padding=padding, winograd_kernel=transformed)
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5 * np.abs(ref).max())
    f32 = jnp.float32
    assert not conv.winograd_eligible((1, 16, 16, 512), (3, 3, 512, 512), f32)
    assert conv.winograd_eligible((1, 16, 16, 512), (3, 3, 512, 512), f32, prepared=True)
    assert not conv.winograd_eligible((1, 8, 8, 512), (3, 3, 512, 512), f32, prepared=True)

    probe = jax.random.normal(jax.random.key(10), (1, 16, 12, 128))
    grads = jax.grad(lambda x, k, u: jnp.sum(conv.conv2d_same(x, k, padding="reflect", winograd_kernel=u) * probe),
                     argnums=(0, 1, 2))(x, kernel, transformed)
    plain = jax.grad(lambda x, k: jnp.sum(conv.conv2d_same(x, k, padding="reflect") * probe), argnums=(0, 1))(x, kernel)
    for g_got, g_want in zip(grads[:2], plain):
        np.testing.assert_allclose(g_got, g_want, rtol=0, atol=1e-5 * float(jnp.abs(g_want).max()))
    assert not np.any(np.asarray(grads[2]))


@pytest.mark.parametrize("shape, c_out, k", [((2, 7, 10, 16), 24, 3), ((1, 32, 32, 64), 128, 3), ((1, 6, 9, 8), 8, 5)])
@pytest.mark.parametrize("padding", ["zero", "reflect"])
def test_upsample_conv_equals_upsampling_then_convolving(shape, c_out, k, padding, monkeypatch):
    """The sub-pixel form (four 2x2 phase convolutions of the small map) is the 3x3 convolution of
    the nearest-upsampled map, values (float64 reference) and gradients (the two-step form's); a layer
    that takes Winograd on the upsampled map (second case) and other kernel sizes upsample first."""
    keys = jax.random.split(jax.random.key(11), 4)
    x = jax.random.normal(keys[0], shape)
    kernel = jax.random.normal(keys[1], (k, k, shape[-1], c_out)) / np.sqrt(k * k * shape[-1])
    bias = jax.random.normal(keys[2], (c_out,))

    def two_step(x, kernel, bias):
        up = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return conv.conv2d_same(up, kernel, bias, padding=padding, activation=jax.nn.relu)

    def fused(x, kernel, bias):
        return conv.upsample_conv2d_same(x, kernel, bias, padding=padding, activation=jax.nn.relu)

    if k == 3:
        up = np.repeat(np.repeat(np.asarray(x, np.float64), 2, axis=1), 2, axis=2)
        want = np.maximum(conv_reference(up, kernel, padding) + np.asarray(bias, np.float64), 0)
        np.testing.assert_allclose(fused(x, kernel, bias), want, rtol=0, atol=2e-5 * np.abs(want).max())
    np.testing.assert_allclose(fused(x, kernel, bias), two_step(x, kernel, bias), rtol=0, atol=1e-5)
    probe = jax.random.normal(keys[3], (shape[0], 2 * shape[1], 2 * shape[2], c_out))
    got = jax.grad(lambda *a: jnp.sum(fused(*a) * probe), argnums=(0, 1, 2))(x, kernel, bias)
    want_grads = jax.grad(lambda *a: jnp.sum(two_step(*a) * probe), argnums=(0, 1, 2))(x, kernel, bias)
    for g, w in zip(got, want_grads):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-4 * float(jnp.abs(w).max()))
    monkeypatch.setattr(conv, "SUBPIXEL_MAX_BYTES", 0)  # phases over the budget: upsample first
    np.testing.assert_allclose(fused(x, kernel, bias), two_step(x, kernel, bias), rtol=0, atol=1e-5)


FAULTS_SCRIPT = textwrap.dedent("""
    import resource, sys
    import jax, jax.numpy as jnp
    import nst_jax.cli, nst_jax.methods  # importing them must run no JAX computation
    from nst_jax.host_memory import reuse_freed_memory
    if sys.argv[1] == "reuse":
        assert reuse_freed_memory()

    @jax.jit
    def f(x, k):  # three 3x3 convolutions with 64 MB intermediates (1x512x512x64 float32)
        for _ in range(3):
            x = jnp.tanh(jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
        return jnp.sum(x)

    x, k = jnp.ones((1, 512, 512, 64)), jnp.full((3, 3, 64, 64), 0.01)
    for _ in range(2):
        f(x, k).block_until_ready()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(2):
        f(x, k).block_until_ready()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 2)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_reuse_freed_memory_stops_per_call_page_faults():
    def faults_per_call(mode):
        out = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT, mode], capture_output=True, text=True, check=True)
        return float(out.stdout.split()[-1])

    temp_pages = 512 * 512 * 64 * 4 / 4096  # one intermediate
    default = faults_per_call("default")
    if default < 0.5 * temp_pages:
        pytest.skip(f"this XLA/glibc reuses temporaries by itself ({default:.0f} faults per call)")
    # Measured: ~51,000 faults per call by default (the arena of every call mapped afresh), ~4,000 with reuse.
    assert faults_per_call("reuse") < 0.5 * temp_pages
