"""Image I/O at the edge of the library: files <-> float32 RGB arrays in [0, 1] (H, W, 3).

Everything a user might hand us is normalised here (EXIF orientation, grayscale, RGBA, palette,
16-bit, CMYK) or refused with a message that names the file and the problem.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from nst_jax.errors import InputError
from nst_jax.params_io import atomic_write

MIN_SIDE = 16  # the encoders pool four times before relu5_1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _to_rgb_float(img: Image.Image, path: str | os.PathLike) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale by the format's range, not by 255.
        arr = np.asarray(img, np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / peak, 0, 1).astype(np.float32)
        return np.repeat(arr[..., None], 3, axis=-1)
    if img.mode == "F":
        arr = np.asarray(img, np.float32)
        arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), 1e-12)
        return np.repeat(arr[..., None], 3, axis=-1)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite transparency on white, the way viewers show it.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), np.float32) / 255.0


def load_image(path: str | os.PathLike, *, size: int | None = None, kind: str = "image") -> np.ndarray:
    """Read an image file as float32 RGB in [0, 1], (H, W, 3).

    Args:
      path: the file.
      size: if given, resize so the **longer** side is ``size`` pixels (aspect kept).
      kind: a word used in error messages ("content", "style", "mask"...).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{kind} image not found: {path}")
    if path.is_dir():
        raise InputError(f"{kind} image {path} is a directory, not an image file")
    try:
        with Image.open(path) as img:
            img.load()
            arr = _to_rgb_float(img, path)
    except UnidentifiedImageError as err:
        raise InputError(f"{kind} image {path} is not an image file Pillow can read") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{kind} image {path} is truncated or corrupt ({err})") from err
    check_image(arr, kind=f"{kind} image {path}")
    if size is not None:
        arr = resize_long_side(arr, size)
    return arr


def check_image(arr: np.ndarray, *, kind: str = "image", min_side: int = MIN_SIDE) -> np.ndarray:
    """Validate a float RGB array: shape (H, W, 3), finite, in [0, 1], at least ``min_side`` px."""
    arr = np.asarray(arr)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise InputError(f"{kind} must be an RGB array of shape (H, W, 3), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputError(f"{kind} must be float RGB in [0, 1], got dtype {arr.dtype} (divide uint8 by 255)")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{kind} contains NaN or infinite values")
    if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise InputError(f"{kind} values must lie in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]")
    if min(arr.shape[:2]) < min_side:
        raise InputError(f"{kind} is {arr.shape[1]}x{arr.shape[0]} px; at least {min_side} px per side "
                         "is needed (VGG19 pools the image four times)")
    return arr


def resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """High-quality resize (Lanczos when shrinking, bicubic when enlarging) of float RGB."""
    if arr.shape[:2] == (height, width):
        return arr
    shrinking = height * width < arr.shape[0] * arr.shape[1]
    img = Image.fromarray(to_uint8(arr))
    img = img.resize((width, height), Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC)
    return np.asarray(img, np.float32) / 255.0


