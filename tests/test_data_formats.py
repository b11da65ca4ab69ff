"cda_nb.data on fixtures written in the true on-disk formats of GTA5, Cityscapes and SYNTHIA, good and bad."
import warnings
import numpy as np
import pytest
import torch
from PIL import Image

from cda_nb.core import CDAError
from cda_nb import data as D
from cda_nb.data import (CLASSES19, ID2TRAIN, PALETTE19, THING19, TRAIN2ID, GTA5, Cityscapes, JointTransform,
                         map_ids)

RNG = np.random.default_rng(0)


def _palette_png(ids, path):
    "A GTA5 label as the dataset ships it: mode P, palette index = Cityscapes id, palette = Cityscapes colours."
    from cityscapesscripts.helpers.labels import labels
    pal = np.zeros((256, 3), np.uint8)
    for l in labels:
        if l.id >= 0: pal[l.id] = l.color
    im = Image.fromarray(ids.astype(np.uint8), mode="P"); im.putpalette(pal.flatten().tolist()); im.save(path)


def _rgb(h, w): return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _ids(h, w):
    ids = np.full((h, w), 7, np.uint8)                  # road
    ids[: h // 2] = 23                                  # sky
    ids[-1, :2] = 26                                    # car
    ids[0, 0] = 0                                       # unlabeled (known, ignored)
    return ids


@pytest.fixture
def gta(tmp_path):
    root = tmp_path / "gta5"; (root / "images").mkdir(parents=True); (root / "labels").mkdir()
    for n in ("00001", "00002", "00003"):
        Image.fromarray(_rgb(6, 8)).save(root / "images" / f"{n}.png")
        _palette_png(_ids(6, 8), root / "labels" / f"{n}.png")
    _palette_png(_ids(3, 4), root / "labels" / "00003.png")       # a size mismatch, as in real GTA5
    return root


@pytest.fixture
def cityscapes(tmp_path):
    root = tmp_path / "cityscapes"
    for split, cities in (("train", ("aachen", "bochum")), ("val", ("frankfurt",))):
        for city in cities:
            (root / "leftImg8bit" / split / city).mkdir(parents=True)
            (root / "gtFine" / split / city).mkdir(parents=True)
            for f in (19, 20):
                stem = f"{city}_000000_{f:06d}"
                Image.fromarray(_rgb(6, 8)).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
                Image.fromarray(_ids(6, 8), mode="L").save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
                # other gtFine files that live next to labelIds in the real dataset must not confuse the loader
                Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "gtFine" / split / city / f"{stem}_gtFine_color.png")
    return root


# ---------------------------------------------------------------- class tables vs cityscapesscripts
def test_tables_match_cityscapesscripts():
    from cityscapesscripts.helpers.labels import labels, trainId2label
    ours = {l.name: l for l in D.CS_LABELS}
    assert len(ours) == len(labels) == 35
    for l in labels:
        o = ours[l.name]
        assert (o.id, o.train_id, o.category, o.category_id, o.has_instances, o.ignore_in_eval, tuple(o.color)) == \
               (l.id, l.trainId, l.category, l.categoryId, l.hasInstances, l.ignoreInEval, tuple(l.color)), l.name
    for v in range(256):
        want = next((l.trainId for l in labels if l.id == v and 0 <= l.trainId < 255), 255)
        assert ID2TRAIN[v] == want, v
    assert CLASSES19 == [trainId2label[t].name for t in range(19)]
    assert PALETTE19.tolist() == [list(trainId2label[t].color) for t in range(19)]
    assert THING19.tolist() == [trainId2label[t].hasInstances for t in range(19)]
    assert [int(TRAIN2ID[t]) for t in range(19)] == [trainId2label[t].id for t in range(19)]


