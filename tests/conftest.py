"Shared fixtures: a tiny GTA5 -> Cityscapes pair in the true on-disk formats, with learnable structure."
import os, sys, subprocess
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# GTA5 palette index / Cityscapes id of a few classes: road, sidewalk, building, vegetation, sky, car, person
IDS = [7, 8, 11, 21, 23, 26, 24]
COLORS = np.array([[128, 64, 128], [244, 35, 232], [70, 70, 70], [107, 142, 35], [70, 130, 180], [0, 0, 142], [220, 20, 60]])

def _scene(rng, h=64, w=128, shift=0):
    "Horizontal bands of classes with a car/person box; image = class colour (+ a domain shift) + noise."
    ids = np.full((h, w), IDS[4], np.uint8)
    b = rng.integers(h // 4, h // 2)
    ids[b:, :] = IDS[2]; ids[b + h // 6:, :] = IDS[1]; ids[b + h // 3:, :] = IDS[0]
    x = rng.integers(0, w - 20); ids[b + h // 4: b + h // 4 + 10, x:x + 20] = IDS[5]
    x = rng.integers(0, w - 6); ids[b: b + 14, x:x + 6] = IDS[6]
    ids[:4, :8] = 0                                     # 'unlabeled' corner (Cityscapes id 0 -> ignore)
    img = np.zeros((h, w, 3))
    for k, i in enumerate(IDS): img[ids == i] = COLORS[k]
    img = np.clip(img + shift + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    return img, ids

def write_tiny(root, n_src=6, n_train=6, n_val=3, seed=0):
    "Write `root/gta5` (GTA5 format) and `root/cityscapes` (train/val, Cityscapes format)."
    from cda_nb.data import write_gta5_label, write_cityscapes_label
    rng = np.random.default_rng(seed); root = Path(root)
    (root/"gta5/images").mkdir(parents=True); (root/"gta5/labels").mkdir(parents=True)
    for i in range(n_src):
        img, ids = _scene(rng)
        Image.fromarray(img).save(root/f"gta5/images/{i:05d}.png"); write_gta5_label(ids, root/f"gta5/labels/{i:05d}.png")
    for split, n in [("train", n_train), ("val", n_val)]:
        d = root/"cityscapes/leftImg8bit"/split/"tinytown"; d.mkdir(parents=True)
        g = root/"cityscapes/gtFine"/split/"tinytown"; g.mkdir(parents=True)
        for i in range(n):
            img, ids = _scene(rng, shift=np.array([30, -20, 10]))
            stem = f"tinytown_000000_{i:06d}"
            Image.fromarray(img).save(d/f"{stem}_leftImg8bit.png")
            write_cityscapes_label(ids, g/f"{stem}_gtFine_labelIds.png")
    return root

@pytest.fixture
def tiny_root(tmp_path):
    return write_tiny(tmp_path/"data")

def run_py(code, cwd=None, timeout=600):
    "Run python code in a fresh interpreter; returns CompletedProcess."
    return subprocess.run([sys.executable, "-c", code], cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout)

@pytest.fixture(scope="session")
def cs_eval(tmp_path_factory):
    "cityscapesscripts' pixel-level evaluation module, imported with CITYSCAPES_DATASET at a scratch folder (it reads it at import)."
    import importlib
    pytest.importorskip("cityscapesscripts")
    d = tmp_path_factory.mktemp("cityscapes_root")
    old = os.environ.get("CITYSCAPES_DATASET"); os.environ["CITYSCAPES_DATASET"] = str(d)
    try:
        sys.modules.pop("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling", None)
        mod = importlib.import_module("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    finally:
        if old is None: os.environ.pop("CITYSCAPES_DATASET", None)
        else: os.environ["CITYSCAPES_DATASET"] = old
    mod.args.evalInstLevelScore = False      # no instanceIds files
    mod.args.evalPixelAccuracy = False
    mod.args.quiet = True
    return mod

def kill_and_resume(tiny_root, tmp_path, method: str, iters: int = 24, min_log_lines: int = 10, extra: str = ""):
    """Train `method` uninterrupted into `tmp_path/ref`, and into `tmp_path/killed` killed (SIGKILL) once it has checkpointed
    and logged `min_log_lines` lines, then resumed; returns the two run folders (the SIGKILL/resume tests of the methods).
    `extra`: more keyword arguments of `train`, as source text (e.g. "model='hrda', ")."""
    import signal, time, torch
    def cmd(out):
        return [sys.executable, "-c", "from cda_nb.training.trainer import train; "
                f"train(method={method!r}, data_root={str(tiny_root)!r}, out_dir={str(out)!r}, iters={iters}, init_iters=3, batch_size=2, "
                f"{extra}crop=(48, 48), log_every=1, ckpt_every=4, progress=False, figures=False, analysis=False, eval_batch_size=4)"]
    ref = subprocess.run(cmd(tmp_path/"ref"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path/f"killed/minicity/{method}/seed0"
    p = subprocess.Popen(cmd(tmp_path/"killed"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 300:
        log = run/"log.jsonl"
        if (run/"checkpoint.pt").exists() and log.exists() and len(log.read_text().splitlines()) >= min_log_lines: break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert not (run/"metrics.json").exists(), "the run finished before it could be killed"
    assert 0 < torch.load(run/"checkpoint.pt", weights_only=True)["step"] < iters
    res = subprocess.run(cmd(tmp_path/"killed"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return tmp_path/f"ref/minicity/{method}/seed0", run
