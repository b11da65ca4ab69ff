"""GPU smoke run of every paper config (issue 19): synthetic data at the true resolutions, `--iters` (30) iterations of each
config with random weights, and per config: s/iter over steps 10-25 (wall clock between two `cuda.synchronize`), the same
without the method's hooks (refreshes), peak GPU memory in training and with the final evaluation, checkpoint bytes, and the
host-device synchronisations of one non-logging step (`torch.cuda.set_sync_debug_mode('warn')`, step 25) with their sites.

    bash reports/gpu/smoke.sh                       # on a GPU machine: <= 8 minutes, writes reports/gpu/smoke.json + reports/gpu.md
    python reports/gpu/smoke.py --device cpu --model small --iters 4 --configs gta5_cityscapes/dacs   # the CPU check (tests/)

Each config runs in its own process (a crash or an out-of-memory of one is recorded, the rest go on); configs run in the
order of --configs (the three with published targets first) and no new one starts after --budget-s seconds.
"""
from __future__ import annotations
import argparse, fnmatch, json, os, subprocess, sys, tempfile, time, traceback, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT/"reports/fullscale"))

ORDER = ["gta5_cityscapes/dacs", "gta5_cityscapes/cluda_hrda", "gta5_cityscapes/bcl", "gta5_cityscapes/cluda",
         "gta5_cityscapes/sdca", "gta5_cityscapes/self_training", "gta5_cityscapes/clst", "gta5_cityscapes/ucda",
         "gta5_cityscapes/source_only", "gta5_cityscapes/oracle", "synthia_cityscapes/dacs", "synthia_cityscapes/*"]
# issue 19's targets on an H100/H200-class GPU: (s/iter, GiB)
TARGETS = {"gta5_cityscapes/dacs": (0.35, 12), "gta5_cityscapes/cluda_hrda": (0.9, 24), "gta5_cityscapes/bcl": (None, 40)}
T0, T1, SYNC_STEP = 10, 25, 25                  # timed window [T0, T1), the step whose syncs are counted

def configs(patterns):
    from rehearsal import find_configs, cname
    out = []
    for p in patterns:
        out += [cname(c) for c in find_configs([p]) if cname(c) not in out]
    return out

