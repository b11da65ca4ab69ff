"""`cda-prepare` writes DAFormer's data-preparation files byte for byte (checked against DAFormer's converters,
re-implemented here from tools/convert_datasets/{gta,synthia}.py), the loaders give the same labels with and without
them, and the class statistics read from `sample_class_stats.json` are those of the kit's own label pass."""
import json, os, shutil, subprocess, sys, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image

from cda_nb.core import CDAError
from cda_nb import data as D
from cda_nb.data import (GTA5, SYNTHIA, Cityscapes, read_png, read_train_id_label,
                         write_gta5_label, write_synthia_label, write_cityscapes_label, class_pixel_counts, class_presence,
                         check_files, STATS_FILE)
from cda_nb import prepare as P
from cda_nb.prepare import prepare, cda_prepare, dataset_folders

# ---------------------------------------------------------------- DAFormer's converters (lhoyer/DAFormer e6f6e041)
GTA_ID_TO_TRAINID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                     26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}                                # gta.py:19-39
SYNTHIA_ID_TO_TRAINID = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9, 1: 10, 10: 11, 17: 12,
                         8: 13, 18: 14, 19: 15, 20: 16, 12: 17, 11: 18}                             # synthia.py:21-41


def daformer_convert(file, dataset):
    "convert_to_train_id (gta.py:15-52, synthia.py:16-54); SYNTHIA's cv2.imread(UNCHANGED)[:, :, -1] is the R channel."
    label = np.asarray(Image.open(file)) if dataset == "gta5" else read_png(file)[:, :, 0]
    id_to_trainid = GTA_ID_TO_TRAINID if dataset == "gta5" else SYNTHIA_ID_TO_TRAINID
    label_copy = 255 * np.ones(label.shape, dtype=np.uint8)
    sample_class_stats = {}
    for k, v in id_to_trainid.items():
        k_mask = label == k
        label_copy[k_mask] = v
        n = int(np.sum(k_mask))
        if n > 0:
            sample_class_stats[v] = n
    new_file = file.replace('.png', '_labelTrainIds.png')
    assert file != new_file
    sample_class_stats['file'] = new_file
    Image.fromarray(label_copy).save(new_file)
    return sample_class_stats


def daformer_save_class_stats(out_dir, sample_class_stats):
    "save_class_stats (gta.py:67-86)."
    with open(os.path.join(out_dir, 'sample_class_stats.json'), 'w') as of:
        json.dump(sample_class_stats, of, indent=2)
    sample_class_stats_dict = {}
    for stats in sample_class_stats:
        f = stats.pop('file')
        sample_class_stats_dict[f] = stats
    with open(os.path.join(out_dir, 'sample_class_stats_dict.json'), 'w') as of:
        json.dump(sample_class_stats_dict, of, indent=2)
    samples_with_class = {}
    for file, stats in sample_class_stats_dict.items():
        for c, n in stats.items():
            if c not in samples_with_class:
                samples_with_class[c] = [(file, n)]
            else:
                samples_with_class[c].append((file, n))
    with open(os.path.join(out_dir, 'samples_with_class.json'), 'w') as of:
        json.dump(samples_with_class, of, indent=2)


def daformer_main(path, gt_dir):
    "main() (gta.py:89-117): scan for '<digit>.png' recursively, sort, convert, save the statistics into `path`."
    gt = os.path.join(path, gt_dir)
    files = sorted(os.path.join(gt, os.path.relpath(os.path.join(d, f), gt)) for d, _, fs in os.walk(gt) for f in fs
                   if f.endswith(tuple(f'{i}.png' for i in range(10))))
    daformer_save_class_stats(path, [daformer_convert(f, "gta5" if gt_dir == "labels" else "synthia") for f in files])


def daformer_rcs_class_probs(data_root, temperature=0.01):
    "get_rcs_class_probs (uda_dataset.py:17-39)."
    with open(os.path.join(data_root, 'sample_class_stats.json'), 'r') as of:
        sample_class_stats = json.load(of)
    overall_class_stats = {}
    for s in sample_class_stats:
        s.pop('file')
        for c, n in s.items():
            c = int(c)
            overall_class_stats[c] = overall_class_stats.get(c, 0) + n
    overall_class_stats = dict(sorted(overall_class_stats.items(), key=lambda item: item[1]))
    freq = torch.tensor(list(overall_class_stats.values()))
    freq = freq / torch.sum(freq)
    freq = 1 - freq
    freq = torch.softmax(freq / temperature, dim=-1)
    return list(overall_class_stats.keys()), freq.numpy()


