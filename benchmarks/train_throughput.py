"""Training-step throughput (images/s) of the AdaIN and SANet trainers — JAX, and PyTorch eager if installed.

    python benchmarks/train_throughput.py [--size 256] [--batch 4] [--repeats 3] [--methods adain sanet]
                                          [--scaling] [--json PATH]

The JAX step is exactly the trainer's (``train.trainer.make_step_fn`` + ``jit_step``: encoder
forward, decoder forward/backward through the frozen VGG19, Adam update) with the real VGG19
weights (``nst_jax.weights.port.load()``) and the real decoder/SANet sizes. Compile time is
reported apart. With ``torch`` importable (the ``parity`` extra) a PyTorch eager twin of the
identical step — same VGG weights, same decoder architecture and initial parameters copied from
the JAX init, same losses, Adam — is timed alternately run by run in the same process, and the two
step-0 losses are compared (they must agree to float32 precision).

``--scaling`` re-runs the JAX AdaIN step at 128 px on 1, 2 and 4 fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``, one subprocess each): a correctness demo
of the data-parallel step (the loss must not depend on the device count). The fake devices share
this machine's cores, so no speed-up is expected here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from nst_jax.host_memory import reuse_freed_memory  # noqa: E402
from nst_jax.vgg19 import MEAN_ACTIVATION as MEAN  # noqa: E402
from train import adain, config, data, sanet, sharding, trainer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
METHODS = {"adain": adain, "sanet": sanet}


def _batch(size: int, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random crops of the training set (falls back to the packaged assets)."""
    cfg = config.TrainConfig()
    content = Path(cfg.content) if Path(cfg.content).is_dir() else ROOT / "nst_jax" / "assets" / "content"
    style = Path(cfg.style) if Path(cfg.style).is_dir() else ROOT / "nst_jax" / "assets" / "style"
    loader = data.Loader({"content": data.FolderSource(content), "style": data.FolderSource(style)},
                         batch_size=batch, resize=size, crop=size, flip=True, seed=seed)
    return loader.batch(0)


def jax_step(name: str, size: int, batch: int, vgg_all, devices=None):
    """(run_one_step, compile_seconds, step-0 loss, cfg, initial params) for the trainer's step."""
    module = METHODS[name]
    cfg = config.make_config(module.Config, "cpu", crop=size, resize=size, batch_size=batch, vgg="random")
    mesh = sharding.make_mesh(devices)
    repl = sharding.replicated(mesh)
    tx = trainer.make_optimizer(cfg)
    depth = trainer.vgg_depth(module.METHOD, cfg)
    vgg = jax.device_put(trainer.vgg_subset(vgg_all, depth), repl)
    state = jax.jit(lambda k: trainer.init_state(module.METHOD, cfg, tx, k), out_shardings=repl)(jax.random.key(0))
    params0 = jax.device_get(state["params"])
    host = _batch(size, batch)
    b = data.to_global({k: host[k] for k in module.METHOD.sources(cfg)}, sharding.batch_sharded(mesh), batch)
    step, compile_s, cost = common.compile_seconds(trainer.jit_step(trainer.make_step_fn(module.METHOD, cfg, tx), mesh),
                                                   state, vgg, b)
    box = {"state": state}

    def run():
        box["state"], metrics = step(box["state"], vgg, b)
        return common.block(metrics)

    first = run()
    return run, compile_s, float(first["loss"]), cfg, params0, host, cost


# --------------------------------------------------------------------------------------------------
# PyTorch eager twin
# --------------------------------------------------------------------------------------------------


