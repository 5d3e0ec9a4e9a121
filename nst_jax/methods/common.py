"""What every feed-forward method shares: the encoder, controls, padding, colour, registration.

A feed-forward method is a :class:`FeedForward`: which style layers it needs, which checkpoints hold
its learned parameters, how to initialise them randomly (tests), and one pure ``forward`` function

    forward(params, content, style_feats, weights, masks, alpha, key, **static) -> images

where ``content`` is (1, H, W, 3) padded to a multiple of 16, ``style_feats`` a list (one entry per
style) of ``{layer: (1, h, w, C)}``, ``weights`` (S,) interpolation weights, ``masks`` ``None`` or
(1, H, W, S) region masks at the padded content size, ``alpha`` a traced scalar (changing it never
recompiles) and ``key`` a PRNG key. :func:`stylize_feedforward` validates the controls, encodes the
styles once (reusable across contents: :func:`encode_styles` + :func:`apply`), pads, runs the
jitted forward and crops back.

Runtime controls, the same for every method:
* ``alpha`` in [0, 1]: content-style trade-off in feature space (1 = full style); ``None`` takes the
  method's :attr:`FeedForward.default_alpha` (1; WCT's 0.6; 0.5 for the patch-swap methods
  Avatar-Net, AAMS and CBAM).
* ``style_weights``: interpolation weights of several styles (non-negative, summing to 1).
* ``masks``: one (H, W) mask per style at the content's size (a style per region).
* ``color``: ``"luminance"`` (keep the content's chrominance) or ``"match"`` (recolour each style
  to the content's colour statistics before encoding; the styles are then re-encoded per content).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import checkpoints, vgg19
from nst_jax.errors import InputError
from nst_jax.image import check_image, check_masks, pad_to_multiple
from nst_jax.kernels.adain import blend_by_masks
from nst_jax.kernels.color import COLOR_MODES, linear_color_transfer, luminance_transfer
from nst_jax.kernels.conv import with_winograd_kernels
from nst_jax.kernels.stats import mask_for_layer

# DESIGN §3: feed-forward methods use reflect padding + max pooling; decoders are trained for it.
ENCODER = {"padding": "reflect", "pool": "max"}
MULTIPLE = 16  # relu5_1 is 1/16 of the input; SANet adds relu5_1 x2 to relu4_1


def encode(vgg_params, images: jax.Array, layers: Sequence[str]) -> dict[str, jax.Array]:
    """VGG19 features with the feed-forward encoder configuration."""
    return vgg19.features(vgg_params, images, tuple(layers), **ENCODER)


def inference_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` for inference: every 3x3 kernel that may run by Winograd's algorithm carries its
    transform (:func:`nst_jax.kernels.conv.with_winograd_kernels`), made once here instead of in
    every call. The VGG19 part is prepared by :func:`nst_jax.vgg19.with_winograd` (up to conv5_1,
    shared by every method given the same VGG19 tree). For inference only: gradients do not reach
    the stored transforms, so training keeps the plain parameters."""
    out = with_winograd_kernels({k: v for k, v in params.items() if k != "vgg"})
    if "vgg" in params:
        out["vgg"] = vgg19.with_winograd(params["vgg"])
    return out


def fast_key(key: jax.Array) -> jax.Array:
    """An ``rbg`` PRNG key derived from ``key`` for random initialisation (tests, benchmarks).

    Initialising a few million parameters compiles the threefry generator once per parameter shape;
    on CPU that takes ~13 s for a VGG-mirror decoder, against ~4 s with XLA's RngBitGenerator
    (``impl="rbg"``). The jitted init is one compilation instead of op-by-op dispatch. Same ``key``,
    same parameters (on a given backend).
    """
    return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")


def infer_width(decoder_params) -> float:
    """A decoder's hidden-width multiplier, read from its parameter shapes (``dec1_2`` has 64 x width
    outputs), so checkpoints trained at another width load without any extra metadata."""
    if "dec1_2" in decoder_params:
        return decoder_params["dec1_2"]["kernel"].shape[-1] / 64
    return 1.0


