"Issue 11: no lost runs, no code execution from checkpoints, every parameter reachable, early named errors, clean output."
import dataclasses, json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import nbformat, pytest, torch
from PIL import Image
from conftest import ROOT
from cda_nb.core import CDAError, atomic_write_json, atomic_write_text
from cda_nb.training.trainer import Trainer, TrainConfig, METHODS, make_config, train
from cda_nb.methods.base import Method, register
from cda_nb.losses import seg_ce

NBS = ROOT/"nbs"

def tiny(root, out, **kw):
    "Parameters of a tiny CPU run on the conftest data."
    return dict(data_root=str(root), out_dir=str(out), iters=2, batch_size=2, crop=(32, 32), log_every=1, ckpt_every=1,
                progress=False, figures=False, init="none", eval_batch_size=4, **kw)

def run_of(out, method="source_only", tag=""):
    return Path(out)/"minicity"/(method + (f"-{tag}" if tag else ""))/"seed0"

class Evil:
    "A pickle that writes a marker file when it is unpickled."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))

# 1. a finished adaptation run is never lost to the post-training analysis ------------------------------------

def test_analysis_skipped_without_target_train_labels(tiny_root, tmp_path):
    shutil.rmtree(tiny_root/"cityscapes/gtFine/train")
    with pytest.warns(UserWarning, match="analysis was skipped"):
        m = train(method="self_training", **tiny(tiny_root, tmp_path))
    saved = json.loads((run_of(tmp_path, "self_training")/"metrics.json").read_text())
    assert "analysis_skipped" in saved and "pseudo_labels" not in saved and saved["miou"] == m["miou"]

def test_analysis_error_is_reported_not_fatal(tiny_root, tmp_path):
    lab = sorted((tiny_root/"cityscapes/gtFine/train").rglob("*.png"))[0]
    lab.write_bytes(lab.read_bytes()[:60])                  # corrupt target-train label: read by the analysis only
    with pytest.warns(UserWarning, match="analysis failed"):
        train(method="self_training", **tiny(tiny_root, tmp_path))
    saved = json.loads((run_of(tmp_path, "self_training")/"metrics.json").read_text())
    assert str(lab) in saved["analysis_error"] and 0 <= saved["miou"] <= 1

def test_analysis_switch_off(tiny_root, tmp_path):
    m = train(method="self_training", analysis=False, **tiny(tiny_root, tmp_path))
    assert "pseudo_labels" not in m and "analysis_error" not in m and "analysis_skipped" not in m

# 2. checkpoints load with weights_only=True; a malicious pickle is refused ------------------------------------

def test_kit_checkpoint_loads_weights_only(tiny_root, tmp_path):
    train(method="source_only", **tiny(tiny_root, tmp_path))
    ck = torch.load(run_of(tmp_path)/"checkpoint.pt", weights_only=True)
    assert ck["step"] == 2 and ck["iters"] == 2

def test_older_checkpoint_with_numpy_rng_still_resumes(tiny_root, tmp_path):
    "Checkpoints written before the RNG state was stored as tensors hold numpy arrays: the one allowed extra."
    import random
    Trainer(method="source_only", **tiny(tiny_root, tmp_path)).fit(stop_at=1)
    ck = run_of(tmp_path)/"checkpoint.pt"; sd = torch.load(ck, weights_only=True)
    sd["rng"] = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state()); del sd["iters"]
    torch.save(sd, ck)
    t = Trainer(method="source_only", **tiny(tiny_root, tmp_path))
    assert t.step == 1 and t.fit()["iters"] == 2

def test_malicious_checkpoint_refused_on_resume(tiny_root, tmp_path):
    run = run_of(tmp_path); run.mkdir(parents=True)
    marker = tmp_path/"pwned"
    torch.save({"step": 1, "model": Evil(marker)}, run/"checkpoint.pt")
    with pytest.raises(CDAError, match="was refused") as e: Trainer(method="source_only", **tiny(tiny_root, tmp_path))
    assert str(run/"checkpoint.pt") in str(e.value) and not marker.exists()

def test_malicious_init_and_cda_eval_refused(tiny_root, tmp_path):
    from cda_nb.cli import run_cli_eval
    marker = tmp_path/"pwned"
    evil = tmp_path/"evil.pt"; torch.save({"model": Evil(marker)}, evil)
    with pytest.raises(CDAError, match="was refused"): Trainer(method="source_only", **{**tiny(tiny_root, tmp_path), "init": str(evil)})
    assert not marker.exists() and not (tmp_path/"minicity").exists()         # and no run folder was made
    train(method="source_only", **tiny(tiny_root, tmp_path/"ok"))
    run = run_of(tmp_path/"ok"); shutil.copy(evil, run/"checkpoint.pt")
    with pytest.raises(SystemExit) as e: run_cli_eval([str(run), "--no-progress"])
    assert e.value.code == 2 and not marker.exists()

