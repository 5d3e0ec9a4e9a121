"""Quality of every method with its shipped checkpoint: ``python benchmarks/quality.py``.

Two measurements, on images the checkpoints never saw (``../shared/images``; training used
``../shared/train_images``):

1. **Stylization fidelity** per method over (content, style) pairs, with :func:`nst_jax.metrics.fidelity`
   (the independent zero-padded ImageNet VGG19 of ``docs/MEASUREMENTS.md`` §6):
   * style ratio: mean/std distance to the style over relu1_1..relu5_1, divided by the unstylized
     content's (1 = not stylized, lower = more stylized); Gram ratio: the same with Gram matrices;
   * content ratio: distance of the mean-variance-normalised relu4_1 features to the content's,
     divided by the style image's (0 = the content's structure, 1 = as far as the painting).
   Gatys is the reference row; the unstylized content is the baseline (style 1, content 0).
2. **Reconstruction** PSNR/SSIM (``dm_pix``) of the reconstruction-trained decoders (WCT levels,
   Style-Swap inverse net, Avatar-Net, AAMS, CBAM): decode the photo's own features.

Writes a Markdown table, JSON and a contact sheet (rows = pairs, columns = methods) to ``--out``.
The checkpoints' training budget (from their cards) is listed beside the papers'.

    python benchmarks/quality.py                         # 6 pairs at 256 px, Gatys 100 steps
    python benchmarks/quality.py --pairs 2 --size 128 --methods adain sanet --gatys-steps 0
    python benchmarks/quality.py --methods avatar --gatys-steps 0 --reconstruction avatar \
        --checkpoint avatar=runs/avatar_candidate.npz --out runs/quality_candidate   # before shipping it
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, markdown_table  # noqa: E402
from nst_jax.host_memory import reuse_freed_memory  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
# Deterministic held-out pairs: contents and styles the demo does not use come first.
PAIRS = (("coffee.jpg", "kandinsky_composition_vii.jpg"), ("osprey.jpg", "hoitsu_cherry_screen.jpg"),
         ("grace_hopper.jpg", "matisse_woman_with_hat.jpg"), ("summer_palace.jpg", "seurat_grande_jatte.jpg"),
         ("cat_chelsea.jpg", "tiffany_stained_glass.jpg"), ("singapore_skyline.jpg", "turner_shipwreck.jpg"),
         ("otters.jpg", "water_lilies.jpg"), ("rocket.jpg", "piranesi_prison_etching.jpg"))
RECONSTRUCTION = ("adain", "wct_relu1_1", "wct_relu2_1", "wct_relu3_1", "wct_relu4_1", "wct_relu5_1", "style_swap",
                  "avatar", "aams", "cbam_conv3_1", "cbam_conv4_1", "cbam_conv5_1")
# (AdaIN's decoder is trained on stylization, not reconstruction; its row shows how much of a photo
# it can still draw.)
# The papers' (or their reference code's) training budgets, for the table beside ours.
PAPER_BUDGET = {
    "adain": "160k steps x 8 @ 256 px (Titan X, ~1 week)",
    "sanet": "160k x 5 @ 256 px (released weights: 500k)",
    "sanet_r41": "160k x 5 @ 256 px",
    "wct": "COCO reconstruction (steps not stated)",
    "style_swap": "80k x (2+2) @ 256 px",
    "avatar": "120k x 8 @ 256 px",
    "aams": "80k x 8 @ 256 px",
    "cbam": "10k steps (seed 000)",
}


def budget(card: dict, stages: list[dict] | None = None) -> str:
    """``steps x batch @ crop (CPU, minutes)`` of a checkpoint; with the manifest's ``stages`` (a
    checkpoint trained on from an earlier export of itself), each stage's steps and the total time."""
    stages = stages or [card]
    minutes = sum(st.get("training_time_s") or 0 for st in stages) / 60
    steps = " + ".join(f"{st['steps']} x {st['batch_size']}" for st in stages)
    return f"{steps} @ {card['image_size']['crop']} px (CPU, {minutes:.0f} min)"


def reconstructor(name: str, vgg, path: str | None = None):
    """``image -> image``: decode an image's own features with checkpoint ``name``'s module (rebuilt
    from its card; loaded once, jitted once per image size); ``path`` replaces the shipped file."""
    import jax  # pylint: disable=import-outside-toplevel
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

    from nst_jax import checkpoints  # pylint: disable=import-outside-toplevel
    from nst_jax.methods.common import ENCODER, encode  # pylint: disable=import-outside-toplevel
    from nst_jax.modules.attention import AttentionAutoencoder  # pylint: disable=import-outside-toplevel

    params, card = checkpoints.load(name, path=path, encoder=ENCODER)
    (tree_name, entry), = card["modules"].items()
    module_path, _, cls_name = entry["class"].rpartition(".")
    module = getattr(importlib.import_module(module_path), cls_name)(**entry["kwargs"])
    variables = {"params": params[tree_name]}

    @jax.jit
    def decode(x):
        if isinstance(module, AttentionAutoencoder):
            return module.apply(variables, encode(vgg, x, module.input_layers))[0]
        feats = encode(vgg, x, (module.input_layer, *module.skip_layers))
        skips = {k: feats[k] for k in module.skip_layers}
        return module.apply(variables, feats[module.input_layer], *((skips,) if skips else ()))

    return lambda image: np.clip(np.asarray(decode(jnp.asarray(image)[None])[0]), 0.0, 1.0)


