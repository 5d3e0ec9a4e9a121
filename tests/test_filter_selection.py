"""Object-specific transfer by filter selection (seed 001): automatic selection and localisation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from nst_jax import filter_selection as fs
from nst_jax.errors import InputError
from nst_jax.image import load_image, load_mask, save_image
from nst_jax.optimize import GatysConfig

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
CONTENT = SHARED / "content"
SIZE = 96
NEGATIVES = ("lake_sherburne", "singapore_skyline", "coffee", "rocket", "summer_palace", "astronaut")


@pytest.fixture(scope="module")
def dog():
    content = load_image(CONTENT / "dog_kira.jpg", size=SIZE)
    mask = load_mask(SHARED / "masks" / "dog_kira_mask.png", *content.shape[:2])
    return content, mask


@pytest.fixture(scope="module")
def mask_selection(vgg_params, dog):
    return fs.select_filters_from_mask(vgg_params, *dog)


def _random_means(ratios: dict, sizes: dict, draws: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.array([np.concatenate([ratios[layer][rng.choice(ratios[layer].size, k, replace=False)]
                                     for layer, k in sizes.items()]).mean() for _ in range(draws)])


def test_mask_selection_beats_random_filters(mask_selection):
    sel = mask_selection
    assert {layer: len(c) for layer, c in sel.channels.items()} == fs.SEED001_COUNTS
    for layer in sel.layers:
        chosen = sel.ratios[layer][list(sel.channels[layer])]
        others = np.delete(sel.ratios[layer], list(sel.channels[layer]))
        assert chosen.min() >= others.max()  # the top of the ranking
        assert chosen.mean() > 4 * np.median(sel.ratios[layer])
        # Best first.
        assert list(chosen) == sorted(chosen, reverse=True)
    pooled = np.concatenate([sel.ratios[layer][list(sel.channels[layer])] for layer in sel.layers])
    assert pooled.mean() > _random_means(sel.ratios, fs.SEED001_COUNTS).max()
    report = sel.report()
    assert "relu4_1 [6]" in report and "relu5_1 [16]" in report
    assert json.loads(json.dumps(sel.to_dict()))["channels"]["relu4_1"] == list(sel.channels["relu4_1"])


def test_mask_selection_options(vgg_params, dog):
    content, mask = dog
    sel = fs.select_filters_from_mask(vgg_params, content, mask, counts="relu3_1=4,relu5_1=2", min_ratio=3.0)
    assert sel.layers == ("relu3_1", "relu5_1")
    assert 1 <= len(sel.channels["relu3_1"]) <= 4 and len(sel.channels["relu5_1"]) <= 2
    assert all(sel.ratios["relu5_1"][i] >= 3.0 for i in sel.channels["relu5_1"])
    with pytest.raises(InputError, match="mask"):
        fs.select_filters_from_mask(vgg_params, content, mask[:-4])
    with pytest.raises(InputError, match="covers"):
        fs.select_filters_from_mask(vgg_params, content, np.zeros_like(mask))
    for bad in ("relu4_1", "conv4_1=3", "relu4_1=0", "relu9_1=2", "relu4_1=x"):
        with pytest.raises(InputError):
            fs.parse_counts(bad)


def test_example_selection_transfers_to_a_held_out_dog(vgg_params, dog, mask_selection):
    """Filters chosen from another dog (vs. non-animal photos) fire inside Kira more than random ones."""
    rusty = load_image(CONTENT / "dog_rusty.jpg", size=SIZE)
    positives = [rusty, rusty[:, ::-1].copy()]
    negatives = [load_image(CONTENT / f"{n}.jpg", size=SIZE) for n in NEGATIVES]
    sel = fs.select_filters_from_examples(vgg_params, positives, negatives, content=dog[0])
    assert sel.source == "examples"
    peaks_pos = fs.filter_peaks(vgg_params, positives, sel.layers)
    peaks_neg = fs.filter_peaks(vgg_params, negatives, sel.layers)
    for layer in sel.layers:
        idx = list(sel.channels[layer])
        assert peaks_pos[layer][:, idx].mean() > 1.2 * peaks_neg[layer][:, idx].mean()
    # Held out: inside/outside ratio on dog_kira's mask of the example-selected filters.
    held_out = np.concatenate([mask_selection.ratios[layer][list(sel.channels[layer])] for layer in sel.layers])
    random = _random_means(mask_selection.ratios, {layer: len(c) for layer, c in sel.channels.items()})
    assert held_out.mean() > np.quantile(random, 0.9)


def test_object_gatys_styles_the_object_not_the_background(vgg_params, dog, mask_selection):
    content, mask = dog
    style = load_image(SHARED / "style" / "starry_night.jpg", size=SIZE)
    config = fs.seed001_config(*content.shape[:2], steps=20)
    out, history, sel = fs.object_gatys(vgg_params, content, [style], selection=mask_selection, config=config)
    assert sel is mask_selection and out.shape == content.shape
    assert history["style"][-1] < 0.5 * history["style"][0]
    change = np.abs(out - content).mean(-1)
    inside, outside = change[mask > 0.5].mean(), change[mask < 0.5].mean()
    assert inside > 2.0 * outside, (inside, outside)
    assert inside > 0.01


def test_seed001_config_translation():
    cfg = fs.SEED001_CONFIG
    assert isinstance(cfg, GatysConfig)
    assert cfg.style_layers == ("relu4_1", "relu5_1") and cfg.steps == 1000 and cfg.optimizer == "lbfgs"
    assert cfg.content_weight == 1.0
    assert cfg.style_weight == pytest.approx(0.0524 / 96)  # k = sqrt(6 * 16)
    assert cfg.tv_weight == pytest.approx(19.5 * 341 * 512)
    small = fs.seed001_config(64, 96, counts={"relu5_1": 4}, steps=5)
    assert small.style_layers == ("relu5_1",) and small.steps == 5
    assert small.style_weight == pytest.approx(0.0524 / 16) and small.tv_weight == pytest.approx(19.5 * 64 * 96)


def _stylize_parser():
    parser = argparse.ArgumentParser()
    fs.add_stylize_arguments(parser)
    return parser


def test_stylize_options_from_object_mask(vgg_params, dog, tmp_path):
    content, mask = dog
    save_image(tmp_path / "m.png", np.repeat(mask[..., None], 3, -1))
    parser = _stylize_parser()
    assert fs.stylize_options(parser.parse_args([]), vgg_params, content, GatysConfig()) == {}
    messages = []
    args = parser.parse_args(["--object-mask", str(tmp_path / "m.png"), "--object-filters", "relu4_1=3,relu5_1=5"])
    opts = fs.stylize_options(args, vgg_params, content, GatysConfig(steps=7), report=messages.append)
    assert opts["config"].style_layers == ("relu4_1", "relu5_1") and opts["config"].steps == 7
    assert opts["config"].style_weight == pytest.approx(0.0524 / 15)
    assert [len(v) for v in opts["style_channels"].values()] == [3, 5]
    assert "relu5_1 [5]" in messages[0]
    args = parser.parse_args(["--object-mask", str(tmp_path / "m.png"), "--object-preset", "none"])
    opts = fs.stylize_options(args, vgg_params, content, GatysConfig(style_weight=0.3), report=messages.append)
    assert opts["config"].style_weight == 0.3
    with pytest.raises(InputError, match="exclusive"):
        fs.stylize_options(parser.parse_args(["--object-mask", "m.png", "--object-examples", "x"]),
                           vgg_params, content, GatysConfig())
    with pytest.raises(InputError, match="negative"):
        fs.stylize_options(parser.parse_args(["--object-examples", str(tmp_path)]), vgg_params, content, GatysConfig())


def test_filters_command_renders_top_images(vgg_params, dog, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("dog_kira", "dog_rusty", "coffee"):
        save_image(folder / f"{name}.png", load_image(CONTENT / f"{name}.jpg", size=64))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    fs.add_cli(sub)
    out, js = tmp_path / "f.png", tmp_path / "f.json"
    args = parser.parse_args(["filters", str(folder), "--layer", "relu5_1", "--index", "3", "17", "--top", "2",
                              "--size", "64", "--cell", "64", "-o", str(out), "--json", str(js)])
    assert args.handler(args, vgg_params) == 0
    assert out.is_file()
    rankings = json.loads(js.read_text())["rankings"]
    assert set(rankings) == {"relu5_1:3", "relu5_1:17"} and all(len(v) == 2 for v in rankings.values())
    peaks = [r["peak"] for r in rankings["relu5_1:3"]]
    assert peaks == sorted(peaks, reverse=True)
    # Selection by object mask, then rendering of the selected filters.
    mask_path = tmp_path / "mask.png"
    save_image(mask_path, np.repeat(dog[1][..., None], 3, -1))
    args = parser.parse_args(["filters", str(folder), "--content", str(CONTENT / "dog_kira.jpg"), "--object-mask",
                              str(mask_path), "--object-filters", "relu5_1=2", "--top", "1", "--size", "96",
                              "--cell", "64", "-o", str(tmp_path / "g.png")])
    assert args.handler(args, vgg_params) == 0
    assert "selected filters (mask" in capsys.readouterr().out
    with pytest.raises(InputError, match="exists"):
        args.handler(args, vgg_params)


def test_top_activations_ranks_by_peak(vgg_params, dog):
    content, _ = dog
    dark = content * 0.2
    res = fs.top_activations(vgg_params, [dark, content], "relu4_1", [0, 5], top=2)
    for per_filter in res:
        peaks = [p for _, p, _ in per_filter]
        assert peaks == sorted(peaks, reverse=True)
        assert per_filter[0][2].ndim == 2
    with pytest.raises(InputError):
        fs.top_activations(vgg_params, [content], "relu4_1", [512])