# 3. resume with another iters is refused -------------------------------------------------------------------

def test_resume_with_other_iters_refused(tiny_root, tmp_path):
    train(method="source_only", **{**tiny(tiny_root, tmp_path), "iters": 3})
    for n in (2, 5):
        with pytest.raises(CDAError) as e: Trainer(method="source_only", **{**tiny(tiny_root, tmp_path), "iters": n})
        msg = str(e.value)
        assert str(run_of(tmp_path)/"checkpoint.pt") in msg and "iters=3" in msg and f"iters={n}" in msg and "resume=False" in msg
    Trainer(method="source_only", **{**tiny(tiny_root, tmp_path), "iters": 2, "resume": False})      # the stated fix works

# 4. non-finite weights or buffers never reach a checkpoint; the error says what exists ----------------------------

@pytest.fixture
def inf_bn_method():
    @register
    class _InfBN(Method):
        "Finite loss, but a BatchNorm statistic becomes inf after step `at` (train-mode BN never reads it)."
        key, at = "_inf_bn", 0
        def losses(self, src, tgt, step): return {"ce_src": seg_ce(self.run.model(src["image"]).logits, src["label"])}
        def after_step(self, step):
            if step == self.at:
                bn = next(m for m in self.run.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
                bn.running_var.fill_(float("inf"))
    yield _InfBN
    del METHODS["_inf_bn"]

def test_nonfinite_buffer_before_first_checkpoint(inf_bn_method, tiny_root, tmp_path):
    tr = Trainer(method="_inf_bn", **tiny(tiny_root, tmp_path))
    with pytest.raises(CDAError, match="non-finite weights or buffers at step 1") as e: tr.fit()
    assert "no checkpoint was written" in str(e.value)
    assert not (run_of(tmp_path, "_inf_bn")/"checkpoint.pt").exists()

def test_nonfinite_buffer_keeps_last_checkpoint(inf_bn_method, tiny_root, tmp_path):
    inf_bn_method.at = 2
    tr = Trainer(method="_inf_bn", **{**tiny(tiny_root, tmp_path), "iters": 4, "ckpt_every": 2})
    with pytest.raises(CDAError, match="at step 4") as e: tr.fit()
    ck = run_of(tmp_path, "_inf_bn")/"checkpoint.pt"
    assert f"{ck} (step 2), was left as it was" in str(e.value)
    sd = torch.load(ck, weights_only=True)
    assert sd["step"] == 2 and all(torch.isfinite(v).all() for v in sd["model"].values() if v.is_floating_point())

# 5. train.ipynb reaches every TrainConfig field and stops on unknown names ---------------------------------

def _params_cell():
    cells = nbformat.read(NBS/"train.ipynb", as_version=4).cells
    return next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))

def test_parameters_cell_declares_every_field_with_its_default():
    src = _params_cell().source
    declared = {l.split(":")[0].strip(): l for l in src.splitlines() if ":" in l.split("=")[0]}
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert not set(fields) - set(declared), f"TrainConfig fields missing from train.ipynb's parameters cell: {set(fields) - set(declared)}"
    assert not set(declared) - set(fields), f"notebook parameters that are not TrainConfig fields: {set(declared) - set(fields)}"
    for k in fields: assert "#" in declared[k], f"parameter {k} has no comment (papermill --help-notebook shows it)"
    ns = {}; exec(src, {}, ns)
    defaults = TrainConfig()
    for k in fields:
        want = getattr(defaults, k)
        assert ns[k] == want, f"train.ipynb default of {k} is {ns[k]!r}, TrainConfig's is {want!r}"

def test_help_notebook_parses_every_parameter():
    "papermill --help-notebook must parse each line (it skips a line it cannot parse, e.g. an '=' in a comment)."
    r = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(NBS/"train.ipynb")], capture_output=True, text=True)
    assert r.returncode == 0 and "Unable to parse" not in r.stdout + r.stderr, r.stdout + r.stderr
    for f in dataclasses.fields(TrainConfig): assert f"  {f.name}: " in r.stdout, f.name

def _papermill(nb_out, *params, cwd, yaml=None):
    args = [sys.executable, "-m", "papermill", str(NBS/"train.ipynb"), str(nb_out), "--cwd", str(cwd)]
    for k, v in params: args += ["-p", k, str(v)]
    if yaml: args += ["-y", yaml]
    env = {**os.environ}; env.pop("CDA_NB_PROGRESS", None)
    return subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)

