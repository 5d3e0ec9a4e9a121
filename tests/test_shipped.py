"""The shipped checkpoints (weights/*.npz, trained by ``python -m train.ship``): present, intact,
loadable by every method, and actually stylizing held-out images.

Real VGG19 weights, real checkpoints, a 96 px held-out pair (neither image was in the training set):
each method's output must move the style statistics toward the painting (style ratio < 0.9, where
1 is the unstylized photo) while keeping more of the photo's structure than the painting has
(content ratio < 0.9). Both bounds fail for an untrained decoder (it outputs a blurred grey-ish
image) or a broken pipeline; the measured values at 256 px are in the README.
"""

from __future__ import annotations

import hashlib
import json

import jax
import numpy as np
import pytest

from nst_jax import checkpoints, metrics
from nst_jax.methods import FEEDFORWARD
from nst_jax.methods.common import ENCODER
from nst_jax.stylize import stylize
from tests.conftest import image_at
from train.ship import RECIPE, WEIGHTS

SHARED = WEIGHTS.parent.parent / "shared" / "images"
MANIFEST = json.loads((WEIGHTS / "manifest.json").read_text()).get("checkpoints", {})


@pytest.mark.parametrize("name", [r[0] for r in RECIPE])
def test_checkpoint_is_shipped_intact_and_within_budget(name):
    path = WEIGHTS / f"{name}.npz"
    assert path.is_file(), f"{path} missing: python -m train.ship --only {name}"
    entry = MANIFEST[name]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    params, card = checkpoints.load(name, encoder=ENCODER)
    assert card["steps"] == entry["steps"] > 0 and card["preset"] == "cpu"
    assert all(np.all(np.isfinite(a)) for a in jax.tree_util.tree_leaves(params))


def test_total_size_under_budget():
    total = sum((WEIGHTS / f"{r[0]}.npz").stat().st_size for r in RECIPE if (WEIGHTS / f"{r[0]}.npz").is_file())
    assert total < 85e6, f"shipped checkpoints total {total / 1e6:.1f} MB"


@pytest.fixture(scope="module")
def pair():
    return image_at(SHARED / "content" / "coffee.jpg", 96), image_at(SHARED / "style" / "kandinsky_composition_vii.jpg", 96)


@pytest.mark.parametrize("method", sorted(FEEDFORWARD))
def test_shipped_method_stylizes_a_held_out_pair(method, pair, vgg_params):
    content, style = pair
    params = FEEDFORWARD[method].load_params(vgg=vgg_params)
    out = stylize(content, style, method=method, params=params)
    score = metrics.fidelity(vgg_params, out, content, style)
    assert score["style_ratio"] < 0.9, score
    assert score["content_ratio"] < 0.9, score


def test_quality_benchmark_runs_and_reports(tmp_path):
    """benchmarks/quality.py end to end at a tiny size: the table, JSON and contact sheet; the
    unstylized baseline is style 1 / content 0 by definition; reconstruction PSNR is finite."""
    from benchmarks import quality

    rc = quality.main(["--pairs", "1", "--size", "64", "--methods", "adain", "--gatys-steps", "0",
                       "--photos", "2", "--reconstruction", "wct_relu1_1", "--out", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "quality.json").read_text())
    base, adain = report["fidelity"]
    assert base["style_ratio"] == pytest.approx(1.0) and base["content_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert adain["method"] == "adain" and adain["style_ratio"] < 1.0 and "CPU" in adain["ours"]
    recon = {r["checkpoint"]: r for r in report["reconstruction"]}
    assert recon["wct_relu1_1"]["psnr_db"] > 20 and 0 < recon["wct_relu1_1"]["ssim"] <= 1
    assert (tmp_path / "contact_sheet.png").stat().st_size > 1000 and "| adain |" in (tmp_path / "quality.md").read_text()
