"Issue 23, input bounds and data: every bad input a user can cause is refused naming the file or parameter and the fix."
import os, signal, struct, subprocess, sys, time, tracemalloc, warnings, zlib
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from cda_nb.core import CDAError

ROOT = Path(__file__).resolve().parents[1]
TINY_MC = dict(seed=0, progress=False, n_source=4, n_train=3, n_val=2, n_test=2)
PNG_SIG = b'\x89PNG\r\n\x1a\n'

def _chunk(t, b): return struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b) & 0xffffffff)

def _png(path, w, h, depth, ctype, idat):
    Path(path).write_bytes(PNG_SIG + _chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, ctype, 0, 0, 0))
                           + _chunk(b'IDAT', idat) + _chunk(b'IEND', b''))

def _zeros_z(n):
    "zlib stream of `n` zero bytes, made 1 MiB at a time."
    z, step = zlib.compressobj(9), bytes(1 << 20)
    return b''.join(z.compress(step[:min(1 << 20, n - k)]) for k in range(0, n, 1 << 20)) + z.flush()

def _params(root, out, **kw):
    d = dict(data_root=str(root), out_dir=str(out), iters=2, batch_size=2, crop=(32, 32), log_every=1, ckpt_every=1,
             progress=False, figures=False, init="none", eval_batch_size=4)
    d.update(kw); return d

BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))

# 1. YAML bombs
def test_yaml_alias_bomb_refused(tmp_path):
    from cda_nb.cli import read_yaml_config
    from cda_nb.experiments import load_experiments
    cfg = tmp_path/"bomb.yaml"
    cfg.write_text("model_kwargs:\n" + "".join("  k" + l + "\n" for l in BOMB.splitlines()) + "tag: *i\n")
    assert cfg.stat().st_size < 500                          # a few hundred bytes
    with pytest.raises(CDAError, match="bomb.yaml: YAML aliases are not supported") as e:
        read_yaml_config(cfg)                                 # the old code returned it (and make_config exhausted memory)
    assert "write the value out in full" in str(e.value)
    exp = tmp_path/"exp.yaml"; exp.write_text("x_shared:\n" + "".join("  " + l + "\n" for l in BOMB.splitlines()) + "runs: []\n")
    with pytest.raises(CDAError, match="exp.yaml: YAML aliases are not supported"): load_experiments(exp)
    big = tmp_path/"big.yaml"; big.write_text("# padding\n" * (600 << 10))          # 6 MiB of comments
    with pytest.raises(CDAError, match=r"big.yaml: \d+ bytes, more than the 4 MiB"): read_yaml_config(big)

# 2. the 16-bit PNG decoder is bounded by its header
def test_png16_zip_bomb_bounded(tmp_path):
    from cda_nb.data import read_synthia_label
    lab = tmp_path/"0000000.png"
    _png(lab, 64, 32, 16, 2, _zeros_z(256 << 20))          # 64x32 declared (12 KiB), 256 MiB inflated
    assert lab.stat().st_size < 400 << 10
    tracemalloc.start()
    try:
        err = None
        try: read_synthia_label(lab)
        except Exception as e: err = e
        peak = tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()
    assert peak < 32 << 20, f"the decoder allocated {peak >> 20} MiB for a 64x32 label"
    assert isinstance(err, CDAError) and str(lab) in str(err) and "more than the 12320 bytes" in str(err), err
    huge = tmp_path/"huge.png"; _png(huge, 200000, 200000, 16, 2, _zeros_z(1000))
    with pytest.raises(CDAError, match="declares 200000x200000"): read_synthia_label(huge)

# 3. declared image sizes are refused before training
def test_declared_size_refused_before_training(tiny_root, tmp_path):
    from cda_nb.training.trainer import train
    img = sorted((tiny_root/"cityscapes/leftImg8bit/val").rglob("*.png"))[1]
    _png(img, 30000, 30000, 8, 2, _zeros_z(1 << 20))
    with pytest.raises(CDAError, match="the header declares 30000x30000") as e: train(**_params(tiny_root, tmp_path/"runs"))
    assert str(img) in str(e.value) and "16384 pixels per side" in str(e.value)
    assert not (tmp_path/"runs").exists()                     # nothing trained or written

# 4. val images of two sizes: refused by the input check, naming one of each; eval_batch_size=1 evaluates them
def test_mixed_val_sizes_refused_before_training(tiny_root, tmp_path):
    from cda_nb.training.trainer import train
    img = sorted((tiny_root/"cityscapes/leftImg8bit/val").rglob("*.png"))[1]
    lab = sorted((tiny_root/"cityscapes/gtFine/val").rglob("*.png"))[1]
    Image.open(img).resize((96, 48)).save(img); Image.open(lab).resize((96, 48), Image.NEAREST).save(lab)
    with pytest.raises(CDAError, match="eval_batch_size=4 cannot stack them; set eval_batch_size=1") as e:
        train(**_params(tiny_root, tmp_path/"runs"))
    first = sorted((tiny_root/"cityscapes/leftImg8bit/val").rglob("*.png"))[0]
    assert f"{first} is 128x64" in str(e.value) and f"{img} is 96x48" in str(e.value)
    assert not (tmp_path/"runs").exists()
    r = train(**_params(tiny_root, tmp_path/"runs", eval_batch_size=1))
    assert 0 <= r["miou"] <= 1

