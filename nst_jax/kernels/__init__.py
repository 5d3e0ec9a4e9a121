"""Feature-space kernels shared by every method: pure functions over NHWC float32 arrays.

One implementation of each thing, jittable with static settings passed as keyword-only arguments:

* statistics (:mod:`.stats`): ``mean_std``, ``gram``, ``covariance``, ``mask_for_layer``;
* AdaIN (:mod:`.adain`, Huang & Belongie 2017) and ``blend_by_masks`` for a style per region;
* WCT / ZCA (:mod:`.wct`, Li et al. 2017; Sheng et al. 2018): ``whiten``, ``color``, ``wct``,
  ``zca_project``, ``zca_recolor``, and ``sym_powers`` (the one eigen-based matrix power);
* style swap and Avatar-Net's style decorator (:mod:`.patch_swap`, Chen & Schmidt 2016;
  Sheng et al. 2018): ``patch_swap``, ``style_decorator``, ``region_labels``;
* image-space colour preservation (:mod:`.color`, Gatys et al. 2017).
"""

from nst_jax.kernels.adain import adain, blend_by_masks
from nst_jax.kernels.color import (COLOR_MODES, linear_color_transfer, luminance_transfer, rgb_to_yiq,
                                   yiq_to_rgb)
from nst_jax.kernels.patch_swap import patch_swap, region_labels, style_decorator
from nst_jax.kernels.stats import covariance, gram, mask_for_layer, mean_std
from nst_jax.kernels.wct import ZCAStats, color, sym_powers, wct, whiten, zca_project, zca_recolor

__all__ = [
    "COLOR_MODES", "ZCAStats", "adain", "blend_by_masks", "color", "covariance", "gram",
    "linear_color_transfer", "luminance_transfer", "mask_for_layer", "mean_std", "patch_swap",
    "region_labels", "rgb_to_yiq", "style_decorator", "sym_powers", "wct", "whiten", "yiq_to_rgb",
    "zca_project", "zca_recolor",
]
