"""Behaviour-preservation check: tiny runs of every registered method, fingerprinted (a hash of the final weights, the
test mIoU and the logged losses), to compare two commits of the kit.

    python reports/fullscale/identity.py runs.json                  # fingerprint this checkout (about 3 minutes on 2 cores)
    git worktree add /tmp/base <commit> && (cd /tmp/base && python <this file> base.json)   # the same at another commit
    python reports/fullscale/identity.py --compare base.json runs.json   # exit 1 unless every method is bit-identical

Data: tests/conftest.py's `write_tiny` (the same bytes on every machine); 12 iterations, batch 2, 48x48 crops, a checkpoint
at 6, every method's refresh / SSL stage inside the run.
"""
import hashlib, json, os, sys, tempfile, warnings
from pathlib import Path
warnings.filterwarnings("ignore")

def fingerprint(out_json):
    root = Path.cwd()
    sys.path[:0] = [str(root), str(root/"tests")]
    from conftest import write_tiny
    from cda_nb.training.trainer import METHODS, Trainer
    data = write_tiny(tempfile.mkdtemp() + "/d")
    out = {}
    for m in sorted(METHODS):
        kw = dict(iters=12, init_iters=6, batch_size=2, crop=(48, 48), log_every=3, ckpt_every=6, progress=False, figures=False,
                  eval_batch_size=4, analysis=False, data_root=str(data), out_dir=tempfile.mkdtemp(), num_workers=0)
        if m in ("self_training", "bcl"): kw["method_params"] = {"refresh_every": 5}
        if m == "sdca": kw["method_params"] = {"ssl_iters": 4}
        t = Trainer(method=m, **kw); r = t.fit()
        h = hashlib.sha1()
        for k, v in sorted(t.model.state_dict().items()): h.update(k.encode()); h.update(v.detach().cpu().numpy().tobytes())
        losses = [round(l["loss"], 6) for l in map(json.loads, open(t.dir/"log.jsonl")) if "loss" in l]
        out[m] = [h.hexdigest()[:12], r["miou"], losses]
        print(m, out[m][0], r["miou"], flush=True)
    Path(out_json).write_text(json.dumps(out, indent=1) + "\n")

if __name__ == "__main__":
    if sys.argv[1:2] == ["--compare"]:
        a, b = (json.loads(Path(p).read_text()) for p in sys.argv[2:4])
        bad = [m for m in sorted(set(a) | set(b)) if a.get(m) != b.get(m)]
        for m in sorted(set(a) | set(b)): print(f"{m:14s} {'identical' if m not in bad else 'DIFFERS'}")
        sys.exit(1 if bad else 0)
    fingerprint(sys.argv[1])
