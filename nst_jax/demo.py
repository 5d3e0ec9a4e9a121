"""``nst-jax demo``: every available method on the bundled example images, plus a contact sheet.

Rows are (content, style) pairs, columns are the content, the style and one column per method.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
PAIRS = (("dog_kira.jpg", "starry_night.jpg"), ("astronaut.jpg", "the_scream.jpg"),
         ("lake_sherburne.jpg", "great_wave.jpg"))


def add_cli(sub) -> None:
    p = sub.add_parser("demo", help="run every method on the bundled example images and write a contact sheet",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-o", "--output", default="out/demo", help="folder for the results")
    p.add_argument("--size", type=int, default=192, help="long side of contents and styles")
    p.add_argument("--steps", type=int, default=80, help="Gatys optimisation steps")
    p.add_argument("--methods", nargs="+", default=None, help="methods to run (default: all available)")
    p.set_defaults(handler=run)


def run(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from nst_jax.errors import CheckpointError, InputError
    from nst_jax.image import contact_sheet, load_image, save_image
    from nst_jax.stylize import METHODS, stylize

    methods = args.methods or list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"unknown method(s) {unknown}; available: {', '.join(METHODS)}")
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    params, skipped = {}, []
    for m in methods:
        try:
            params[m] = METHODS[m].load_params()
        except CheckpointError as err:
            if args.methods:  # asked for by name: say exactly what is missing
                raise
            skipped.append(f"{m} ({str(err).splitlines()[0]})")
    methods = [m for m in methods if m in params]
    for line in skipped:
        print(f"skipping {line}", file=sys.stderr)
    rows, labels, timings = [], [], {m: [] for m in methods}
    bar = tqdm(total=len(PAIRS) * len(methods), desc="demo", unit="image", file=sys.stderr)
    for content_name, style_name in PAIRS:
        content = load_image(ASSETS / "content" / content_name, size=args.size)
        style = load_image(ASSETS / "style" / style_name, size=args.size)
        row = [content, style]
        for m in methods:
            bar.set_postfix(method=m, image=content_name, refresh=True)
            options = {"steps": args.steps} if m == "gatys" else {}
            t0 = time.perf_counter()
            image = stylize(content, style, method=m, params=params[m], **options)
            timings[m].append(time.perf_counter() - t0)
            save_image(out / f"{Path(content_name).stem}__{Path(style_name).stem}__{m}.png", image)
            row.append(image)
            bar.update(1)
        rows.append(row)
        labels.append(f"{Path(content_name).stem}\n+ {Path(style_name).stem}")
    bar.close()
    sheet = contact_sheet(rows, row_labels=labels, col_labels=["content", "style", *methods], cell=args.size,
                          title=f"nst_jax demo ({args.size} px)")
    sheet_path = save_image(out / "contact_sheet.png", sheet)
    for m in methods:
        print(f"{m:>12}: median {np.median(timings[m]):.2f} s per image (first call includes compilation)")
    print(f"results in {out}/, contact sheet: {sheet_path}")
    return 0
