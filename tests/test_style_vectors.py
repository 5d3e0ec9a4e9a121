"""Neural Style Vectors (seed 002): definition, invariances, index, search, clustering, cluster styles."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nst_jax import style_vectors as sv
from nst_jax import vgg19
from nst_jax.errors import InputError
from nst_jax.image import load_image, resize, save_image
from nst_jax.kernels.stats import gram
from nst_jax.optimize import style_targets

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"
PAINTINGS = ("starry_night", "great_wave", "mondrian_tableau2", "picabia_udnie", "piranesi_prison_etching",
             "seurat_grande_jatte")


def painting(name: str, h: int = 64, w: int = 128) -> np.ndarray:
    return resize(load_image(SHARED / "style" / f"{name}.jpg", size=max(h, w)), h, w)


@pytest.fixture(scope="module")
def halves(vgg_params):
    """Left and right 64x64 halves of six paintings, and their full 5-layer style vectors."""
    images = [painting(n) for n in PAINTINGS]
    left = np.stack([im[:, :64] for im in images])
    right = np.stack([im[:, 64:] for im in images])
    per_left = sv.layer_vectors(vgg_params, left)
    per_right = sv.layer_vectors(vgg_params, right)
    return left, right, per_left, per_right


def test_gram_to_vector_follows_the_seed_definition():
    g = jnp.asarray([[[4.0, 1.0, 9.0], [1.0, 16.0, -4.0], [9.0, -4.0, 25.0]]])
    v = np.asarray(sv.gram_to_vector(g))[0]
    # V = [G11, G21, G22, G31, G32, G33], signed square root, L2 normalised.
    raw = np.array([4.0, 1.0, 16.0, 9.0, -4.0, 25.0])
    expected = np.sign(raw) * np.sqrt(np.abs(raw))
    np.testing.assert_allclose(v, expected / np.linalg.norm(expected), rtol=1e-6)


def test_dimensions_and_unit_norm(halves):
    left, _, per_left, _ = halves
    for layer, v in per_left.items():
        c = vgg19.CHANNELS[layer]
        assert v.shape == (len(PAINTINGS), c * (c + 1) // 2)
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert sv.vector_dims()["relu5_1"] == 131_328  # the seed's |V^conv5_1|
    full = sv.concat_vectors(per_left)
    assert full.shape == (len(PAINTINGS), 305_888)
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, rtol=1e-5)


def test_invariant_to_spatial_arrangement(vgg_params, halves):
    rng = np.random.default_rng(0)
    image = painting("starry_night", 64, 64)
    patches = image.reshape(4, 16, 4, 16, 3).transpose(0, 2, 1, 3, 4).reshape(16, 16, 16, 3)
    shuffled = patches[rng.permutation(16)].reshape(4, 4, 16, 16, 3).transpose(0, 2, 1, 3, 4).reshape(64, 64, 3)
    other = painting("mondrian_tableau2", 64, 64)
    v = sv.style_vectors(vgg_params, np.stack([image, shuffled, other]))
    assert v[0] @ v[1] > 0.9
    assert v[0] @ v[1] > v[0] @ v[2] + 0.05


def test_two_halves_of_a_painting_are_nearer_than_other_paintings(halves):
    *_, per_left, per_right = halves
    sims = sv.concat_vectors(per_left) @ sv.concat_vectors(per_right).T
    for i in range(len(PAINTINGS)):
        others = np.concatenate([np.delete(sims[i], i), np.delete(sims[:, i], i)])
        assert sims[i, i] > others.max(), (PAINTINGS[i], sims[i, i], others.max())


def test_random_projection_is_seeded_and_preserves_similarities(halves):
    *_, per_left, per_right = halves
    proj = sv.RandomProjection(512, seed=3)
    a, b = proj(per_left), proj(per_right)
    assert a.shape == (len(PAINTINGS), 512)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(a, sv.RandomProjection(512, seed=3)(per_left))
    assert not np.allclose(a, sv.RandomProjection(512, seed=4)(per_left))
    keyed = sv.RandomProjection(512, seed=jax.random.key(7))
    np.testing.assert_array_equal(keyed(per_left), sv.RandomProjection(512, seed=keyed.seed)(per_left))
    full = sv.concat_vectors(per_left) @ sv.concat_vectors(per_right).T
    assert np.corrcoef((a @ b.T).ravel(), full.ravel())[0, 1] > 0.8
    # Halves of the same painting still match best after projection.
    assert np.array_equal((a @ b.T).argmax(1), np.arange(len(PAINTINGS)))


def test_pca_reduces_and_normalises(halves):
    *_, per_left, per_right = halves
    x = np.concatenate([sv.concat_vectors(per_left), sv.concat_vectors(per_right)])
    pca = sv.PCA.fit(x, 4)
    y = pca.transform(x)
    assert y.shape == (12, 4)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(sv.PCA.fit(x, 4).components, pca.components)
    with pytest.raises(InputError):
        sv.PCA.fit(x, 50)


def test_kmeans_is_deterministic_and_finds_blobs():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(size=(n, 2)) for c, n in zip(centres, (12, 9, 6))])
    labels, found, inertia = sv.kmeans(x, 3, seed=0)
    again = sv.kmeans(x, 3, seed=0)
    np.testing.assert_array_equal(labels, again[0])
    np.testing.assert_array_equal(found, again[1])
    assert inertia == again[2]
    # Canonical numbering: by decreasing size.
    np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], [12, 9, 6]))
    for seed in (1, 2, 3):
        np.testing.assert_array_equal(sv.kmeans(x, 3, seed=seed)[0], labels)
    with pytest.raises(InputError):
        sv.kmeans(x, 28)


def _folder(tmp_path: Path, names=("starry_night", "great_wave", "mondrian_tableau2", "picabia_udnie")) -> Path:
    folder = tmp_path / "styles"
    folder.mkdir()
    for n in names:
        save_image(folder / f"{n}.png", painting(n, 48, 64))
    return folder


def test_index_is_cached_and_incremental(vgg_params, tmp_path):
    folder = _folder(tmp_path)
    cache = tmp_path / "index.npz"
    kw = dict(cache=cache, size=64, dim=64, progress=False)
    first = sv.index_folder(vgg_params, folder, **kw)
    assert sorted(first.encoded) == sorted(first.names) and len(first.names) == 4
    assert first.vectors.shape == (4, 64) and cache.is_file()
    second = sv.index_folder(vgg_params, folder, **kw)
    assert second.encoded == []
    np.testing.assert_array_equal(second.vectors, first.vectors)
    # A changed file and a new file are encoded; the others come from the cache.
    save_image(folder / "great_wave.png", painting("the_scream", 48, 64))
    save_image(folder / "water_lilies.png", painting("water_lilies", 48, 64))
    (folder / "notes.txt").write_text("not an image")
    third = sv.index_folder(vgg_params, folder, **kw)
    assert sorted(third.encoded) == ["great_wave.png", "water_lilies.png"]
    assert len(third.names) == 5
    # A removed file drops out without re-encoding anything.
    (folder / "picabia_udnie.png").unlink()
    fourth = sv.index_folder(vgg_params, folder, **kw)
    assert fourth.encoded == [] and "picabia_udnie.png" not in fourth.names
    # Other settings: everything is re-encoded.
    fifth = sv.index_folder(vgg_params, folder, **{**kw, "dim": 32})
    assert len(fifth.encoded) == 4 and fifth.vectors.shape == (4, 32)


def test_search_finds_the_query_first(vgg_params, tmp_path):
    folder = _folder(tmp_path)
    index = sv.index_folder(vgg_params, folder, cache=tmp_path / "i.npz", size=64, dim=128, progress=False)
    query = load_image(folder / "great_wave.png")
    vector = sv.query_vector(vgg_params, index, query)
    hits = sv.search(index, vector, top=3)
    assert hits[0][0] == "great_wave.png" and hits[0][1] > 0.999
    assert len(hits) == 3 and hits[1][1] <= hits[0][1]
    assert sv.search(index, vector, top=3, exclude_self=True)[0][0] != "great_wave.png"


def test_cluster_average_target_is_the_mean_of_members(vgg_params):
    members = [painting(n, 32, 48) for n in PAINTINGS[:3]]
    layers = ("relu1_1", "relu3_1")
    target = sv.cluster_style_targets(vgg_params, members, layers=layers)
    assert isinstance(target, list) and len(target) == 1
    for layer in layers:
        grams = [gram(vgg19.features(vgg_params, jnp.asarray(m)[None], (layer,))[layer]) for m in members]
        np.testing.assert_allclose(target[0][layer], sum(grams) / 3, rtol=1e-5)
        assert target[0][layer].shape == (1, vgg19.CHANNELS[layer], vgg19.CHANNELS[layer])
    # Same targets as Gatys' blended targets with equal weights (what --style-cluster passes).
    blended = style_targets(vgg_params, [jnp.asarray(m) for m in members], layers=layers, padding="zero",
                            pool="max", blend=[1 / 3] * 3)
    for layer in layers:
        np.testing.assert_allclose(target[0][layer], blended[0][layer], rtol=1e-6)
    moments = sv.cluster_moment_targets(vgg_params, members, layers=("relu2_1",))
    from nst_jax.kernels.stats import mean_std

    stats = [mean_std(vgg19.features(vgg_params, jnp.asarray(m)[None], ("relu2_1",), padding="reflect")["relu2_1"])
             for m in members]
    np.testing.assert_allclose(moments["relu2_1"][0], sum(s[0] for s in stats) / 3, rtol=1e-5)
    np.testing.assert_allclose(moments["relu2_1"][1], sum(s[1] for s in stats) / 3, rtol=1e-5)


def test_parse_cluster_spec(tmp_path):
    assert sv.parse_cluster_spec(f"{tmp_path}:1") == (tmp_path, 1, 3)
    assert sv.parse_cluster_spec(f"{tmp_path}:4/5") == (tmp_path, 4, 5)
    for bad in (f"{tmp_path}:3", f"{tmp_path}:x", str(tmp_path), f"{tmp_path}/missing:0"):
        with pytest.raises(InputError):
            sv.parse_cluster_spec(bad)


def _parse(argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sv.add_cli(sub)
    p = sub.add_parser("stylize")
    sv.add_stylize_arguments(p)
    return parser.parse_args(argv)


def test_cli_index_search_cluster_and_style_cluster(vgg_params, tmp_path, capsys):
    folder = _folder(tmp_path, PAINTINGS)
    common = ["--size", "64", "--dim", "64", "--index", str(tmp_path / "idx.npz")]
    args = _parse(["style-vectors", "index", str(folder), *common])
    assert args.handler(args, vgg_params) == 0
    assert "6 images indexed (6 encoded" in capsys.readouterr().out

    out = tmp_path / "matches.png"
    args = _parse(["style-vectors", "search", str(folder / "picabia_udnie.png"), "--dir", str(folder), "--top", "2",
                   "-o", str(out), *common])
    assert args.handler(args, vgg_params) == 0
    first = capsys.readouterr().out.splitlines()[0].split("\t")
    assert first[0] == "1" and first[2] == "picabia_udnie.png"
    assert out.is_file()
    with pytest.raises(InputError, match="exists"):
        args.handler(args, vgg_params)

    outdir = tmp_path / "clusters"
    args = _parse(["style-vectors", "cluster", str(folder), "--k", "2", "--seed", "0", "-o", str(outdir), *common])
    assert args.handler(args, vgg_params) == 0
    rows = list(csv.DictReader((outdir / "clusters.csv").open()))
    assert sorted(r["image"] for r in rows) == sorted(f"{n}.png" for n in PAINTINGS)
    data = json.loads((outdir / "clusters.json").read_text())
    assert data["k"] == 2 and sum(c["size"] for c in data["clusters"]) == 6
    assert (outdir / "clusters.png").is_file() and (outdir / "cluster_1.png").is_file()
    # Same seed, same clusters (the CSV is rewritten identically).
    before = (outdir / "clusters.csv").read_text()
    args = _parse(["style-vectors", "cluster", str(folder), "--k", "2", "-o", str(outdir), "--overwrite", *common])
    assert args.handler(args, vgg_params) == 0
    assert (outdir / "clusters.csv").read_text() == before

    # The clusters --style-cluster uses are the ones the cluster command wrote.
    members = sv.cluster_members(vgg_params, folder, 1, 2, size=64, dim=64, cache=tmp_path / "idx.npz", progress=False)
    assert [folder.resolve() / m for m in data["clusters"][1]["members"]] == members


def test_stylize_options_style_cluster(vgg_params, tmp_path, monkeypatch):
    monkeypatch.setenv("NST_JAX_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sv, "DEFAULT_SIZE", 64)
    folder = _folder(tmp_path, PAINTINGS[:4])
    args = _parse(["stylize", "--style-cluster", f"{folder}:0/2"])
    assert sv.stylize_options(_parse(["stylize"]), vgg_params) == {}
    messages = []
    opts = sv.stylize_options(args, vgg_params, style_size=32, report=messages.append)
    n = len(opts["styles"])
    assert 1 <= n <= 3 and opts["style_blend"] == [1.0 / n] * n
    assert all(max(s.shape[:2]) == 32 for s in opts["styles"])
    assert "style cluster 0 of 2" in messages[0]
    assert any((tmp_path / "home" / "style_index").iterdir())
