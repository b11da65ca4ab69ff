"""Two CPU processes through torchrun (gloo) on a tiny MiniCity-format pair: both ranks end with identical
weights and prototype banks, and the run folder is complete and written once (by rank 0)."""
import json, socket, subprocess, sys
from pathlib import Path
import torch
from conftest import ROOT

SCRIPT = '''
import sys, torch, torch.distributed as dist
from cda_nb.trainers import Trainer
root, out = sys.argv[1], sys.argv[2]
tr = Trainer(method="bcl", data_root=root, out_dir=out, iters=4, init_iters=4, batch_size=2, crop=(48, 48), log_every=1,
             ckpt_every=2, progress=False, figures=True, analysis=True)
tr.fit()
torch.save({"model": tr.model.state_dict(), "src_bank": tr.method.src_bank.state_dict(), "step": tr.step,
            "world": tr.world}, f"{out}/rank{tr.rank}.pt")
dist.destroy_process_group()
'''

def _free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def test_two_process_gloo(tiny_root, tmp_path):
    script = tmp_path/"ddp_run.py"; script.write_text(SCRIPT)
    out = tmp_path/"runs"; out.mkdir()
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
                        str(script), str(tiny_root), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    a, b = torch.load(out/"rank0.pt", weights_only=True), torch.load(out/"rank1.pt", weights_only=True)
    assert a["world"] == b["world"] == 2 and a["step"] == b["step"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["src_bank"][k], b["src_bank"][k]) for k in a["src_bank"])
    run = out/"minicity/bcl/seed0"
    for f in ["metrics.json", "config.json", "log.jsonl", "checkpoint.pt", "figures/predictions.png"]: assert (run/f).exists(), f
    steps = [json.loads(l)["step"] for l in (run/"log.jsonl").read_text().splitlines() if "loss" in l]
    assert steps == [1, 2, 3, 4]                      # one writer: no duplicated lines
    assert not list(run.glob(".*.tmp"))               # no torn atomic writes left behind
    m = json.loads((run/"metrics.json").read_text()); assert 0 <= m["miou"] <= 1