def one(name, args):
    "One config in this process; returns its record (raises on failure: the parent records the traceback)."
    import torch
    from rehearsal import interval_overrides, pretrained_overrides, small_network
    from cda_nb.cli import read_yaml_config, load_run_config
    from cda_nb.training.trainer import Trainer
    from cda_nb.training.checkpoints import checkpoint_bytes
    path = ROOT/"configs"/f"{name}.yaml"
    y = read_yaml_config(path)
    if args.model == "small":                                     # the CPU check: the kit's small network, the config otherwise as is
        import yaml
        y = small_network(y)
        path = Path(args.work)/f"{name.replace('/', '__')}.yaml"; path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(y, sort_keys=False))
    ov = [f"data_root={args.data}", f"out_dir={args.work}", f"iters={args.iters}", "ckpt_every=100000", "log_every=10",
          "eval_every=0", f"init_iters={args.init_iters}", "figures=false", "progress=false", "analysis=false", f"device={args.device}"]
    if args.model == "config": ov += pretrained_overrides(y)
    iv = interval_overrides(y["method"], y, args.iters)
    for k in ("refresh_every", "teacher_every"):                  # no refresh or teacher copy inside the timed window
        if k in iv: iv[k] = args.iters
    if "ssl_iters" in iv: iv["ssl_iters"] = min(5, args.iters - 1)  # sdca's SSL stage (its label pass) starts before the window
    ov += [f"method_params.{k}={v}" for k, v in iv.items()]
    cfg = load_run_config(path, ov)
    cuda = torch.device(cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")).type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rec = {"config": name, "model": cfg.model, "overrides": [o.replace(str(args.data), "$DATA").replace(str(args.work), "$WORK") for o in ov]}
    t = time.perf_counter()
    tr = Trainer(cfg)
    rec["setup_seconds"] = round(time.perf_counter() - t, 2)       # source-only start, class statistics, model build
    rec.update(amp_dtype=str(tr.amp_dtype), num_workers=tr.cfg.num_workers, deterministic=tr.cfg.deterministic)
    t0, t1 = min(T0, args.iters - 2), min(T1, args.iters - 1)
    if cuda: torch.cuda.reset_peak_memory_stats()
    tr.fit(stop_at=t0); sync()
    h0, w0 = tr.timing["hook_seconds"], time.perf_counter()
    tr.fit(stop_at=t1); sync()
    dt, dh = time.perf_counter() - w0, tr.timing["hook_seconds"] - h0
    rec.update(timed_steps=[t0, t1], sec_per_iter=round(dt / (t1 - t0), 4), sec_per_iter_ex_hooks=round((dt - dh) / (t1 - t0), 4),
               peak_train_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None)
    # the syncs of one non-logging step: every synchronising CUDA call warns once in 'warn' mode
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        if cuda: torch.cuda.set_sync_debug_mode("warn")
        try: tr.fit(stop_at=t1 + 1); sync()
        finally:
            if cuda: torch.cuda.set_sync_debug_mode(0)
    hits = [x for x in w if "synchroniz" in str(x.message)]
    sites = {}
    for x in hits: k = f"{Path(x.filename).name}:{x.lineno}"; sites[k] = sites.get(k, 0) + 1
    rec.update(sync_step=t1, syncs_one_step=len(hits) if cuda else None, sync_sites=dict(sorted(sites.items(), key=lambda kv: -kv[1])))
    t = time.perf_counter()
    m = tr.fit(); sync()
    rec.update(finish_seconds=round(time.perf_counter() - t, 2), eval_seconds=m.get("eval_seconds"), miou=m["miou"],
               peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
               checkpoint_bytes=checkpoint_bytes(tr.dir), peak_rss_mb=m.get("peak_rss_mb"))
    if m.get("eval_seconds") is not None:                          # whole-data-set network passes, extrapolated from the evaluation
        per = m["eval_seconds"] / args.n_val                        # seconds per full-size image (2048x1024, the config's eval path)
        rec.update(eval_seconds_per_image=round(per, 3), full_pass_seconds={"evaluation_500": round(per * 500, 1),
                   "refresh_2975_estimate": round(per * 2975, 1)})  # a refresh is one such forward per target image (plus its thresholds)
    return rec

def write_md(doc, md: Path):
    "The table between the markers of reports/gpu.md (the prose around it is kept)."
    b, e = "<!-- smoke:begin -->", "<!-- smoke:end -->"
    rows = [f"`{doc['command']}` on {doc['gpu']} (capability {doc['capability']}), torch {doc['torch']}, {doc['when']}; "
            f"{doc['iters']} iterations per config, random weights, synthetic data at the true sizes; {doc['elapsed_s']:.0f} s in all.", "",
            "| config | model | amp | s/iter (timed steps) | s/iter without hooks | target s/iter | peak GiB train | peak GiB with eval | "
            "target GiB | checkpoint MiB | syncs in one step | top sync sites | eval s | full: eval 500 min | full: refresh 2,975 min (est.) | error |",
            "|---" * 16 + "|"]
    for r in doc["runs"]:
        ts, tg = TARGETS.get(r["config"], (None, None))
        f = lambda v, nd=3: "–" if v is None else f"{v:.{nd}f}"
        top = ", ".join(f"{k} ×{v}" for k, v in list((r.get("sync_sites") or {}).items())[:3]) or "–"
        err = (r.get("error") or "").splitlines()[-1][:160] if r.get("error") else ""
        rows.append("| " + " | ".join([r["config"], str(r.get("model", "–")), str(r.get("amp_dtype", "–")).replace("torch.", ""),
                    f(r.get("sec_per_iter")), f(r.get("sec_per_iter_ex_hooks")), f(ts, 2) if ts else "–", f(r.get("peak_train_gib"), 1),
                    f(r.get("peak_gib"), 1), str(tg or "–"), f((r.get("checkpoint_bytes") or 0) / 2**20, 1) if r.get("checkpoint_bytes") else "–",
                    str(r.get("syncs_one_step", "–")), top, f(r.get("eval_seconds"), 1),
                    f((r.get("full_pass_seconds") or {}).get("evaluation_500", 0) / 60, 1) if r.get("full_pass_seconds") else "–",
                    f((r.get("full_pass_seconds") or {}).get("refresh_2975_estimate", 0) / 60, 1) if r.get("full_pass_seconds") else "–",
                    err.replace("|", "/")]) + " |")
    block = b + "\n" + "\n".join(rows) + "\n" + e
    text = md.read_text() if md.is_file() else "# GPU measurements\n"
    text = text[:text.index(b)] + block + text[text.index(e) + len(e):] if b in text and e in text else text.rstrip() + "\n\n## Smoke run\n\n" + block + "\n"
    md.write_text(text)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="*", default=ORDER, help="config patterns, run in this order")
    p.add_argument("--iters", type=int, default=30); p.add_argument("--init-iters", type=int, default=10)
    p.add_argument("--device", default="cuda"); p.add_argument("--model", choices=("config", "small"), default="config")
    p.add_argument("--budget-s", type=float, default=420, help="start no config after this many seconds")
    p.add_argument("--timeout-s", type=float, default=240, help="seconds for one config's process")
    p.add_argument("--n-src", type=int, default=6); p.add_argument("--n-train", type=int, default=6); p.add_argument("--n-val", type=int, default=2)
    p.add_argument("--data", default=None); p.add_argument("--work", default=None)
    p.add_argument("--out", default=str(ROOT/"reports/gpu/smoke.json")); p.add_argument("--md", default=str(ROOT/"reports/gpu.md"))
    p.add_argument("--one", default=None, help=argparse.SUPPRESS); p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:                                                  # the child: one config, its record to --result
        try: rec = one(args.one, args)
        except BaseException as e: rec = {"config": args.one, "error": traceback.format_exc()[-4000:]}
        Path(args.result).write_text(json.dumps(rec)); return
    import torch
    t_start = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="smoke-"))
    args.data = Path(args.data or tmp/"data").resolve(); args.work = Path(args.work or tmp/"work").resolve()
    if not (args.data/"rehearsal_data.json").is_file():
        from rehearsal import write_data
        t = time.perf_counter(); sizes = write_data(args.data, args.n_src, args.n_train, args.n_val)
        (args.data/"rehearsal_data.json").write_text(json.dumps(sizes)); print(f"data written in {time.perf_counter() - t:.1f} s", flush=True)
    cuda = args.device.startswith("cuda")
    argv_s = " ".join(sys.argv[1:] if argv is None else argv)
    for path, alias in ((args.data, "$DATA"), (args.work, "$WORK"), (Path(args.out).resolve(), "$OUT_JSON"), (Path(args.md).resolve(), "$OUT_MD"),
                        (f"{ROOT}/", "")):
        argv_s = argv_s.replace(str(path), alias)                 # no path of the machine in the report
    doc = {"command": f"bash reports/gpu/smoke.sh {argv_s}".strip() if cuda else f"python reports/gpu/smoke.py {argv_s}",
           "when": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "iters": args.iters,
           "gpu": torch.cuda.get_device_name() if cuda else "no GPU (CPU check)",
           "capability": ".".join(map(str, torch.cuda.get_device_capability())) if cuda else "–", "runs": []}
    env = {**os.environ, "CDA_NB_CACHE": str(args.work/"cache"), "CDA_NB_PROGRESS": "off", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for name in configs(args.configs):
        if time.time() - t_start > args.budget_s:
            doc["runs"].append({"config": name, "error": f"not run: the {args.budget_s:.0f} s budget was spent"}); continue
        res = tmp/"one.json"; res.unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "--one", name, "--result", str(res), "--data", str(args.data), "--work", str(args.work),
               "--iters", str(args.iters), "--init-iters", str(args.init_iters), "--device", args.device, "--model", args.model]
        t = time.perf_counter()
        try:
            r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout_s)
            rec = json.loads(res.read_text()) if res.is_file() else {"config": name, "error": f"exit {r.returncode}: {(r.stdout + r.stderr)[-3000:]}"}
        except subprocess.TimeoutExpired: rec = {"config": name, "error": f"timed out after {args.timeout_s:.0f} s"}
        rec["wall_seconds"] = round(time.perf_counter() - t, 1)
        print(f"{name}: " + ", ".join(f"{k}={rec.get(k)}" for k in ("sec_per_iter", "peak_gib", "syncs_one_step", "checkpoint_bytes", "wall_seconds"))
              + (f"\n  ERROR {rec['error'].splitlines()[-1]}" if rec.get("error") else ""), flush=True)
        doc["runs"].append(rec)
        doc["elapsed_s"] = round(time.time() - t_start, 1)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True); Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
        write_md(doc, Path(args.md))
    doc["elapsed_s"] = round(time.time() - t_start, 1)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n"); write_md(doc, Path(args.md))
    import shutil; shutil.rmtree(tmp, ignore_errors=True)
    return doc

if __name__ == "__main__":
    main()
