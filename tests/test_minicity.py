"""Label statistics and on-disk formats of a generated MiniCity instance (the embedded benchmark)."""
import json
import numpy as np
import pytest
from PIL import Image

from cda_nb.data import CLASSES19, THING19, ID2TRAIN, CS_KNOWN, GTA5, Cityscapes
from cda_nb.minicity import (make_minicity, minicity_root, class_frequencies, MNIST_RANGES, MC_IDS, EGO_ID, H, W,
                             DEFAULT_GAP, VERSION)


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    return make_minicity(tmp_path_factory.mktemp("mc") / "root", seed=0, n_source=48, n_train=48, n_val=16, progress=False)


@pytest.fixture(scope="module")
def freq(inst):
    return class_frequencies(inst)


def test_layout_and_formats(inst):
    imgs = sorted((inst / "gta5/images").glob("*.png"))
    assert [p.name for p in imgs[:2]] == ["00000.png", "00001.png"] and len(imgs) == 48
    lab = Image.open(inst / "gta5/labels/00000.png")
    assert lab.mode == "P" and lab.size == (W, H)
    assert Image.open(imgs[0]).mode == "RGB"
    for split, n in (("train", 48), ("val", 16)):
        files = sorted((inst / "cityscapes/leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        assert len(files) == n and 2 <= len({p.parent.name for p in files}) <= 3
        lbl = inst / "cityscapes/gtFine" / split / files[0].parent.name / files[0].name.replace("leftImg8bit", "gtFine_labelIds")
        assert Image.open(lbl).mode == "L"
    # the kit's loaders read it without complaint
    assert len(GTA5(inst / "gta5")) == 48 and len(Cityscapes(inst / "cityscapes", split="val")) == 16
    meta = json.loads((inst / "minicity.json").read_text())
    assert meta["version"] == VERSION and meta["gap"] == DEFAULT_GAP


def test_only_valid_ids(inst):
    ids = np.concatenate([np.array(Image.open(p)).ravel() for p in (inst / "gta5/labels").glob("*.png")]
                         + [np.array(Image.open(p)).ravel() for p in (inst / "cityscapes/gtFine").rglob("*.png")])
    assert CS_KNOWN[ids].all()
    assert set(np.unique(ids)) <= set(MC_IDS.values()) | {EGO_ID}


def test_class_requirements(freq):
    src, tgt = freq["source"], freq["train"]
    present = [c for c in CLASSES19 if src[c] > 0 and tgt[c] > 0]
    assert len(present) >= 10
    assert sum(THING19[CLASSES19.index(c)] for c in present) >= 3
    rare = [c for c in present if src[c] < 0.02]
    assert len(rare) >= 2, rare
    for s in ("source", "train", "val"):
        assert abs(sum(freq[s].values()) - 1) < 1e-6


def test_class_frequency_shift(freq):
    src, tgt = freq["source"], freq["train"]
    assert src["car"] > 1.5 * tgt["car"]
    assert tgt["person"] > 2 * src["person"]
    assert tgt["bicycle"] + tgt["rider"] > src["bicycle"] + src["rider"]
    assert tgt["sidewalk"] > src["sidewalk"]                       # narrower road, wider sidewalks in the target
    assert tgt["vegetation"] > src["vegetation"] and src["building"] > tgt["building"]
    # target-train and target-val come from one distribution, the source from another
    l1 = lambda a, b: sum(abs(a[c] - b[c]) for c in CLASSES19)
    assert l1(tgt, freq["val"]) < l1(src, tgt)


def test_target_ignores_ego_hood(inst):
    ego = sum((np.array(Image.open(p)) == EGO_ID).sum() for p in (inst / "cityscapes/gtFine/train").rglob("*.png"))
    src_ego = sum((np.array(Image.open(p)) == EGO_ID).sum() for p in (inst / "gta5/labels").glob("*.png"))
    assert ego > 0 and src_ego == 0 and ID2TRAIN[EGO_ID] == 255


def test_disjoint_digit_ranges():
    r = sorted(MNIST_RANGES.values())
    assert r[0][0] == 0 and r[0][1] <= r[1][0] and r[1][1] <= r[2][0] and r[2][1] <= 5000


def test_appearance_shift(inst):
    "Source images are posterised (few grey levels per channel), target images are not."
    src = np.array(Image.open(inst / "gta5/images/00000.png"))
    tgt = np.array(Image.open(next((inst / "cityscapes/leftImg8bit/train").rglob("*.png"))))
    assert len(np.unique(src[..., 0])) < 20 < len(np.unique(tgt[..., 0]))


def test_deterministic_statistics(tmp_path):
    a = class_frequencies(make_minicity(tmp_path / "a", seed=3, n_source=6, n_train=4, n_val=2, progress=False))
    b = class_frequencies(make_minicity(tmp_path / "b", seed=3, n_source=6, n_train=4, n_val=2, progress=False))
    c = class_frequencies(make_minicity(tmp_path / "c", seed=4, n_source=6, n_train=4, n_val=2, progress=False))
    assert a == b and a != c


def test_root_is_cached_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_NB_CACHE", str(tmp_path))
    r = minicity_root(seed=1, progress=False, n_source=3, n_train=2, n_val=2)
    assert r.parent == tmp_path and (r / "minicity.json").is_file()
    t = (r / "minicity.json").stat().st_mtime_ns
    assert minicity_root(seed=1, progress=False, n_source=3, n_train=2, n_val=2) == r
    assert (r / "minicity.json").stat().st_mtime_ns == t
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
