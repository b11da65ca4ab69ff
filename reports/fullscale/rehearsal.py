"""Full-scale rehearsal on a CPU: every GTA5/SYNTHIA -> Cityscapes config of `configs/`, unchanged but for paths, iteration
counts and intervals, on a synthetic dataset tree at the true resolutions and in the true on-disk formats.

Each config runs through `cda-train` (a subprocess) and through `papermill nbs/train.ipynb`: a first launch is SIGKILLed
once a checkpoint is on disk, the same command is launched again and resumes from it, refreshes its pseudo labels where
the method has any, and ends with the final evaluation (metrics.json). Per config the script collects timings, memory,
checkpoint size, host-device synchronisations of one training step (`cda_nb.devcheck.DeviceCheck`, in-process), the
loader's cost per item at the true sizes, and extrapolates the whole-dataset passes to the real dataset sizes.

    python reports/fullscale/rehearsal.py --model small               # the reduced form (small CPU network; CI runs it)
    python reports/fullscale/rehearsal.py --model config              # the configs' networks, random weights (slow on a CPU)

Writes <out>/rehearsal.json (--model config: rehearsal-config.json) and the table of <out>/README.md (default out: reports/fullscale). See --help.
"""
from __future__ import annotations
import argparse, copy, dataclasses, fnmatch, gc, json, math, os, shutil, signal, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))

# true sizes of the datasets (images), for the extrapolations
FULL = {"gta5": 24966, "synthia": 9400, "cityscapes_train": 2975, "cityscapes_val": 500}
SIZES = {"gta5": (1052, 1914), "synthia": (760, 1280), "cityscapes": (1024, 2048)}    # (H, W)
GPU_STEP_S = 0.5                  # the GPU step the loader must keep up with
WORKERS = (1, 2, 4, 8)
LABEL_WORKERS = 8                 # label passes at full size: cda_nb.data.label_workers on a machine of 9+ cores per rank

# ------------------------------------------------------------------------------------------------ synthetic data
# classes of a scene: (Cityscapes id, SYNTHIA id, colour)
_CLS = {"road": (7, 3, (128, 64, 128)), "sidewalk": (8, 4, (244, 35, 232)), "building": (11, 2, (70, 70, 70)),
        "vegetation": (21, 6, (107, 142, 35)), "sky": (23, 1, (70, 130, 180)), "car": (26, 8, (0, 0, 142)),
        "person": (24, 10, (220, 20, 60)), "void": (0, 0, (0, 0, 0))}