def torch_step(name: str, cfg, params0, vgg_all, host):
    import torch  # pylint: disable=import-outside-toplevel
    import torch.nn.functional as F  # pylint: disable=import-outside-toplevel

    from benchmarks.torch_twins import TorchVGG  # pylint: disable=import-outside-toplevel
    from nst_jax.modules.decoders import ConvStep, UpStep, decoder_spec  # pylint: disable=import-outside-toplevel

    torch.set_num_threads(os.cpu_count() or 1)
    vgg = TorchVGG(vgg_all, padding="reflect", pool="max", channels_last=False)
    for w, b in vgg.convs.values():
        w.requires_grad_(False)

    def tensor(a):
        return torch.tensor(np.asarray(a)).requires_grad_(True)

    def conv_params(p):  # HWIO -> OIHW
        return tensor(np.asarray(p["kernel"]).transpose(3, 2, 0, 1).copy()), tensor(p["bias"])

    dec = {k: conv_params(v) for k, v in params0["decoder"].items()}
    spec = decoder_spec("relu4_1")
    learn = [t for pair in dec.values() for t in pair]

    def decode(x):
        x = x / MEAN["relu4_1"]  # the decoders' normalised units (nst_jax.modules.decoders)
        for step in spec:
            if isinstance(step, UpStep):
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            elif isinstance(step, ConvStep):
                w, b = dec[step.name]
                x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), w, b)
                x = F.relu(x) if step.relu else x
        return x

    def mean_std(x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        return mean, torch.sqrt(x.var(dim=(2, 3), keepdim=True, unbiased=False) + 1e-5)

    def moment_loss(feats, targets):
        return sum(F.mse_loss(mean_std(feats[k])[0], t[0]) + F.mse_loss(mean_std(feats[k])[1], t[1])
                   for k, t in targets.items())

    def mvn(x):
        mean, std = mean_std(x)
        return (x - mean) / std

    if name == "sanet":
        tp = params0["transform"]
        lvl = {lv: {k: conv_params(tp[f"sanet{lv}"][k]) for k in ("f", "g", "h", "out")} for lv in ("4_1", "5_1")}
        merge = conv_params(tp["merge"])
        learn += [t for d in lvl.values() for pair in d.values() for t in pair] + list(merge)

        def san(lv, c, s):
            p = lvl[lv]
            n, ch, h, w = c.shape
            q = F.conv2d(mvn(c), *p["f"]).flatten(2).transpose(1, 2)
            k = F.conv2d(mvn(s), *p["g"]).flatten(2)
            v = F.conv2d(s, *p["h"]).flatten(2)
            att = torch.softmax(q @ k, dim=-1)
            o = (v @ att.transpose(1, 2)).view(n, ch, h, w)
            return c + F.conv2d(o, *p["out"])

    opt = torch.optim.Adam(learn, lr=cfg.lr, betas=(cfg.adam_b1, cfg.adam_b2), eps=cfg.adam_eps)
    images = {k: torch.tensor(v.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous() for k, v in host.items()}
    c, s = images["content"], images["style"]
    counter = {"t": 0}

    def norm(feats):  # train.common.normalised
        return {k: v / MEAN[k] for k, v in feats.items()}

    def loss_fn():
        if name == "adain":
            layers = adain.STYLE_LAYERS
            with torch.no_grad():
                c4 = vgg.features(c, ["relu4_1"])["relu4_1"]
                sf = vgg.features(s, layers)
                cm, cs_ = mean_std(c4)
                sm, ss = mean_std(sf["relu4_1"])
                t = (c4 - cm) / cs_ * ss + sm
            of = norm(vgg.features(decode(t), layers))
            sf = norm(sf)
            return (cfg.content_weight * F.mse_loss(of["relu4_1"], t / MEAN["relu4_1"])
                    + cfg.style_weight * moment_loss(of, {k: mean_std(sf[k]) for k in layers}))
        layers = sanet.LAYERS
        n = c.shape[0]
        with torch.no_grad():
            both = vgg.features(torch.cat([c, s]), layers)
        fc = {k: v[:n] for k, v in both.items()}
        fs = {k: v[n:] for k, v in both.items()}
        qs = {k: torch.cat([fc[k], fc[k], fs[k]]) for k in ("relu4_1", "relu5_1")}
        ks = {k: torch.cat([fs[k], fc[k], fs[k]]) for k in ("relu4_1", "relu5_1")}
        o4, o5 = san("4_1", qs["relu4_1"], ks["relu4_1"]), san("5_1", qs["relu5_1"], ks["relu5_1"])
        hidden = F.conv2d(F.pad(o4 + F.interpolate(o5, scale_factor=2, mode="nearest"), (1, 1, 1, 1), mode="reflect"),
                          *merge)
        out = decode(hidden)
        both = norm(both)
        fc = {k: v[:n] for k, v in both.items()}
        fs = {k: v[n:] for k, v in both.items()}
        of = norm(vgg.features(out, layers))
        cs = {k: v[:n] for k, v in of.items()}
        ccss = {k: v[n:] for k, v in of.items()}
        content = sum(F.mse_loss(mvn(cs[k]), mvn(fc[k])) for k in ("relu4_1", "relu5_1"))
        style = moment_loss(cs, {k: mean_std(fs[k]) for k in layers})
        id_pix = 2 * F.mse_loss(out[n:], torch.cat([c, s]))
        id_feat = sum(2 * F.mse_loss(ccss[k], both[k]) for k in layers)
        return (cfg.content_weight * content + cfg.style_weight * style + cfg.identity_pixel_weight * id_pix
                + cfg.identity_feature_weight * id_feat)

    def run():
        for group in opt.param_groups:
            group["lr"] = cfg.lr / (1 + cfg.lr_decay * counter["t"])
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        counter["t"] += 1
        return float(loss.detach())

    first = run()
    return run, first


# --------------------------------------------------------------------------------------------------
# Scaling demo (subprocess per fake device count)
# --------------------------------------------------------------------------------------------------

SCALING_SCRIPT = """
import json, sys, time
sys.path.insert(0, {root!r})
import jax
from benchmarks import train_throughput as T
from nst_jax.weights import port
run, compile_s, loss0, cfg, _, _, _ = T.jax_step("adain", 128, 4, port.load())
times = []
for _ in range({repeats}):
    t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
print("RESULT " + json.dumps({{"devices": jax.device_count(), "loss0": loss0, "compile_s": compile_s,
                              "median_s": sorted(times)[len(times) // 2]}}))
"""


def scaling(repeats: int) -> list[dict]:
    rows = []
    for n in (1, 2, 4):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
        proc = subprocess.run([sys.executable, "-c", SCALING_SCRIPT.format(root=str(ROOT), repeats=repeats)],
                              env=env, capture_output=True, text=True, check=True)
        row = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))[7:])
        row["images_per_s"] = 4 / row["median_s"]
        rows.append(row)
        print(f"  {n} device(s): loss0 {row['loss0']:.6g}  {row['median_s']:.3f} s/step  "
              f"{row['images_per_s']:.2f} img/s", flush=True)
    return rows


