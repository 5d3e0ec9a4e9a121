"""Feed-forward methods; importing this package registers them with :func:`nst_jax.stylize`."""

from nst_jax.methods import aams, adain, avatar, sanet, style_swap, wct  # noqa: F401  (registration)
from nst_jax.methods.common import FEEDFORWARD, FeedForward, apply, encode_styles

__all__ = ["FEEDFORWARD", "FeedForward", "apply", "encode_styles"]
