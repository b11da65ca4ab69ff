"""ShiftCity, the second embedded benchmark (issue 24): true formats, determinism, the cache, split disjointness,
a class-conditional gap with close global channel statistics, small classes present, and the kit's integration."""
import json, os
import numpy as np
import pytest
from PIL import Image

from cda_nb.data import GTA5, Cityscapes, ID2TRAIN, CLASSES19
from cda_nb.minicity import class_frequencies, minicity_problem
from cda_nb.shiftcity import (make_shiftcity, shiftcity_root, domain_statistics, digit_pool, mnist_labelled, clean_stale_temps,
                              THINGS, VERSION, DEFAULT_SHIFT, H, W, SPLITS)

SMALL = ("pole", "traffic light", "traffic sign", "person", "rider")
SIZES = dict(n_source=40, n_train=40, n_val=12, n_test=12)


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    return make_shiftcity(tmp_path_factory.mktemp("sc") / "root", seed=0, progress=False, **SIZES)


def test_true_formats(inst):
    lab = Image.open(inst / "gta5/labels/00000.png")
    assert lab.mode == "P" and lab.size == (W, H) and Image.open(inst / "gta5/images/00000.png").mode == "RGB"
    for split in ("train", "val", "test"):
        files = sorted((inst / "cityscapes/leftImg8bit" / split).glob("*/*_leftImg8bit.png"))
        assert len(files) == SIZES[f"n_{split}"]
        lbl = inst / "cityscapes/gtFine" / split / files[0].parent.name / files[0].name.replace("leftImg8bit", "gtFine_labelIds")
        assert Image.open(lbl).mode == "L"
    assert len(GTA5(inst / "gta5")) == 40 and len(Cityscapes(inst / "cityscapes", split="test")) == 12   # test is labelled
    assert minicity_problem(inst, **SIZES) is None
    meta = json.loads((inst / "shiftcity.json").read_text())
    assert meta["version"] == VERSION and meta["shift"] == DEFAULT_SHIFT


def test_deterministic(inst, tmp_path):
    again = make_shiftcity(tmp_path / "again", seed=0, progress=False, n_source=3, n_train=2, n_val=1, n_test=1)
    for f in ("gta5/images/00002.png", "gta5/labels/00002.png"):
        assert (again / f).read_bytes() == (inst / f).read_bytes()
    other = make_shiftcity(tmp_path / "other", seed=1, progress=False, n_source=1, n_train=1, n_val=1, n_test=1)
    assert (other / "gta5/images/00000.png").read_bytes() != (inst / "gta5/images/00000.png").read_bytes()


def test_splits_disjoint():
    "Target splits are different images and different digit shapes (no MNIST image in two splits); source shapes are digits 0-4, target 5-9."
    _, labels = mnist_labelled()
    pools = {s: set(digit_pool(labels, s).tolist()) for s in SPLITS}
    for a in SPLITS:
        for b in SPLITS:
            if a < b: assert not pools[a] & pools[b]
    assert set(labels[list(pools["source"])]) == {0, 1, 2, 3, 4}
    for s in ("train", "val", "test"): assert set(labels[list(pools[s])]) == {5, 6, 7, 8, 9}


def test_class_conditional_gap(inst):
    "Global per-channel statistics close; thing classes' colours far apart between source and target."
    st = domain_statistics(inst, n=40)                  # (val and test: their 12)
    for s in ("train", "val", "test"):
        assert np.abs(np.subtract(st["source"]["mean"], st[s]["mean"])).max() < 0.05
        assert np.abs(np.subtract(st["source"]["std"], st[s]["std"])).max() < 0.05
    far = [c for c in THINGS if c in st["train"]["class_mean"]
           and np.abs(np.subtract(st["source"]["class_mean"][c], st["train"]["class_mean"][c])).max() > 0.1]
    assert len(far) >= 6, far


