"""`equihand prepare` (validation + cache) and `equihand.data.cache.PreparedData`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from equihand import cli
from equihand.config import load_config
from equihand.data import prepare as prep
from equihand.data.annotations import project
from equihand.data.cache import PreparedData
from equihand.data.layout import N_JOINTS, PART_NAMES, annotation_path, image_path, parts_path
from equihand.data.splits import make_splits
from equihand.errors import DataError

SIZE = 224  # FreiHAND's image side
RES = 32  # cache resolution used by most tests


# ---------------------------------------------------------------------------------------------
# a tiny dataset in the FreiHAND layout


def _hand(rng: np.random.Generator) -> np.ndarray:
    """Plausible joints: wrist about 0.5 m in front of the camera, fingers within 10 cm."""
    wrist = np.array([0.0, 0.0, 0.5]) + rng.normal(0, 0.02, 3)
    return wrist + np.vstack([np.zeros(3), rng.uniform(-0.08, 0.08, (N_JOINTS - 1, 3))])


def _dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj))


def make_freihand(
    root: Path,
    n: int = 10,
    versions: int = 4,
    n_eval: int = 6,
    hand_ids: list[int] | None = None,
    extras: bool = False,
    seed: int = 0,
) -> Path:
    """Write `n` training annotations x `versions` images and `n_eval` evaluation samples."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    K = [[500.0, 0.0, 112.0], [0.0, 500.0, 112.0], [0.0, 0.0, 1.0]]
    for split, n_ann, n_img in (("training", n, n * versions), ("evaluation", n_eval, n_eval)):
        xyz = np.stack([_hand(rng) for _ in range(n_ann)])
        _dump(annotation_path(root, split, "xyz"), xyz.tolist())
        _dump(annotation_path(root, split, "K"), [K] * n_ann)
        scale = np.linalg.norm(xyz[:, 9] - xyz[:, 10], axis=1)
        _dump(annotation_path(root, split, "scale"), scale.tolist())
        (root / split / "rgb").mkdir(parents=True)
        for i in range(n_img):
            pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(image_path(root, split, i), quality=90)
        if extras:
            _dump(
                annotation_path(root, split, "gesture"), [int(g) for g in rng.integers(0, 3, n_ann)]
            )
            vis = rng.integers(0, 2, (n_ann, N_JOINTS))
            _dump(annotation_path(root, split, "visibility"), vis.tolist())
            uv = project(xyz, np.asarray(K))
            _dump(annotation_path(root, split, "uv"), uv.tolist())
            (root / split / "parts").mkdir()
            for i in range(n_img):
                labels = rng.integers(0, len(PART_NAMES), (SIZE, SIZE), dtype=np.uint8)
                Image.fromarray(labels).save(parts_path(root, split, i))
    if hand_ids is not None:
        _dump(annotation_path(root, "training", "hand_id"), hand_ids)
    if extras:
        meta = {"gesture_names": ["fist", "open", "point"], "part_names": list(PART_NAMES)}
        _dump(root / "synth_meta.json", meta)
    return root


def _config(*overrides: str) -> dict:
    # 30% labeled (not the recipe's 100%), so that the unlabeled pool the tests check is not empty
    base = ["prepare.resolution=32", "prepare.workers=1", "prepare.labeled_fraction=0.3"]
    return load_config(None, [*base, *overrides])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_freihand(tmp_path_factory.mktemp("freihand") / "data")


