"""Peak memory of one real ``stylize`` call: ``python benchmarks/peak_memory.py``.

``runtime.py`` reports XLA's compile-time ``memory_analysis()``; on the CPU backend that figure
misses what the convolution thunks allocate themselves (in a one-off check, a zero-padded VGG19
encoder at 2048 px reported 0.1 GB of temporaries and peaked at 2.8 GB of RSS). This script runs each method once per content size
in a fresh subprocess (random images, the shipped checkpoints) and reports the process's peak
resident memory above what it held after loading the parameters, compile included.

    python benchmarks/peak_memory.py                                  # sanet at 1024 and 2048 px
    python benchmarks/peak_memory.py --methods sanet adain --sizes 2048 --style 512
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
import numpy as np
from nst_jax import stylize
from nst_jax.stylize import METHODS
method, size, style_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
content = rng.random((size, size, 3), np.float32)
style = rng.random((style_size, style_size, 3), np.float32)
params = METHODS[method].load_params()
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
t0 = time.perf_counter()
out = np.asarray(stylize(content, style, method=method, params=params))
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
assert out.shape == content.shape and np.isfinite(out).all()
print(json.dumps({"method": method, "content_px": size, "style_px": style_size, "peak_rss_gb": round(peak, 2),
                  "after_load_gb": round(loaded, 2), "run_gb": round(peak - loaded, 2),
                  "seconds_with_compile": round(seconds, 1)}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["sanet"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048], help="content sizes (square, px)")
    ap.add_argument("--style", type=int, default=512, help="style size (square, px)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    rows = []
    print("| method | content px | style px | peak RSS GB | of which the run GB | s (with compile) |")
    print("|---|---|---|---|---|---|")
    for method in args.methods:
        for size in args.sizes:
            proc = subprocess.run([sys.executable, "-c", _CHILD, method, str(size), str(args.style)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"| {method} | {size} | {args.style} | failed: {proc.stderr.strip().splitlines()[-1:]} | | |")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"| {method} | {size} | {args.style} | {row['peak_rss_gb']} | {row['run_gb']} | "
                  f"{row['seconds_with_compile']} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