def masks_at(masks: jax.Array | None, layer: str, shape: tuple[int, int]) -> jax.Array | None:
    """(1, H, W, S) image-resolution masks -> (1, h, w, S) at a feature map (area averaging)."""
    if masks is None:
        return None
    return mask_for_layer(masks, layer, shape)


def combine(per_style: Sequence[jax.Array], weights: jax.Array, masks: jax.Array | None) -> jax.Array:
    """Several styles' results at one feature map: weighted sum, or composite by region masks."""
    if masks is not None:
        return blend_by_masks(per_style, masks)
    return sum(w * f for w, f in zip(weights, per_style))


def blend(stylized: jax.Array, content: jax.Array, alpha: jax.Array) -> jax.Array:
    """``alpha * stylized + (1 - alpha) * content`` (the feature-space trade-off of AdaIN/WCT)."""
    return alpha * stylized + (1.0 - alpha) * content


@dataclasses.dataclass(frozen=True)
class FeedForward:
    """A feed-forward method (see the module docstring)."""

    name: str
    summary: str
    style_layers: tuple[str, ...]
    checkpoints: tuple[str, ...]  # names of the checkpoint files (weights/<name>.npz)
    init: Callable[..., dict[str, Any]]  # init(key) -> random learned params (tests)
    forward: Callable[..., jax.Array]
    static: tuple[str, ...] = ()  # names of forward's static keyword options
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # their defaults
    uses_key: bool = False
    # merge(params, {checkpoint name: tree}) -> params; default: every tree's entries join params.
    merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    default_alpha: float = 1.0  # alpha when the caller passes none (the reference code's default)
    # {card module key: constructor settings} every checkpoint's card must agree with (checkpoints.load).
    module_config: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def jitted(self):
        return jax.jit(self.forward, static_argnames=self.static)

    @functools.cached_property
    def jitted_encode(self):
        return jax.jit(encode, static_argnames=("layers",))

    def load_params(self, vgg=None, paths: dict[str, str] | None = None, *, prepare: bool = True) -> dict[str, Any]:
        """The VGG19 weights plus the shipped checkpoints (clear error naming the training command).

        ``paths`` maps checkpoint names (:attr:`checkpoints`) to files to use instead of the shipped
        ones, e.g. ``{"adain": "runs/my_decoder.npz"}`` from ``python -m train.adain --export``.
        ``prepare``: return :func:`inference_params` (Winograd kernel transforms made once, here);
        ``False`` gives the plain parameters, as a checkpoint stores them.
        """
        from nst_jax.weights import port

        paths = dict(paths or {})
        unknown = sorted(set(paths) - set(self.checkpoints))
        if unknown:
            raise InputError(f"{self.name} has no checkpoint named {unknown}; its checkpoints: "
                             f"{', '.join(self.checkpoints)}")
        params = {"vgg": vgg if vgg is not None else port.load()}
        # Device arrays, as port.load's: jitted calls then never re-copy them from host memory.
        loaded = {name: jax.device_put(checkpoints.load(name, path=paths.get(name), encoder=ENCODER,
                                                        modules=self.module_config)[0])
                  for name in self.checkpoints}
        if self.merge is not None:
            params = self.merge(params, loaded)
        else:
            for tree in loaded.values():
                params.update(tree)
        return inference_params(params) if prepare else params

    def random_params(self, key: jax.Array, vgg) -> dict[str, Any]:
        """VGG19 weights plus randomly initialised learned parameters (for tests and benchmarks)."""
        return {"vgg": vgg, **self.init(fast_key(key))}


def encode_styles(spec: FeedForward, params, styles: Sequence[np.ndarray]) -> list[dict[str, jax.Array]]:
    """Encode each style once; the result can be reused for any number of contents."""
    return [spec.jitted_encode(params["vgg"], jnp.asarray(s)[None], layers=spec.style_layers) for s in styles]