@pytest.fixture(scope="module")
def cache(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "synth"
    prep.prepare(dataset, out, _config())
    return out


def _load(out: Path, name: str) -> np.ndarray:
    return np.load(out / f"{name}.npy", mmap_mode="r")


def _splits(out: Path) -> dict[str, np.ndarray]:
    with np.load(out / "splits.npz") as z:
        return {k: z[k] for k in z.files}


# ---------------------------------------------------------------------------------------------
# a valid dataset


def test_cache_shapes_and_dtypes(cache):
    n = 10 * 4 + 6
    expected = {
        "images": (np.uint8, (n, RES, RES, 3)),
        "xyz": (np.float32, (n, 21, 3)),
        "K": (np.float32, (n, 3, 3)),
        "uv": (np.float32, (n, 21, 2)),
        "scale": (np.float32, (n,)),
        "source_split": (np.int8, (n,)),
        "image_index": (np.int64, (n,)),
        "annotation_index": (np.int64, (n,)),
        "hand_id": (np.int64, (n,)),
        "gesture": (np.int64, (n,)),
        "visibility": (np.bool_, (n, 21)),
    }
    for name, (dtype, shape) in expected.items():
        arr = _load(cache, name)
        assert isinstance(arr, np.memmap), name
        assert arr.dtype == dtype and arr.shape == shape, name
    assert not (cache / "parts.npy").exists()
    np.testing.assert_array_equal(_load(cache, "source_split"), [0] * 40 + [1] * 6)
    np.testing.assert_array_equal(_load(cache, "image_index"), [*range(40), *range(6)])
    np.testing.assert_array_equal(
        _load(cache, "annotation_index"), [i % 10 for i in range(40)] + list(range(6))
    )
    assert (_load(cache, "hand_id") == -1).all() and (_load(cache, "gesture") == -1).all()
    assert _load(cache, "visibility").all()

    meta = json.loads((cache / "meta.json").read_text())
    assert meta["format_version"] == 1 and meta["resolution"] == RES and meta["n_images"] == n
    assert meta["counts"]["training"] == {"images": 40, "annotations": 10}
    assert meta["counts"]["test"] == 6 and meta["original_size"]["training"] == [SIZE, SIZE]
    assert meta["grouping"] == "annotation_index"
    assert sorted(p.name for p in cache.iterdir()) == meta["files"]
    assert "prepare:" in (cache / "config.yaml").read_text()


def test_labels_follow_annotation_modulo(dataset, cache):
    xyz = np.array(json.loads(annotation_path(dataset, "training", "xyz").read_text()))
    scale = np.array(json.loads(annotation_path(dataset, "training", "scale").read_text()))
    np.testing.assert_allclose(_load(cache, "xyz")[:40], xyz[np.arange(40) % 10], rtol=1e-6)
    np.testing.assert_allclose(_load(cache, "scale")[:40], scale[np.arange(40) % 10], rtol=1e-6)
    # the cached image is the bilinear resize of the file
    with Image.open(image_path(dataset, "training", 13)) as im:
        small = np.asarray(im.convert("RGB").resize((RES, RES), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(_load(cache, "images")[13], small)


def test_uv_is_projection_with_cached_K(dataset, cache):
    xyz, K, uv = _load(cache, "xyz"), _load(cache, "K"), _load(cache, "uv")
    np.testing.assert_allclose(uv, project(xyz.astype(np.float64), K), atol=1e-3)
    # against the original-resolution projection: scaled by R / size, pixel centres at integers
    K0 = np.array(json.loads(annotation_path(dataset, "training", "K").read_text()))
    xyz0 = np.array(json.loads(annotation_path(dataset, "training", "xyz").read_text()))
    uv0 = project(xyz0, K0)
    s = RES / SIZE
    np.testing.assert_allclose(uv[:10], (uv0 + 0.5) * s - 0.5, atol=1e-3)
    np.testing.assert_allclose(K[0, :2, :2], np.asarray(K0[0])[:2, :2] * s, rtol=1e-6)


def test_rescaled_K_matches_image_content(tmp_path):
    """A bright square centred on a projected point stays centred on the cached uv."""
    root = make_freihand(tmp_path / "data", n=2, versions=1, n_eval=1)
    K0 = np.array([[500.0, 0, 112.0], [0, 500.0, 112.0], [0, 0, 1]])
    point = np.array([0.03, -0.02, 0.5])  # projects to (142, 92): square covers 135..148, 85..98
    u0, v0 = project(point[None], K0)[0]
    xyz = [[(point + 0.01 * j * np.array([0, 0, 1])).tolist() for j in range(21)]] * 2
    _dump(annotation_path(root, "training", "xyz"), xyz)
    _dump(annotation_path(root, "training", "scale"), [0.01] * 2)  # |xyz[9] - xyz[10]|
    pixels = np.zeros((SIZE, SIZE, 3), np.uint8)
    pixels[int(v0) - 7 : int(v0) + 7 + 1, int(u0) - 7 : int(u0) + 7 + 1] = 255  # centre (u0, v0)
    Image.fromarray(pixels).save(image_path(root, "training", 0), quality=100)
    out = tmp_path / "out"
    prep.prepare(root, out, _config())
    img = _load(out, "images")[0].astype(np.float64).mean(axis=2)
    rows, cols = np.mgrid[0:RES, 0:RES]
    centroid = np.array([(img * cols).sum(), (img * rows).sum()]) / img.sum()
    np.testing.assert_allclose(centroid, _load(out, "uv")[0, 0], atol=0.1)


def test_four_versions_never_straddle_splits(cache):
    splits = _splits(cache)
    ann = _load(cache, "annotation_index")
    unlabeled = np.setdiff1d(splits["pool"], splits["labeled"])
    groups = [set(ann[splits[k]]) for k in ("val", "labeled")] + [set(ann[unlabeled])]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not groups[a] & groups[b]
    for name in ("val", "labeled"):
        assert len(splits[name]) % 4 == 0  # all four versions of each sample
    assert len(splits["val"]) == 4 and len(splits["labeled"]) == 12  # 10% and 30% of 10 samples


def test_hand_id_grouping_never_straddles(tmp_path):
    hand_ids = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9]
    root = make_freihand(tmp_path / "data", n=20, versions=1, n_eval=2, hand_ids=hand_ids)
    out = tmp_path / "out"
    meta = prep.prepare(root, out, _config("prepare.labeled_fraction=0.5"))
    assert meta["grouping"] == "hand_id"
    splits, hid = _splits(out), _load(out, "hand_id")
    np.testing.assert_array_equal(hid[:20], hand_ids)
    assert (hid[20:] == -1).all()
    unlabeled = np.setdiff1d(splits["pool"], splits["labeled"])
    sets = [set(hid[splits["val"]]), set(hid[splits["labeled"]]), set(hid[unlabeled])]
    assert [len(s) for s in sets] == [1, 5, 4]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])