def scene(rng, H, W, shift=(0, 0, 0), ego=False, low=8):
    "(image uint8 (H,W,3), class names index map (H,W) uint8 into `names`) built at 1/`low` resolution, upscaled (nearest), plus noise."
    from PIL import Image
    names = list(_CLS)
    h, w = max(H // low, 16), max(W // low, 32)
    k = np.full((h, w), names.index("sky"), np.uint8)
    b = int(rng.integers(h // 4, h // 2))
    k[b:, :] = names.index("building")
    v0 = int(rng.integers(0, w // 2)); k[b:b + h // 5, v0:v0 + w // 3] = names.index("vegetation")
    k[b + h // 6:, :] = names.index("sidewalk"); k[b + h // 3:, :] = names.index("road")
    x = int(rng.integers(0, w - w // 6)); k[b + h // 4: b + h // 4 + h // 8, x:x + w // 6] = names.index("car")
    x = int(rng.integers(0, w - w // 20)); k[b: b + h // 5, x:x + w // 20] = names.index("person")
    k[:2, :4] = names.index("void")
    if ego: k[-h // 10:, :] = names.index("void")                    # the ego-vehicle strip at the bottom of Cityscapes frames
    k = np.array(Image.fromarray(k).resize((W, H), Image.NEAREST))
    pal = np.array([c[2] for c in _CLS.values()], np.int16)
    img = pal[k] + np.asarray(shift, np.int16) + rng.integers(-12, 13, (H, W, 3), dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8), k

def write_data(root, n_src=6, n_train=6, n_val=3, seed=0, city="rehearsal"):
    "GTA5, SYNTHIA and Cityscapes trees at their true sizes and formats under `root`; returns the sizes written."
    from PIL import Image
    from cda_nb.data import write_gta5_label, write_synthia_label, write_cityscapes_label
    root, rng = Path(root), np.random.default_rng(seed)
    cs_ids = np.array([c[0] for c in _CLS.values()], np.uint8); syn_ids = np.array([c[1] for c in _CLS.values()], np.uint16)
    for d in ("gta5/images", "gta5/labels", "synthia/RGB", "synthia/GT/LABELS"): (root/d).mkdir(parents=True, exist_ok=True)
    for i in range(n_src):
        img, k = scene(rng, *SIZES["gta5"])
        Image.fromarray(img).save(root/f"gta5/images/{i + 1:05d}.png"); write_gta5_label(cs_ids[k], root/f"gta5/labels/{i + 1:05d}.png")
        img, k = scene(rng, *SIZES["synthia"], shift=(5, 5, -5))
        Image.fromarray(img).save(root/f"synthia/RGB/{i:07d}.png"); write_synthia_label(syn_ids[k], root/f"synthia/GT/LABELS/{i:07d}.png")
    for split, n in (("train", n_train), ("val", n_val)):
        di = root/"cityscapes/leftImg8bit"/split/city; dl = root/"cityscapes/gtFine"/split/city
        di.mkdir(parents=True, exist_ok=True); dl.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, k = scene(rng, *SIZES["cityscapes"], shift=(30, -20, 10), ego=True)
            stem = f"{city}_000000_{i:06d}"
            Image.fromarray(img).save(di/f"{stem}_leftImg8bit.png"); write_cityscapes_label(cs_ids[k], dl/f"{stem}_gtFine_labelIds.png")
    return {"n_src": n_src, "n_train": n_train, "n_val": n_val, "gta5": list(SIZES["gta5"][::-1]), "synthia": list(SIZES["synthia"][::-1]),
            "cityscapes": list(SIZES["cityscapes"][::-1]), "size_note": "W x H"}

# ------------------------------------------------------------------------------------------------ configs and overrides
def find_configs(patterns=None):
    "configs/{gta5,synthia}_cityscapes/*.yaml, gta5 first; `patterns` (e.g. 'gta5_cityscapes/bcl') select and order them."
    allc = sorted((ROOT/"configs").glob("gta5_cityscapes/*.yaml")) + sorted((ROOT/"configs").glob("synthia_cityscapes/*.yaml"))
    names = {c: f"{c.parent.name}/{c.stem}" for c in allc}
    if not patterns: return allc
    out = []
    for p in patterns:
        out += [c for c in allc if fnmatch.fnmatch(names[c], p) and c not in out]
    return out

def cname(path) -> str: return f"{Path(path).parent.name}/{Path(path).stem}"

def merge(base: dict, over: dict) -> dict:
    "The CLI's merge of overrides into a config (nested mappings merged key by key)."
    out = dict(base)
    for k, v in over.items(): out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

def METHODS_DEFAULTS(method):
    from cda_nb.training.trainer import METHODS
    return METHODS[method].defaults

def interval_overrides(method: str, yaml_cfg: dict, iters: int) -> dict:
    "Method parameters that are step counts at full scale, scaled so that they act within `iters` steps (see README)."
    from cda_nb.training.trainer import METHODS
    hp = {**METHODS[method].defaults, **(yaml_cfg.get("method_params") or {})}
    half = max(1, iters // 2)
    out = {}
    if "refresh_every" in hp: out["refresh_every"] = half                # self_training/bcl: CBST labels refreshed at 0 and iters/2
    if hp.get("distill_iters"): out["distill_iters"] = half              # bcl: only when the config turns distillation on
    if hp.get("ssl_iters"):                                              # sdca: the SSL stage keeps its share of the run (1/3)
        full_iters = yaml_cfg.get("iters") or 100000
        out["ssl_iters"] = min(iters - 1, max(1, round(iters * hp["ssl_iters"] / full_iters)))
    if "teacher_every" in hp: out["teacher_every"] = half                # ucda: teacher copied every 200 steps at full scale
    if "expand_window" in hp: out["expand_window"] = half                # ucda: prototype window of 200 steps
    return out

def pretrained_overrides(yaml_cfg: dict, free_bn: bool = True) -> list:
    """`model_kwargs[.base_kwargs].pretrained=` (random weights) where the config's weight file is absent; with `free_bn`,
    DeepLab-V2's BatchNorm is trained (`freeze_bn=false`): frozen BatchNorm without pretrained statistics normalises
    nothing and a random ResNet-101's logits (std ~6e4) turn the loss NaN at step 1 (see README)."""
    mk = yaml_cfg.get("model_kwargs") or {}
    out = []
    if mk.get("pretrained") and not Path(mk["pretrained"]).is_file():
        out.append("model_kwargs.pretrained=")
        if free_bn and yaml_cfg.get("model") == "deeplabv2": out.append("model_kwargs.freeze_bn=false")
    bk = mk.get("base_kwargs") or {}
    if bk.get("pretrained") and not Path(bk["pretrained"]).is_file():
        out.append("model_kwargs.base_kwargs.pretrained=")
        if free_bn and mk.get("base") == "deeplabv2": out.append("model_kwargs.base_kwargs.freeze_bn=false")
    if out and (yaml_cfg.get("method_params") or {}).get("fd_reference") == "imagenet":
        out.append("method_params.fd_reference=start")       # no ImageNet file: the frozen reference is the network as it starts
    return out

def small_network(yaml_cfg: dict) -> dict:
    "The config on the kit's small network (the reduced form): no weight file, so a frozen ImageNet reference becomes the start's."
    mp = dict(yaml_cfg.get("method_params") or {})
    if mp.get("fd_reference") == "imagenet": mp["fd_reference"] = "start"
    return {**yaml_cfg, "model": "small", "model_kwargs": {}, "method_params": mp}

# ------------------------------------------------------------------------------------------------ processes
def _children(pid: int) -> list:
    "Descendant process ids of `pid` (from /proc), deepest last."
    kids = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit(): continue
        try:
            st = (p/"stat").read_text(); ppid = int(st[st.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError): continue
        kids.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        q = todo.pop(); out += kids.get(q, []); todo += kids.get(q, [])
    return out

def kill_tree(proc):
    "SIGKILL a process we started and every process it started (a papermill kernel lives in its own session), by id."
    pids = _children(proc.pid)
    for pid in [proc.pid, *pids]:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    proc.wait()

def ckpt_step(path):
    "Step stored in a checkpoint.pt (None if unreadable)."
    import torch
    try: return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["step"])
    except Exception: return None

def launch_kill_resume(cmd, run, iters, ckpt_every, env, timeout, log):
    "Launch `cmd`; SIGKILL it once `run`/checkpoint.pt holds a step in [ckpt_every, iters); relaunch it (the resume)."
    res = {"killed_at_step": None, "wall_seconds": [], "resumed": False}
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    # drain the pipe in a thread so a chatty run never blocks on it
    import threading
    buf = []
    th = threading.Thread(target=lambda: buf.extend(iter(lambda: p.stdout.read(4096), b"")), daemon=True); th.start()
    ck, snap = run/"checkpoint.pt", None
    while True:
        if p.poll() is not None: break
        if time.perf_counter() - t0 > timeout: kill_tree(p); res["error"] = f"first launch timed out after {timeout} s"; break
        if ck.is_file() and (m := ckpt_step(ck)) is not None and ckpt_every <= m < iters:
            # what the resume must keep: the log lines up to the checkpoint (with their timings) and config.json as written
            lines = (run/"log.jsonl").read_text().splitlines() if (run/"log.jsonl").is_file() else []
            kill_tree(p)
            m2 = ckpt_step(ck)
            snap = {"lines": [l for l in lines if json.loads(l).get("step", 0) <= m2],
                    "config_mtime": (run/"config.json").stat().st_mtime_ns}
            res["killed_at_step"] = m2
            break
        time.sleep(0.05)
    th.join(timeout=5)
    res["wall_seconds"].append(round(time.perf_counter() - t0, 2))
    first = b"".join(buf).decode(errors="replace")
    if snap is None:
        res["error"] = res.get("error") or ("the first launch ended before it could be killed after a checkpoint "
                                            f"(exit {p.returncode}, metrics.json {'written' if (run/'metrics.json').is_file() else 'absent'})")
        res["tail"] = first[-3000:]
        return res
    if (run/"metrics.json").is_file(): res["error"] = "metrics.json exists after the kill"; return res
    log(f"      killed at checkpoint step {res['killed_at_step']}; relaunching")
    t1 = time.perf_counter()
    try: r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        res["wall_seconds"].append(round(time.perf_counter() - t1, 2)); res["error"] = f"second launch timed out after {timeout} s"
        res["tail"] = (e.output or b"").decode(errors="replace")[-3000:]; return res
    res["wall_seconds"].append(round(time.perf_counter() - t1, 2))
    text = r.stdout.decode(errors="replace")
    res["returncode"] = r.returncode
    if r.returncode != 0:
        res["error"] = f"second launch exited {r.returncode}"; res["tail"] = text[-3000:]; return res
    res["stdout_tail"] = text[-600:]
    lines = (run/"log.jsonl").read_text().splitlines() if (run/"log.jsonl").is_file() else []
    kept = lines[:len(snap["lines"])] == snap["lines"] and len(snap["lines"]) > 0
    same_cfg = (run/"config.json").stat().st_mtime_ns == snap["config_mtime"]
    steps = [json.loads(l).get("step") for l in lines]
    res["resumed"] = bool(kept and same_cfg and (run/"metrics.json").is_file() and steps and steps[-1] == iters)
    res["resume_evidence"] = {"log_lines_kept": kept, "config_json_untouched": same_cfg, "last_logged_step": steps[-1] if steps else None}
    return res

# ------------------------------------------------------------------------------------------------ measurements
def _median_item_seconds(stream, n):
    import torch
    ts = []
    for pos in range(n):
        t = time.perf_counter(); stream[pos]; ts.append(time.perf_counter() - t)
    return statistics.median(ts)

def loader_costs(cfg, trainer=None, n_items=5):
    "Seconds per item (median, one thread) of the source and target streams with the run's training transforms."
    import torch
    from cda_nb.training.streams import Stream, build_data
    from cda_nb.training.trainer import METHODS
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    try:
        m = METHODS[cfg.method]
        data = build_data(cfg, m())
        out = {}
        if m.uses_source: out["src_item_s"] = _median_item_seconds(Stream(data["source"], cfg.seed, 1), n_items)
        if m.uses_target: out["tgt_item_s"] = _median_item_seconds(Stream(data["target"], cfg.seed, 2), n_items)
        if trainer is not None and m.uses_target:          # the stream the trainer really reads (e.g. PseudoLabeled)
            ts = trainer.method.target_stream(trainer.context)
            if ts is not data.get("target"): out["tgt_method_stream_item_s"] = _median_item_seconds(Stream(ts, cfg.seed, 2), n_items)
    finally: torch.set_num_threads(threads)
    src, tgt = out.get("src_item_s", 0.0), out.get("tgt_method_stream_item_s", out.get("tgt_item_s", 0.0))
    per_step = cfg.batch_size * (src + tgt)
    out = {k: round(v, 4) for k, v in out.items()}
    items = (cfg.batch_size if m.uses_source else 0) + (cfg.batch_size if m.uses_target else 0)
    wait = {str(w): round(max(0.0, per_step / w - GPU_STEP_S) / (GPU_STEP_S + max(0.0, per_step / w - GPU_STEP_S)), 3) for w in WORKERS}
    out.update(batch_size=cfg.batch_size, items_per_step=items, per_step_cpu_s=round(per_step, 3),
               items_per_s_one_worker=round(items / per_step, 2) if per_step else None,
               workers_to_keep_up=math.ceil(per_step / GPU_STEP_S) if per_step else 0, data_wait_share_at_W=wait)
    return out

def label_read_seconds(cfg):
    "Seconds per source label of the class-statistics pass (what one loader worker of `label_table` does per item; median)."
    from cda_nb.training.streams import source_dataset
    from cda_nb.data import train_id_counts
    ds = source_dataset(cfg)
    train_id_counts(ds, 0)
    ts = []
    for i in range(len(ds)):
        t = time.perf_counter(); train_id_counts(ds, i); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

def header_check_seconds(cfg, reps=5):
    "(seconds per file, files, full-size files) of the header check every start runs (`check_run_inputs`: `png_size` of each file)."
    from cda_nb.training.streams import check_run_inputs, data_roots, source_dataset
    from cda_nb.data import Cityscapes, png_size
    from cda_nb.training.trainer import METHODS
    m = METHODS[cfg.method]
    r = check_run_inputs(cfg, m)                                        # what a start checks: counts per split
    _, tgt = data_roots(cfg)
    ds = ([source_dataset(cfg)] if m.uses_source else []) + \
         ([Cityscapes(tgt, split="train", labels=m.target_labels)] if m.uses_target else []) + [Cityscapes(tgt, split="val")]
    files = [f for d in ds for f in list(d.images) + (list(d.label_paths) if getattr(d, "labels", False) and d.label_paths else [])]
    ts = []
    for _ in range(reps):                                               # warm page cache: the per-file cost of the check
        t = time.perf_counter()
        for f in files: png_size(f)
        ts.append((time.perf_counter() - t) / len(files))
    src_full = FULL["synthia" if cfg.dataset.startswith("synthia") else "gta5"]
    full_n = {"source": src_full, "target": FULL["cityscapes_train"], "val": FULL["cityscapes_val"]}
    full_files = sum(full_n[k] * (1 + (v["labels"] > 0)) for k, v in r.items() if k in full_n)
    return statistics.median(ts), len(files), full_files

def uses_class_statistics(cfg) -> str:
    "Which whole-source-set label pass the run's sampler makes ('' for none)."
    from cda_nb.training.trainer import METHODS
    m = METHODS[cfg.method]
    if not m.uses_source: return ""
    if cfg.source_sampling == "class_balanced" or (not cfg.source_sampling and m.source_sampling == "class_balanced"): return "class_presence"
    if cfg.method in ("dacs", "cluda") and not cfg.source_sampling and {**m.defaults, **cfg.method_params}.get("rcs_temperature"):
        return "class_pixel_counts"
    return ""

def n_refreshes(cfg) -> int:
    "Pseudo-label refreshes (passes over the target set in `before_step`) of a run of `cfg`."
    from cda_nb.training.trainer import METHODS
    hp = {**METHODS[cfg.method].defaults, **cfg.method_params}
    if cfg.method in ("self_training", "bcl"):
        every = hp["refresh_every"] or max(cfg.iters // 10, 1)
        return len(range(0, cfg.iters, every)) + (1 if hp.get("distill_iters") and (cfg.iters - hp["distill_iters"]) % every else 0)
    if cfg.method == "sdca": return 1 if hp["ssl_iters"] else 0
    return 0

def _state_bytes(x):
    import torch
    if torch.is_tensor(x): return x.numel() * x.element_size()
    if isinstance(x, dict): return sum(_state_bytes(v) for v in x.values())
    if isinstance(x, (list, tuple)): return sum(_state_bytes(v) for v in x)
    return 0

def per_image_state_bytes(run):
    "Largest per-target-image state of a run (dicts keyed by image index in the method state or its sidecars), bytes."
    import torch
    best = 0
    def walk(x):
        nonlocal best
        if isinstance(x, dict):
            if x and all(isinstance(k, int) for k in x) and all(torch.is_tensor(v) for v in x.values()):
                best = max(best, max(_state_bytes(v) for v in x.values())); return
            for v in x.values(): walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x: walk(v)
    try: walk(torch.load(run/"checkpoint.pt", map_location="cpu", weights_only=True, mmap=True).get("method"))
    except Exception: pass
    for p in run.glob("checkpoint-*-v*.pt"):
        try: walk(torch.load(p, map_location="cpu", weights_only=True, mmap=True))
        except Exception: pass
    return best

def sdca_source_pass(cfg):
    "Seconds per source image of sdca's class statistics (Alg. 1, line 2): the starting model over the labelled source set."
    import torch
    from cda_nb.methods.sdca import init_stats, GaussianStats
    from cda_nb.data import JointTransform, CLASSES19
    from cda_nb.training.streams import source_dataset
    from cda_nb.models import build_model
    from cda_nb.training.trainer import METHODS
    h = {**METHODS["sdca"].defaults, **cfg.method_params}
    if not (h["lambda_feat"] or h["lambda_out"]): return None
    torch.manual_seed(0)
    model = build_model(cfg.model, n_classes=len(CLASSES19), **cfg.model_kwargs)
    src = source_dataset(cfg, transform=JointTransform(resize=cfg.src_resize))
    fs = GaussianStats(len(CLASSES19), model.feat_dim, diagonal=h["diagonal"])
    os_ = GaussianStats(len(CLASSES19), len(CLASSES19), diagonal=h["diagonal"])
    t = time.perf_counter(); n = init_stats(model, src, fs, os_, h["init_images"], cfg.eval_batch_size, "cpu")
    dt = (time.perf_counter() - t) / max(n, 1)
    del model; gc.collect()
    return dt

def syncs_and_loader(cfg_path, overrides, cli_out, work, syncs=True, n_items=5, loader=True):
    "In-process: syncs of one non-logging step (DeviceCheck), setup time, sdca's source pass, the loader's costs."
    import torch
    from cda_nb.cli import load_run_config
    from cda_nb.devcheck import DeviceCheck
    from cda_nb.training.trainer import Trainer, METHODS
    out = {}
    base = load_run_config(cfg_path, overrides)
    if not syncs: out["loader"] = loader_costs(base, n_items=n_items); return out
    sdir = work/"syncs"
    if sdir.exists(): shutil.rmtree(sdir)
    for d in (Path(cli_out)/base.dataset).glob("source_only*"):       # the source-only model the CLI run trained
        if base.method != "source_only": shutil.copytree(d, sdir/base.dataset/d.name)
    ov = [o for o in overrides if not o.split("=")[0] in ("iters", "log_every", "ckpt_every", "out_dir")]
    ov += ["iters=3", "log_every=100", "ckpt_every=100", f"out_dir={sdir}"]
    hp = METHODS[base.method].defaults
    for k in ("refresh_every", "teacher_every"):                        # no refresh / teacher copy at the measured step
        if k in hp: ov = [o for o in ov if not o.startswith(f"method_params.{k}=")] + [f"method_params.{k}=100"]
    if base.method_params.get("ssl_iters"): ov = [o for o in ov if not o.startswith("method_params.ssl_iters=")] + ["method_params.ssl_iters=1"]
    cfg = load_run_config(cfg_path, ov)
    t0 = time.perf_counter()
    with DeviceCheck() as dc:
        t = Trainer(cfg)
        out["setup_seconds"] = round(time.perf_counter() - t0, 2)
        dc.watch(t)
        t.fit(stop_at=2)                                                # steps 0 and 1; step 1 logs and checkpoints nothing
    out["syncs_per_step"] = dc.step_syncs(1)
    out["syncs_detail"] = dict(dc.syncs[1])
    out["syncs_step0"] = dc.step_syncs(0)
    out["devcheck_problems"] = sorted(set(dc.problems))[:5]
    out["syncs_sites"] = {k.replace(str(ROOT) + "/", ""): v for k, v in sorted(dc.sites[1].items())}
    if loader: out["loader"] = loader_costs(cfg, trainer=t, n_items=n_items)
    del t, dc; gc.collect()
    shutil.rmtree(sdir, ignore_errors=True)
    return out

# ------------------------------------------------------------------------------------------------ one config
def rehearse(cfg_path, args, data, work, env, log):
    "Every measurement of one config; failures are recorded, never raised."
    import yaml
    from cda_nb.cli import read_yaml_config, load_run_config
    from cda_nb.training.checkpoints import checkpoint_bytes
    from cda_nb.core import run_dir
    name = cname(cfg_path)
    rec = {"config": str(Path(cfg_path).relative_to(ROOT)), "name": name, "model": None, "completed": False, "resumed": False,
           "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    cwork = work/name.replace("/", "__")
    if cwork.exists(): shutil.rmtree(cwork)
    cwork.mkdir(parents=True)
    t_start = time.perf_counter()
    try:
        y = read_yaml_config(cfg_path)
        run_cfg = cfg_path
        if args.model == "small":                   # the reduced form: the kit's small network, the config otherwise unchanged
            y = small_network(y)
            run_cfg = cwork/"config.yaml"; run_cfg.write_text(yaml.safe_dump(y, sort_keys=False))
        iters, ce = args.iters, args.ckpt_every or max(1, args.iters // 2)
        iv = interval_overrides(y["method"], y, iters)
        common = [f"data_root={data}", f"iters={iters}", f"ckpt_every={ce}", "log_every=1", "eval_every=0",
                  f"init_iters={args.init_iters}", "figures=false", "progress=false"]
        common += pretrained_overrides(y, args.random_bn == "train") if args.model == "config" else []
        if args.max_batch and int(y.get("batch_size", 1)) > args.max_batch:   # host RAM, not the GPU: recorded in the entry
            common.append(f"batch_size={args.max_batch}"); rec["batch_override"] = {"config": int(y["batch_size"]), "run": args.max_batch}
        common += [f"method_params.{k}={v}" for k, v in iv.items()]
        rec.update(dataset=y["dataset"], method=y["method"], interval_overrides=iv)
        cli_out = cwork/"cli"
        ov = common + [f"out_dir={cli_out}"]
        cfg = load_run_config(run_cfg, ov)
        rec["model"] = cfg.model
        rec["overrides"] = [o.replace(str(data), "$DATA").replace(str(work), "$WORK") for o in common]
        run = run_dir(cfg.out_dir, cfg.dataset, cfg.method, cfg.seed, cfg.tag, create=False)
        exe = Path(sys.executable).parent/"cda-train"
        cmd = ([str(exe)] if exe.is_file() else [sys.executable, "-c", "from cda_nb.cli import cda_train; cda_train()"]) + [str(run_cfg), *ov]
        log(f"    cli: cda-train {rec['config'] if args.model == 'config' else '<config with model=small>'} {' '.join(rec['overrides'])}")
        r = launch_kill_resume(cmd, run, iters, ce, env, args.timeout, log)
        rec["cli"] = {k: v for k, v in r.items() if k in ("killed_at_step", "wall_seconds", "resume_evidence", "error", "tail")}
        rec["resumed"] = r["resumed"]
        if (run/"metrics.json").is_file() and not r.get("error"):
            m = json.loads((run/"metrics.json").read_text())
            rec["completed"] = True
            refr = n_refreshes(cfg)
            rec.update(miou=m["miou"], sec_per_iter=m["sec_per_iter"], data_wait_share=m.get("data_wait_share"),
                       train_seconds=m.get("train_seconds"), data_seconds=m.get("data_seconds"), hook_seconds=m.get("hook_seconds"),
                       sec_per_iter_ex_refresh=round((m["train_seconds"] - (m.get("hook_seconds") or 0)) / iters, 4),
                       peak_rss_mb=m["peak_rss_mb"], checkpoint_bytes=checkpoint_bytes(run),
                       sidecars=sorted(p.name for p in run.glob("checkpoint-*-v*.pt")), n_refreshes=refr,
                       refresh_seconds=round(m.get("hook_seconds") or 0.0, 3) if refr else None,
                       eval_seconds=m.get("eval_seconds"), analysis={k: m[k] for k in ("analysis_error", "analysis_skipped") if k in m})
            pib = per_image_state_bytes(run)
            rec["per_target_image_state_bytes"] = pib
            rec["checkpoint_bytes_full_est"] = rec["checkpoint_bytes"] + pib * (FULL["cityscapes_train"] - args.n_train)
        else:
            rec["error"] = r.get("error") or "no metrics.json"; rec["error_tail"] = r.get("tail", "")[-3000:]
        # whole-dataset passes at the true sizes
        fp = {}
        try:
            what = uses_class_statistics(cfg)
            n_full = FULL["synthia" if cfg.dataset.startswith("synthia") else "gta5"]
            per_label = label_read_seconds(cfg) if what else None   # one process; the kit reads labels in LABEL_WORKERS workers
            fp["class_statistics"] = round(per_label * n_full / LABEL_WORKERS, 1) if what else None
            rec["class_statistics_one_process_s"] = round(per_label * n_full, 1) if what else None
            rec["class_statistics_pass"] = what or None
            per_file, files, full_files = header_check_seconds(cfg)
            fp["header_check"] = round(per_file * full_files, 1)
            rec["header_check_files_full"] = full_files
        except Exception as e: rec["passes_error"] = f"{type(e).__name__}: {e}"
        if cfg.method == "sdca":
            try:
                per = sdca_source_pass(cfg)
                if per is not None:
                    n_full = FULL["synthia" if cfg.dataset.startswith("synthia") else "gta5"]
                    n_img = {**METHODS_DEFAULTS(cfg.method), **cfg.method_params}["init_images"] or n_full
                    rec["sdca_init_stats_per_image_s"] = round(per, 3)
                    fp["sdca_init_stats"] = round(per * min(n_img, n_full), 1)
                    if rec.get("refresh_seconds") is not None:      # the statistics run in before_step too: not a refresh
                        rec["refresh_seconds"] = round(max(0.0, rec["refresh_seconds"] - per * min(n_img, args.n_src)), 3)
            except Exception as e: rec["sdca_pass_error"] = f"{type(e).__name__}: {e}"
        if rec["completed"]:
            fp["refresh"] = round(rec["refresh_seconds"] / rec["n_refreshes"] / args.n_train * FULL["cityscapes_train"], 1) if rec["n_refreshes"] else None
            fp["evaluation"] = round(rec["eval_seconds"] / args.n_val * FULL["cityscapes_val"], 1) if rec.get("eval_seconds") is not None else None
        # in-process: syncs per step, setup, loader
        try:
            s = syncs_and_loader(run_cfg, ov, cli_out, cwork, syncs=want(args.syncs, name), n_items=args.loader_items)
            rec["loader"] = s.pop("loader")
            rec.update(s)
        except Exception as e:
            import traceback
            rec["syncs_error"] = f"{type(e).__name__}: {e}"; rec["syncs_error_tail"] = traceback.format_exc().replace(str(ROOT) + "/", "")[-2000:]
        rec.setdefault("syncs_per_step", None)
        rec["full_pass_seconds"] = fp
        # papermill: the same run through nbs/train.ipynb
        if want_papermill(args, name, cfg.method):
            rec["papermill"] = papermill_run(y, common, cwork, cfg, args, env, log, cli_miou=rec.get("miou"))
    except Exception as e:
        import traceback
        rec["error"] = f"{type(e).__name__}: {e}"; rec["error_tail"] = traceback.format_exc().replace(str(ROOT) + "/", "")[-3000:]
    rec.setdefault("full_pass_seconds", {}); rec.setdefault("checkpoint_bytes", 0); rec.setdefault("syncs_per_step", None)
    for k in ("sec_per_iter", "data_wait_share", "peak_rss_mb"): rec.setdefault(k, None)
    rec["rehearsal_seconds"] = round(time.perf_counter() - t_start, 1)
    if not args.keep: shutil.rmtree(cwork, ignore_errors=True)
    return rec

def want(spec: str, name: str) -> bool:
    "`all`, `none` or a comma list of config patterns."
    return spec == "all" or (spec != "none" and any(fnmatch.fnmatch(name, p) for p in spec.split(",")))

_PM_DONE = set()
def want_papermill(args, name, method) -> bool:
    if args.papermill == "none": return False
    if args.papermill == "all": return True
    if args.papermill == "one":
        if method in _PM_DONE: return False
        _PM_DONE.add(method); return True
    return any(fnmatch.fnmatch(name, p) for p in args.papermill.split(","))

def papermill_run(y, common, cwork, cfg, args, env, log, cli_miou=None):
    "The config through `papermill nbs/train.ipynb` (every parameter as -y YAML), killed after a checkpoint and resumed."
    import yaml
    from cda_nb.cli import parse_overrides
    from cda_nb.core import run_dir
    iters = args.papermill_iters or args.iters
    ce = max(1, iters // 2) if args.papermill_iters else (args.ckpt_every or max(1, iters // 2))
    pm_out = cwork/"pm"
    ov = [o for o in common if o.split("=")[0] not in ("iters", "ckpt_every") and not o.startswith("method_params.")]
    ov += [f"iters={iters}", f"ckpt_every={ce}", f"out_dir={pm_out}"] + [f"method_params.{k}={v}" for k, v in interval_overrides(y["method"], y, iters).items()]
    params = merge(y, parse_overrides(ov))
    nb_out = cwork/"train_out.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(ROOT/"nbs/train.ipynb"), str(nb_out), "--cwd", str(cwork),
           "-y", yaml.safe_dump(params, sort_keys=False)]
    log(f"    papermill: nbs/train.ipynb -y <the config + the same overrides, iters={iters}>")
    run = run_dir(pm_out, cfg.dataset, cfg.method, cfg.seed, cfg.tag, create=False)
    r = launch_kill_resume(cmd, run, iters, ce, env, args.timeout, log)
    out = {"iters": iters, "completed": (run/"metrics.json").is_file() and not r.get("error"), "resumed": r["resumed"],
           **{k: v for k, v in r.items() if k in ("killed_at_step", "wall_seconds", "resume_evidence", "error", "tail")}}
    if out["completed"]:
        m = json.loads((run/"metrics.json").read_text())
        out.update(sec_per_iter=m["sec_per_iter"], miou=m["miou"], peak_rss_mb=m["peak_rss_mb"])
        if cli_miou is not None and iters == args.iters: out["same_miou_as_cli"] = m["miou"] == cli_miou
    return out

# ------------------------------------------------------------------------------------------------ report
BEGIN, END = "<!-- rehearsal:{}:begin -->", "<!-- rehearsal:{}:end -->"

def _mb(b): return f"{b / 2**20:.1f}" if b else "–"
def _s(v, nd=2): return "–" if v is None else f"{v:.{nd}f}"
def _dur(s):
    if s is None: return "–"
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h")

def table(doc) -> str:
    rows = ["| config | model | done | resumed | s/iter | data wait | peak RSS MiB | ckpt MiB | ckpt @2,975 MiB | refresh s | eval s | "
            "syncs/step | papermill | full: class stats | full: header check | full: refresh | full: eval | full: sdca init |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["runs"]:
        fp, pm = r.get("full_pass_seconds") or {}, r.get("papermill")
        pms = "–" if pm is None else ("ok, resumed" if pm.get("completed") and pm.get("resumed") else ("ok" if pm.get("completed") else "FAILED"))
        if r.get("not_run"):
            rows.append(f"| {r['name']} | – | not run | – | – | – | – | – | – | – | – | – | – | – | – | – | – | – |"); continue
        dw = r.get("data_wait_share")
        bo = r.get("batch_override")
        mcell = str(r.get("model") or "–") + (f" (batch {bo['run']} of {bo['config']})" if bo else "")
        rows.append("| " + " | ".join([r["name"], mcell, "yes" if r["completed"] else "**FAILED**",
                    "yes" if r["resumed"] else "**no**", _s(r.get("sec_per_iter")), "–" if dw is None else f"{100 * dw:.1f} %",
                    _s(r.get("peak_rss_mb"), 0), _mb(r.get("checkpoint_bytes")), _mb(r.get("checkpoint_bytes_full_est")),
                    _s(r.get("refresh_seconds")), _s(r.get("eval_seconds")), str(r.get("syncs_per_step") if r.get("syncs_per_step") is not None else "–"), pms,
                    _dur(fp.get("class_statistics")), _dur(fp.get("header_check")), _dur(fp.get("refresh")),
                    _dur(fp.get("evaluation")), _dur(fp.get("sdca_init_stats"))]) + " |")
    rows += ["", "Loader alone (one thread, median of 5 items, the run's training transforms; per-step CPU = batch × (source + target "
             f"item); wait share for a {GPU_STEP_S} s GPU step with W workers):", "",
             "| config | batch | source item s | target item s | per-step CPU s | items/s (1 worker) | workers to keep up | "
             + " | ".join(f"wait W={w}" for w in WORKERS) + " |", "|---|---|---|---|---|---|---|" + "---|" * len(WORKERS)]
    for r in doc["runs"]:
        l = r.get("loader")
        if not l: continue
        tgt = l.get("tgt_method_stream_item_s", l.get("tgt_item_s"))
        tnote = " (method stream)" if "tgt_method_stream_item_s" in l else ""
        rows.append("| " + " | ".join([r["name"], str(l["batch_size"]), _s(l.get("src_item_s"), 3), _s(tgt, 3) + tnote,
                    _s(l["per_step_cpu_s"], 2), _s(l.get("items_per_s_one_worker"), 1), str(l["workers_to_keep_up"])]
                    + [f"{100 * l['data_wait_share_at_W'][str(w)]:.0f} %" for w in WORKERS]) + " |")
    fails = [r for r in doc["runs"] if not r.get("not_run") and (not r["completed"] or r.get("syncs_error") or
             (r.get("papermill") and not r["papermill"].get("completed")))]
    if fails:
        rows += ["", "Failures (tails in rehearsal.json):", ""]
        for r in fails:
            msg = r.get("error") or r.get("syncs_error") or (r.get("papermill") or {}).get("error")
            rows.append(f"- {r['name']}: {str(msg).splitlines()[0][:300] if msg else 'see rehearsal.json'}")
    return "\n".join(rows)

def json_name(model: str) -> str:
    "rehearsal.json for the reduced form (small network), rehearsal-config.json for the configs' own networks."
    return "rehearsal.json" if model == "small" else f"rehearsal-{model}.json"

def write_report(doc, out: Path):
    out.mkdir(parents=True, exist_ok=True)
    doc["loader"] = {r["name"]: r["loader"] for r in doc["runs"] if r.get("loader")}     # the loader figures by config
    (out/json_name(doc["model"])).write_text(json.dumps(doc, indent=1) + "\n")
    readme = out/"README.md"
    text = readme.read_text() if readme.is_file() else "# Full-scale rehearsal\n"
    key = doc["model"]
    b, e = BEGIN.format(key), END.format(key)
    d = doc["data"]
    block = (f"{b}\n`{doc['command']}`\n\n{doc['when']}; data: {d['n_src']} source, {d['n_train']} target-train, {d['n_val']} val images "
             f"at the true sizes; {doc['iters']} iterations per run (checkpoint every {doc['ckpt_every']}, SIGKILL after the first, "
             f"resume); {doc['elapsed_min']} min in all.\n\n{table(doc)}\n{e}")
    if b in text and e in text: text = text[:text.index(b)] + block + text[text.index(e) + len(e):]
    else: text = text.rstrip() + f"\n\n## Measured: `--model {key}`\n\n" + block + "\n"
    readme.write_text(text)

def rel_command(argv, data, work, out) -> str:
    "The command line that regenerates the report, without this machine's paths."
    s = " ".join(["python", "reports/fullscale/rehearsal.py", *argv])
    for p, r in ((str(work), "$WORK"), (str(data), "$DATA"), (str(out), "$OUT"), (str(ROOT) + "/", "")):
        s = s.replace(p, r)
    return s

# ------------------------------------------------------------------------------------------------ main
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("config", "small"), default="config",
                   help="config: each config's network with random weights; small: the kit's small CPU network (the reduced form)")
    p.add_argument("--data", default=None, help="synthetic dataset folder (default: a temp folder); reused if it holds the same sizes")
    p.add_argument("--work", default=None, help="run folders (default: a temp folder, removed at the end)")
    p.add_argument("--out", default=str(ROOT/"reports/fullscale"), help="where rehearsal.json and README.md go")
    p.add_argument("--n-src", type=int, default=6); p.add_argument("--n-train", type=int, default=6); p.add_argument("--n-val", type=int, default=3)
    p.add_argument("--iters", type=int, default=4, help="iterations per run (the first launch is killed after the first checkpoint)")
    p.add_argument("--ckpt-every", type=int, default=None, help="default iters // 2")
    p.add_argument("--init-iters", type=int, default=2, help="iterations of the source-only run adapting methods start from")
    p.add_argument("--papermill", default="all", help="all | one (one config per method) | none | comma list of config patterns")
    p.add_argument("--papermill-iters", type=int, default=None, help="iterations of the papermill runs (default: --iters)")
    p.add_argument("--configs", nargs="*", default=None, help="config patterns such as gta5_cityscapes/bcl (default: all, gta5 first)")
    p.add_argument("--syncs", default="all", help="configs whose syncs per step are counted in-process (DeviceCheck, 2 more steps): "
                   "all | none | comma list of config patterns")
    p.add_argument("--random-bn", choices=("train", "frozen"), default="train",
                   help="DeepLab-V2 with random weights: train its BatchNorm (default) or keep the config's frozen BatchNorm (NaN at step 1)")
    p.add_argument("--loader-items", type=int, default=5, help="items timed per stream for the loader figures (median)")
    p.add_argument("--budget-min", type=float, default=None, help="start no new config after this many minutes (the rest: not run)")
    p.add_argument("--merge", action="store_true", help="keep the entries of configs not run now from an existing rehearsal.json of the same model")
    p.add_argument("--timeout", type=int, default=None, help="seconds per launch (default 900 small, 7200 config)")
    p.add_argument("--keep", action="store_true", help="keep the run folders")
    p.add_argument("--recount-syncs", action="store_true",
                   help="only count the syncs of one step again (current code) into the entries of an existing rehearsal.json")
    p.add_argument("--max-batch", type=int, default=None,
                   help="cap batch_size (per domain) where a config's batch does not fit the host's RAM with its network on a CPU; recorded per entry")
    args = p.parse_args(argv)
    args.timeout = args.timeout or (900 if args.model == "small" else 7200)
    if args.iters < 2: p.error("--iters must be >= 2 (a checkpoint before the end, then the resume)")
    log = lambda s: print(s, flush=True)
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="rehearsal-"))
    data = Path(args.data).resolve() if args.data else tmp/"data"
    work = Path(args.work).resolve() if args.work else tmp/"work"
    out = Path(args.out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CDA_NB_CACHE": str(work/"cache"), "CDA_NB_PROGRESS": "off", "PYTHONUNBUFFERED": "1"}
    os.environ["CDA_NB_CACHE"] = env["CDA_NB_CACHE"]
    marker = data/"rehearsal_data.json"
    want = {"n_src": args.n_src, "n_train": args.n_train, "n_val": args.n_val}
    if marker.is_file() and {k: json.loads(marker.read_text()).get(k) for k in want} == want:
        sizes = json.loads(marker.read_text()); log(f"data: reusing {data}")
    else:
        if data.exists() and any(data.iterdir()) and not marker.is_file(): sys.exit(f"--data {data} is not empty and not a rehearsal data folder")
        if data.exists(): shutil.rmtree(data)
        ts = time.perf_counter()
        sizes = write_data(data, args.n_src, args.n_train, args.n_val)
        marker.write_text(json.dumps(sizes))
        log(f"data: wrote {args.n_src} GTA5 + {args.n_src} SYNTHIA + {args.n_train}/{args.n_val} Cityscapes images at the true sizes "
            f"in {time.perf_counter() - ts:.1f} s")
    configs = find_configs(args.configs)
    if args.recount_syncs: return recount_syncs(args, configs, data, work, out, argv, log)
    doc = {"command": rel_command(argv, data, work, out), "model": args.model, "when": time.strftime("%Y-%m-%d"),
           "torch_threads": __import__("torch").get_num_threads(), "cpus": os.cpu_count(),
           "data": sizes, "iters": args.iters, "ckpt_every": args.ckpt_every or max(1, args.iters // 2), "init_iters": args.init_iters,
           "papermill": args.papermill, "papermill_iters": args.papermill_iters or args.iters, "full_sizes": FULL,
           "gpu_step_s_assumed": GPU_STEP_S, "loader": {}, "runs": []}
    old = {}
    if args.merge and (out/json_name(args.model)).is_file():
        prev = json.loads((out/json_name(args.model)).read_text())
        if prev.get("model") == args.model: old = {r["name"]: r for r in prev.get("runs", [])}
    names_now = [cname(c) for c in configs]
    for i, c in enumerate(configs):
        if args.budget_min is not None and (time.time() - t0) / 60 > args.budget_min:
            log(f"[{i + 1}/{len(configs)}] {cname(c)}: not run (budget of {args.budget_min} min spent)")
            doc["runs"].append({"config": str(c.relative_to(ROOT)), "name": cname(c), "not_run": "time budget", "completed": False,
                                "resumed": False}); continue
        log(f"[{i + 1}/{len(configs)}] {cname(c)} ({(time.time() - t0) / 60:.1f} min so far)")
        rec = rehearse(c, args, data, work, env, log)
        pm = rec.get("papermill")
        log(f"    -> completed={rec['completed']} resumed={rec['resumed']} s/iter={rec.get('sec_per_iter')} "
            f"syncs/step={rec.get('syncs_per_step')} ckpt={_mb(rec.get('checkpoint_bytes'))} MiB"
            + (f" papermill completed={pm.get('completed')} resumed={pm.get('resumed')}" if pm else "")
            + (f" ERROR {rec.get('error') or rec.get('syncs_error')}" if rec.get("error") or rec.get("syncs_error") else ""))
        doc["runs"].append(rec)
        doc["elapsed_min"] = round((time.time() - t0) / 60, 1)
        write_report(_merged(doc, old, names_now), out)                # progress is kept after every config
    doc["elapsed_min"] = round((time.time() - t0) / 60, 1)
    write_report(_merged(doc, old, names_now), out)
    if not args.work: shutil.rmtree(work, ignore_errors=True)
    if not args.data: shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"done in {doc['elapsed_min']} min: {out/json_name(args.model)}")
    return doc

def recount_syncs(args, configs, data, work, out, argv, log):
    """Only the syncs of one step, counted again at the configs' sizes with the current code, into the entries of an
    existing rehearsal.json (the other figures are kept; `syncs_recounted` says when and with what command)."""
    import yaml
    from cda_nb.cli import read_yaml_config
    doc = json.loads((out/json_name(args.model)).read_text())
    if doc.get("model") != args.model: sys.exit(f"{out/'rehearsal.json'} holds --model {doc.get('model')}, not {args.model}")
    by = {r["name"]: r for r in doc["runs"]}
    for c in configs:
        name = cname(c); rec = by.get(name)
        if rec is None or rec.get("not_run"): continue
        cwork = work/name.replace("/", "__"); shutil.rmtree(cwork, ignore_errors=True); cwork.mkdir(parents=True)
        y = read_yaml_config(c); run_cfg = c
        if args.model == "small":
            y = small_network(y); run_cfg = cwork/"config.yaml"; run_cfg.write_text(yaml.safe_dump(y, sort_keys=False))
        ov = [o.replace("$DATA", str(data)) for o in rec["overrides"]] + [f"out_dir={cwork/'cli'}"]
        try:
            s = syncs_and_loader(run_cfg, ov, cwork/"cli", cwork, syncs=True, loader=False)
            before = rec.get("syncs_per_step")
            s.pop("setup_seconds", None); rec.update(s)                 # setup time stays the full run's figure; rec.pop("syncs_error", None)
            rec["syncs_recounted"] = {"when": time.strftime("%Y-%m-%d"), "command": rel_command(argv, data, work, out), "before": before}
            log(f"{name}: syncs/step {before} -> {rec['syncs_per_step']}")
        except Exception as e: rec["syncs_error"] = f"{type(e).__name__}: {e}"; log(f"{name}: ERROR {e}")
        shutil.rmtree(cwork, ignore_errors=True)
        write_report(doc, out)
    return doc

def _merged(doc, old, names_now):
    if not old: return doc
    d = dict(doc)
    done = {r["name"]: r for r in doc["runs"]}
    order = [n for n in [cname(c) for c in find_configs()] if n in done or n in old]
    d["runs"] = [done.get(n) or {**old[n], "from_earlier_invocation": True} for n in order]
    return d

if __name__ == "__main__":
    main()