def check_alpha(alpha, what: str = "alpha") -> float:
    """``alpha`` as a float in [0, 1] (NaN fails too), else an InputError naming ``what``."""
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"{what} must lie in [0, 1], got {alpha}")
    return alpha


def check_controls(n_styles: int, content_shape: tuple[int, ...], *, alpha, style_weights, masks):
    """Validate the runtime controls; return (alpha, weights, masks) as arrays."""
    alpha = check_alpha(alpha)
    if style_weights is None:
        weights = np.full(n_styles, 1.0 / n_styles, np.float32)
    else:
        weights = np.asarray(style_weights, np.float64).reshape(-1)
        if weights.shape != (n_styles,) or np.any(weights < 0) or not np.all(np.isfinite(weights)):
            raise InputError(f"style_weights must be {n_styles} non-negative numbers, got {list(style_weights)}")
        if not np.isclose(weights.sum(), 1.0, atol=1e-6):
            raise InputError(f"style_weights must sum to 1, got {weights.sum():.6g}")
        weights = weights.astype(np.float32)
    if masks is not None:
        if style_weights is not None:
            raise InputError("style_weights and masks are exclusive: with masks each style owns its region")
        masks = check_masks(masks, n_styles, content_shape)
        masks = np.stack(masks, axis=-1)[None]  # (1, H, W, S)
    return np.float32(alpha), weights, masks


def apply(spec: FeedForward, params, content: np.ndarray, style_feats, *, alpha=None, style_weights=None,
          masks=None, color: str = "none", key: jax.Array | None = None, **options) -> np.ndarray:
    """Run ``spec`` on one content with pre-encoded ``style_feats`` (see :func:`encode_styles`)."""
    content = check_image(np.asarray(content, np.float32), kind="content image")
    alpha = spec.default_alpha if alpha is None else alpha
    alpha, weights, masks = check_controls(len(style_feats), content.shape, alpha=alpha,
                                           style_weights=style_weights, masks=masks)
    unknown = set(options) - set(spec.options)
    if unknown:
        raise InputError(f"unknown option(s) {sorted(unknown)} for method {spec.name!r}; "
                         f"valid: {sorted(spec.options) or 'none'}")
    static = {**spec.options, **options}
    if spec.uses_key and key is None:
        key = jax.random.key(0)
    padded, (h, w) = pad_to_multiple(jnp.asarray(content)[None], MULTIPLE)
    mask_arr = None
    if masks is not None:
        mask_arr, _ = pad_to_multiple(jnp.asarray(masks), MULTIPLE)
    out = spec.jitted(params, padded, style_feats, jnp.asarray(weights), mask_arr, jnp.asarray(alpha), key, **static)
    out = jnp.clip(out[0, :h, :w], 0.0, 1.0)
    if color == "luminance":
        out = luminance_transfer(out, jnp.asarray(content))
    return np.asarray(out, np.float32)


def stylize_feedforward(spec: FeedForward, params, content: np.ndarray, styles: Sequence[np.ndarray], *,
                        alpha=None, style_weights=None, masks=None, color: str = "none", key=None,
                        **options) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``Method.run`` of every feed-forward method."""
    if color not in ("none", *COLOR_MODES):
        raise InputError(f"color must be one of {('none', *COLOR_MODES)}, got {color!r}")
    if color == "match":
        styles = [np.asarray(linear_color_transfer(jnp.asarray(s)[None], jnp.asarray(content)[None])[0])
                  for s in styles]
    feats = encode_styles(spec, params, styles)
    out = apply(spec, params, content, feats, alpha=alpha, style_weights=style_weights, masks=masks,
                color=color, key=key, **options)
    return out, {}


def register(spec: FeedForward) -> FeedForward:
    from nst_jax.stylize import Method, register as register_method

    register_method(Method(spec.name, functools.partial(stylize_feedforward, spec), spec.load_params, spec.summary))
    FEEDFORWARD[spec.name] = spec
    return spec


FEEDFORWARD: dict[str, FeedForward] = {}