def test_unknown_notebook_parameter_stops(tiny_root, tmp_path):
    r = _papermill(tmp_path/"out.ipynb", ("iter", 3), ("iters", 2), ("batch_size", 2), ("data_root", tiny_root),
                   ("out_dir", tmp_path/"runs"), cwd=tmp_path)
    assert r.returncode != 0
    assert "'iter' (did you mean 'iters'?)" in r.stderr
    assert not (tmp_path/"runs").exists()

def test_papermill_reaches_cli_only_fields_and_output_is_small(tiny_root, tmp_path):
    "source_root/target_root/crop/ckpt_every/analysis reach the run; the output notebook has a few progress lines."
    r = _papermill(tmp_path/"out.ipynb", ("method", "self_training"), ("init", "none"), ("iters", 40), ("batch_size", 2),
                   ("source_root", tiny_root/"gta5"), ("target_root", tiny_root/"cityscapes"), ("ckpt_every", 7),
                   ("analysis", False), ("log_every", 1), ("out_dir", tmp_path/"runs"), cwd=tmp_path,
                   yaml="crop: [32, 32]")
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((tmp_path/"runs/minicity/self_training/seed0/config.json").read_text())
    assert cfg["source_root"] == str(tiny_root/"gta5") and cfg["crop"] == [32, 32] and cfg["ckpt_every"] == 7
    assert cfg["analysis"] is False
    out = nbformat.read(tmp_path/"out.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
    lines = [l for l in text.replace("\r", "\n").splitlines() if "self_training seed0" in l]
    assert 1 <= len(lines) <= 12, lines
    assert "IProgress not found" not in text
    assert "%|" not in text                                   # no tqdm text bar in the notebook
    assert (tmp_path/"out.ipynb").stat().st_size < 150_000

# 6. files are checked before training; every bad file is named -------------------------------------------

def test_truncated_val_label_found_before_training(tiny_root, tmp_path):
    lab = sorted((tiny_root/"cityscapes/gtFine/val").rglob("*.png"))[-1]
    lab.write_bytes(lab.read_bytes()[:-30])
    with pytest.raises(CDAError, match="truncated") as e: Trainer(method="source_only", **tiny(tiny_root, tmp_path))
    assert str(lab) in str(e.value)
    assert not (tmp_path/"minicity").exists()                 # 8: a failed check leaves no empty run folder

def test_truncated_source_label_read_names_the_file(tiny_root):
    from cda_nb.data import GTA5
    lab = tiny_root/"gta5/labels/00001.png"; lab.write_bytes(lab.read_bytes()[:120])
    with pytest.raises(CDAError) as e: GTA5(tiny_root/"gta5")[1]
    assert str(lab) in str(e.value)

def test_corrupt_checkpoint_named_with_fix(tiny_root, tmp_path):
    train(method="source_only", **tiny(tiny_root, tmp_path))
    ck = run_of(tmp_path)/"checkpoint.pt"; ck.write_bytes(ck.read_bytes()[:1000])
    with pytest.raises(CDAError) as e: Trainer(method="source_only", **tiny(tiny_root, tmp_path))
    assert str(ck) in str(e.value) and "resume=False" in str(e.value)

# 7. one validator for types and ranges, used by make_config and cda-train --dry-run ---------------------------

BAD = [("seed", 1.5), ("iters", True), ("crop", "ab"), ("weight_decay", "abc"), ("momentum", 1.5), ("momentum", "x"),
       ("eval_every", -1), ("batch_size", 2.0), ("lr", float("nan")), ("scale", [2, 1]), ("flip", "no")]

@pytest.mark.parametrize("k,v", BAD)
def test_validator_refuses(k, v):
    with pytest.raises(CDAError, match=k): make_config(**{k: v})

@pytest.mark.parametrize("hp", [{"tau": 0}, {"tau": -1.0}, {"tau": "0.1"}, {"threshold": 2}, {"dynamic": 1},
                                {"refresh_every": 1.5}, {"lambda_fc": -0.1}])
def test_method_params_types_and_ranges(hp):
    with pytest.raises(CDAError, match=next(iter(hp))): make_config(method="bcl", method_params=hp)

def test_method_params_int_for_float_is_fine():
    assert make_config(method="bcl", method_params={"tau": 1, "lambda_fc": 0}).method_params == {"tau": 1, "lambda_fc": 0}

@pytest.mark.parametrize("item", ["seed=1.5", "iters=true", "crop=ab", "weight_decay=abc", "momentum=2", "eval_every=-1"])
def test_cli_dry_run_uses_the_validator(item, capsys):
    from cda_nb.cli import run_cli_train
    with pytest.raises(SystemExit) as e: run_cli_train(["method=bcl", item, "--dry-run"])
    assert e.value.code == 2 and item.split("=")[0] in capsys.readouterr().err

def test_cli_dry_run_method_param_range(capsys):
    from cda_nb.cli import run_cli_train
    with pytest.raises(SystemExit) as e: run_cli_train(["method=bcl", "method_params.tau=0", "--dry-run"])
    assert e.value.code == 2 and "tau=0 is out of range" in capsys.readouterr().err

# 8. smaller ------------------------------------------------------------------------------------------------

def test_presence_cache_follows_relabelling(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CDA_NB_CACHE", str(tmp_path/"cache"))
    p = {**tiny(tiny_root, tmp_path), "method": "bcl"}
    Trainer(**p)
    assert len(list((tmp_path/"cache").glob("presence-*.npy"))) == 1
    from cda_nb.data import write_gta5_label
    lab = tiny_root/"gta5/labels/00000.png"
    write_gta5_label(np.full((64, 128), 21, np.uint8), lab)          # relabelled: now all vegetation
    os.utime(lab, ns=(os.stat(lab).st_atime_ns, os.stat(lab).st_mtime_ns + 10**9))
    Trainer(**{**p, "resume": False})
    assert len(list((tmp_path/"cache").glob("presence-*.npy"))) == 2

def test_cda_eval_other_model_names_config(tiny_root, tmp_path, capsys):
    from cda_nb.cli import run_cli_eval
    train(method="source_only", **tiny(tiny_root, tmp_path))
    run = run_of(tmp_path); c = json.loads((run/"config.json").read_text())
    c["model_kwargs"] = {"width": 8}; (run/"config.json").write_text(json.dumps(c))
    with pytest.raises(SystemExit) as e: run_cli_eval([str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "disagrees with" in err and str(run/"config.json") in err

def test_disk_full_names_the_file(tmp_path, monkeypatch):
    def full(fd): raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as e: atomic_write_json(tmp_path/"metrics.json", {"a": 1})
    assert str(tmp_path/"metrics.json") in str(e.value) and "disk is full" in str(e.value)
    assert not list(tmp_path.iterdir())                        # no temp file left

def test_rerun_keeps_peak_rss(tiny_root, tmp_path):
    train(method="source_only", **tiny(tiny_root, tmp_path))
    p = run_of(tmp_path)/"metrics.json"; m = json.loads(p.read_text()); m["peak_rss_mb"] = 12345.0; p.write_text(json.dumps(m))
    m2 = train(method="source_only", **tiny(tiny_root, tmp_path))        # resumes a finished run: evaluates only
    assert m2["peak_rss_mb"] == 12345.0 and json.loads(p.read_text())["peak_rss_mb"] == 12345.0

@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_atomic_write_mode_respects_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try: f = atomic_write_text(tmp_path/"x.json", "{}")
    finally: os.umask(old)
    assert f.stat().st_mode & 0o777 == mode

def test_data_warning_totals_in_metrics(tiny_root, tmp_path):
    from cda_nb.data import write_gta5_label, write_cityscapes_label, read_gta5_label, read_cityscapes_label
    g = tiny_root/"gta5/labels/00002.png"; write_gta5_label(read_gta5_label(g)[::2, ::2], g)            # half size
    v = sorted((tiny_root/"cityscapes/gtFine/val").rglob("*.png"))[0]
    ids = read_cityscapes_label(v); ids[:5, :5] = 200; write_cityscapes_label(ids, v)                  # out of table
    train(method="source_only", **tiny(tiny_root, tmp_path))
    w = json.loads((run_of(tmp_path)/"metrics.json").read_text())["data_warnings"]
    assert w["source"]["label_size_mismatch_files"] == 1 and w["val"]["out_of_table_pixels_read"] >= 25

def test_parameters_cell_lists_every_method():
    "The `method` comment is what `papermill --help-notebook` shows: it must name every registered method."
    line = next(l for l in _params_cell().source.splitlines() if l.startswith("method:"))
    listed = {m.strip() for m in line.split("one of:")[1].split(",")}
    assert listed == set(METHODS), f"train.ipynb's method comment lists {sorted(listed)}, registered: {sorted(METHODS)}"

def test_every_method_module_imports_first():
    "Each `cda_nb.methods.<key>` can be the first import of a fresh interpreter (a circular import once broke `import cda_nb.methods.clst`)."
    import subprocess, sys
    from conftest import ROOT
    mods = sorted(p.stem for p in (ROOT/"cda_nb/methods").glob("*.py") if p.stem != "__init__")
    for m in mods:
        r = subprocess.run([sys.executable, "-c", f"import cda_nb.methods.{m}"], capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, f"import cda_nb.methods.{m}: {r.stderr[-800:]}"
