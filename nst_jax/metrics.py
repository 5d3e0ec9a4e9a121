"""Scale-free quality ratios for a stylized image (lower is better for both).

Measured with the ImageNet VGG19 (zero padding, max pooling), independent of the method's own encoder
configuration, as in ``docs/MEASUREMENTS.md`` §6:

* **style ratio**: distance of the output's per-channel mean/std statistics to the style's, over
  relu1_1..relu5_1, divided by the same distance for the unstylized content (1 = not stylized at all,
  0 = the style's statistics exactly). Per layer ``||mu_x - mu_s|| + ||sigma_x - sigma_s||``; the
  per-layer ratios are averaged so no layer dominates by scale.
* **gram ratio**: the same with Frobenius distances of Gram matrices.
* **content ratio**: distance of the output's mean-variance-normalised relu4_1 features to the
  content's, divided by the same distance for the style image resized to the content's size
  (0 = the content's structure exactly, 1 = as far from it as the painting).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import vgg19
from nst_jax.image import resize
from nst_jax.kernels.stats import gram, mean_std

STYLE_LAYERS = vgg19.STYLE_LAYERS
CONTENT_LAYER = "relu4_1"


@jax.jit
def _encode(vgg_params, image):
    return vgg19.features(vgg_params, image[None], STYLE_LAYERS)


def _style_terms(feats) -> dict[str, tuple]:
    return {k: (*mean_std(v), gram(v)) for k, v in feats.items()}


def _normalised(f):
    mean, std = mean_std(f)
    return (f - mean) / std


def _distances(a, b) -> tuple[np.ndarray, np.ndarray]:
    stat = np.array([float(jnp.linalg.norm(a[k][0] - b[k][0]) + jnp.linalg.norm(a[k][1] - b[k][1]))
                     for k in STYLE_LAYERS])
    gram_d = np.array([float(jnp.linalg.norm(a[k][2] - b[k][2])) for k in STYLE_LAYERS])
    return stat, gram_d


def fidelity(vgg_params, output: np.ndarray, content: np.ndarray, style: np.ndarray) -> dict[str, float]:
    """Style, Gram and content ratios of ``output`` (same size as ``content``) for one pair."""
    out_f = _encode(vgg_params, jnp.asarray(output))
    con_f = _encode(vgg_params, jnp.asarray(content))
    sty_f = _encode(vgg_params, jnp.asarray(style))
    sty_as_content = _encode(vgg_params, jnp.asarray(resize(style, *content.shape[:2])))
    out_s, con_s, sty_s = _style_terms(out_f), _style_terms(con_f), _style_terms(sty_f)
    stat_out, gram_out = _distances(out_s, sty_s)
    stat_con, gram_con = _distances(con_s, sty_s)
    c_out = float(jnp.linalg.norm(_normalised(out_f[CONTENT_LAYER]) - _normalised(con_f[CONTENT_LAYER])))
    c_sty = float(jnp.linalg.norm(_normalised(sty_as_content[CONTENT_LAYER]) - _normalised(con_f[CONTENT_LAYER])))
    return {"style_ratio": float(np.mean(stat_out / np.maximum(stat_con, 1e-12))),
            "gram_ratio": float(np.mean(gram_out / np.maximum(gram_con, 1e-12))),
            "content_ratio": c_out / max(c_sty, 1e-12)}


def median_fidelity(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.median([r[k] for r in rows])) for k in rows[0]} if rows else {}