# ---------------------------------------------------------------- GTA5
def test_gta5_reads_palette_index(gta):
    ds = GTA5(gta)
    assert len(ds) == 3 and ds.names == ["00001", "00002", "00003"]
    item = ds[0]
    assert set(item) == {"image", "label", "name", "index"}
    assert item["image"].shape == (3, 6, 8) and item["image"].dtype == torch.float32
    assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    want = torch.from_numpy(ID2TRAIN[_ids(6, 8)].astype(np.int64))
    assert torch.equal(item["label"], want)
    assert item["label"][0, 0] == 255 and item["label"][-1, 0] == 13 and item["label"][-2, 3] == 0


def test_greyscale_read_would_be_wrong(gta):
    "The palette index is the id; converting to greyscale gives colour luminance instead."
    p = gta / "labels" / "00001.png"
    assert Image.open(p).mode == "P"
    grey = np.array(Image.open(p).convert("L"))
    assert not np.array_equal(grey, _ids(6, 8))
    assert not np.array_equal(ID2TRAIN[grey], ID2TRAIN[_ids(6, 8)])
    assert np.array_equal(D.read_gta5_label(p), _ids(6, 8))


def test_gta5_size_mismatch_resized_and_warned_once(gta):
    ds = GTA5(gta)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        a, b = ds[2], ds[2]
    assert a["label"].shape == a["image"].shape[1:] == (6, 8)
    assert set(a["label"].unique().tolist()) <= {0, 10, 13, 255}      # nearest: only real classes
    assert ds.n_resized == 2
    msgs = [str(w.message) for w in ws if "size differs" in str(w.message)]
    assert len(msgs) == 1 and "00003.png" in msgs[0]


def test_gta5_split_list_and_file(gta):
    assert GTA5(gta, split=["00002", "00001.png"]).names == ["00002", "00001"]
    (gta / "split.txt").write_text("00003.png\n\n00001.png\n")
    assert GTA5(gta, split=gta / "split.txt").names == ["00003", "00001"]
    with pytest.raises(CDAError, match="nope"): GTA5(gta, split=["nope"])


def test_out_of_table_ids_map_to_ignore_and_warn(gta):
    ids = _ids(6, 8); ids[2, :3] = 200; ids[3, 0] = 34
    _palette_png(ids, gta / "labels" / "00002.png")
    ds = GTA5(gta)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        item = ds[1]; ds[1]
    assert (item["label"][2, :3] == 255).all() and item["label"][3, 0] == 255
    assert ds.n_out_of_table == 8                                    # 4 per read, counted twice
    msgs = [str(w.message) for w in ws if "outside the class table" in str(w.message)]
    assert len(msgs) == 1 and "4 label pixels" in msgs[0] and "00002.png" in msgs[0]
    t, n = map_ids(ids)
    assert n == 4 and (t[ids >= 34] == 255).all()


def test_known_ignored_ids_are_silent(gta):
    ids = np.array([[0, 1, 2, 3, 4, 5, 6, 9], [10, 14, 15, 16, 18, 29, 30, 7]] * 3, np.uint8)
    _palette_png(ids, gta / "labels" / "00001.png")
    ds = GTA5(gta)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        item = ds[0]
    assert ds.n_out_of_table == 0
    assert (item["label"][0] == 255).all() and (item["label"][1, :7] == 255).all()
    assert item["label"][1, 7] == 0                                   # id 7 = road


# ---------------------------------------------------------------- Cityscapes
def test_cityscapes_reads_label_ids(cityscapes):
    ds = Cityscapes(cityscapes, split="train")
    assert len(ds) == 4
    assert ds.names[0] == "aachen_000000_000019"
    item = ds[0]
    assert torch.equal(item["label"], torch.from_numpy(ID2TRAIN[_ids(6, 8)].astype(np.int64)))
    assert len(Cityscapes(cityscapes, split="val")) == 2


