"""The command line end to end on real files, and every bad-input case it must explain."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nst_jax import cli
from nst_jax.image import load_image
from tests.conftest import ASSETS

CONTENT = ASSETS / "content" / "dog_kira.jpg"
STYLE = ASSETS / "style" / "starry_night.jpg"
TINY = ["--size", "48", "--steps", "3"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _weights(vgg_params):
    """Make sure the weights are ported before timing-sensitive CLI runs."""


def test_stylize_end_to_end(tmp_path, capsys):
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "stylize", CONTENT, "-s", STYLE, "-o", out, *TINY, "--save-every", "2")
    assert code == 0, err
    image = load_image(out)
    assert max(image.shape[:2]) == 48
    assert (tmp_path / "out_loss.png").is_file() and (tmp_path / "out_step2.png").is_file()
    assert "wrote" in err and "step" in err  # progress bar and summary go to stderr
    # Refuses to overwrite, then does with --overwrite.
    code, _, err = run(capsys, "stylize", CONTENT, "-s", STYLE, "-o", out, *TINY)
    assert code == 2 and "--overwrite" in err
    code, _, err = run(capsys, "stylize", CONTENT, "-s", STYLE, "-o", out, *TINY, "--overwrite")
    assert code == 0, err


def test_folder_of_contents_with_two_styles_and_masks(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(CONTENT, folder / "a.jpg")
    Image.open(CONTENT).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "b.png")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    outdir = tmp_path / "results"
    code, _, err = run(capsys, "stylize", folder, "-s", STYLE, ASSETS / "style" / "great_wave.jpg",
                       "--style-blend", "0.7", "0.3", "-o", outdir, *TINY)
    assert code == 0, err
    assert sorted(p.name for p in outdir.glob("*.png") if "_loss" not in p.name) == ["a.png", "b.png"]
    mask = ASSETS / "content" / "dog_kira_mask.png"
    inverse = tmp_path / "inverse.png"
    Image.fromarray(255 - np.asarray(Image.open(mask).convert("L"))).save(inverse)
    code, _, err = run(capsys, "stylize", CONTENT, "-s", STYLE, ASSETS / "style" / "great_wave.jpg",
                       "--mask", mask, inverse, "-o", tmp_path / "masked.png", *TINY)
    assert code == 0, err


def _corrupt(tmp_path):
    data = CONTENT.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    return tmp_path / "cut.jpg"


@pytest.mark.parametrize("make_args, message", [
    (lambda t: ["stylize", t / "missing.jpg", "-s", STYLE, "-o", t / "o.png"], "content not found"),
    (lambda t: ["stylize", CONTENT, "-s", t / "missing.jpg", "-o", t / "o.png"], "style image not found"),
    (lambda t: ["stylize", CONTENT, "-s", (t / "n.jpg", (t / "n.jpg").write_text("text"))[0], "-o", t / "o.png"],
     "not an image file"),
    (lambda t: ["stylize", _corrupt(t), "-s", STYLE, "-o", t / "o.png"], "truncated or corrupt"),
    (lambda t: ["stylize", CONTENT, "-s", STYLE, "-o", t / "o.png", "--method", "magic"], "unknown method"),
    (lambda t: ["stylize", CONTENT, "-s", STYLE, "-o", t / "o.png", "--style-layers", "relu1_1,relu6_1"],
     "unknown VGG19 layer"),
    (lambda t: ["stylize", CONTENT, "-s", STYLE, "-o", t / "o.png", "--alpha", "1.5"], r"\[0, 1\]"),
    (lambda t: ["stylize", CONTENT, "-s", STYLE, "-o", t / "o.png", "--mask", ASSETS / "content" / "dog_kira_mask.png",
                ASSETS / "content" / "dog_kira_mask.png"], "one mask per style"),
    (lambda t: ["stylize", CONTENT, "-s", STYLE, "-o", t / "o.png", "--mask", STYLE], "aspect ratios differ"),
    (lambda t: ["stylize", CONTENT, "-s", STYLE, ASSETS / "style" / "great_wave.jpg", "-o", t / "o.png",
                "--style-blend", "0.9", "0.3"], "summing to 1"),
    (lambda t: ["stylize", CONTENT, "-s", STYLE, "-o", t / "o.png", "--size", "12"], "at least 16 px"),
    (lambda t: ["stylize", CONTENT, "-s", STYLE, "-o", t / "o.png", "--size", "20000", "--steps", "1"],
     "GB of memory"),
    (lambda t: ["stylize", t, "-s", STYLE, "-o", t / "o"], "no image files"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, make_args, message):
    code, _, err = run(capsys, *make_args(tmp_path))
    assert code == 2
    assert message in err or __import__("re").search(message, err), err
    assert "Traceback" not in err and err.count("\n") <= 3
    assert not (tmp_path / "o.png").exists()


def test_weights_commands(capsys):
    code, out, err = run(capsys, "weights", "verify")
    assert code == 0 and "matches its digest" in out
    code, out, _ = run(capsys, "weights", "info")
    assert code == 0 and '"num_params": 20024384' in out


def test_console_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "nst_jax", "stylize", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "--style-blend" in result.stdout and "--color" in result.stdout
