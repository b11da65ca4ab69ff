"""Speed and memory of each method on one machine, in one run.

    python reports/bench/bench.py                       # MiniCity, SmallSegNet, all methods -> reports/bench/methods_<device>.{json,md}
    python reports/bench/bench.py --init reports/runs/minicity/source_only/seed0/checkpoint.pt   # adapting from a source model
    python reports/bench/bench.py --deeplab             # DeepLab-V2 ResNet-101 at the papers' 512x512 crop -> reports/bench/deeplab_<device>.{json,md}

Each measurement runs in its own process (so peak RSS is that method's), repeated `--repeats` times (interleaved across methods); we report
the median over repeats of the median seconds per iteration (steady state: after warm-up steps, with the
relabelling of the whole target set that self_training and bcl repeat every `refresh_every` steps timed on its own and
amortised in a second column) and the peak RSS / peak GPU memory. Machines are noisy: read medians."""
import argparse, json, os, subprocess, sys, tempfile, time, platform
from pathlib import Path
import numpy as np

HERE = Path(__file__).resolve().parent

CHILD = r'''
import json, sys, time, statistics, torch
from cda_nb.training.trainer import Trainer
from cda_nb.core import read_jsonl, peak_rss_mb, peak_gpu_mb
kw = json.loads(sys.argv[1]); warm, n = kw.pop("_warm"), kw.pop("_n")
tr = Trainer(**kw)
tr.fit(stop_at=warm)                      # warm-up, includes the first pseudo-label refresh
tr.fit(stop_at=warm + n)
rec = [r for r in read_jsonl(tr.dir/"log.jsonl") if "loss" in r]
sec = [b["seconds"] - a["seconds"] for a, b in zip(rec, rec[1:]) if b["step"] > warm]
every, refresh = getattr(tr.method, "refresh_every", None), None
if every:                                 # a periodic relabelling of the whole target set (self_training, bcl): timed apart
    ts = []
    for _ in range(2):
        t0 = time.perf_counter(); tr.method.refresh(tr.step); ts.append(time.perf_counter() - t0)
    refresh = min(ts)
print("RESULT" + json.dumps({"sec_per_iter": statistics.median(sec), "refresh_s": refresh, "refresh_every": every, "iters": tr.cfg.iters,
                             "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(),
                             "device": str(tr.device), "threads": torch.get_num_threads()}))
'''

def measure(params, warm, n):
    with tempfile.TemporaryDirectory() as d:
        kw = dict(params, out_dir=d, progress=False, figures=False, analysis=False, log_every=1, ckpt_every=10**6, _warm=warm, _n=n)
        r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(kw)], capture_output=True, text=True)
        if r.returncode: raise SystemExit(r.stderr[-3000:])
        return json.loads(r.stdout.split("RESULT", 1)[1])

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="source_only,oracle,self_training,bcl,dacs,sdca,clst,ucda")
    ap.add_argument("--init", default="none", help="starting weights of every run: 'none' or a checkpoint.pt (a source-only model: "
                    "sdca's confidence mask and the pseudo labels then look like a real adaptation run's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=30, help="timed iterations per repeat")
    ap.add_argument("--warm", type=int, default=5)
    ap.add_argument("--deeplab", action="store_true", help="DeepLab-V2 ResNet-101 at 512x512 (random init; few iterations)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--suffix", default="", help="appended to the output name, e.g. _quiet -> methods_cpu_quiet.{json,md}")
    a = ap.parse_args()
    if a.deeplab:
        # random init (no weights are downloaded), so BatchNorm trains; speed is the same as with frozen BN
        base = dict(model="deeplabv2", model_kwargs={"freeze_bn": False}, crop=(512, 512), scale=None, batch_size=1,
                    lr=1e-4, device=a.device, init="none")
        methods, name = ["source_only"], "deeplab"
        a.iters, a.warm = min(a.iters, 4), min(a.warm, 2)
    else:
        base = dict(device=a.device, init=a.init)
        methods, name = a.methods.split(","), "methods"
    rows, params, runs = {}, {}, {m: [] for m in methods}
    for m in methods:
        # the dataset's default iterations, so that a relabelling method refreshes as often as in a default run (MiniCity: every
        # 50 steps); the timed steps come before the second refresh, which is timed on its own and amortised in the "run" column
        params[m] = dict(base, method=m) if not a.deeplab else dict(base, method=m, iters=10**5)
    for rep in range(a.repeats):            # repeats interleaved across methods: a slow spell of the machine hits all alike
        for m in methods:
            runs[m].append(measure(params[m], a.warm, a.iters)); print(m, rep, runs[m][-1], flush=True)
    for m in methods:
        rows[m] = {"sec_per_iter_median": float(np.median([r["sec_per_iter"] for r in runs[m]])),
                   "sec_per_iter_runs": [round(r["sec_per_iter"], 4) for r in runs[m]],
                   "peak_rss_mb_median": float(np.median([r["peak_rss_mb"] for r in runs[m]])),
                   "peak_gpu_mb": runs[m][0]["peak_gpu_mb"], "device": runs[m][0]["device"]}
        rs = [r["refresh_s"] for r in runs[m] if r.get("refresh_s")]
        every = runs[m][0].get("refresh_every")
        rows[m]["refresh_s_median"] = float(np.median(rs)) if rs else None
        rows[m]["refresh_every"] = every
        rows[m]["sec_per_iter_run"] = rows[m]["sec_per_iter_median"] + (rows[m]["refresh_s_median"] / every if rs else 0.0)
    dev = rows[methods[0]]["device"].split(":")[0]
    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "repeats": a.repeats, "timed_iters": a.iters, "warmup_iters": a.warm, "params": base, "date": time.strftime("%Y-%m-%d")}
    (HERE/f"{name}_{dev}{a.suffix}.json").write_text(json.dumps({"info": info, "methods": rows}, indent=2) + "\n")
    ref_name = "self_training" if "self_training" in rows else methods[0]
    ref = rows[ref_name]["sec_per_iter_median"]
    cmd = " ".join(["python reports/bench/bench.py"] + sys.argv[1:])
    lines = [f"# {name} benchmark ({dev})", "", f"`{cmd}` — {info['cpus']} CPUs, "
             f"Python {info['python']}, {a.repeats} repeats × {a.iters} timed iterations after {a.warm} warm-up; medians.", "",
             "*step*: the median training step; *refresh*: one relabelling of the whole target set and how often a default run "
             "does it; *run*: step + refresh / every, the seconds per iteration of a default run.", "",
             f"| method | s/iter step (median) | runs | × {ref_name} | refresh (s) / every | s/iter run | × {ref_name} | peak RSS (MiB) | peak GPU (MiB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    ref_run = rows[ref_name]["sec_per_iter_run"]
    for m, r in rows.items():
        rf = f"{r['refresh_s_median']:.2f} / {r['refresh_every']}" if r["refresh_s_median"] else "–"
        lines.append(f"| {m} | {r['sec_per_iter_median']:.3f} | {', '.join(map(str, r['sec_per_iter_runs']))} | "
                     f"{r['sec_per_iter_median'] / ref:.2f} | {rf} | {r['sec_per_iter_run']:.3f} | {r['sec_per_iter_run'] / ref_run:.2f} | "
                     f"{r['peak_rss_mb_median']:.0f} | {r['peak_gpu_mb'] or '–'} |")
    (HERE/f"{name}_{dev}{a.suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

if __name__ == "__main__": main()