def test_cityscapes_out_of_table(cityscapes):
    p = cityscapes / "gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_labelIds.png"
    ids = _ids(6, 8); ids[1, 1] = 200
    Image.fromarray(ids, mode="L").save(p)
    ds = Cityscapes(cityscapes, split="val")
    with pytest.warns(UserWarning, match="1 label pixels"):
        item = ds[0]
    assert item["label"][1, 1] == 255 and ds.n_out_of_table == 1


def test_cityscapes_without_labels_never_reads_them(cityscapes, monkeypatch):
    full0 = Cityscapes(cityscapes, split="train")[0]
    import shutil
    shutil.rmtree(cityscapes / "gtFine")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda p, *a, **k: (opened.append(str(p)), real_open(p, *a, **k))[1])
    ds = Cityscapes(cityscapes, split="train", labels=False)
    items = [ds[i] for i in range(len(ds))]
    assert all("label" not in it for it in items)
    assert not any("gtFine" in p for p in opened)
    assert torch.equal(items[0]["image"], full0["image"])
    with pytest.raises(CDAError, match="gtFine"):
        Cityscapes(cityscapes, split="train")


def test_corrupt_target_labels_do_not_change_unlabelled_items(cityscapes):
    before = [Cityscapes(cityscapes, "train", labels=False)[i]["image"] for i in range(4)]
    for p in (cityscapes / "gtFine").rglob("*_labelIds.png"):
        p.write_bytes(b"not a png")
    after = [Cityscapes(cityscapes, "train", labels=False)[i]["image"] for i in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(before, after))


# ---------------------------------------------------------------- bad layouts
def test_missing_root(tmp_path):
    for cls in (GTA5, Cityscapes):
        with pytest.raises(CDAError) as e: cls(tmp_path / "does_not_exist")
        assert str(tmp_path / "does_not_exist") in str(e.value) and "expected layout" in str(e.value)


