"""What `cda-prepare` saves per label: one synthetic label at the true size, read the way a loader item reads it, from
the raw file and from its `*_labelTrainIds.png`. SYNTHIA: 1280x760 16-bit RGB PNGs (class, instance, 0) with no row
filter, with libpng's adaptive filter choice (per row the filter of least sum of |residual|, as OpenCV writes them) and
with Paeth on every row; GTA5: a 1914x1052 palette PNG. Also the one-off conversion and the class statistics of a
24,966-image set read from `sample_class_stats.json`. One thread, medians of 21, files in a temporary folder.

    OMP_NUM_THREADS=1 python reports/fullscale/prepare_cost.py
"""
import json, statistics, struct, sys, tempfile, time, zlib
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]
import numpy as np, torch
from PIL import Image
from rehearsal import scene, _CLS, SIZES, FULL
from cda_nb.data import (GTA5, SYNTHIA, map_ids, write_gta5_label, write_synthia_label, read_class_stats, STATS_FILE)
from cda_nb.prepare import convert_label

def median_ms(f, n=21):
    f(); ts = []
    for _ in range(n): t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return 1000 * statistics.median(ts)

def _filtered(rows, bpp, ft):
    "Rows (h, n) int of bytes filtered with PNG filter `ft` (0..4), all rows at once."
    a = np.zeros_like(rows); a[:, bpp:] = rows[:, :-bpp]
    b = np.zeros_like(rows); b[1:] = rows[:-1]
    c = np.zeros_like(rows); c[1:, bpp:] = rows[:-1, :-bpp]
    if ft == 0: pred = 0
    elif ft == 1: pred = a
    elif ft == 2: pred = b
    elif ft == 3: pred = (a + b) >> 1
    else:
        p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return (rows - pred) & 255

def write_png16_filtered(img, path, mode):
    "A 16-bit RGB PNG whose rows use filter 4 ('paeth') or libpng's per-row minimum-sum-of-absolute-residuals choice ('adaptive')."
    h, w, ch = img.shape
    rows = img.astype(">u2").view(np.uint8).reshape(h, w * 2 * ch).astype(np.int64)
    cand = np.stack([_filtered(rows, 2 * ch, ft) for ft in range(5)])                 # (5, h, n)
    if mode == "paeth": ft = np.full(h, 4)
    else: ft = np.minimum(cand, 256 - cand).sum(2).argmin(0)                          # |residual| as a signed byte
    raw = np.concatenate([ft[:, None], cand[ft, np.arange(h)]], 1).astype(np.uint8)
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))

def item_label(ds):
    "What a loader item does with its label: read the file, map it to train ids."
    return lambda: map_ids(ds._label_ids(0), *ds._tables(0))[0]

if __name__ == "__main__":
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp()); rng = np.random.default_rng(0)
    cs_ids = np.array([c[0] for c in _CLS.values()], np.uint8); syn_ids = np.array([c[1] for c in _CLS.values()], np.uint16)
    rows = []
    H, W = SIZES["synthia"]
    img, k = scene(rng, H, W)
    inst = np.where(np.isin(k, [list(_CLS).index("car"), list(_CLS).index("person")]), 1000 + k.astype(np.uint16), 0)
    for mode in ("none", "adaptive", "paeth"):
        root = tmp / f"synthia_{mode}"; (root / "RGB").mkdir(parents=True); (root / "GT/LABELS").mkdir(parents=True)
        Image.fromarray(img).save(root / "RGB/0000000.png")
        lab, cls = root / "GT/LABELS/0000000.png", syn_ids[k]
        if mode == "none": write_synthia_label(cls, lab, instances=inst)
        else: write_png16_filtered(np.stack([cls, inst, np.zeros_like(cls)], -1), lab, mode)
        raw = SYNTHIA(root); want = item_label(raw)()
        assert raw.train_id_files == [False] and (want == map_ids(cls, raw.lut, raw.known)[0]).all()
        t_raw = median_ms(item_label(raw))
        t_conv = median_ms(lambda: convert_label(str(lab), "synthia", force=True), n=9)
        prepared = SYNTHIA(root); assert prepared.train_id_files == [True] and (item_label(prepared)() == want).all()
        rows.append((f"SYNTHIA {W}×{H}, 16-bit RGB, row filter {mode}", t_raw, median_ms(item_label(prepared)), t_conv))
    H, W = SIZES["gta5"]
    img, k = scene(rng, H, W)
    root = tmp / "gta5"; (root / "images").mkdir(parents=True); (root / "labels").mkdir()
    Image.fromarray(img).save(root / "images/00001.png"); write_gta5_label(cs_ids[k], root / "labels/00001.png")
    raw = GTA5(root); want = item_label(raw)(); t_raw = median_ms(item_label(raw))
    t_conv = median_ms(lambda: convert_label(str(root / "labels/00001.png"), "gta5", force=True), n=9)
    prepared = GTA5(root); assert prepared.train_id_files == [True] and (item_label(prepared)() == want).all()
    rows.append((f"GTA5 {W}×{H}, palette", t_raw, median_ms(item_label(prepared)), t_conv))

    print("| label | raw file: read + map (ms) | `*_labelTrainIds.png`: read (ms) | cda-prepare, once (ms) |\n|---|---|---|---|")
    for name, a, b, c in rows: print(f"| {name} | {a:.1f} | {b:.1f} | {c:.1f} |")

    n = FULL["gta5"]                                                    # class statistics of the whole source set
    class Names:                                                         # what read_class_stats needs of a dataset
        root, names = root, [f"{i:05d}" for i in range(1, n + 1)]
    stats = [{**{c: int(v) for c, v in enumerate(rng.integers(0, 200_000, 19)) if v > 60_000}, "file": f"data/gta/labels/{s}_labelTrainIds.png"}
             for s in Names.names]
    (root / STATS_FILE).write_text(json.dumps(stats, indent=2))
    t = median_ms(lambda: read_class_stats(Names), n=5)
    print(f"\nclass statistics of {n:,} GTA5 images from {STATS_FILE} ({(root / STATS_FILE).stat().st_size / 2**20:.1f} MiB): {t:.0f} ms")
