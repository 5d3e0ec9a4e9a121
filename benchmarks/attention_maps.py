"""Attention maps of the shipped AAMS/CBAM modules on the bundled contents, as one picture.

    python benchmarks/attention_maps.py [--methods aams cbam] [--checkpoint METHOD=PATH ...]

Rows are the bundled content photos, columns the photo and each method's saliency
(:func:`nst_jax.attention_apps.attention_map`) as a heat map over it (bright = attended). Writes
``benchmarks/results/attention_maps.png``. ``--checkpoint aams=runs/x.npz`` shows a candidate export
in place of the shipped one (a column per file, to judge an attention stage before shipping it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nst_jax.attention_apps import ATTENTION_METHODS, attention_map, heat_overlay, load_attention_params
from nst_jax.demo import ASSETS
from nst_jax.image import contact_sheet, load_image, save_image

RESULTS = Path(__file__).resolve().parent / "results"
CONTENTS = ("dog_kira.jpg", "astronaut.jpg", "lake_sherburne.jpg")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["aams", "cbam"], choices=ATTENTION_METHODS)
    parser.add_argument("--checkpoint", nargs="+", default=[], metavar="METHOD=PATH",
                        help="extra columns: METHOD=PATH of a candidate export")
    parser.add_argument("--size", type=int, default=256, help="long side of the photos")
    parser.add_argument("-o", "--output", default=str(RESULTS / "attention_maps.png"))
    args = parser.parse_args(argv)

    columns = [(m, None, m) for m in args.methods]
    for item in args.checkpoint:
        method, sep, path = item.partition("=")
        if not sep or method not in ATTENTION_METHODS:
            parser.error(f"--checkpoint wants METHOD=PATH with METHOD in {ATTENTION_METHODS}, got {item!r}")
        columns.append((method, path, f"{method}: {Path(path).stem}"))
    params = [load_attention_params(method, path) for method, path, _ in columns]

    rows = []
    for name in CONTENTS:
        photo = load_image(ASSETS / "content" / name, size=args.size)
        maps = [attention_map(p, photo, method=method) for p, (method, _, _) in zip(params, columns)]
        rows.append([photo, *(heat_overlay(photo, m) for m in maps)])
    sheet = contact_sheet(rows, row_labels=[Path(n).stem for n in CONTENTS],
                          col_labels=["photo", *(label for _, _, label in columns)], cell=args.size,
                          title="attention maps (bright = attended)")
    print(f"wrote {save_image(args.output, sheet)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