def test_images_directly_in_root(tmp_path):
    for n in ("00001", "00002"):
        Image.fromarray(_rgb(4, 4)).save(tmp_path / f"{n}.png")
    with pytest.raises(CDAError) as e: GTA5(tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "images/00001.png" in msg and "labels/" in msg
    with pytest.raises(CDAError) as e: Cityscapes(tmp_path)
    assert str(tmp_path / "leftImg8bit" / "train") in str(e.value) and "gtFine" in str(e.value)


def test_empty_and_unpaired(tmp_path):
    (tmp_path / "images").mkdir(); (tmp_path / "labels").mkdir()
    with pytest.raises(CDAError, match="no GTA5 images"): GTA5(tmp_path)
    Image.fromarray(_rgb(4, 4)).save(tmp_path / "images" / "00007.png")
    with pytest.raises(CDAError, match="00007.png"): GTA5(tmp_path)
    (tmp_path / "cs" / "leftImg8bit" / "train" / "ulm").mkdir(parents=True)
    with pytest.raises(CDAError, match="no \\*_leftImg8bit.png"): Cityscapes(tmp_path / "cs")


def test_cityscapes_image_without_label(cityscapes):
    (cityscapes / "gtFine/val/frankfurt/frankfurt_000000_000020_gtFine_labelIds.png").unlink()
    with pytest.raises(CDAError, match="frankfurt_000000_000020_gtFine_labelIds.png"):
        Cityscapes(cityscapes, split="val")
    assert len(Cityscapes(cityscapes, split="val", labels=False)) == 2


def test_rgb_label_rejected(gta):
    Image.fromarray(_rgb(6, 8)).save(gta / "labels" / "00001.png")
    with pytest.raises(CDAError, match="mode 'P'"): GTA5(gta)[0]


# ---------------------------------------------------------------- loader + transform
def test_dataloader_batch_and_seeded_transform(gta):
    from cda_nb.core import seed_everything
    tf = JointTransform(scale=(0.5, 1.5), crop=(4, 4), flip=True)
    def batch():
        seed_everything(0)
        dl = torch.utils.data.DataLoader(GTA5(gta, transform=tf), batch_size=3, shuffle=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore"); return next(iter(dl))
    a, b = batch(), batch()
    assert a["image"].shape == (3, 3, 4, 4) and a["label"].shape == (3, 4, 4) and a["label"].dtype == torch.long
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"]) and a["name"] == b["name"]


# ---------------------------------------------------------------- SYNTHIA (16-bit labels, class in channel 0)
def _png16_filtered(img, path):
    "An independent 16-bit PNG encoder that uses every PNG filter type (row r gets filter r % 5)."
    import struct, zlib
    h, w, ch = img.shape
    bpp = 2 * ch
    rows = img.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(int)
    out = bytearray()
    for r in range(h):
        ft = r % 5
        cur, prev = rows[r], (rows[r - 1] if r else np.zeros_like(rows[r]))
        out.append(ft)
        for k in range(w * bpp):
            a = cur[k - bpp] if k >= bpp else 0
            b = prev[k]
            c = prev[k - bpp] if k >= bpp else 0
            if ft == 0: pr = 0
            elif ft == 1: pr = a
            elif ft == 2: pr = b
            elif ft == 3: pr = (a + b) // 2
            else:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out.append((cur[k] - pr) % 256)
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[ch], 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


@pytest.fixture
def synthia(tmp_path):
    root = tmp_path / "RAND_CITYSCAPES"; (root / "RGB").mkdir(parents=True); (root / "GT" / "LABELS").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for n in ("0000000", "0000001"):
        Image.fromarray(_rgb(7, 9)).save(root / "RGB" / f"{n}.png")
        cls = rng.integers(0, 23, (7, 9)).astype(np.uint16)
        inst = rng.integers(0, 5000, (7, 9)).astype(np.uint16)          # instance ids use the high byte
        _png16_filtered(np.stack([cls, inst, np.zeros_like(cls)], -1), root / "GT" / "LABELS" / f"{n}.png")
        np.save(root / f"{n}.npy", cls)
    return root


def test_synthia_16bit_first_channel(synthia):
    from cda_nb.data import SYNTHIA, SYNTHIA_ID2TRAIN, read_png, read_synthia_label
    p = synthia / "GT" / "LABELS" / "0000000.png"
    cls = np.load(synthia / "0000000.npy")
    full = read_png(p)
    assert full.dtype == np.uint16 and full.shape == (7, 9, 3) and full[..., 1].max() > 255
    assert np.array_equal(read_synthia_label(p), cls)
    assert not np.array_equal(np.array(Image.open(p))[..., 0], cls)   # Pillow (and imageio through it) get it wrong
    ds = SYNTHIA(synthia)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                   # ids 0..22 are all known: no warning
        item = ds[0]
    assert torch.equal(item["label"], torch.from_numpy(SYNTHIA_ID2TRAIN[cls].astype(np.int64)))
    assert set(item["label"].unique().tolist()) - {255} <= set(D.SYNTHIA16)
    assert ds.n_out_of_table == 0


def test_synthia_mapping_is_the_standard_16():
    from cda_nb.data import SYNTHIA_ID2TRAIN
    names = {3: "road", 4: "sidewalk", 2: "building", 21: "wall", 5: "fence", 7: "pole", 15: "traffic light",
             9: "traffic sign", 6: "vegetation", 1: "sky", 10: "person", 17: "rider", 8: "car", 19: "bus",
             12: "motorcycle", 11: "bicycle"}
    for sid in range(256):
        want = CLASSES19.index(names[sid]) if sid in names else 255
        assert SYNTHIA_ID2TRAIN[sid] == want, sid


def test_synthia_bad_layout(tmp_path, synthia):
    from cda_nb.data import SYNTHIA
    with pytest.raises(CDAError, match="GT/LABELS"): SYNTHIA(synthia / "RGB")
    (synthia / "GT" / "LABELS" / "0000001.png").unlink()
    with pytest.raises(CDAError, match="0000001.png"): SYNTHIA(synthia)
