"""Host-device synchronisations of one non-logging training step, per registered method (`cda_nb.devcheck.DeviceCheck`).

    python reports/fullscale/syncs.py              # every method: the count at step 3 and the kinds of sync
    python reports/fullscale/syncs.py -v bcl sdca  # with the source line of every sync

Tiny data (tests/conftest.py's `write_tiny`), batch 2, 48x48 crops, no logging or checkpoint in steps 0-3, counted at
step 3 (a step with no refresh, teacher copy or analysis). On CPU a "sync" is an op that would make the host wait for a
CUDA device (`.item()`, `bool(t)`, `.tolist()`, a data-dependent size such as boolean-mask indexing or `nonzero`); the
counts are lower bounds of what CUDA reports (`reports/gpu/smoke.sh` counts with `torch.cuda.set_sync_debug_mode`).
"""
import collections, sys, tempfile, warnings
from pathlib import Path
ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT/"tests")]
warnings.filterwarnings("ignore")
from cda_nb.devcheck import DeviceCheck
from conftest import write_tiny
from cda_nb.training.trainer import METHODS, Trainer

def count(method, root, step=3):
    out = tempfile.mkdtemp()
    kw = dict(iters=20, init_iters=2, batch_size=2, crop=(48, 48), log_every=100, ckpt_every=100, progress=False, figures=False,
              eval_batch_size=4, analysis=False, data_root=str(root), out_dir=out)
    with DeviceCheck() as dc:
        t = dc.watch(Trainer(method=method, **kw)); t.fit(stop_at=step + 1)
    return dc.step_syncs(step), dict(dc.syncs[step]), dict(dc.sites[step])

if __name__ == "__main__":
    verbose = "-v" in sys.argv
    only = [a for a in sys.argv[1:] if a != "-v"] or sorted(METHODS)
    root = write_tiny(tempfile.mkdtemp() + "/d")
    print("| method | syncs at step 3 | kinds |\n|---|---|---|")
    for m in only:
        n, kinds, sites = count(m, root)
        print(f"| {m} | {n} | {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))} |", flush=True)
        if verbose:
            for k, v in sorted(sites.items()): print("     ", v, k.replace(str(ROOT) + "/", ""))