# 5a. a MiniCity cache with files deleted is regenerated, not used as it is
def test_minicity_cache_incomplete_regenerated(tmp_path, monkeypatch):
    from cda_nb.minicity import minicity_root
    monkeypatch.setenv("CDA_NB_CACHE", str(tmp_path/"cache"))
    r = minicity_root(**TINY_MC)
    files = sorted(p for p in r.rglob("*.png"))
    before = {p: p.read_bytes() for p in files}
    for p in files[:-2]: p.unlink()                             # most files deleted, minicity.json kept
    assert minicity_root(**TINY_MC) == r
    assert {p: p.read_bytes() for p in sorted(r.rglob("*.png"))} == before   # regenerated, the same bytes
    files[0].write_bytes(before[files[0]][:200])                 # truncated
    minicity_root(**TINY_MC); assert files[0].read_bytes() == before[files[0]]

# 5b. a truncated presence-*.npy is named and rebuilt
def test_presence_cache_truncated_rebuilt(tiny_root, tmp_path):
    from cda_nb.data import GTA5, class_presence
    cache = tmp_path/"presence-0123456789abcdef.npy"
    want = class_presence(GTA5(tiny_root/"gta5"), cache=cache, progress=False)
    cache.write_bytes(cache.read_bytes()[:90])
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        got = class_presence(GTA5(tiny_root/"gta5"), cache=cache, progress=False)
    assert (got == want).all()
    assert any(f"{cache}: cached class presence cannot be read" in str(w.message) for w in ws)
    assert (np.load(cache) == want).all()                        # rewritten

# 5c. a killed MiniCity generation's temporary folder is removed at the next start
def test_killed_generation_temp_cleaned(tmp_path):
    cache = tmp_path/"cache"; cache.mkdir()
    env = {**os.environ, "CDA_NB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    code = "from cda_nb.minicity import minicity_root; minicity_root(seed=0, progress=False, n_source=400)"
    p = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        t0 = time.time()
        while not list(cache.glob(".minicity-*.tmp-*/gta5/images/*.png")) and time.time() - t0 < 120: time.sleep(0.05)
    finally: p.send_signal(signal.SIGKILL); p.wait()
    assert list(cache.glob(".minicity-*.tmp-*")), "no temporary folder seen"
    r = subprocess.run([sys.executable, "-c", "from cda_nb.minicity import minicity_root; minicity_root(seed=0, progress=False, "
                        "n_source=4, n_train=3, n_val=2, n_test=2)"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not list(cache.glob(".minicity-*")), sorted(p.name for p in cache.iterdir())

# 6. split names cannot leave the data folder
def test_split_name_cannot_escape(tiny_root):
    from cda_nb.data import Cityscapes
    outside = tiny_root/"x"/"tinytown"; outside.mkdir(parents=True)      # leftImg8bit/../../x and gtFine/../../x
    for p in (tiny_root/"cityscapes/leftImg8bit/val/tinytown").glob("*.png"): (outside/p.name).write_bytes(p.read_bytes())
    for p in (tiny_root/"cityscapes/gtFine/val/tinytown").glob("*.png"): (outside/p.name).write_bytes(p.read_bytes())
    for s in ("../../x", "val/../../../x", "/etc"):
        with pytest.raises(CDAError, match="is not a split name"): Cityscapes(tiny_root/"cityscapes", split=s)
    assert len(Cityscapes(tiny_root/"cityscapes", split="val")) == 3

# 4 (re-evaluation): evaluate_checkpoint / cda-eval refuse a split of two sizes when they batch
def test_mixed_sizes_refused_by_evaluate_checkpoint(tiny_root, tmp_path):
    from cda_nb.training.trainer import train
    from cda_nb.training.evaluation import evaluate_checkpoint
    train(**_params(tiny_root, tmp_path/"runs"))
    run = tmp_path/"runs/minicity/source_only/seed0"
    img = sorted((tiny_root/"cityscapes/leftImg8bit/val").rglob("*.png"))[2]
    Image.open(img).resize((96, 48)).save(img)
    with pytest.raises(CDAError, match="batch_size=4 cannot stack them; set batch_size=1") as e:
        evaluate_checkpoint(run, target_root=tiny_root/"cityscapes", progress=False, batch_size=4)
    assert f"{img} is 96x48" in str(e.value)
    r = evaluate_checkpoint(run, target_root=tiny_root/"cityscapes", progress=False, batch_size=1)
    assert r["n_images"] == 3