def test_small_classes_and_frequency_shift(inst):
    f = class_frequencies(inst)
    for s in ("source", "train", "val", "test"):
        for c in SMALL: assert f[s][c] > 0.001, (s, c, f[s][c])
    assert f["source"]["car"] > 1.4 * f["train"]["car"] and f["train"]["person"] > 2 * f["source"]["person"]
    assert f["train"]["rider"] > 2 * f["source"]["rider"]


def test_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_NB_CACHE", str(tmp_path))
    tiny = dict(n_source=2, n_train=2, n_val=1, n_test=1)
    r = shiftcity_root(seed=2, progress=False, **tiny)
    assert r.parent == tmp_path and r.name.startswith(f"shiftcity-v{VERSION}-seed2-")
    stamp = (r / "shiftcity.json").stat().st_mtime_ns
    assert shiftcity_root(seed=2, progress=False, **tiny) == r and (r / "shiftcity.json").stat().st_mtime_ns == stamp   # reused
    (r / "gta5/images/00001.png").write_bytes(b"\x89PNG")                 # truncated: regenerated
    assert shiftcity_root(seed=2, progress=False, **tiny) == r and minicity_problem(r, **tiny) is None
    dead = tmp_path / f".{r.name}.tmp-{os.uname().nodename.replace('-', '_')}-999999999-abc"; dead.mkdir()
    assert clean_stale_temps(tmp_path) == [dead] and not dead.exists()
    with pytest.raises(Exception, match="unknown ShiftCity parameter"): shiftcity_root(gap=0.5)


def test_kit_integration(tmp_path, monkeypatch):
    "dataset=shiftcity: its defaults, the cached root, the run identity and config.json's version."
    from cda_nb.training.config import make_config, DATASET_DEFAULTS
    from cda_nb.training.streams import data_roots
    from cda_nb.training.runfolder import data_identity
    assert DATASET_DEFAULTS["shiftcity"]["crop"] == DATASET_DEFAULTS["minicity"]["crop"]
    c = make_config(dataset="shiftcity")
    assert (c.iters, c.lr, c.crop) == (1000, 0.02, (128, 128))
    assert data_identity(c) == {"shiftcity": VERSION} and data_identity(make_config()) != data_identity(c)
    monkeypatch.setenv("CDA_NB_CACHE", str(tmp_path))
    import cda_nb.shiftcity as sc
    monkeypatch.setattr(sc, "DEFAULT_SIZES", dict(sc.DEFAULT_SIZES, n_source=2, n_train=2, n_val=1, n_test=1))
    src, tgt = data_roots(make_config(dataset="shiftcity", progress=False))
    assert src.parent.name == f"shiftcity-v{VERSION}-seed0" and src.name == "gta5" and tgt.name == "cityscapes"


def test_experiments_file():
    from pathlib import Path
    from cda_nb.experiments import load_experiments
    exp = load_experiments(Path(__file__).parents[1] / "experiments/shiftcity.yaml")
    assert exp.train["dataset"] == "shiftcity"
    methods = {s.method for s in exp.runs()}
    assert methods == {"source_only", "oracle", "adabn", "self_training", "bcl", "dacs", "ucda", "cluda", "clst", "sdca"}
    assert {s.seed for s in exp.runs()} == {0, 1, 2} and len(exp.runs()) == 30


def test_committed_runs_are_entries_at_the_defaults():
    "Every committed ShiftCity run folder (the calibration runs) is an entry of experiments/shiftcity.yaml and agrees with it."
    from pathlib import Path
    from cda_nb.experiments import load_experiments, check_committed
    root = Path(__file__).parents[1]
    exp = load_experiments(root / "experiments/shiftcity.yaml")
    assert check_committed(exp, root / "reports/runs") == []
    for m in (root / "reports/runs/shiftcity").glob("*/seed*/config.json"):
        c = json.loads(m.read_text())
        assert c["shiftcity_version"] == VERSION and c["identity"]["data"] == {"shiftcity": VERSION} and not c["data_root"]
