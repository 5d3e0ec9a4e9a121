"""Neural Style Vectors (seed 002; Matsuo & Yanai, "CNN-based style vector for style image retrieval",
ACM ICMR 2016): style retrieval, clustering and "texture word" styles.

Seed 002 (style transfer and arbitrary texture generation from Web images; in Japanese) turns the
style representation of Gatys et al. into a vector: for a layer with N filters, the Gram matrix's
lower triangle including the diagonal, ``V = [G11, G21, G22, ..., GN1, ..., GNN]`` (N(N+1)/2 values,
131,328 for relu5_1), then a signed square root and L2 normalisation
``V <- sgn(V) sqrt|V| / ||sgn(V) sqrt|V|||``. It gathers Web images for a texture word (an onomatopoeia
such as "fluffy"), splits them into 3 clusters of similar style, and uses each cluster as a style.

Here:

* :func:`layer_vectors` / :func:`style_vectors` -- the vectors (per layer; concatenated over layers with
  equal weight, unit norm overall), batched and jitted, from :func:`nst_jax.kernels.stats.gram`;
* :class:`RandomProjection` (seeded sparse random projection) and :class:`PCA` to a small dimension,
  since five layers give 305,888 dimensions;
* :func:`index_folder` -- a cached, incremental index of a folder (only new or changed files are
  encoded), :func:`search` (cosine nearest styles), :func:`kmeans` (k-means++ init, deterministic for
  a seed) and :func:`cluster_index`;
* :func:`cluster_style_targets` / :func:`cluster_moment_targets` -- a cluster as a style: the mean of
  its members' Gram matrices (in the format of :func:`nst_jax.optimize.style_targets`) or of their
  per-channel mean/std;
* ``nst-jax style-vectors index|search|cluster`` (:func:`add_cli`) and ``stylize --style-cluster DIR:k``
  (:func:`add_stylize_arguments`, :func:`stylize_options`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import io
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nst_jax import vgg19
from nst_jax.errors import InputError
from nst_jax.image import check_image
from nst_jax.kernels.stats import gram, mean_std

DEFAULT_LAYERS: tuple[str, ...] = vgg19.STYLE_LAYERS
DEFAULT_SIZE = 256  # long side at which index images are encoded
DEFAULT_DIM = 1024  # projected dimension of an index
DEFAULT_CLUSTERS = 3  # the seed's number of clusters per texture word
INDEX_VERSION = 1
SIZE_MULTIPLE = 16  # encoded images are resized to multiples of 16 px: few distinct shapes to compile


def vector_dims(layers: Sequence[str] = DEFAULT_LAYERS) -> dict[str, int]:
    """Length N(N+1)/2 of each layer's style vector (N = number of filters)."""
    return {layer: vgg19.CHANNELS[layer] * (vgg19.CHANNELS[layer] + 1) // 2 for layer in vgg19.check_layers(layers)}


@functools.lru_cache(maxsize=None)
def _tril(n: int) -> tuple[np.ndarray, np.ndarray]:
    # Row-major lower triangle: (0,0), (1,0), (1,1), (2,0), ... -- the seed's order G11, G21, G22, G31...
    return np.tril_indices(n)


def gram_to_vector(g: jax.Array) -> jax.Array:
    """(N, C, C) Gram matrices -> (N, C(C+1)/2) style vectors: lower triangle with the diagonal,
    signed square root, L2 normalisation (seed 002)."""
    i, j = _tril(g.shape[-1])
    v = g[..., i, j]
    v = jnp.sign(v) * jnp.sqrt(jnp.abs(v))
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=("layers", "padding", "pool"))
def _layer_vectors(params, images, layers, padding, pool):
    feats = vgg19.features(params, images, layers, padding=padding, pool=pool)
    return {layer: gram_to_vector(gram(feats[layer])) for layer in layers}


def layer_vectors(params, images, layers: Sequence[str] = DEFAULT_LAYERS, *, padding: str = "zero",
                  pool: str = "max") -> dict[str, np.ndarray]:
    """Per-layer Neural Style Vectors ``{layer: (N, C(C+1)/2)}``, each row of unit L2 norm.

    ``images``: float RGB in [0, 1], (N, H, W, 3) or a single (H, W, 3) image (then N = 1).
    """
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 3:
        images = images[None]
    layers = tuple(vgg19.check_layers(layers))
    return {k: np.asarray(v) for k, v in _layer_vectors(params, images, layers, padding, pool).items()}