def psnr_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    import dm_pix  # pylint: disable=import-outside-toplevel

    return float(dm_pix.psnr(a, b)), float(dm_pix.ssim(a, b))


def _name_value_pairs(parser: argparse.ArgumentParser, option: str, specs: list[str], known: set[str],
                      meta: str, what: str) -> list[tuple[str, str]]:
    """``["NAME=VALUE", ...]`` -> ``[(NAME, VALUE), ...]``; a missing ``=``/value or an unknown name is a
    usage error."""
    pairs = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        if not sep or not value:
            parser.error(f"{option} takes {meta}, got {spec!r}")
        if name not in known:
            parser.error(f"{option}: no {what} named {name!r}; known: {', '.join(sorted(known))}")
        pairs.append((name, value))
    return pairs


def parse_overrides(parser: argparse.ArgumentParser, specs: list[str]) -> dict[str, str]:
    """``["NAME=FILE", ...]`` -> ``{NAME: FILE}``; unknown names and missing files are usage errors."""
    from nst_jax.methods import FEEDFORWARD  # pylint: disable=import-outside-toplevel

    known = {ck for spec in FEEDFORWARD.values() for ck in spec.checkpoints}
    overrides = {}
    for name, file in _name_value_pairs(parser, "--checkpoint", specs, known, "NAME=FILE", "checkpoint"):
        if not Path(file).is_file():
            parser.error(f"--checkpoint {name}: no file {file}")
        overrides[name] = file
    return overrides


def parse_alphas(parser: argparse.ArgumentParser, specs: list[str]) -> dict[str, float]:
    """``["METHOD=VALUE", ...]`` -> ``{METHOD: VALUE}``; unknown methods and values outside [0, 1] are
    usage errors."""
    from nst_jax.errors import InputError  # pylint: disable=import-outside-toplevel
    from nst_jax.methods import FEEDFORWARD  # pylint: disable=import-outside-toplevel
    from nst_jax.methods.common import check_alpha  # pylint: disable=import-outside-toplevel

    alphas = {}
    for name, value in _name_value_pairs(parser, "--alpha", specs, set(FEEDFORWARD), "METHOD=VALUE",
                                         "feed-forward method"):
        try:
            alphas[name] = check_alpha(value, f"--alpha {name}")
        except InputError as err:  # a number outside [0, 1] (InputError is a ValueError: first)
            parser.error(str(err))
        except ValueError:
            parser.error(f"--alpha {name}: {value!r} is not a number")
    return alphas