def test_splits_disjoint_sorted_and_pool_excludes_val_test(cache):
    splits = _splits(cache)
    for name, idx in splits.items():
        assert idx.dtype == np.int64 and (np.diff(idx) > 0).all(), name
    np.testing.assert_array_equal(splits["test"], np.arange(40, 46))
    assert not np.intersect1d(splits["pool"], splits["val"]).size
    assert not np.intersect1d(splits["pool"], splits["test"]).size
    assert not np.intersect1d(splits["labeled"], splits["val"]).size
    assert np.isin(splits["labeled"], splits["pool"]).all()  # pool_includes_labeled defaults true
    every = np.union1d(np.union1d(splits["pool"], splits["val"]), splits["test"])
    np.testing.assert_array_equal(every, np.arange(46))


def test_splits_deterministic_from_seed():
    groups = np.repeat(np.arange(50), 2)
    cfg = {"seed": 3, "val_fraction": 0.1, "labeled_fraction": 0.3, "pool_includes_labeled": False}
    a = make_splits(groups, 100, 120, cfg)
    b = make_splits(groups, 100, 120, cfg)
    c = make_splits(groups, 100, 120, {**cfg, "seed": 4})
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["val"], c["val"]) or not np.array_equal(a["labeled"], c["labeled"])
    assert (len(a["val"]), len(a["labeled"]), len(a["pool"])) == (10, 30, 60)  # pool = unlabeled
    assert not np.intersect1d(a["pool"], a["labeled"]).size


def test_same_seed_same_cache_and_parallel_decoding(dataset, cache, tmp_path):
    """workers=2 (a process pool) gives the very same cache as workers=1."""
    out = tmp_path / "again"
    prep.prepare(dataset, out, _config("prepare.workers=2"))
    for name in ("images", "xyz", "K", "uv"):
        np.testing.assert_array_equal(_load(out, name), _load(cache, name))
    for name, idx in _splits(cache).items():
        np.testing.assert_array_equal(_splits(out)[name], idx)


def test_extras_and_parts(tmp_path):
    root = make_freihand(tmp_path / "data", n=6, versions=1, n_eval=2, extras=True)
    out = tmp_path / "out"
    meta = prep.prepare(root, out, _config())
    parts = _load(out, "parts")
    assert parts.dtype == np.uint8 and parts.shape == (8, RES, RES)
    with Image.open(parts_path(root, "training", 4)) as im:
        small = np.asarray(im.resize((RES, RES), Image.Resampling.NEAREST))
    np.testing.assert_array_equal(parts[4], small)
    gesture = json.loads(annotation_path(root, "training", "gesture").read_text())
    np.testing.assert_array_equal(_load(out, "gesture")[:6], gesture)
    vis = json.loads(annotation_path(root, "evaluation", "visibility").read_text())
    np.testing.assert_array_equal(_load(out, "visibility")[6:], np.array(vis, bool))
    assert meta["gesture_names"] == ["fist", "open", "point"]
    assert meta["part_names"] == list(PART_NAMES) and "parts.npy" in meta["files"]


# ---------------------------------------------------------------------------------------------
# errors: a DataError naming the file and index, and no cache left behind


