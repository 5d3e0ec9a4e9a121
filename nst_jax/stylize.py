"""The public entry point: ``stylize(content, styles, method=...)``.

Every method registers a :class:`Method` in :data:`METHODS`: a function that runs it on validated
arrays, and a loader for its default parameters (VGG19 and, for the feed-forward methods, the
shipped decoder checkpoint). Arrays in (float RGB in [0, 1], (H, W, 3)), array out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nst_jax.errors import InputError
from nst_jax.image import check_image


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    run: Callable[..., tuple[np.ndarray, dict[str, Any]]]
    load_params: Callable[[], dict[str, Any]]
    summary: str


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    METHODS[method.name] = method
    return method


def _as_list(styles) -> list[np.ndarray]:
    if isinstance(styles, np.ndarray) and styles.ndim == 3:
        return [styles]
    if hasattr(styles, "ndim") and styles.ndim == 3:
        return [np.asarray(styles)]
    return [np.asarray(s) for s in styles]


def stylize(
    content: np.ndarray,
    styles: np.ndarray | Sequence[np.ndarray],
    *,
    method: str = "gatys",
    params: dict[str, Any] | None = None,
    return_info: bool = False,
    **options: Any,
):
    """Stylize ``content`` with one or more ``styles``.

    Args:
      content: float RGB (H, W, 3) in [0, 1].
      styles: a style image or a sequence of them.
      method: one of :data:`METHODS` (``"gatys"``; the feed-forward methods register themselves).
      params: the method's parameters (``{"vgg": ..., ...}``); default: the bundled/ported ones.
      return_info: also return a dict with method-specific results (Gatys: the loss ``history``).
      **options: the method's keyword-only controls (see ``METHODS[method].run``).

    Returns:
      the stylized image, float32 (H, W, 3) in [0, 1] (and the info dict if ``return_info``).
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; available: {', '.join(sorted(METHODS))}")
    spec = METHODS[method]
    content = check_image(content, kind="content image")
    styles = _as_list(styles)
    if not styles:
        raise InputError("at least one style image is required")
    styles = [check_image(s, kind=f"style image {i}") for i, s in enumerate(styles)]
    if params is None:
        params = spec.load_params()
    image, info = spec.run(params, content, styles, **options)
    return (image, info) if return_info else image


# ----------------------------------------------------------------------------------------- gatys

def _load_vgg_only() -> dict[str, Any]:
    from nst_jax.weights import port

    return {"vgg": port.load()}


def _run_gatys(params, content, styles, *, config=None, style_blend=None, masks=None, style_channels=None,
               key=None, callback=None, **config_overrides):
    from nst_jax.optimize import GatysConfig, gatys

    if config is None:
        fields = {f.name for f in dataclasses.fields(GatysConfig)}
        unknown = set(config_overrides) - fields
        if unknown:
            raise InputError(f"unknown Gatys option(s) {sorted(unknown)}; valid: {sorted(fields)}")
        config = GatysConfig(**config_overrides)
    elif config_overrides:
        config = dataclasses.replace(config, **config_overrides)
    image, history = gatys(params["vgg"], content, styles, config=config, style_blend=style_blend, masks=masks,
                           style_channels=style_channels, key=key, callback=callback)
    return image, {"history": history, "config": config}


register(Method("gatys", _run_gatys, _load_vgg_only,
                "Gatys et al. 2016 optimisation (L-BFGS/Adam), masks, colour, pyramid"))

# The feed-forward methods register themselves on import.
import nst_jax.methods  # noqa: E402,F401