def main(argv: list[str] | None = None) -> int:
    reuse_freed_memory()  # as the nst-jax command does; see nst_jax.host_memory
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(SHARED), help="folder with content/ and style/")
    parser.add_argument("--pairs", type=int, default=6, help=f"number of (content, style) pairs (max {len(PAIRS)})")
    parser.add_argument("--size", type=int, default=256, help="long side of contents and styles")
    parser.add_argument("--methods", nargs="+", default=None, help="methods (default: every one with a checkpoint)")
    parser.add_argument("--gatys-steps", type=int, default=100, help="Gatys reference steps (0 skips it)")
    parser.add_argument("--photos", type=int, default=0, help="held-out photos for reconstruction (0: all)")
    parser.add_argument("--reconstruction", nargs="*", default=list(RECONSTRUCTION), metavar="NAME",
                        help="checkpoints whose reconstruction is measured (default: every shipped one)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="NAME=FILE",
                        help="score FILE (e.g. a --export of train/) in place of the shipped checkpoint NAME; "
                             "repeatable")
    parser.add_argument("--alpha", action="append", default=[], metavar="METHOD=VALUE",
                        help="content-style trade-off of METHOD (default: the method's own default); repeatable")
    parser.add_argument("--out", default="benchmarks/results/quality", help="output folder")
    args = parser.parse_args(argv)
    overrides = parse_overrides(parser, args.checkpoint)
    alphas = parse_alphas(parser, args.alpha)

    from tqdm import tqdm  # pylint: disable=import-outside-toplevel

    from nst_jax import metrics  # pylint: disable=import-outside-toplevel
    from nst_jax.checkpoints import load as load_checkpoint  # pylint: disable=import-outside-toplevel
    from nst_jax.errors import CheckpointError  # pylint: disable=import-outside-toplevel
    from nst_jax.image import contact_sheet, load_image, save_image  # pylint: disable=import-outside-toplevel
    from nst_jax.stylize import METHODS, stylize  # pylint: disable=import-outside-toplevel
    from nst_jax import load_vgg19  # pylint: disable=import-outside-toplevel
    from nst_jax.methods import FEEDFORWARD  # pylint: disable=import-outside-toplevel
    from nst_jax.weights import port  # pylint: disable=import-outside-toplevel

    images = Path(args.images)
    pairs = [(load_image(images / "content" / c, size=args.size), load_image(images / "style" / s, size=args.size),
              f"{Path(c).stem} + {Path(s).stem}") for c, s in PAIRS[: args.pairs]]
    vgg = load_vgg19()
    methods = args.methods or [m for m in METHODS if m != "gatys"]
    params = {}
    for m in methods:
        try:
            params[m] = METHODS[m].load_params(
                paths={ck: f for ck, f in overrides.items() if m in FEEDFORWARD and ck in FEEDFORWARD[m].checkpoints})
        except CheckpointError as err:
            print(f"skipping {m}: {str(err).splitlines()[0]}", file=sys.stderr)
    if args.gatys_steps > 0 and (args.methods is None or "gatys" in args.methods):
        params["gatys"] = METHODS["gatys"].load_params()
    names = list(params)

    rows, sheet_rows = [], []
    outputs: dict[str, list[np.ndarray]] = {m: [] for m in names}
    scores: dict[str, list[dict[str, float]]] = {m: [] for m in names}
    times: dict[str, list[float]] = {m: [] for m in names}
    bar = tqdm(total=len(pairs) * len(names), desc="quality", unit="image", file=sys.stderr)
    for content, style, _ in pairs:
        for m in names:
            bar.set_postfix(method=m, refresh=True)
            options = {"steps": args.gatys_steps} if m == "gatys" else {}
            if m in alphas:
                options["alpha"] = alphas[m]
            t0 = time.perf_counter()
            out = stylize(content, style, method=m, params=params[m], **options)
            times[m].append(time.perf_counter() - t0)
            outputs[m].append(out)
            scores[m].append(metrics.fidelity(vgg, out, content, style))
            bar.update(1)
    bar.close()
    baseline = [metrics.fidelity(vgg, c, c, s) for c, s, _ in pairs]
    rows.append({"method": "content (unstylized)", **metrics.median_fidelity(baseline), "time_s": 0.0,
                 "ours": "-", "paper": "-"})
    shipped = port.manifest().get("checkpoints", {})  # recipe stages of each shipped checkpoint
    for m in names:
        checkpoints = FEEDFORWARD[m].checkpoints if m in FEEDFORWARD else ()
        # Every checkpoint a method loads (WCT: its five decoders), each with its recipe stages.
        ours = "; ".join((f"{ck}: " if len(checkpoints) > 1 else "")
                         + budget(load_checkpoint(ck, path=overrides.get(ck))[1],
                                  None if ck in overrides else shipped.get(ck, {}).get("stages"))
                         for ck in checkpoints)
        family = m.split("_")[0] if m.startswith(("cbam", "wct")) else m
        rows.append({"method": m, **metrics.median_fidelity(scores[m]), "time_s": float(np.median(times[m][1:] or times[m])),
                     "ours": ours or ("%d steps" % args.gatys_steps if m == "gatys" else "-"),
                     "paper": PAPER_BUDGET.get(family, "-")})
    for i, (content, style, label) in enumerate(pairs):
        sheet_rows.append([content, style, *(outputs[m][i] for m in names)])

    recon_rows = []
    photos = sorted((images / "content").glob("*.jpg"))[: args.photos or None]
    for name in args.reconstruction:
        try:
            reconstruct = reconstructor(name, vgg, overrides.get(name))
        except CheckpointError:
            continue
        values = []
        for img in (load_image(p, size=args.size) for p in photos):
            out = reconstruct(img)  # floor pooling: odd sizes lose their last row/column
            values.append(psnr_ssim(out, img[: out.shape[0], : out.shape[1]]))
        recon_rows.append({"checkpoint": name, "psnr_db": float(np.median([v[0] for v in values])),
                           "ssim": float(np.median([v[1] for v in values])), "photos": len(values)})

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sheet = contact_sheet(sheet_rows, row_labels=[p[2].replace(" + ", "\n+ ") for p in pairs],
                          col_labels=["content", "style", *names], cell=min(args.size, 192),
                          title=f"held-out pairs, {args.size} px")
    save_image(out / "contact_sheet.png", sheet)
    table = markdown_table(rows, [("method", "method"), ("style_ratio", "style ratio"), ("gram_ratio", "Gram ratio"),
                                  ("content_ratio", "content ratio"), ("time_s", "s / image"),
                                  ("ours", "our training"), ("paper", "paper's training")])
    recon = markdown_table(recon_rows, [("checkpoint", "checkpoint"), ("psnr_db", "PSNR dB"), ("ssim", "SSIM"),
                                        ("photos", "photos")]) if recon_rows else ""
    text = (f"## Stylization fidelity ({len(pairs)} held-out pairs, {args.size} px, medians)\n\n{table}\n\n"
            f"## Reconstruction of held-out photos ({args.size} px, medians)\n\n{recon}\n")
    (out / "quality.md").write_text(text)
    (out / "quality.json").write_text(json.dumps({"machine": machine(), "size": args.size, "pairs": [p[2] for p in pairs],
                                                  "fidelity": rows, "reconstruction": recon_rows}, indent=2))
    print(text)
    print(f"contact sheet: {out / 'contact_sheet.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
