"""sdca end to end on the tiny GTA5 -> Cityscapes pair: a run killed (SIGKILL) inside its SSL stage and resumed ends with
the same weights, statistics and metrics as an uninterrupted one; corrupting target-train labels changes nothing."""
import json, signal, subprocess, sys, time
import pytest
import torch
from conftest import ROOT
import cda_nb.methods.sdca  # noqa: F401  (registered by cda_nb.training.config as well)
from cda_nb.training.trainer import train

ITERS, SSL = 30, 12           # steps 18..29 are the SSL stage
KW = dict(iters=ITERS, init_iters=4, batch_size=2, crop=(48, 48), log_every=1, ckpt_every=1, progress=False, figures=False,
          method_params={"ssl_iters": SSL, "delta": 0.5, "max_pixels": 64})

def _cmd(root, out):
    return [sys.executable, "-c", "import cda_nb.methods.sdca; from cda_nb.training.trainer import train; "
            f"train(method='sdca', data_root={str(root)!r}, out_dir={str(out)!r}, **{KW!r})"]

def test_sigkill_inside_ssl_stage_and_resume(tiny_root, tmp_path):
    ref = subprocess.run(_cmd(tiny_root, tmp_path/"ref"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    # the killed run starts from the same source-only run (a copy), so only the sdca run itself is timed
    import shutil
    shutil.copytree(tmp_path/"ref/minicity/source_only", tmp_path/"killed/minicity/source_only")
    run = tmp_path/"killed/minicity/sdca/seed0"
    p = subprocess.Popen(_cmd(tiny_root, tmp_path/"killed"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 300:
        log = run/"log.jsonl"
        if log.exists() and len(log.read_text().splitlines()) >= ITERS - SSL + 3: break
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL); p.wait()
    assert not (run/"metrics.json").exists(), "the run finished before it could be killed"
    ck = torch.load(run/"checkpoint.pt", weights_only=False)
    assert ITERS - SSL < ck["step"] < ITERS and ck["method"]["store"]["refreshed_at"] == ITERS - SSL   # inside the SSL stage
    res = subprocess.run(_cmd(tiny_root, tmp_path/"killed"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    a = json.loads((tmp_path/"ref/minicity/sdca/seed0/metrics.json").read_text())
    b = json.loads((run/"metrics.json").read_text())
    assert a["miou"] == b["miou"] and a["per_class_iou"] == b["per_class_iou"] and a["pdd"] == b["pdd"]
    ca = torch.load(tmp_path/"ref/minicity/sdca/seed0/checkpoint.pt", weights_only=False)
    cb = torch.load(run/"checkpoint.pt", weights_only=False)
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    for s in ("feat_stats", "out_stats"):
        assert all(torch.equal(ca["method"][s][k], cb["method"][s][k]) for k in ca["method"][s])
    steps = [json.loads(l)["step"] for l in (run/"log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, ITERS + 1))
    recs = [json.loads(l) for l in (run/"log.jsonl").read_text().splitlines()]
    assert all("ce_ssl" in r for r in recs[ITERS - SSL:]) and all("sdca_feat" in r for r in recs[:ITERS - SSL])

def test_ssl_labels_never_from_target_ground_truth(tiny_root, tmp_path):
    "Target-train labels overwritten with garbage: the same weights (the SSL stage labels the target itself)."
    kw = dict(KW, iters=8, method_params=dict(KW["method_params"], ssl_iters=3), analysis=False)
    m1 = train(method="sdca", data_root=str(tiny_root), out_dir=str(tmp_path/"a"), **kw)
    for f in sorted((tiny_root/"cityscapes/gtFine/train").rglob("*_labelIds.png")): f.write_bytes(b"not a png")
    m2 = train(method="sdca", data_root=str(tiny_root), out_dir=str(tmp_path/"b"), **kw)
    assert m1["miou"] == m2["miou"]
    wa = torch.load(tmp_path/"a/minicity/sdca/seed0/checkpoint.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path/"b/minicity/sdca/seed0/checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

def test_analysis_writes_pdd_and_tsne(tiny_root, tmp_path):
    "The post-training analysis: PDD per class on target val (eq. 25) with its bar figure (Fig. 6) and a t-SNE (Fig. 5)."
    m = train(method="sdca", data_root=str(tiny_root), out_dir=str(tmp_path), **dict(KW, iters=2, figures=True,
              method_params={"delta": 0.5}))
    assert "analysis_error" not in m, m.get("analysis_error")
    present = {k: v for k, v in m["pdd"].items() if v is not None}
    assert present and all(v > 0 for v in present.values()) and m["pdd_mean"] > 0
    fig = tmp_path/"minicity/sdca/seed0/figures"
    assert (fig/"pdd.png").stat().st_size > 0 and (fig/"tsne.png").stat().st_size > 0