def concat_vectors(per_layer: dict[str, np.ndarray], layers: Sequence[str] | None = None) -> np.ndarray:
    """Concatenate per-layer unit vectors with equal weight: ``[v_1, ..., v_L] / sqrt(L)`` (unit norm)."""
    layers = tuple(layers or per_layer)
    return np.concatenate([per_layer[layer] for layer in layers], axis=-1) / math.sqrt(len(layers))


def style_vectors(params, images, layers: Sequence[str] = DEFAULT_LAYERS, *, padding: str = "zero",
                  pool: str = "max", projection: RandomProjection | None = None) -> np.ndarray:
    """Neural Style Vectors of ``images`` (seed 002), concatenated over ``layers``: (N, D), unit norm.

    Without ``projection`` D = sum of N_l(N_l+1)/2 (305,888 for relu1_1..relu5_1); with a
    :class:`RandomProjection` D = ``projection.dim`` (re-normalised to unit norm).

    Example::

        vgg = nst_jax.load_vgg19()
        v = style_vectors(vgg, np.stack([a, b]), layers=("relu3_1", "relu4_1"))   # a, b: (H, W, 3)
        cosine = float(v[0] @ v[1])
    """
    per_layer = layer_vectors(params, images, layers, padding=padding, pool=pool)
    if projection is None:
        return concat_vectors(per_layer, layers)
    return projection(per_layer)


# --------------------------------------------------------------------- dimension reduction


@functools.lru_cache(maxsize=16)
def _sketch(seed: int, layer: str, length: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, vgg19.LAYERS.index(layer), length, dim])
    return rng.integers(0, dim, size=length), rng.choice(np.array([-1.0, 1.0]), size=length)