# ---------------------------------------------------------------- fixtures in the true formats
RNG = np.random.default_rng(0)
GTA_IDS = [0, 1, 7, 8, 11, 17, 21, 23, 24, 26, 33]               # incl. unlabeled / ego vehicle (ignored)
SYN_IDS = [0, 1, 2, 3, 4, 8, 10, 12, 13, 15, 22]                # no 16 / 18 / 20: DAFormer notes they do not occur


@pytest.fixture
def root(tmp_path):
    "A kit data root with gta5/ (one label half its image's size), synthia/ (16-bit, instance ids > 255) and cityscapes/."
    r = tmp_path / "data"
    for d in ("gta5/images", "gta5/labels", "synthia/RGB", "synthia/GT/LABELS"): (r / d).mkdir(parents=True)
    for i in range(1, 6):
        Image.fromarray(RNG.integers(0, 256, (10, 16, 3), dtype=np.uint8)).save(r / f"gta5/images/{i:05d}.png")
        h, w = (5, 8) if i == 3 else (10, 16)
        write_gta5_label(RNG.choice(GTA_IDS, (h, w)).astype(np.uint8), r / f"gta5/labels/{i:05d}.png")   # palette PNG
    for i in range(4):
        Image.fromarray(RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)).save(r / f"synthia/RGB/{i:07d}.png")
        write_synthia_label(RNG.choice(SYN_IDS, (6, 9)), r / f"synthia/GT/LABELS/{i:07d}.png",
                            instances=RNG.integers(0, 3000, (6, 9)))
    for split, cities in (("train", ("aachen", "bremen")), ("val", ("lindau",))):
        for city in cities:
            (r / "cityscapes/leftImg8bit" / split / city).mkdir(parents=True)
            (r / "cityscapes/gtFine" / split / city).mkdir(parents=True)
            for f in (19, 20):
                stem = f"{city}_000000_{f:06d}"
                Image.fromarray(RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(r / f"cityscapes/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png")
                write_cityscapes_label(RNG.choice([0, 4, 7, 8, 24, 26, 33], (6, 8)).astype(np.uint8),
                                       r / f"cityscapes/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png")
    return r


def _items(ds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore"); return [ds[i]["label"] for i in range(len(ds))]


def _outputs(folder):
    "{relative path: content} of the files DAFormer's converters / cda-prepare write into `folder`."
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.name in P.STATS_FILES: out[p.name] = p.read_text()
        elif p.name.endswith("_labelTrainIds.png"):
            with Image.open(p) as im: out[p.relative_to(folder).as_posix()] = (im.mode, np.array(im).tolist())
    return out


def _clear(folder):
    for p in list(Path(folder).rglob("*")):
        if p.name in P.STATS_FILES or p.name.endswith("_labelTrainIds.png"): p.unlink()


# ---------------------------------------------------------------- formats
@pytest.mark.parametrize("dataset,gt_dir", [("gta5", "labels"), ("synthia", "GT/LABELS")])
def test_files_are_daformers_byte_for_byte(root, monkeypatch, dataset, gt_dir):
    monkeypatch.chdir(root)                                   # relative roots, as in DAFormer's README (data/gta)
    daformer_main(dataset, gt_dir)
    ref = _outputs(dataset); _clear(dataset)
    r = prepare(dataset, dataset, workers=0, progress_bar=False)
    assert r["written"] == r["labels"] == len(list(Path(dataset, gt_dir).glob("*[0-9].png")))
    got = _outputs(dataset)
    assert sorted(got) == sorted(ref) and len(ref) == r["labels"] + 3
    for k in ref: assert got[k] == ref[k], k                  # the JSON texts exactly, the PNGs as mode 'L' arrays
    stats = json.loads(got["sample_class_stats.json"])
    assert isinstance(stats, list) and all(list(s)[-1] == "file" and s["file"].startswith(f"{dataset}/{gt_dir}/") for s in stats)
    assert all(k.isdigit() for s in stats for k in s if k != "file")
    swc = json.loads(got["samples_with_class.json"])
    assert all(isinstance(f, str) and isinstance(n, int) and n > 0 for v in swc.values() for f, n in v)   # unfiltered


def test_synthia_ids_daformer_maps_but_the_kit_ignores(root):
    "terrain / truck / train (SYNTHIA 16 / 18 / 20): DAFormer maps them, 'not present in synthia' (synthia.py:31,36,38)."
    p = root / "synthia/GT/LABELS/0000000.png"
    write_synthia_label(np.array([[16, 18, 20, 3]]), p)
    Image.fromarray(np.zeros((1, 4, 3), np.uint8)).save(root / "synthia/RGB/0000000.png")
    ref = daformer_convert(str(p), "synthia")
    assert ref == {0: 1, 9: 1, 14: 1, 16: 1, "file": str(p).replace(".png", "_labelTrainIds.png")}
    assert P.convert_label(str(p), "synthia", force=True)["stats"] == {0: 1, "file": ref["file"]}
    assert read_train_id_label(ref["file"]).tolist() == [[255, 255, 255, 0]]


def test_cityscapes_train_ids_equal_json2labelImg(tmp_path):
    "DAFormer draws trainIds from the polygons (cityscapes.py:19-21); ID2TRAIN[labelIds] from the same polygons is the same."
    pytest.importorskip("cityscapesscripts")
    from cityscapesscripts.preparation.json2labelImg import json2labelImg
    objs = [("road", [[0, 20], [40, 20], [40, 30], [0, 30]]), ("sky", [[0, 0], [40, 0], [40, 8], [0, 8]]),
            ("cargroup", [[5, 12], [20, 12], [20, 24], [5, 24]]), ("license plate", [[8, 18], [12, 18], [12, 20], [8, 20]]),
            ("person", [[15, 5], [25, 5], [25, 25], [15, 25]]), ("ego vehicle", [[0, 27], [40, 27], [40, 30], [0, 30]]),
            ("rail track", [[30, 10], [39, 10], [39, 19], [30, 19]]), ("bus", [[0, 0], [39, 29], [0, 29]])]
    ann = {"imgHeight": 30, "imgWidth": 40, "objects": [{"label": l, "polygon": p} for l, p in objs]
           + [{"label": "truck", "polygon": [[0, 0], [39, 0], [39, 29]], "deleted": 1}]}
    js = tmp_path / "x_gtFine_polygons.json"; js.write_text(json.dumps(ann))
    json2labelImg(str(js), str(tmp_path / "x_gtFine_labelIds.png"), "ids")
    json2labelImg(str(js), str(tmp_path / "ref_labelTrainIds.png"), "trainIds")
    P.convert_label(str(tmp_path / "x_gtFine_labelIds.png"), "cityscapes")
    got = read_train_id_label(tmp_path / "x_gtFine_labelTrainIds.png")
    assert np.array_equal(got, np.array(Image.open(tmp_path / "ref_labelTrainIds.png")))
    assert len(np.unique(got)) >= 5


# ---------------------------------------------------------------- loaders
def test_loaders_give_the_same_labels_with_and_without_train_id_files(root):
    sets = lambda: [GTA5(root / "gta5"), SYNTHIA(root / "synthia"), Cityscapes(root / "cityscapes", "train"),
                    Cityscapes(root / "cityscapes", "val")]
    before = [_items(d) for d in sets()]
    checks = check_files(GTA5(root / "gta5"), progress=False)
    cda_prepare([str(root), "--workers", "0"])
    after_sets = sets()
    assert all(all(d.train_id_files) for d in after_sets)
    assert all(p.name.endswith("_labelTrainIds.png") for d in after_sets for p in d.label_paths)
    for b, d in zip(before, after_sets):
        assert all(torch.equal(x, y) for x, y in zip(b, _items(d)))
    g = GTA5(root / "gta5")                                   # the size check still applies, naming the file read
    with pytest.warns(UserWarning, match="label size differs.*00003_labelTrainIds.png"):
        g[2]
    assert g.n_resized == 1 and check_files(GTA5(root / "gta5"), progress=False) == checks
    for p in (root / "synthia/GT/LABELS").glob("*[0-9].png"): p.write_bytes(b"not read any more")
    assert all(torch.equal(x, y) for x, y in zip(before[1], _items(SYNTHIA(root / "synthia"))))


def test_train_id_file_out_of_table_values_warn(root):
    prepare(root / "gta5", workers=0, progress_bar=False)
    p = root / "gta5/labels/00001_labelTrainIds.png"
    t = read_train_id_label(p); t[0, 0] = 40; D.write_train_id_label(t, p)
    g = GTA5(root / "gta5")
    with pytest.warns(UserWarning, match="outside the class table"):
        lab = g[0]["label"]
    assert lab[0, 0] == 255 and g.n_out_of_table == 1


def test_target_train_labels_still_never_read_without_labels(root, monkeypatch):
    "labels=False never opens gtFine, prepared or not; labels=True (the oracle, val, test) reads the train-id files."
    cs = root / "cityscapes"
    prepare(cs, workers=0, progress_bar=False)
    assert not (cs / STATS_FILE).exists()                     # no target-label statistics are written
    unl = Cityscapes(cs, "train", labels=False)
    assert unl.label_paths is None and unl.train_id_files is None
    opened = []; real = Image.open
    monkeypatch.setattr(Image, "open", lambda p, *a, **k: (opened.append(str(p)), real(p, *a, **k))[1])
    items = [unl[i] for i in range(len(unl))]
    assert all("label" not in it for it in items) and not any("gtFine" in p for p in opened)
    lab = _items(Cityscapes(cs, "train"))
    for p in (cs / "gtFine/train").rglob("*_labelTrainIds.png"):
        D.write_train_id_label(np.full((6, 8), 5, np.uint8), p)
    assert all(torch.equal(a["image"], unl[i]["image"]) for i, a in enumerate(items))
    assert not all(torch.equal(a, b) for a, b in zip(lab, _items(Cityscapes(cs, "train"))))    # the oracle sees them
    names = Cityscapes(cs, "train").names                      # a file that would match every item, were it read
    (cs / STATS_FILE).write_text(json.dumps([{"0": 48, "file": f"{n}_labelTrainIds.png"} for n in names]))
    pres = class_presence(Cityscapes(cs, "train"), progress=False)
    assert pres[:, 5].all() and not pres[:, 0].any()           # computed from the (rewritten) labels, not from the file


# ---------------------------------------------------------------- class statistics
@pytest.mark.parametrize("dataset", ["gta5", "synthia"])
def test_stats_from_the_file_equal_the_label_pass(root, monkeypatch, dataset):
    cls = {"gta5": GTA5, "synthia": SYNTHIA}[dataset]
    pass_counts = class_pixel_counts(cls(root / dataset), progress=False)
    prepare(root / dataset, workers=0, progress_bar=False)
    monkeypatch.setattr(D, "train_id_counts", lambda *a, **k: (_ for _ in ()).throw(AssertionError("a label was read")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = class_pixel_counts(cls(root / dataset), progress=False)
        pres = class_presence(cls(root / dataset), progress=False)
    assert got.dtype == np.int64 and np.array_equal(got, pass_counts) and np.array_equal(pres, pass_counts > 0)
    classes, probs = daformer_rcs_class_probs(root / dataset)        # DAFormer's class frequencies from the same file
    tot = pass_counts.sum(0)
    assert sorted(classes) == np.flatnonzero(tot).tolist() and [tot[c] for c in classes] == sorted(tot[tot > 0].tolist())
    assert np.isclose(probs.sum(), 1)


def test_a_daformer_file_with_other_paths_is_matched_by_name(root):
    g = GTA5(root / "gta5"); counts = class_pixel_counts(g, progress=False)
    entries = [{**{str(c): int(n) for c, n in enumerate(row) if n}, "file": f"data\\gta\\labels\\{name}_labelTrainIds.png"}
               for name, row in zip(g.names, counts)][::-1]              # Windows separators, another order
    (root / "gta5" / STATS_FILE).write_text(json.dumps(entries))
    assert np.array_equal(D.read_class_stats(g), counts)
    assert np.array_equal(D.read_class_stats(GTA5(root / "gta5", split=["00004", "00002"])), counts[[3, 1]])


@pytest.mark.parametrize("damage,what", [("drop", "no entry for 1 of the 5"), ("rename", "no entry for 5 of the 5"),
                                         ("class", "is not a train id"), ("count", "is not a train id"),
                                         ("twice", "two different entries"), ("truncate", "cannot be read as JSON")])
def test_a_partial_or_mismatching_file_falls_back_with_a_warning(root, damage, what):
    pass_counts = class_pixel_counts(GTA5(root / "gta5"), progress=False)
    prepare(root / "gta5", workers=0, progress_bar=False)
    f = root / "gta5" / STATS_FILE
    s = json.loads(f.read_text())
    if damage == "drop": s = s[:2] + s[3:]
    if damage == "rename": s = [{**e, "file": e["file"].replace("labels/0", "labels/9")} for e in s]
    if damage == "class": s[0]["19"] = 4
    if damage == "count": s[0]["0"] = -1
    if damage == "twice": s.append({**s[0], "0": s[0].get("0", 0) + 1})
    f.write_text(json.dumps(s) if damage != "truncate" else f.read_text()[:50])
    with pytest.warns(UserWarning, match="sample_class_stats.json") as ws:
        got = class_pixel_counts(GTA5(root / "gta5"), progress=False)
    msg = " ".join(str(w.message) for w in ws)
    assert str(f) in msg and what in msg and "cda-prepare" in msg
    assert np.array_equal(got, pass_counts)


# ---------------------------------------------------------------- the command
def test_rerun_is_a_no_op_and_force_rewrites(root):
    first = prepare(root / "gta5", workers=0, progress_bar=False)
    assert first["written"] == 5 and first["stats_files"] == list(P.STATS_FILES)
    files = [p for p in (root / "gta5").rglob("*") if p.is_file()]
    snap = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    again = prepare(root / "gta5", workers=0, progress_bar=False)
    assert again == {"dataset": "gta5", "labels": 5, "written": 0, "stats_files": [], "out_of_table": 0}
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == snap
    (root / "gta5/labels/00002_labelTrainIds.png").unlink()     # one missing: written, and the statistics rewritten
    r = prepare(root / "gta5", workers=0, progress_bar=False)
    assert r["written"] == 1 and r["stats_files"] == list(P.STATS_FILES)
    assert all(p.read_bytes() == snap[p][1] for p in files)
    r = prepare(root / "gta5", workers=0, force=True, progress_bar=False)
    assert r["written"] == 5 and all(p.read_bytes() == snap[p][1] for p in files)
    assert not [p for p in (root / "gta5").rglob("*.tmp")]


def test_workers_give_the_same_files(root, tmp_path):
    other = tmp_path / "copy"; shutil.copytree(root / "synthia", other)
    prepare(root / "synthia", workers=0, progress_bar=False)
    prepare(other, workers=2, progress_bar=False)
    a, b = _outputs(root / "synthia"), _outputs(other)
    assert {k: v for k, v in a.items() if k not in P.STATS_FILES} == {k: v for k, v in b.items() if k not in P.STATS_FILES}
    for k in P.STATS_FILES: assert a[k].replace(str(root / "synthia"), "R") == b[k].replace(str(other), "R")


def test_an_interrupted_write_leaves_no_file(root, monkeypatch):
    def broken(t, f): f.write(b"\x89PNG half"); raise KeyboardInterrupt
    monkeypatch.setattr(P, "write_train_id_label", broken)
    with pytest.raises(KeyboardInterrupt): prepare(root / "gta5", workers=0, progress_bar=False)
    assert not [p for p in (root / "gta5/labels").iterdir() if p.name.endswith((".tmp", "_labelTrainIds.png"))]
    assert not (root / "gta5" / STATS_FILE).exists()


def test_layout_errors_name_the_folder_and_the_fix(root, tmp_path, capsys):
    with pytest.raises(CDAError, match=f"label folder missing: {root / 'gta5' / 'images' / 'labels'}") as e:
        prepare(root / "gta5" / "images", "gta5")
    assert "fix: pass the gta5 folder itself" in str(e.value) and "labels/00001.png" in str(e.value)
    (tmp_path / "empty/GT/LABELS").mkdir(parents=True)
    with pytest.raises(CDAError, match="no raw synthia labels in"): prepare(tmp_path / "empty", "synthia")
    with pytest.raises(CDAError, match="not a gta5, synthia or cityscapes folder"): prepare(tmp_path / "empty")
    with pytest.raises(CDAError, match="neither a data set folder"): dataset_folders(tmp_path / "empty" / "GT")
    with pytest.raises(SystemExit) as ex: cda_prepare([str(tmp_path / "nope")])
    assert ex.value.code == 2 and f"data folder not found: {tmp_path / 'nope'}" in capsys.readouterr().err
    assert dataset_folders(root, "cityscapes") == [("cityscapes", os.path.join(root, "cityscapes"))]
    assert [d for d, _ in dataset_folders(root)] == ["gta5", "synthia", "cityscapes"]


def test_console_entry(root):
    "The console entry `cda_prepare` (settings.ini: cda-prepare=cda_nb.prepare:cda_prepare) in a fresh interpreter."
    code = "import sys; from cda_nb.prepare import cda_prepare; sys.argv = ['cda-prepare', *sys.argv[1:]]; cda_prepare()"
    env = {**os.environ, "CDA_NB_PROGRESS": "off", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code, str(root / "synthia"), "--workers", "0"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "synthia" in r.stdout and "4 labels, 4 written" in r.stdout and "samples_with_class.json" in r.stdout
    r = subprocess.run([sys.executable, "-c", code, str(root / "synthia"), "--dataset", "gta5"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "gta5 label folder missing" in r.stderr
