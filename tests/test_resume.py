"A run killed (SIGKILL) mid-way and resumed ends with the same metrics and weights as an uninterrupted one."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import torch
from conftest import ROOT

def _cmd(root, out, iters=40):
    return [sys.executable, "-c", f"from cda_nb.training.trainer import train; train(method='source_only', data_root={str(root)!r}, "
            f"out_dir={str(out)!r}, iters={iters}, batch_size=2, crop=(48, 48), log_every=1, ckpt_every=5, progress=False, figures=False)"]

def test_sigkill_and_resume(tiny_root, tmp_path):
    ref = subprocess.run(_cmd(tiny_root, tmp_path/"ref"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path/"killed/minicity/source_only/seed0"
    p = subprocess.Popen(_cmd(tiny_root, tmp_path/"killed"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 300:
        log = run/"log.jsonl"
        if (run/"checkpoint.pt").exists() and log.exists() and len(log.read_text().splitlines()) >= 12: break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert not (run/"metrics.json").exists(), "the run finished before it could be killed"
    step = torch.load(run/"checkpoint.pt", weights_only=True)["step"]
    assert 0 < step < 40
    res = subprocess.run(_cmd(tiny_root, tmp_path/"killed"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    a = json.loads((tmp_path/"ref/minicity/source_only/seed0/metrics.json").read_text())
    b = json.loads((run/"metrics.json").read_text())
    assert a["miou"] == b["miou"] and a["per_class_iou"] == b["per_class_iou"]
    wa = torch.load(tmp_path/"ref/minicity/source_only/seed0/checkpoint.pt", weights_only=True)["model"]
    wb = torch.load(run/"checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    steps = [json.loads(l)["step"] for l in (run/"log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))                    # the log reads as one uninterrupted run

PREEMPT_HOOK = ("import os, signal, sys; import cda_nb.training.trainer; from cda_nb.methods.base import METHODS; "
                "M = METHODS['source_only']; f = M.before_step; "
                "M.before_step = lambda self, step: (f(self, step), step == 6 and os.kill(os.getpid(), signal.SIGUSR1)); ")   # in step 7

def _cli(root, out, hook=""):
    args = [f"data_root={root}", f"out_dir={out}", "method=source_only", "iters=16", "batch_size=2", "crop=[48,48]", "log_every=1",
            "ckpt_every=5", "progress=false", "figures=false"]
    return [sys.executable, "-c", hook + "import sys; from cda_nb.cli import cda_train; cda_train(sys.argv[1:])", *args]

def test_a_preempted_run_checkpoints_exits_75_and_resumes_bit_identical(tiny_root, tmp_path):
    "SIGUSR1 during step 7 (a scheduler's notice; sent here by the method's hook): the checkpoint of step 7, exit 75, and the same command finishes it exactly."
    ref = subprocess.run(_cli(tiny_root, tmp_path/"ref"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path/"pre/minicity/source_only/seed0"
    p = subprocess.run(_cli(tiny_root, tmp_path/"pre", PREEMPT_HOOK), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 75, p.stderr                              # PREEMPTED_EXIT: not killed by the signal
    assert f"preempted at step 7 (SIGUSR1), checkpoint written to {run/'checkpoint.pt'}; run the same command again to resume" in p.stderr
    assert torch.load(run/"checkpoint.pt", weights_only=True)["step"] == 7    # off the periodic checkpoints (every 5)
    assert not (run/"metrics.json").exists()
    res = subprocess.run(_cli(tiny_root, tmp_path/"pre"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    a, b = (json.loads((d/"metrics.json").read_text()) for d in (tmp_path/"ref/minicity/source_only/seed0", run))
    assert (a["miou"], a["per_class_iou"]) == (b["miou"], b["per_class_iou"])
    wa, wb = (torch.load(d/"checkpoint.pt", weights_only=True)["model"] for d in (tmp_path/"ref/minicity/source_only/seed0", run))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [json.loads(l)["step"] for l in (run/"log.jsonl").read_text().splitlines()] == list(range(1, 17))
