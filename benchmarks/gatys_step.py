"""One Gatys step (forward + backward: content relu4_2 + Gram relu1_1..relu5_1) — JAX vs PyTorch eager.

    python benchmarks/gatys_step.py [--sizes 256 512] [--repeats 7] [--json PATH] [--optimizers]

Same weights, same objective, same process, alternating run by run. Reports the median step time,
XLA FLOPs, achieved GFLOP/s and its share of this machine's measured f32 matmul peak. With
``--optimizers`` it also times a full optimiser step of our L-BFGS (one jitted value-and-grad +
two-loop recursion) against ``optax.lbfgs`` with its zoom line search and Adam.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from benchmarks import common  # noqa: E402
from nst_jax import optimize as G, vgg19  # noqa: E402
from nst_jax.host_memory import reuse_freed_memory  # noqa: E402
from nst_jax.image import load_image, resize  # noqa: E402
from nst_jax.weights import port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "nst_jax" / "assets" / "content" / "dog_kira.jpg"
STYLE = ROOT / "nst_jax" / "assets" / "style" / "starry_night.jpg"


def _images(size: int):
    content = resize(load_image(CONTENT), size, size)
    style = resize(load_image(STYLE), size, size)
    return content, style


def bench_step(vgg, size: int, repeats: int, with_torch: bool) -> dict:
    cfg = G.GatysConfig()
    content, style = _images(size)
    targets = G.style_targets(vgg, [jnp.asarray(style)], layers=cfg.style_layers, padding=cfg.padding,
                              pool=cfg.pool, blend=[1.0])
    loss_fn = G.make_loss_fn(vgg, jnp.asarray(content)[None], targets, cfg)
    vg = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    x = jnp.asarray(content)[None] * 0.9 + 0.05
    compiled, compile_s, cost = common.compile_seconds(vg, x)
    fns = {"jax": lambda: common.block(compiled(x))}
    if with_torch:
        import torch

        from benchmarks import torch_twins as T

        torch.set_num_threads(jax.local_device_count() and max(1, len(__import__("os").sched_getaffinity(0))))
        tv = T.TorchVGG(vgg, padding=cfg.padding, pool=cfg.pool)
        with torch.no_grad():
            xc = torch.tensor(content.transpose(2, 0, 1)[None].copy())
            xs = torch.tensor(style.transpose(2, 0, 1)[None].copy())
            ct = tv.features(xc, cfg.content_layers)
            st = {k: T.gram(v) for k, v in tv.features(xs, cfg.style_layers).items()}
        run = T.gatys_value_and_grad(tv, ct, st, G.layer_weights(cfg.style_layers), cfg.content_weight,
                                     cfg.style_weight)
        xt = torch.tensor(np.asarray(x).transpose(0, 3, 1, 2).copy())
        # Same objective, same value: a parity check before timing.
        lj = float(compiled(x)[0][0])
        lt = float(run(xt)[0])
        assert abs(lj - lt) / abs(lj) < 1e-3, (lj, lt)
        fns["torch"] = lambda: run(xt)
    times = common.timed_alternating(fns, repeats=repeats)
    peak = common.matmul_peak_gflops()
    row = {"size": size, "compile_s": compile_s, "gflop": cost["flops"] / 1e9}
    for name, samples in times.items():
        s = common.summary(samples)
        row[f"{name}_median_s"] = s["median_s"]
        row[f"{name}_iqr_s"] = s["iqr_s"]
    row["jax_gflops"] = row["gflop"] / row["jax_median_s"]
    row["peak_gflops"] = peak
    row["jax_pct_peak"] = 100 * row["jax_gflops"] / peak
    if "torch_median_s" in row:
        row["torch_over_jax"] = row["torch_median_s"] / row["jax_median_s"]
    return row


def bench_optimizers(vgg, size: int, steps: int) -> list[dict]:
    """Per-step wall time of complete optimiser steps (after compile), same objective."""
    import time

    cfg = G.GatysConfig()
    content, style = _images(size)
    targets = G.style_targets(vgg, [jnp.asarray(style)], layers=cfg.style_layers, padding=cfg.padding,
                              pool=cfg.pool, blend=[1.0])
    objective = G.build_objective(vgg, jnp.asarray(content)[None], targets, cfg)
    loss_fn = lambda y: G.objective_loss(y, vgg, objective, cfg)  # noqa: E731
    rows = []
    for name in ("ours_lbfgs", "adam", "optax_lbfgs_zoom"):
        x = jnp.asarray(content)[None]
        if name == "optax_lbfgs_zoom":
            tx = optax.lbfgs()
            value_fn = lambda y: loss_fn(y)[0]  # noqa: E731
            vg = optax.value_and_grad_from_state(value_fn)

            @jax.jit
            def step(y, state):
                value, grad = vg(y, state=state)
                updates, state = tx.update(grad, state, y, value=value, grad=grad, value_fn=value_fn)
                return jnp.clip(optax.apply_updates(y, updates), 0, 1), state, value
        else:
            config = G.GatysConfig(optimizer="adam" if name == "adam" else "lbfgs")
            tx = G._optimizer(config)

            def step(y, state, config=config):
                y, state, total, _ = G.optimizer_step(y, state, vgg, objective, config=config)
                return y, state, total
        state = tx.init(x)
        x, state, value = step(x, state)
        common.block(x)
        t0 = time.perf_counter()
        for _ in range(steps):
            x, state, value = step(x, state)
        common.block(x)
        rows.append({"optimizer": name, "size": size, "s_per_step": (time.perf_counter() - t0) / steps,
                     f"loss_after_{steps + 1}": float(value)})
    return rows


def main(argv=None) -> int:
    reuse_freed_memory()  # as the nst-jax command does; see nst_jax.host_memory
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", default=None)
    ap.add_argument("--optimizers", action="store_true", help="also time full optimiser steps (L-BFGS variants, Adam)")
    ap.add_argument("--optimizer-steps", type=int, default=10)
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401

        with_torch = True
    except ImportError:
        with_torch = False
        print("torch not installed (pip install -e .[parity]): JAX only", file=sys.stderr)
    vgg = vgg19.with_winograd(port.load())  # as nst_jax.optimize.gatys runs its steps
    rows = [bench_step(vgg, s, args.repeats, with_torch) for s in args.sizes]
    cols = [("size", "px"), ("jax_median_s", "JAX s"), ("torch_median_s", "PyTorch eager s"),
            ("torch_over_jax", "torch/JAX"), ("gflop", "XLA GFLOP"), ("jax_gflops", "JAX GFLOP/s"),
            ("jax_pct_peak", "% of matmul peak"), ("compile_s", "compile s")]
    print(common.markdown_table(rows, cols))
    payload = {"machine": common.machine(), "gatys_step": rows}
    if args.optimizers:
        opt_rows = bench_optimizers(vgg, 256, args.optimizer_steps)
        print()
        print(common.markdown_table(opt_rows, [(k, k) for k in opt_rows[0]]))
        payload["optimizers"] = opt_rows
    if args.json:
        common.write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