def _set_entry(key: str, index: int, value):
    def mutate(root: Path) -> None:
        path = annotation_path(root, "training", key)
        data = json.loads(path.read_text())
        data[index] = value
        path.write_text(json.dumps(data))

    return mutate


def _truncate_last(root: Path) -> None:
    path = annotation_path(root, "training", "K")
    path.write_text(json.dumps(json.loads(path.read_text())[:-1]))


def _corrupt_image(truncate: bool):
    def mutate(root: Path) -> None:
        path = image_path(root, "evaluation", 3)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if truncate else b"not a jpeg at all")

    return mutate


def _nan_K(root: Path) -> None:
    path = annotation_path(root, "training", "K")
    data = json.loads(path.read_text())
    data[2][0][2] = float("nan")
    path.write_text(json.dumps(data))  # json writes NaN, and Python's json reads it back


def _rescale(key: str, factor: float):
    """Multiply the training split's xyz, scale or both by `factor` (another unit)."""

    def mutate(root: Path) -> None:
        for name in ("xyz", "scale") if key == "both" else (key,):
            path = annotation_path(root, "training", name)
            values = np.asarray(json.loads(path.read_text())) * factor
            path.write_text(json.dumps(values.tolist()))

    return mutate


def _wrong_uv(root: Path) -> None:
    path = annotation_path(root, "training", "uv")
    data = json.loads(path.read_text())
    data[1][5][0] += 3.0
    path.write_text(json.dumps(data))


ERRORS = {
    "unequal lengths": (_truncate_last, r"training_K\.json: expected 10 entries .* got 9"),
    "xyz shape": (
        _set_entry("xyz", 7, [[0.0, 0.0, 0.5]] * 20),
        r"training_xyz\.json\[7\]: expected 21x3 numbers, got 20x3",
    ),
    "xyz ragged": (
        _set_entry("xyz", 4, [[0.0, 0.5]] + [[0.0, 0.0, 0.5]] * 20),
        r"training_xyz\.json\[4\]: expected 21x3 numbers, got a ragged",
    ),
    "NaN in K": (_nan_K, r"training_K\.json\[2\]: expected finite numbers"),
    "focal": (
        _set_entry("K", 5, [[-500.0, 0, 112.0], [0, 500.0, 112.0], [0, 0, 1]]),
        r"training_K\.json\[5\]: expected positive focal lengths",
    ),
    "scale": (_set_entry("scale", 3, 0.0), r"training_scale\.json\[3\]: expected a positive"),
    "xyz in mm": (
        _rescale("xyz", 1000.0),
        r"training_xyz\.json: looks like millimetres: its lengths are about 1000x those of "
        r"training_scale\.json",
    ),
    "scale in cm": (
        _rescale("scale", 100.0),
        r"training_scale\.json: looks like centimetres: its lengths are about 100x those of "
        r"training_xyz\.json",
    ),
    "scale not the bone": (
        _rescale("scale", 5.0),
        r"training_scale\.json: expected the length of the bone between joints 9 and 10",
    ),
    "both in mm": (
        _rescale("both", 1000.0),
        r"training_xyz\.json and .*training_scale\.json: look like millimetres .*divide by 1000",
    ),
    "missing image": (
        lambda root: image_path(root, "training", 5).unlink(),
        r"training/rgb/00000005\.jpg: missing",
    ),
    "undecodable image": (_corrupt_image(False), r"evaluation/rgb/00000003\.jpg: not a decodable"),
    "truncated image": (_corrupt_image(True), r"evaluation/rgb/00000003\.jpg: not a decodable"),
    "grey image": (
        lambda root: Image.new("L", (SIZE, SIZE)).save(image_path(root, "training", 0)),
        r"training/rgb/00000000\.jpg: expected an RGB image",
    ),
    "missing file": (
        lambda root: annotation_path(root, "evaluation", "scale").unlink(),
        r"evaluation_scale\.json: missing",
    ),
    "bad json": (
        lambda root: annotation_path(root, "evaluation", "xyz").write_text("[[1, 2"),
        r"evaluation_xyz\.json: not valid JSON",
    ),
    "uv disagrees": (_wrong_uv, r"training_uv\.json\[1\]: expected the projection"),
    "gesture out of range": (
        _set_entry("gesture", 2, 7),
        r"training_gesture\.json\[2\]: expected an integer <= 2, got 7",
    ),
}


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_invalid_dataset_raises_and_leaves_no_cache(tmp_path, case):
    mutate, pattern = ERRORS[case]
    root = make_freihand(tmp_path / "data", n=10, versions=1, n_eval=4, extras=True)
    mutate(root)
    out = tmp_path / "prepared" / "synth"
    with pytest.raises(DataError, match=pattern):
        prep.prepare(root, out, _config())
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_interrupted_run_leaves_no_cache_and_keeps_the_old_one(dataset, tmp_path, monkeypatch):
    out = tmp_path / "prepared" / "synth"
    prep.prepare(dataset, out, _config())
    before = (out / "meta.json").read_bytes()
    calls = {"n": 0}
    real_decode = prep.decode_image

    def dying_decode(*args):
        calls["n"] += 1
        if calls["n"] > 20:
            raise KeyboardInterrupt  # as if the job were killed midway through the images
        return real_decode(*args)

    monkeypatch.setattr(prep, "decode_image", dying_decode)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(dataset, out, _config("prepare.resolution=16"))
    assert [p.name for p in out.parent.iterdir()] == ["synth"]  # no temporary folder left
    assert (out / "meta.json").read_bytes() == before

    calls["n"] = 0
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(dataset, fresh, _config())
    assert not fresh.exists() and [p.name for p in tmp_path.iterdir()] == ["prepared"]


