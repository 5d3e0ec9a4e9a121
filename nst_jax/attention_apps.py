"""Attention applications (seed 000's goal): attention maps, stylizing only the salient object or only
the background, and pasting an object onto another background ("chroma-key without a green screen").

The attention comes from a trained AAMS / CBAM autoencoder (:mod:`nst_jax.methods.aams`):

* :func:`attention_map` -- the attention module's one-channel ``saliency``
  (:class:`~nst_jax.modules.attention.AttentionOutput`: CBAM's spatial gate ``Ms``; for AAMS the
  channel mean of ``|A|``) for the image's features at the autoencoder's depth, min-max normalised to
  [0, 1] and bilinearly upsampled to the image size. By default the features are instance-normalised
  first, as in the autoencoder's training graph (``projection="instance"``); ``"zca"`` feeds the
  ZCA-projected features that the AAMS transfer uses.
* :func:`stylize_region` -- stylize with any method, then keep the stylized pixels only on the object
  (``region="object"``) or only on the background (``"background"``), blending with the soft
  attention mask (or a hard one with ``threshold``). A wrapper, not a ``stylize`` option: it works for
  every method, feed-forward or Gatys, and leaves the framework untouched.
* :func:`composite` -- ``mask * object + (1 - mask) * background``, the background fitted ("cover":
  scaled and centre-cropped) to the object image's size.

CLI (``add_cli``)::

    nst-jax attention IMAGE -o map.png [--method cbam] [--checkpoint PATH] [--overlay]
    nst-jax composite OBJECT_IMAGE BACKGROUND -o out.png [--style S ... --method M --region object]
                      [--mask OBJECT_MASK]

The shipped modules were trained on a CPU budget (README, Training) and their maps do not single
out objects: AAMS's marks textured regions, CBAM's gates keep their random start. Pass ``--mask``
(or ``mask=``) with an object mask of your own, or ``--checkpoint`` with a module trained longer.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np

from nst_jax.errors import InputError

ATTENTION_METHODS = ("cbam", "aams", "cbam_conv3_1", "cbam_conv5_1")
PROJECTIONS = ("instance", "zca")
REGIONS = ("object", "background")


# ------------------------------------------------------------------------------------------ library

def _attention_spec(method: str):
    from nst_jax.methods.common import FEEDFORWARD

    if method not in ATTENTION_METHODS:
        raise InputError(f"unknown attention method {method!r}; available: {', '.join(ATTENTION_METHODS)}")
    return FEEDFORWARD[method]


def _kind_of(method: str) -> str:
    return "self" if method == "aams" else "cbam"


def load_attention_params(method: str = "cbam", checkpoint: str | Path | None = None, *, vgg=None) -> dict[str, Any]:
    """VGG19 + an attention autoencoder: the shipped checkpoint of ``method``, or the file ``checkpoint``
    (any depth of the method's attention kind; a missing or wrong file raises ``CheckpointError``)."""
    from nst_jax import checkpoints
    from nst_jax.errors import CheckpointError
    from nst_jax.methods.aams import autoencoder_config
    from nst_jax.methods.common import ENCODER
    from nst_jax.weights import port

    spec = _attention_spec(method)
    if checkpoint is None:
        return spec.load_params(vgg)
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    tree, _ = checkpoints.load(spec.checkpoints[0], path=path, encoder=ENCODER)
    if "autoencoder" not in tree:
        raise CheckpointError(f"{path} holds {sorted(tree)}, not an attention autoencoder "
                              "(`python -m train.cbam` / `train.aams` exports)")
    kind, _ = autoencoder_config(tree["autoencoder"])
    if kind != _kind_of(method):
        raise CheckpointError(f"{path} holds a {kind!r} attention autoencoder, not the {method!r} kind")
    return {"vgg": vgg if vgg is not None else port.load(), "autoencoder": tree["autoencoder"]}


def _saliency(vgg, autoencoder, padded, *, kind: str, layer: str, projection: str):
    import jax
    import jax.numpy as jnp

    from nst_jax.kernels.stats import mean_std
    from nst_jax.kernels.wct import zca_project
    from nst_jax.methods.common import encode
    from nst_jax.modules.attention import AttentionAutoencoder

    c = encode(vgg, padded, (layer,))[layer]
    if projection == "zca":
        x, _ = zca_project(c)
    else:
        mean, std = mean_std(c)
        x = (c - mean) / std
    model = AttentionAutoencoder(layer=layer, kind=kind)  # "attend" only: the decoder's padding is unused
    s = model.apply({"params": autoencoder}, x, method="attend").saliency.astype(jnp.float32)
    lo, hi = jnp.min(s), jnp.max(s)
    s = (s - lo) / jnp.maximum(hi - lo, 1e-12)
    n, h, w, _ = padded.shape
    return jnp.clip(jax.image.resize(s, (n, h, w, 1), "bilinear"), 0.0, 1.0)[0, :, :, 0]


@functools.cache
def _saliency_jit():
    import jax

    return jax.jit(_saliency, static_argnames=("kind", "layer", "projection"))


def attention_map(params: dict[str, Any] | None, image: np.ndarray, *, method: str = "cbam",
                  projection: str = "instance") -> np.ndarray:
    """The trained attention module's saliency of ``image`` as an (H, W) float32 map in [0, 1].

    Args:
      params: ``{"vgg": ..., "autoencoder": ...}`` (:func:`load_attention_params` or a method's
        ``random_params``); ``None`` loads ``method``'s shipped checkpoint. The depth is read from the
        parameters; their attention kind must be ``method``'s.
      image: float RGB (H, W, 3) in [0, 1], any size of at least 16 px.
      method: ``"cbam"`` (default), ``"aams"``, ``"cbam_conv3_1"`` or ``"cbam_conv5_1"``.
      projection: ``"instance"`` (the training graph's normalisation) or ``"zca"`` (the transfer's).
    """
    import jax.numpy as jnp

    from nst_jax.image import check_image, pad_to_multiple
    from nst_jax.methods.aams import autoencoder_config
    from nst_jax.methods.common import MULTIPLE

    if projection not in PROJECTIONS:
        raise InputError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
    _attention_spec(method)
    image = check_image(np.asarray(image, np.float32), kind="image")
    if params is None:
        params = load_attention_params(method)
    kind, layer = autoencoder_config(params["autoencoder"])
    if kind != _kind_of(method):
        raise InputError(f"the parameters hold a {kind!r} attention autoencoder, not the {method!r} kind")
    padded, (h, w) = pad_to_multiple(jnp.asarray(image)[None], MULTIPLE)
    m = _saliency_jit()(params["vgg"], params["autoencoder"], padded, kind=kind, layer=layer, projection=projection)
    return np.asarray(m[:h, :w], np.float32)


def _check_mask(mask, shape: tuple[int, int], what: str) -> np.ndarray:
    m = np.asarray(mask, np.float32)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.shape != shape:
        raise InputError(f"{what} is {m.shape[1] if m.ndim > 1 else '?'}x{m.shape[0]} but the image is "
                         f"{shape[1]}x{shape[0]}: the mask must match the image size")
    if not np.all(np.isfinite(m)) or m.min() < 0 or m.max() > 1:
        raise InputError(f"{what} must hold values in [0, 1]")
    return m


def fit_cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale ``image`` to cover ``height x width`` (aspect kept) and centre-crop to exactly that size."""
    from nst_jax.image import resize

    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    scale = max(height / h, width / w)
    rh, rw = max(height, round(h * scale)), max(width, round(w * scale))
    image = resize(image, rh, rw)
    top, left = (rh - height) // 2, (rw - width) // 2
    return image[top:top + height, left:left + width]


def composite(object_image: np.ndarray, object_mask: np.ndarray, background_image: np.ndarray) -> np.ndarray:
    """Paste the masked object onto a background: ``mask * object + (1 - mask) * background``.

    ``object_mask`` is (H, W) (or (H, W, 1)) in [0, 1] at the object image's size (e.g. from
    :func:`attention_map`); the background is fitted to that size (:func:`fit_cover`) if it differs.
    """
    from nst_jax.image import check_image

    obj = check_image(np.asarray(object_image, np.float32), kind="object image")
    bg = check_image(np.asarray(background_image, np.float32), kind="background image")
    m = _check_mask(object_mask, obj.shape[:2], "object mask")[..., None]
    bg = fit_cover(bg, *obj.shape[:2])
    return (m * obj + (1.0 - m) * bg).astype(np.float32)


def stylize_region(content: np.ndarray, styles, *, method: str = "cbam", region: str = "object",
                   params: dict[str, Any] | None = None, attention: str | None = None,
                   attention_params: dict[str, Any] | None = None, mask: np.ndarray | None = None,
                   threshold: float | None = None, projection: str = "instance", **options) -> np.ndarray:
    """Stylize only the salient object (``region="object"``) or only the background of ``content``.

    The whole image is stylized with ``method`` (``params`` and ``**options`` go to
    :func:`nst_jax.stylize.stylize`), then composited with the content through the attention mask:
    ``m * stylized + (1 - m) * content`` with ``m`` the mask (object) or ``1 - mask`` (background).

    Args:
      attention: the attention model giving the mask (default: ``method`` if it is one of
        :data:`ATTENTION_METHODS`, else ``"cbam"``); ``attention_params`` its parameters (default:
        ``params`` when ``attention == method``, else its shipped checkpoint).
      mask: use this (H, W) object mask instead of an attention map.
      threshold: binarise the mask at this value (a hard cut-out); ``None`` keeps the soft mask.
    """
    from nst_jax.image import check_image
    from nst_jax.stylize import stylize

    if region not in REGIONS:
        raise InputError(f"region must be one of {REGIONS}, got {region!r}")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"threshold must lie in [0, 1], got {threshold}")
    content = check_image(np.asarray(content, np.float32), kind="content image")
    if mask is None:
        attention = attention or (method if method in ATTENTION_METHODS else "cbam")
        if attention_params is None and attention == method:
            attention_params = params
        mask = attention_map(attention_params, content, method=attention, projection=projection)
    else:
        mask = _check_mask(mask, content.shape[:2], "mask")
    if threshold is not None:
        mask = (mask >= float(threshold)).astype(np.float32)
    stylized = stylize(content, styles, method=method, params=params, **options)
    keep = mask if region == "object" else 1.0 - mask
    return composite(stylized, keep, content)


# ------------------------------------------------------------------------------------------ CLI

def add_cli(sub) -> None:
    p = sub.add_parser(
        "attention", help="write the attention map (saliency) of an image as a picture",
        description="The trained AAMS/CBAM attention module's saliency of IMAGE, in [0, 1] (white = salient).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("image", help="image file")
    p.add_argument("-o", "--output", required=True, help="output image file (PNG)")
    p.add_argument("-m", "--method", default="cbam", choices=ATTENTION_METHODS, help="attention model")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="attention autoencoder file (default: the method's shipped checkpoint)")
    p.add_argument("--size", type=int, default=384, help="long side of the image in pixels (0: keep)")
    p.add_argument("--projection", choices=PROJECTIONS, default="instance",
                   help="feature normalisation before the attention module")
    p.add_argument("--overlay", action="store_true", help="draw the map as a heat map over the image")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(handler=_cmd_attention)

    c = sub.add_parser(
        "composite", help="paste the salient object of an image onto another background (optionally stylized)",
        description="Cut the salient object out of OBJECT_IMAGE with an attention mask and paste it onto "
                    "BACKGROUND (a chroma key without a green screen). With --style, stylize the object "
                    "(--region object), the new background (--region background) or both first.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("object_image", help="image whose salient object is kept")
    c.add_argument("background", help="new background image (scaled and centre-cropped to fit)")
    c.add_argument("-o", "--output", required=True, help="output image file")
    c.add_argument("-s", "--style", nargs="+", default=None, metavar="STYLE", help="style image file(s)")
    c.add_argument("-m", "--method", default=None,
                   help="style transfer method for --style (default: the --attention model)")
    c.add_argument("--region", choices=("object", "background", "both"), default="object",
                   help="what --style stylizes")
    c.add_argument("--attention", default="cbam", choices=ATTENTION_METHODS, help="attention model for the mask")
    c.add_argument("--checkpoint", default=None, metavar="PATH", help="attention autoencoder file")
    c.add_argument("--mask", default=None, metavar="MASK",
                   help="object mask image (white = object) to use instead of the attention map")
    c.add_argument("--threshold", type=float, default=None, help="binarise the mask at this value (default: soft)")
    c.add_argument("--alpha", type=float, default=None, help="content-style trade-off of the feed-forward methods")
    c.add_argument("--size", type=int, default=384, help="long side of the object image in pixels (0: keep)")
    c.add_argument("--seed", type=int, default=0, help="random seed")
    c.add_argument("--overwrite", action="store_true", help="replace an existing output")
    c.set_defaults(handler=_cmd_composite)


def _output(args) -> Path:
    out = Path(args.output)
    if out.is_dir():
        raise InputError(f"--output {out} is a folder; give an image file name")
    if out.exists() and not args.overwrite:
        raise InputError(f"output exists: {out}; pass --overwrite to replace")
    if args.size < 0:
        raise InputError("--size must be >= 0")
    return out


def heat_overlay(image: np.ndarray, m: np.ndarray, *, opacity: float = 0.55) -> np.ndarray:
    """The map as an "inferno" heat map blended over the image."""
    import matplotlib

    heat = np.asarray(matplotlib.colormaps["inferno"](np.clip(m, 0, 1))[..., :3], np.float32)
    return ((1 - opacity) * image + opacity * heat).astype(np.float32)


def _cmd_attention(args) -> int:
    from nst_jax.image import load_image, save_image

    out = _output(args)
    image = load_image(args.image, size=args.size or None, kind="input")
    params = load_attention_params(args.method, args.checkpoint)
    m = attention_map(params, image, method=args.method, projection=args.projection)
    picture = heat_overlay(image, m) if args.overlay else np.repeat(m[..., None], 3, axis=-1)
    save_image(out, picture)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_composite(args) -> int:
    import jax

    from nst_jax.image import load_image, save_image
    from nst_jax.methods.common import check_alpha
    from nst_jax.stylize import METHODS, stylize

    out = _output(args)
    if args.alpha is not None:
        check_alpha(args.alpha, "--alpha")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise InputError(f"--threshold must lie in [0, 1], got {args.threshold}")
    method = args.method or args.attention
    if args.style and method not in METHODS:
        raise InputError(f"unknown method {method!r}; available: {', '.join(sorted(METHODS))}")
    obj = load_image(args.object_image, size=args.size or None, kind="object")
    background = fit_cover(load_image(args.background, kind="background"), *obj.shape[:2])
    if args.mask is not None:
        from nst_jax.image import load_mask

        if args.checkpoint is not None:
            raise InputError("--mask replaces the attention map: drop --checkpoint (or --mask)")
        attention_params, mask = None, load_mask(args.mask, *obj.shape[:2])
    else:
        attention_params = load_attention_params(args.attention, args.checkpoint)
        mask = attention_map(attention_params, obj, method=args.attention)
    if args.threshold is not None:
        mask = (mask >= args.threshold).astype(np.float32)
    if args.style:
        styles = [load_image(s, size=args.size or None, kind="style") for s in args.style]
        reuse = attention_params is not None and method == args.attention
        params = attention_params if reuse else METHODS[method].load_params()
        options: dict[str, Any] = {"key": jax.random.key(args.seed)}
        if args.alpha is not None:
            if method == "gatys":
                raise InputError("--alpha applies to the feed-forward methods")
            options["alpha"] = args.alpha
        if args.region in ("object", "both"):
            obj = stylize(obj, styles, method=method, params=params, **options)
        if args.region in ("background", "both"):
            background = stylize(background, styles, method=method, params=params, **options)
    save_image(out, composite(obj, mask, background))
    print(f"wrote {out}", file=sys.stderr)
    return 0


__all__ = ["ATTENTION_METHODS", "attention_map", "composite", "fit_cover", "heat_overlay",
                          "load_attention_params", "stylize_region", "add_cli"]