@dataclasses.dataclass(frozen=True)
class RandomProjection:
    """A seeded sparse random projection to ``dim`` dimensions (a count sketch: every input coordinate
    is added, with a random sign, to one random output coordinate; Weinberger et al. 2009, Kane & Nelson
    2014). It preserves inner products in expectation like a dense Gaussian projection but needs O(D)
    memory instead of O(D x dim) -- 305,888 x 1024 floats would be 1.2 GB. Layers are projected
    independently (equal weight, as in :func:`concat_vectors`) and the result is L2-normalised.

    ``seed``: an int (numpy) or a ``jax.random`` key; same seed = same projection on every platform.
    """

    dim: int = DEFAULT_DIM
    seed: int = 0

    def __post_init__(self):
        seed = self.seed
        if isinstance(seed, jax.Array):
            seed = int(jax.random.randint(seed, (), 0, 2**31 - 1))
            object.__setattr__(self, "seed", seed)
        if int(self.dim) < 2:
            raise InputError(f"projection dim must be >= 2, got {self.dim}")

    def __call__(self, per_layer: dict[str, np.ndarray]) -> np.ndarray:
        n = next(iter(per_layer.values())).shape[0]
        out = np.zeros((n, self.dim), np.float64)
        for layer, v in per_layer.items():
            v = np.asarray(v, np.float64)
            bucket, sign = _sketch(int(self.seed), layer, v.shape[-1], int(self.dim))
            for r in range(n):
                out[r] += np.bincount(bucket, weights=v[r] * sign, minlength=self.dim)
        out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)
        return out.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class PCA:
    """Principal components of a set of vectors (fit with :meth:`fit`); ``transform`` projects onto the
    first ``dim`` and re-normalises to unit norm (cosine geometry, as for the vectors themselves)."""

    mean: np.ndarray
    components: np.ndarray  # (dim, D)
    explained_variance_ratio: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, dim: int) -> "PCA":
        x = np.asarray(x, np.float64)
        if not 1 <= dim <= min(x.shape):
            raise InputError(f"PCA dimension must be in [1, {min(x.shape)}] for {x.shape[0]} vectors, got {dim}")
        mean = x.mean(0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        # Fix each component's sign so the result does not depend on the LAPACK build.
        signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(1)])
        vt *= signs[:, None]
        var = s**2
        return cls(mean=mean, components=vt[:dim], explained_variance_ratio=(var / max(var.sum(), 1e-30))[:dim])

    def transform(self, x: np.ndarray) -> np.ndarray:
        y = (np.asarray(x, np.float64) - self.mean) @ self.components.T
        return (y / np.maximum(np.linalg.norm(y, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


# ------------------------------------------------------------------------------ the index


@dataclasses.dataclass
class StyleIndex:
    """Style vectors of the images of a folder, with what is needed to update them incrementally."""

    root: Path
    names: list[str]
    digests: list[str]
    vectors: np.ndarray  # (n, dim), unit norm
    settings: dict[str, Any]
    encoded: list[str] = dataclasses.field(default_factory=list)  # names encoded by the last update
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)  # unreadable files and why

    def paths(self) -> list[Path]:
        return [self.root / n for n in self.names]

    def projection(self) -> RandomProjection | None:
        """The random projection the index's vectors went through (``None``: full vectors)."""
        s = self.settings
        return None if s["dim"] is None else RandomProjection(s["dim"], s["seed"])

    def save(self, path: str | Path) -> Path:
        from nst_jax.params_io import atomic_write

        meta = {"settings": self.settings, "root": str(self.root), "names": self.names, "digests": self.digests}
        buf = io.BytesIO()
        np.savez(buf, vectors=self.vectors.astype(np.float32),
                 meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        return atomic_write(path, lambda f: f.write(buf.getvalue()))

    @classmethod
    def load(cls, path: str | Path) -> "StyleIndex":
        try:
            with np.load(path) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                vectors = np.asarray(data["vectors"])
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            raise InputError(f"style index {path} is unreadable ({err}); delete it or pass --force") from err
        return cls(root=Path(meta["root"]), names=list(meta["names"]), digests=list(meta["digests"]),
                   vectors=vectors, settings=meta["settings"])


def index_settings(*, layers: Sequence[str] = DEFAULT_LAYERS, size: int = DEFAULT_SIZE, dim: int | None = DEFAULT_DIM,
                   seed: int = 0, padding: str = "zero", pool: str = "max", params=None) -> dict[str, Any]:
    """The settings an index depends on; an index built with other settings is re-encoded."""
    settings = {"version": INDEX_VERSION, "layers": list(vgg19.check_layers(layers)), "size": int(size),
                "dim": None if dim is None else int(dim), "seed": int(seed), "padding": padding, "pool": pool}
    if params is not None:  # a cheap fingerprint of the VGG weights
        settings["weights"] = round(float(np.asarray(params["conv1_1"]["kernel"], np.float64).sum()), 6)
    return settings


def default_index_path(folder: str | Path, settings: dict[str, Any] | None = None) -> Path:
    """Where the index of ``folder`` is cached: ``$NST_JAX_HOME/style_index/<hash>.npz`` (outside the
    folder, which may be read-only); the hash covers the folder's path and the index ``settings``, so
    indexes with different settings live side by side."""
    from nst_jax.weights.port import cache_dir

    key = str(Path(folder).resolve())
    if settings is not None:
        key += json.dumps(settings, sort_keys=True)
    return cache_dir() / "style_index" / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.npz"


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _encoding_size(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize so the long side is ``size`` and both sides are multiples of 16 (aspect kept within a few %)."""
    from nst_jax.image import resize

    h, w = arr.shape[:2]
    scale = size / max(h, w)
    nh = max(SIZE_MULTIPLE, int(round(h * scale / SIZE_MULTIPLE)) * SIZE_MULTIPLE)
    nw = max(SIZE_MULTIPLE, int(round(w * scale / SIZE_MULTIPLE)) * SIZE_MULTIPLE)
    return resize(arr, nh, nw)


def encode_images(params, images: Sequence[np.ndarray], settings: dict[str, Any], *,
                  progress: Callable | None = None) -> np.ndarray:
    """Style vectors of float RGB images under index ``settings`` (resized to its ``size``)."""
    layers = tuple(settings["layers"])
    projection = None if settings["dim"] is None else RandomProjection(settings["dim"], settings["seed"])
    out = []
    for image in images:
        image = _encoding_size(check_image(np.asarray(image, np.float32)), settings["size"])
        out.append(style_vectors(params, image[None], layers, padding=settings["padding"], pool=settings["pool"],
                                 projection=projection)[0])
        if progress is not None:
            progress()
    return np.stack(out) if out else np.zeros((0, settings["dim"] or sum(vector_dims(layers).values())), np.float32)


def index_folder(params, folder: str | Path, *, cache: str | Path | None = None, layers: Sequence[str] = DEFAULT_LAYERS,
                 size: int | None = None, dim: int | None = DEFAULT_DIM, seed: int = 0, padding: str = "zero",
                 pool: str = "max", force: bool = False, progress: bool = True, save: bool = True) -> StyleIndex:
    """Style vectors of every image in ``folder``, cached and updated incrementally.

    Files are identified by the SHA-1 of their bytes: only new or changed files are encoded, removed
    files drop out, renamed files are reused. The cache (default :func:`default_index_path`) is
    rebuilt when the settings (layers, ``size`` -- default :data:`DEFAULT_SIZE` --, dim, seed, padding,
    pool, weights) differ, or with ``force``. Unreadable files are skipped and listed in ``index.skipped``.

    Example::

        idx = index_folder(vgg, "paintings/")            # 1024-d vectors at 256 px
        for name, sim in search(idx, style_vectors(vgg, query[None], projection=idx.projection())[0]):
            print(name, sim)
    """
    from nst_jax.image import list_images, load_image

    folder = Path(folder)
    files = list_images(folder)
    if not files:
        raise InputError(f"no image files in {folder}")
    size = DEFAULT_SIZE if size is None else int(size)
    if size < 32:
        raise InputError(f"index image size must be >= 32 px, got {size}")
    settings = index_settings(layers=layers, size=size, dim=dim, seed=seed, padding=padding, pool=pool, params=params)
    cache = Path(cache) if cache is not None else default_index_path(folder, settings)
    known: dict[str, np.ndarray] = {}
    if cache.is_file() and not force:
        old = StyleIndex.load(cache)
        if old.settings == settings:
            known = {d: v for d, v in zip(old.digests, old.vectors)}
        elif progress:
            print(f"style index {cache} was built with other settings; re-encoding", file=sys.stderr)
    names, digests, vectors, encoded, skipped = [], [], [], [], {}
    todo: list[tuple[int, Path, str]] = []
    for f in files:
        d = _digest(f)
        names.append(f.name), digests.append(d), vectors.append(known.get(d))
        if d not in known:
            todo.append((len(names) - 1, f, d))
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"style vectors {folder.name}/", unit="img", file=sys.stderr)
    for i, f, d in todo:
        try:
            image = load_image(f, kind="style")
        except InputError as err:
            skipped[f.name] = str(err)
            vectors[i] = None
        else:
            vectors[i] = encode_images(params, [image], settings)[0]
            known[d] = vectors[i]
            encoded.append(f.name)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    keep = [i for i, v in enumerate(vectors) if v is not None]
    if not keep:
        raise InputError(f"none of the {len(files)} files in {folder} could be read as an image")
    index = StyleIndex(root=folder.resolve(), names=[names[i] for i in keep], digests=[digests[i] for i in keep],
                       vectors=np.stack([vectors[i] for i in keep]).astype(np.float32), settings=settings,
                       encoded=encoded, skipped=skipped)
    if save and (encoded or not cache.is_file() or len(index.names) != len(known)):
        index.save(cache)
    return index


def query_vector(params, index: StyleIndex, image: np.ndarray) -> np.ndarray:
    """The style vector of ``image`` encoded exactly as the index's images."""
    return encode_images(params, [image], index.settings)[0]


def search(index: StyleIndex, query: np.ndarray, *, top: int = 5,
           exclude_self: bool = False) -> list[tuple[str, float]]:
    """The ``top`` styles of ``index`` nearest to a query vector by cosine similarity, best first.
    ``exclude_self`` drops exact matches (similarity > 0.99999), e.g. when the query is in the folder."""
    sims = index.vectors @ np.asarray(query, np.float32)
    order = np.argsort(-sims, kind="stable")
    if exclude_self:
        order = [i for i in order if sims[i] < 0.99999]
    return [(index.names[i], float(sims[i])) for i in list(order)[:top]]


# ----------------------------------------------------------------------------- clustering


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, n_init: int = 8, max_iter: int = 100,
           tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray, float]:
    """k-means with k-means++ initialisation (Arthur & Vassilvitskii 2007); deterministic for a seed.

    Runs ``n_init`` initialisations and keeps the lowest inertia. Clusters are numbered by decreasing
    size (ties: by their first member), so labels do not depend on the initialisation order.

    Returns ``(labels (n,), centres (k, d), inertia)``.
    """
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise InputError(f"cannot make {k} clusters of {n} images; k must be in [1, {n}]")
    rng = np.random.default_rng(seed)
    best = None
    sq = (x**2).sum(1)
    for _ in range(n_init):
        centres = _kmeans_pp(x, sq, k, rng)
        labels = np.zeros(n, np.int64)
        for _ in range(max_iter):
            d2 = np.maximum(sq[:, None] - 2 * x @ centres.T + (centres**2).sum(1)[None], 0)
            labels = d2.argmin(1)
            new = centres.copy()
            for c in range(k):
                members = x[labels == c]
                if len(members):
                    new[c] = members.mean(0)
                else:  # an empty cluster takes the point farthest from its centre
                    far = d2[np.arange(n), labels].argmax()
                    new[c] = x[far]
                    labels[far] = c
            shift = float(((new - centres) ** 2).sum())
            centres = new
            if shift <= tol:
                break
        d2 = np.maximum(sq[:, None] - 2 * x @ centres.T + (centres**2).sum(1)[None], 0)
        labels = d2.argmin(1)
        inertia = float(d2[np.arange(n), labels].sum())
        if best is None or inertia < best[2] - 1e-12:
            best = (labels, centres, inertia)
    labels, centres, inertia = best
    sizes = np.bincount(labels, minlength=k)
    first = np.array([np.flatnonzero(labels == c)[0] if sizes[c] else n for c in range(k)])
    order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
    remap = np.empty(k, np.int64)
    remap[order] = np.arange(k)
    return remap[labels], centres[order].astype(np.float32), inertia


def _kmeans_pp(x: np.ndarray, sq: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[0]
    centres = [x[rng.integers(n)]]
    d2 = np.maximum(sq - 2 * x @ centres[0] + centres[0] @ centres[0], 0)
    for _ in range(1, k):
        total = d2.sum()
        i = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centres.append(x[i])
        d2 = np.minimum(d2, np.maximum(sq - 2 * x @ x[i] + x[i] @ x[i], 0))
    return np.stack(centres)


@dataclasses.dataclass
class Clustering:
    """k clusters of an index: ``labels[i]`` is the cluster of ``names[i]``; ``members(c)`` lists a
    cluster's names nearest its centre first."""

    names: list[str]
    labels: np.ndarray
    distances: np.ndarray  # each image's distance to its cluster centre
    k: int
    seed: int
    pca_dim: int | None = None

    def members(self, c: int) -> list[str]:
        idx = np.flatnonzero(self.labels == c)
        return [self.names[i] for i in idx[np.argsort(self.distances[idx], kind="stable")]]

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "seed": self.seed, "pca_dim": self.pca_dim,
                "clusters": [{"id": c, "size": int((self.labels == c).sum()), "members": self.members(c)}
                             for c in range(self.k)],
                "assignments": {n: int(l) for n, l in zip(self.names, self.labels)}}


def cluster_index(index: StyleIndex, k: int = DEFAULT_CLUSTERS, *, seed: int = 0,
                  pca_dim: int | None = None) -> Clustering:
    """k-means of an index's style vectors (optionally after :class:`PCA` to ``pca_dim``)."""
    x = index.vectors
    if pca_dim:
        x = PCA.fit(x, min(pca_dim, min(x.shape))).transform(x)
    labels, centres, _ = kmeans(x, k, seed=seed)
    distances = np.linalg.norm(np.asarray(x, np.float64) - centres[labels], axis=1)
    return Clustering(names=list(index.names), labels=labels, distances=distances, k=k, seed=seed, pca_dim=pca_dim)


def cluster_style_targets(vgg_params, images: Sequence[np.ndarray], *, layers: Sequence[str] = vgg19.STYLE_LAYERS,
                          padding: str = "zero", pool: str = "max",
                          channels: dict[str, Sequence[int]] | None = None) -> list[dict[str, jax.Array]]:
    """A cluster used as one style: the mean of its members' Gram matrices (seed 002's texture-word
    styles), as ``[{layer: (1, C, C)}]`` -- the format :func:`nst_jax.optimize.style_targets` returns.

    Passing the members as ``gatys(styles=members, style_blend=[1/n] * n)`` optimises against exactly
    these targets. ``channels`` restricts to selected filters (seed 001) as in ``style_targets``.
    """
    from nst_jax.optimize import style_targets

    if not images:
        raise InputError("a style cluster needs at least one image")
    images = [jnp.asarray(check_image(np.asarray(im, np.float32), kind=f"cluster image {i}"))
              for i, im in enumerate(images)]
    blend = [1.0 / len(images)] * len(images)
    return style_targets(vgg_params, images, layers=tuple(layers), padding=padding, pool=pool, blend=blend,
                         channels=channels)


def cluster_moment_targets(vgg_params, images: Sequence[np.ndarray], *, layers: Sequence[str] = vgg19.STYLE_LAYERS[:4],
                           padding: str = "reflect", pool: str = "max") -> dict[str, tuple[jax.Array, jax.Array]]:
    """A cluster as one style for mean/std-based methods (AdaIN family): ``{layer: (mean, std)}``, each
    (1, 1, 1, C), the average over members of :func:`nst_jax.kernels.stats.mean_std`."""
    if not images:
        raise InputError("a style cluster needs at least one image")
    sums: dict[str, list] = {}
    for i, im in enumerate(images):
        im = check_image(np.asarray(im, np.float32), kind=f"cluster image {i}")
        feats = vgg19.features(vgg_params, jnp.asarray(im)[None], tuple(layers), padding=padding, pool=pool)
        for layer in layers:
            m, s = mean_std(feats[layer])
            acc = sums.setdefault(layer, [0.0, 0.0])
            acc[0] = acc[0] + m
            acc[1] = acc[1] + s
    return {layer: (m / len(images), s / len(images)) for layer, (m, s) in sums.items()}


# ------------------------------------------------------------------------------------ CLI


def parse_cluster_spec(spec: str) -> tuple[Path, int, int]:
    """``"DIR:k"`` (cluster k of the seed's 3) or ``"DIR:k/K"`` (cluster k of K) -> (DIR, k, K)."""
    folder, sep, rest = str(spec).rpartition(":")
    if not sep or not folder:
        raise InputError(f"--style-cluster wants DIR:k or DIR:k/K (e.g. fluffy/:0), got {spec!r}")
    k_str, _, total_str = rest.partition("/")
    try:
        k = int(k_str)
        total = int(total_str) if total_str else DEFAULT_CLUSTERS
    except ValueError:
        raise InputError(f"--style-cluster wants DIR:k or DIR:k/K with integers, got {spec!r}") from None
    if total < 1 or not 0 <= k < total:
        raise InputError(f"--style-cluster {spec}: cluster k must be in [0, {total})")
    if not Path(folder).is_dir():
        raise InputError(f"--style-cluster folder {folder} is not a directory")
    return Path(folder), k, total


def cluster_members(vgg_params, folder: str | Path, cluster: int, n_clusters: int = DEFAULT_CLUSTERS, *,
                    seed: int = 0, progress: bool = True, **index_kwargs: Any) -> list[Path]:
    """Paths of the images in cluster ``cluster`` of ``folder`` -- the same clusters as
    ``nst-jax style-vectors cluster DIR --k n_clusters --seed seed`` with the same index settings."""
    index = index_folder(vgg_params, folder, progress=progress, **index_kwargs)
    clustering = cluster_index(index, n_clusters, seed=seed)
    return [index.root / n for n in clustering.members(cluster)]


def add_stylize_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--style-cluster DIR:k[/K]`` and ``--cluster-seed`` on the ``stylize`` parser."""
    g = parser.add_argument_group("texture-word styles (seed 002)")
    g.add_argument("--style-cluster", metavar="DIR:k",
                   help="use cluster k of the images in DIR (k-means of their style vectors into 3 clusters, "
                        "or K with DIR:k/K) as the style: the members' averaged Gram matrices. "
                        "Replaces --style; see `nst-jax style-vectors cluster DIR` for what the clusters hold")
    g.add_argument("--cluster-seed", type=int, default=0, help="k-means seed of --style-cluster")


def stylize_options(args, vgg_params, *, style_size: int | None = None,
                    report: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Turn ``--style-cluster DIR:k[/K]`` into keyword arguments of ``gatys``/``stylize``.

    Returns ``{}`` without the option, else ``{"styles": [member images], "style_blend": [1/n] * n}``:
    Gatys' blended targets are then exactly :func:`cluster_style_targets` of the cluster.
    """
    from nst_jax.image import load_image

    spec = getattr(args, "style_cluster", None)
    if not spec:
        return {}
    folder, k, total = parse_cluster_spec(spec)
    members = cluster_members(vgg_params, folder, k, total, seed=getattr(args, "cluster_seed", 0))
    styles = [load_image(p, size=style_size, kind="style") for p in members]
    (report or (lambda s: print(s, file=sys.stderr)))(
        f"style cluster {k} of {total} in {folder}/: {len(members)} images "
        f"({', '.join(p.name for p in members[:6])}{', ...' if len(members) > 6 else ''})")
    return {"styles": styles, "style_blend": [1.0 / len(styles)] * len(styles)}


def _add_index_options(p) -> None:
    p.add_argument("--index", dest="index_path", default=None,
                   help="index file (default: $NST_JAX_HOME/style_index/<hash of folder and settings>.npz)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="long side at which images are encoded")
    p.add_argument("--dim", type=int, default=DEFAULT_DIM, help="random-projection dimension (0: full vectors)")
    p.add_argument("--layers", default=",".join(DEFAULT_LAYERS), help="comma-separated VGG19 layers")
    p.add_argument("--projection-seed", type=int, default=0, help="seed of the random projection")
    p.add_argument("--force", action="store_true", help="re-encode every image")


def add_cli(subparsers) -> None:
    """Register ``nst-jax style-vectors index|search|cluster`` (handler :func:`cmd_style_vectors`)."""
    p = subparsers.add_parser(
        "style-vectors", help="Neural Style Vectors: index a folder, search similar styles, cluster styles",
        description="Neural Style Vectors (Matsuo & Yanai 2016): Gram upper triangle, signed sqrt, L2 norm, "
                    "per VGG19 layer, concatenated and randomly projected.")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    idx = sub.add_parser("index", help="encode (incrementally) every image of a folder",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    idx.add_argument("folder")
    _add_index_options(idx)
    s = sub.add_parser("search", help="nearest styles to a query image, as a contact sheet",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    s.add_argument("query", help="query image")
    s.add_argument("--dir", dest="folder", required=True, help="folder of styles to search (indexed first)")
    s.add_argument("--top", type=int, default=5, help="number of results")
    s.add_argument("-o", "--output", default=None, help="contact sheet PNG (default: QUERY-STEM_matches.png)")
    s.add_argument("--overwrite", action="store_true")
    _add_index_options(s)
    c = sub.add_parser("cluster", help="k-means of a folder's styles: contact sheets, CSV and JSON",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("folder")
    c.add_argument("--k", type=int, default=DEFAULT_CLUSTERS, help="number of clusters")
    c.add_argument("--seed", type=int, default=0, help="k-means seed (k-means++ init)")
    c.add_argument("--pca", type=int, default=0, help="reduce to this many principal components first (0: no)")
    c.add_argument("-o", "--output", default=None, help="output folder (default: FOLDER-NAME_clusters/)")
    c.add_argument("--overwrite", action="store_true")
    _add_index_options(c)
    p.set_defaults(handler=cmd_style_vectors)


def _index_from_args(args, vgg_params) -> StyleIndex:
    layers = tuple(s.strip() for s in args.layers.split(",") if s.strip())
    try:
        vgg19.check_layers(layers)
    except ValueError as err:
        raise InputError(str(err)) from None
    if args.dim < 0:
        raise InputError("--dim must be >= 0")
    index = index_folder(vgg_params, args.folder, cache=args.index_path, layers=layers, size=args.size,
                         dim=args.dim or None, seed=args.projection_seed, force=args.force)
    for name, why in index.skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    return index


def _thumb(path: Path, size: int = 256) -> np.ndarray:
    from nst_jax.image import load_image

    return load_image(path, size=size)


def cmd_style_vectors(args, vgg_params=None) -> int:
    """Handler of ``nst-jax style-vectors``; returns the exit code."""
    from nst_jax.image import contact_sheet, load_image, save_image

    if vgg_params is None:
        from nst_jax.weights import port

        vgg_params = port.load()
    if args.action == "index":
        index = _index_from_args(args, vgg_params)
        print(f"{len(index.names)} images indexed ({len(index.encoded)} encoded, "
              f"{len(index.names) - len(index.encoded)} cached), {index.vectors.shape[1]}-d vectors")
        return 0
    if args.action == "search":
        if args.top < 1:
            raise InputError("--top must be >= 1")
        out = Path(args.output or f"{Path(args.query).stem}_matches.png")
        if out.exists() and not args.overwrite:
            raise InputError(f"output exists: {out}; pass --overwrite to replace")
        query = load_image(args.query, kind="query")
        index = _index_from_args(args, vgg_params)
        hits = search(index, query_vector(vgg_params, index, query), top=args.top)
        for rank, (name, sim) in enumerate(hits, 1):
            print(f"{rank}\t{sim:.4f}\t{name}")
        cells = [_thumb(Path(args.query))] + [_thumb(index.root / n) for n, _ in hits]
        labels = ["query"] + [f"{r}. {n[:18]} ({s:.3f})" for r, (n, s) in enumerate(hits, 1)]
        save_image(out, contact_sheet([cells], col_labels=labels, cell=200))
        print(f"wrote {out}", file=sys.stderr)
        return 0
    # cluster
    out = Path(args.output or f"{Path(args.folder).resolve().name}_clusters")
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} must be a folder")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise InputError(f"output folder {out} is not empty; pass --overwrite to replace its files")
    index = _index_from_args(args, vgg_params)
    if not 1 <= args.k <= len(index.names):
        raise InputError(f"--k must be in [1, {len(index.names)}] for {len(index.names)} images")
    clustering = cluster_index(index, args.k, seed=args.seed, pca_dim=args.pca or None)
    write_clustering(clustering, index, out)
    for c in range(args.k):
        members = clustering.members(c)
        print(f"cluster {c} ({len(members)}): {', '.join(members)}")
    print(f"wrote {out}/clusters.csv, clusters.json, clusters.png, cluster_*.png", file=sys.stderr)
    return 0


def write_clustering(clustering: Clustering, index: StyleIndex, out: str | Path, *, per_row: int = 6,
                     max_per_cluster: int = 36, cell: int = 160) -> None:
    """Write ``clusters.csv`` (image, cluster, distance), ``clusters.json``, an overview ``clusters.png``
    (one row per cluster, nearest-to-centre first) and one contact sheet ``cluster_<c>.png`` per cluster."""
    from nst_jax.image import contact_sheet, save_image
    from nst_jax.params_io import atomic_write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["image", "cluster", "distance_to_centre"])
    for n, l, d in zip(clustering.names, clustering.labels, clustering.distances):
        writer.writerow([n, int(l), f"{d:.6f}"])
    atomic_write(out / "clusters.csv", lambda f: f.write(buf.getvalue().encode()))
    payload = {**clustering.to_dict(), "root": str(index.root), "index_settings": index.settings}
    atomic_write(out / "clusters.json", lambda f: f.write(json.dumps(payload, indent=2).encode()))
    thumbs: dict[str, np.ndarray] = {}

    def thumb(name):
        if name not in thumbs:
            thumbs[name] = _thumb(index.root / name, cell)
        return thumbs[name]

    overview = [[thumb(n) for n in clustering.members(c)[:per_row]] for c in range(clustering.k)]
    labels = [f"cluster {c}\n({len(clustering.members(c))})" for c in range(clustering.k)]
    save_image(out / "clusters.png", contact_sheet(overview, row_labels=labels, cell=cell,
                                                   title=f"{clustering.k} style clusters of {index.root.name}/"))
    for c in range(clustering.k):
        members = clustering.members(c)[:max_per_cluster]
        rows = [[thumb(n) for n in members[i:i + per_row]] for i in range(0, len(members), per_row)]
        save_image(out / f"cluster_{c}.png",
                   contact_sheet(rows, cell=cell, title=f"cluster {c}: {len(clustering.members(c))} images"))