def test_too_few_groups(tmp_path):
    root = make_freihand(tmp_path / "data", n=1, versions=4, n_eval=1)
    with pytest.raises(DataError, match="at least 2"):
        prep.prepare(root, tmp_path / "out", _config())


# ---------------------------------------------------------------------------------------------
# reading the cache


def test_prepared_data_reads_memory_mapped(cache):
    data = PreparedData(cache)
    assert len(data) == 46 and isinstance(data.images, np.memmap)
    assert data.images.shape == (46, RES, RES, 3) and data.xyz.dtype == np.float32
    np.testing.assert_array_equal(data.split("test"), np.arange(40, 46))
    assert data.has("uv") and not data.has("parts")
    with pytest.raises(AttributeError):
        _ = data.parts
    with pytest.raises(KeyError, match="unknown split"):
        data.split("train")


def test_prepared_data_rejects_missing_or_unknown_cache(tmp_path):
    with pytest.raises(DataError, match="not a prepared cache"):
        PreparedData(tmp_path / "nothing")
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(DataError, match="format_version 99, expected 1"):
        PreparedData(tmp_path)


# ---------------------------------------------------------------------------------------------
# the command line


def test_cli_prepare(dataset, tmp_path, capsys):
    results = tmp_path / "results"
    argv = ["prepare", "--root", str(dataset), "--set", f"results_dir={results}"]
    assert cli.main([*argv, "--set", "prepare.resolution=16", "--set", "progress=never"]) == 0
    data = PreparedData(results / "prepared" / "synth")
    assert data.images.shape == (46, 16, 16, 3)
    assert "prepared 46 images" in capsys.readouterr().err


def test_cli_prepare_error(tmp_path, capsys):
    root = make_freihand(tmp_path / "data", n=4, versions=1, n_eval=1)
    _set_entry("xyz", 2, [[0.0, 0.0, 0.5]] * 20)(root)
    out = tmp_path / "out"
    assert cli.main(["prepare", "--root", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "equihand prepare: error:" in err and "training_xyz.json[2]: expected 21x3" in err
    assert "Traceback" not in err and not out.exists()
    assert cli.main(["prepare", "--root", str(tmp_path / "absent"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# end to end with the synthetic renderer (once it exists)


def test_prepare_synthetic_dataset(tmp_path):
    synth = pytest.importorskip("equihand.data.synth")
    if not hasattr(synth, "synthesize"):
        pytest.skip("equihand.data.synth.synthesize not written yet")
    config = load_config(
        None,
        [
            "synth.n_train=40",
            "synth.n_eval=8",
            "synth.image_size=64",
            "synth.n_hands_train=8",
            "synth.n_hands_eval=2",
            "synth.workers=1",
            "prepare.resolution=32",
            "prepare.workers=1",
        ],
    )
    root = tmp_path / "synth"
    synth.synthesize(root, config)
    out = tmp_path / "prepared"
    meta = prep.prepare(root, out, config)
    data = PreparedData(out)
    assert len(data) == 48 and meta["grouping"] == "hand_id"
    assert data.images.shape == (48, 32, 32, 3)
    np.testing.assert_allclose(data.uv, project(np.asarray(data.xyz, float), data.K), atol=1e-3)
    hid = data.hand_id
    assert not set(hid[data.split("val")]) & set(hid[data.split("pool")])
    assert (data.gesture[:40] >= 0).all() and meta["gesture_names"]
    assert data.has("parts") and data.parts.shape == (48, 32, 32)
