"""The full-scale training transform: uint8 path (one uint8 resize, crop and flip in uint8, float last) against the float
path (convert to float, then resize), on one CPU thread, for a GTA5-sized image resized to DAFormer's 1280x720.

    python reports/fullscale/transform_cost.py       # medians of 7 after a warm-up, milliseconds
"""
import statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import numpy as np, torch
from cda_nb.data import JointTransform

def median_ms(f, n=7):
    f(); ts = []
    for _ in range(n): t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return 1000 * statistics.median(ts)

if __name__ == "__main__":
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1052, 1914, 3), dtype=np.uint8); lab = rng.integers(0, 19, (1052, 1914), dtype=np.uint8)
    print("| transform | uint8 path ms | float path ms | ratio |\n|---|---|---|---|")
    for name, jt in (("resize 1914x1052 -> 1280x720", JointTransform(resize=(720, 1280))),
                     ("+ scale 0.5-2, crop 512, flip", JointTransform(resize=(720, 1280), scale=(0.5, 2.0), crop=(512, 512), flip=True))):
        torch.manual_seed(0); u8 = median_ms(lambda: jt(img, lab))
        torch.manual_seed(0); fl = median_ms(lambda: jt(img.astype(np.float32) / 255, lab.astype(np.int64)))
        print(f"| {name} | {u8:.1f} | {fl:.1f} | {fl / u8:.1f}x |")
