"""Image I/O: every kind of file a user may hand us is normalised or refused with a clear message."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nst_jax.errors import InputError
from nst_jax.image import (check_fits_in_memory, contact_sheet, load_image, load_mask, pad_to_multiple,
                           save_image)


def _rgb(h=24, w=32):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "I;16"])
def test_modes_are_converted_to_rgb(tmp_path, mode):
    img = Image.fromarray(_rgb())
    if mode == "I;16":
        arr16 = (np.linspace(0, 65535, 24 * 32).reshape(24, 32)).astype(np.uint16)
        img = Image.fromarray(arr16)
        assert img.mode.startswith("I;16")
    else:
        img = img.convert(mode)
    path = tmp_path / f"x_{mode.replace(';', '')}.{'jpg' if mode == 'CMYK' else 'png'}"
    img.save(path)
    arr = load_image(path)
    assert arr.shape == (24, 32, 3) and arr.dtype == np.float32
    assert 0.0 <= arr.min() and arr.max() <= 1.0
    if mode == "I;16":  # 16-bit range maps to [0, 1], not clipped at 255/65535
        assert arr.max() > 0.99 and 0.4 < arr.mean() < 0.6


def test_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    np.testing.assert_allclose(load_image(tmp_path / "t.png"), 1.0)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(_rgb(20, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "o.jpg", exif=exif)
    assert load_image(tmp_path / "o.jpg").shape == (40, 20, 3)


def test_resize_long_side(tmp_path):
    Image.fromarray(_rgb(60, 90)).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png", size=45).shape == (30, 45, 3)


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "not found"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_text("hello, not an image"), "not an image file"),
    (lambda p: Image.fromarray(_rgb(8, 8)).save(p, format="PNG"), "at least 16 px"),
])
def test_bad_files_are_refused(tmp_path, setup, message):
    path = tmp_path / "in.png"
    setup(path)
    with pytest.raises(InputError, match=message):
        load_image(path, kind="content")


def test_truncated_image_is_refused(tmp_path):
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(tmp_path / "cut.jpg")


def test_masks_resize_but_refuse_other_aspect_ratios(tmp_path):
    Image.fromarray(np.full((30, 45), 255, np.uint8)).save(tmp_path / "m.png")
    assert load_mask(tmp_path / "m.png", 60, 90).shape == (60, 90)
    with pytest.raises(InputError, match="aspect ratios differ"):
        load_mask(tmp_path / "m.png", 60, 60)


def test_save_is_atomic_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "out.png"
    save_image(path, np.zeros((16, 16, 3), np.float32))
    with pytest.raises(InputError, match="--overwrite"):
        save_image(path, np.ones((16, 16, 3), np.float32), overwrite=False)
    assert load_image(path).max() == 0.0
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary files left behind


def test_memory_limit_is_explained():
    with pytest.raises(InputError, match="long side of about"):
        check_fits_in_memory(8000, 8000, bytes_per_pixel=5000, what="Gatys optimisation", available=8e9)
    check_fits_in_memory(256, 256, bytes_per_pixel=5000, what="Gatys optimisation", available=8e9)


def test_pad_to_multiple_round_trip():
    x = np.random.default_rng(0).random((1, 61, 97, 3)).astype(np.float32)
    padded, (h, w) = pad_to_multiple(x, 16)
    assert padded.shape == (1, 64, 112, 3) and (h, w) == (61, 97)
    np.testing.assert_array_equal(np.asarray(padded)[:, :h, :w], x)


def test_contact_sheet_has_cells():
    sheet = contact_sheet([[np.zeros((20, 30, 3)), np.ones((30, 20, 3))], [None, np.ones((10, 10, 3))]],
                          row_labels=["a", "b"], col_labels=["x", "y"], cell=64)
    assert sheet.ndim == 3 and sheet.shape[2] == 3 and sheet.shape[0] >= 128 and sheet.shape[1] >= 128


def test_contact_sheet_long_row_labels_are_not_cut_off():
    # quality.py's labels are "photo\n+ painting_name": the text must end inside the left margin,
    # so the sheet's first pixel columns stay white (before, long names ran off the left edge).
    label = "grace_hopper\n+ henri_matisse_woman_with_hat"
    sheet = contact_sheet([[np.zeros((32, 32, 3))]], row_labels=[label], cell=64)
    assert np.all(sheet[:, :4] > 0.99)
    ink = np.where(np.any(sheet[:, :-64] < 0.5, axis=(0, 2)))[0]
    assert ink.size and ink[0] > 4  # the label was drawn, and starts inside the sheet


def test_loaded_shape_reads_the_header_and_agrees_with_load_image(tmp_path):
    """The CLI's early memory check sizes the output from the header alone: it must be the shape
    load_image produces (odd sizes, both orientations), and None for a file that is no image."""
    from nst_jax.image import loaded_shape

    for hw in ((97, 61), (61, 97), (40, 40)):
        path = tmp_path / f"{hw[0]}x{hw[1]}.png"
        Image.fromarray(np.zeros((*hw, 3), np.uint8)).save(path)
        for size in (None, 33, 500):
            assert loaded_shape(path, size=size) == load_image(path, size=size).shape[:2]
    # A camera JPEG stored landscape with EXIF "rotate 90": load_image turns it upright (portrait).
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = tmp_path / "rotated.jpg"
    Image.fromarray(np.zeros((40, 70, 3), np.uint8)).save(rotated, exif=exif)
    for size in (None, 33):
        assert loaded_shape(rotated, size=size) == load_image(rotated, size=size).shape[:2]
    assert loaded_shape(rotated) == (70, 40)
    (tmp_path / "not.png").write_text("no image")
    assert loaded_shape(tmp_path / "not.png", size=64) is None