def long_side_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(H, W) after scaling so the longer side is ``size`` px, aspect kept."""
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_long_side(arr: np.ndarray, size: int) -> np.ndarray:
    return resize(arr, *long_side_shape(*arr.shape[:2], size))


def load_mask(path: str | os.PathLike, height: int, width: int) -> np.ndarray:
    """A mask file as float32 (H, W) in [0, 1] at the content's size (luminance; white = 1).

    A mask drawn at another resolution is resized, but its aspect ratio must match the content's
    (within 2%): a mask of a differently shaped image would silently mask the wrong region.
    """
    arr = load_image(path, kind="mask", size=None)
    gray = arr.mean(axis=-1)
    mh, mw = gray.shape
    if abs((mw / mh) / (width / height) - 1) > 0.02:
        raise InputError(f"mask {path} is {mw}x{mh} px but the content is {width}x{height} px: "
                         "the aspect ratios differ, so it cannot be a mask of this content")
    if gray.shape != (height, width):
        img = Image.fromarray(np.round(gray * 255).astype(np.uint8))
        gray = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), np.float32) / 255.0
    return gray


def to_uint8(arr: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.asarray(arr, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def save_image(path: str | os.PathLike, arr: np.ndarray, *, overwrite: bool = True) -> Path:
    """Write float RGB in [0, 1] atomically (format from the suffix; PNG if none is recognised)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass --overwrite to replace it")
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    img = Image.fromarray(to_uint8(arr))

    def write(f):
        buffer = io.BytesIO()
        img.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        f.write(buffer.getvalue())

    return atomic_write(path, write)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a directory")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def contact_sheet(rows: Sequence[Sequence[np.ndarray | None]], *, row_labels: Sequence[str] = (),
                  col_labels: Sequence[str] = (), cell: int = 256, title: str | None = None) -> np.ndarray:
    """Arrange images in a labelled grid (rows x columns), each fitted into a ``cell`` square.

    ``None`` leaves a cell empty. Returns float RGB in [0, 1]. Uses matplotlib for the text.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    dpi = 100
    # Room for the longest label line (9 pt text is ~0.08 in per character), so none is cut off.
    longest = max((len(line) for label in row_labels for line in str(label).splitlines()), default=0)
    label_w = max(1.2, 0.08 * longest + 0.3) if row_labels else 0.0
    fig_w = n_cols * cell / dpi + label_w
    fig_h = n_rows * cell / dpi + (0.35 if col_labels else 0) + (0.45 if title else 0)
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi)
    top = 1 - ((0.35 if col_labels else 0) + (0.45 if title else 0)) / fig_h
    left = label_w / fig_w
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = fig.add_axes([left + c * (1 - left) / n_cols, top - (r + 1) * top / n_rows,
                               (1 - left) / n_cols, top / n_rows])
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            image = row[c] if c < len(row) else None
            if image is not None:
                ax.imshow(np.clip(image, 0, 1), interpolation="lanczos")
            if r == 0 and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=9)
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r], fontsize=9, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.12 / fig_h)
    fig.canvas.draw()
    sheet = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(np.float32) / 255.0
    plt.close(fig)
    return sheet


def pad_to_multiple(x, multiple: int):
    """Reflect-pad NHWC ``x`` at the bottom/right so H and W are multiples of ``multiple``.

    Returns ``(padded, (H, W))``; crop back with ``out[:, :H, :W]`` after the network.
    """
    import jax.numpy as jnp

    h, w = x.shape[1], x.shape[2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        if ph >= h or pw >= w:  # reflect needs pad < size; fall back to edge for tiny inputs
            x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
        else:
            x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")
    return x, (h, w)


def fit_within(arr: np.ndarray, max_pixels: int) -> np.ndarray:
    """Shrink so that H*W <= ``max_pixels`` (aspect kept); a no-op if already small enough."""
    h, w = arr.shape[:2]
    if h * w <= max_pixels:
        return arr
    scale = math.sqrt(max_pixels / (h * w))
    return resize(arr, max(1, int(h * scale)), max(1, int(w * scale)))


def loaded_shape(path: str | os.PathLike, *, size: int | None = None) -> tuple[int, int] | None:
    """(H, W) that :func:`load_image` would return, read from the file header only (no decoding), or
    None when the header is unreadable (``load_image`` then reports why)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            # EXIF orientations 5-8 are quarter turns: load_image's exif_transpose swaps the sides.
            if img.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8):
                w, h = h, w
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None
    return (h, w) if size is None else long_side_shape(h, w, size)


def available_memory_bytes() -> int:
    """Memory this process can still use: MemAvailable (Linux), else physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_fits_in_memory(height: int, width: int, *, bytes_per_pixel: float, what: str,
                         available: int | None = None) -> None:
    """Refuse work whose estimated peak memory exceeds what is available, naming the largest size
    that would fit (measured costs per pixel are given by each method)."""
    available = available_memory_bytes() if available is None else available
    needed = bytes_per_pixel * height * width + 0.5e9
    if needed > available:
        max_side = int(math.sqrt(max(available - 0.5e9, 0) / bytes_per_pixel) * max(height, width)
                       / math.sqrt(height * width))
        raise InputError(
            f"{what} at {width}x{height} px needs about {needed / 1e9:.1f} GB of memory but only "
            f"{available / 1e9:.1f} GB is available; use a smaller size (a long side of about {max_side} px "
            "fits), or a feed-forward method (far less memory per pixel)")


def check_masks(masks, n_styles: int, content_shape) -> list[np.ndarray]:
    """Validate one (H, W) mask per style at the content's size, values in [0, 1]; float32 copies."""
    masks = [np.asarray(m, np.float32) for m in masks]
    if len(masks) != n_styles:
        raise InputError(f"got {len(masks)} masks for {n_styles} styles: give one mask per style")
    for i, m in enumerate(masks):
        if m.shape != tuple(content_shape[:2]):
            size = f"{m.shape[1]}x{m.shape[0]}" if m.ndim == 2 else f"of shape {m.shape}"
            raise InputError(f"mask {i} is {size} but the content is {content_shape[1]}x{content_shape[0]}: "
                             "masks must match the content size")
        if not np.all(np.isfinite(m)) or m.min() < 0 or m.max() > 1:
            raise InputError(f"mask {i} must hold values in [0, 1]")
    return masks
