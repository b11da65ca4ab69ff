"""One GTA5 label (1914x1052 palette PNG, synthetic) through a label pass: read alone, mapped per pixel then counted (the
old path), and counted by raw id with the histogram mapped (`cda_nb.data.train_id_counts`). One thread, medians of 9.

    python reports/fullscale/label_cost.py
"""
import statistics, sys, tempfile, time
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]
import numpy as np, torch
from PIL import Image
from rehearsal import scene, _CLS
from cda_nb.data import GTA5, write_gta5_label, _train_ids, train_id_counts

def median_ms(f, n=9):
    f(); ts = []
    for _ in range(n): t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return 1000 * statistics.median(ts)

if __name__ == "__main__":
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp())/"gta5"; (root/"images").mkdir(parents=True); (root/"labels").mkdir()
    img, k = scene(np.random.default_rng(0), 1052, 1914)
    Image.fromarray(img).save(root/"images/00001.png")
    write_gta5_label(np.array([c[0] for c in _CLS.values()], np.uint8)[k], root/"labels/00001.png")
    ds = GTA5(root)
    def per_pixel():
        ids = np.asarray(_train_ids(ds, 0)).ravel(); return np.bincount(ids[ids < 19].astype(np.int64), minlength=19)
    assert (per_pixel() == train_id_counts(ds, 0)).all()
    print("| step | ms per label |\n|---|---|")
    for name, f in (("read the PNG alone", lambda: ds._label_ids(0)), ("map every pixel, then count (old)", per_pixel),
                    ("count raw ids, map the histogram (train_id_counts)", lambda: train_id_counts(ds, 0))):
        print(f"| {name} | {median_ms(f):.1f} |")