def main(argv=None) -> int:
    reuse_freed_memory()  # as the nst-jax command does; see nst_jax.host_memory
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["adain", "sanet"], choices=sorted(METHODS))
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from nst_jax.weights import port  # pylint: disable=import-outside-toplevel

    vgg_all = port.load()
    try:
        import torch  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

        with_torch = True
    except ImportError:
        with_torch = False
        print("torch not installed: JAX only (pip install 'nst_jax[parity]' for the side-by-side twin)")
    rows = []
    for name in args.methods:
        run, compile_s, loss0, cfg, params0, host, cost = jax_step(name, args.size, args.batch, vgg_all)
        fns = {"jax": run}
        row = {"method": name, "size": args.size, "batch": args.batch, "jax_compile_s": compile_s,
               "jax_loss0": loss0,
               # A lower bound: XLA counts a loop body once (the kernel gradients' row loops).
               "gflop_per_step": cost["flops"] / 1e9}
        if with_torch:
            trun, tloss0 = torch_step(name, cfg, params0, vgg_all, host)
            fns["torch"] = trun
            row["torch_loss0"] = tloss0
            row["loss0_rel_diff"] = abs(tloss0 - loss0) / abs(loss0)
        times = common.timed_alternating(fns, repeats=args.repeats, warmup=1, settle=False)  # steps of seconds
        for fw, samples in times.items():
            s = common.summary(samples)
            row[f"{fw}_step_s"] = s["median_s"]
            row[f"{fw}_images_per_s"] = args.batch / s["median_s"]
        if with_torch:
            row["torch_over_jax"] = row["torch_step_s"] / row["jax_step_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    cols = [("method", "method"), ("size", "px"), ("batch", "batch"), ("jax_compile_s", "JAX compile s"),
            ("jax_step_s", "JAX s/step"), ("jax_images_per_s", "JAX img/s"), ("gflop_per_step", "XLA GFLOP/step (>=)")]
    if with_torch:
        cols += [("torch_step_s", "torch s/step"), ("torch_images_per_s", "torch img/s"),
                 ("torch_over_jax", "torch/JAX"), ("loss0_rel_diff", "step-0 loss rel. diff")]
    print(common.markdown_table(rows, cols))
    scale_rows = []
    if args.scaling:
        print("data-parallel scaling demo (AdaIN, 128 px, global batch 4, fake CPU devices):")
        scale_rows = scaling(args.repeats)
        losses = [r["loss0"] for r in scale_rows]
        print(f"  step-0 loss relative spread across device counts: {(max(losses) - min(losses)) / abs(losses[0]):.2g}")
    if args.json:
        common.write_json(args.json, {"machine": common.machine(), "rows": rows, "scaling": scale_rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
