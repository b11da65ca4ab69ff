"""Run bad inputs and faults against the kit on tiny data and write `reports/robustness.md`.

    python reports/robustness.py            # a few minutes on 2 CPU cores; exits 1 if any case behaves unexpectedly

Each case builds a fresh copy of a tiny dataset (the test fixture's format: 6 GTA5, 6+3 Cityscapes images),
does one bad thing, and records what the kit did: the error (type and message, paths shortened to `<tmp>`) or
what it completed. `expected` is checked, so the table is also a test.
"""
import contextlib, io, json, os, shutil, subprocess, sys, tempfile, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/"tests"))
os.environ.setdefault("CDA_NB_PROGRESS", "off")
import numpy as np
import torch
from conftest import write_tiny                                   # the tests' tiny GTA5 / Cityscapes fixture
from cda_nb.core import CDAError, atomic_write_json, atomic_write_text
from cda_nb.data import write_gta5_label, write_cityscapes_label, read_gta5_label, read_cityscapes_label, GTA5
from cda_nb.training.trainer import Trainer, METHODS, make_config, train
from cda_nb.methods.base import Method, register
from cda_nb.losses import seg_ce
from cda_nb.cli import run_cli_train, run_cli_eval

CASES = []

def case(group, what, expect):
    "Register a case: `expect` is ('refused', substring[, exception type]) or ('ok', None)."
    def deco(fn): CASES.append((group, what, expect, fn)); return fn
    return deco

class Ctx:
    "A fresh tiny dataset and output folder for one case."
    def __init__(self, base, template):
        self.tmp = Path(tempfile.mkdtemp(dir=base)); self.data = self.tmp/"data"; shutil.copytree(template, self.data)
        self.out = self.tmp/"runs"
    def p(self, **kw):
        d = dict(data_root=str(self.data), out_dir=str(self.out), iters=2, batch_size=2, crop=(32, 32), log_every=1,
                 ckpt_every=1, progress=False, figures=False, init="none", eval_batch_size=4)
        d.update(kw); return d
    def run(self, method="source_only", tag=""): return self.out/"minicity"/(method + (f"-{tag}" if tag else ""))/"seed0"
    def val_label(self, i=0): return sorted((self.data/"cityscapes/gtFine/val").rglob("*.png"))[i]
    def train_label(self, i=0): return sorted((self.data/"cityscapes/gtFine/train").rglob("*.png"))[i]
    def train_image(self, i=0): return sorted((self.data/"cityscapes/leftImg8bit/train").rglob("*.png"))[i]

class Evil:
    "A pickle whose loading would run a shell command (touch a marker file)."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))

def nothing_written(c): return "" if not c.out.exists() else f" (but {c.out} was created)"

# ---------------------------------------------------------------- parameters (one validator: make_config)
BAD_PARAMS = [
    ("method=bcll (typo)", dict(method="bcll"), "choose one of"),
    ("dataset=cityscapes_gta (unknown)", dict(dataset="cityscapes_gta"), "choose one of"),
    ("unknown parameter itres=5", dict(itres=5), "valid parameters"),
    ("seed=1.5 (float)", dict(seed=1.5), "seed must be an integer"),
    ("seed=-1", dict(seed=-1), "seed must be an integer >= 0"),
    ("iters=true (bool as int)", dict(iters=True), "iters must be a positive integer"),
    ("iters=0", dict(iters=0), "iters must be a positive integer"),
    ("batch_size=2.0", dict(batch_size=2.0), "batch_size must be a positive integer"),
    ("lr=-1", dict(lr=-1), "lr must be a number > 0"),
    ("lr=nan", dict(lr=float("nan")), "lr must be a number > 0"),
    ("momentum=1.5", dict(momentum=1.5), "momentum must be a number in [0, 1)"),
    ("weight_decay='abc'", dict(weight_decay="abc"), "weight_decay must be a number"),
    ("crop='ab'", dict(crop="ab"), "pair of positive integers"),
    ("crop=[64, 0]", dict(crop=[64, 0]), "pair of positive integers"),
    ("scale=[2, 1]", dict(scale=[2, 1]), "0 < lo <= hi"),
    ("eval_every=-1", dict(eval_every=-1), "eval_every must be an integer >= 0"),
    ("tag='../x' (escapes the run folder)", dict(tag="../x"), "no '/'"),
    ("resume='no' (string for a bool)", dict(resume="no"), "resume must be true or false"),
    ("bcl tau=0 (division by zero at step 0)", dict(method="bcl", method_params={"tau": 0}), "tau=0 is out of range"),
    ("bcl refresh_every=2.5", dict(method="bcl", method_params={"refresh_every": 2.5}), "must be an integer"),
    ("bcl threshold='0.7' (string)", dict(method="bcl", method_params={"threshold": "0.7"}), "must be a finite number"),
    ("bcl unknown hyper-parameter lambda_xx", dict(method="bcl", method_params={"lambda_xx": 1}), "has no parameter"),
    ("model=resnet (unknown)", dict(model="resnet"), "choose one of"),
    ("optimizer=adam", dict(optimizer="adam"), "choose one of"),
]
for what, params, msg in BAD_PARAMS:
    case("parameters", what, ("refused", msg))(lambda c, params=params: make_config(**params))

@case("parameters", "device=cuda on a machine without CUDA", ("refused", "CUDA is not available"))
def _(c):
    if torch.cuda.is_available(): raise CDAError("skipped: CUDA is available here (CUDA is not available)")
    make_config(device="cuda")

@case("parameters", "source_root without target_root (no data_root)", ("refused", "both source_root and target_root"))
def _(c): Trainer(**c.p(data_root="", source_root=str(c.data/"gta5")))

@case("parameters", "data_root that does not exist", ("refused", "expected layout"))
def _(c): Trainer(**c.p(data_root=str(c.tmp/"nope")))

@case("CLI", "cda-train seed=1.5 --dry-run", ("refused", "exit 2"))
def _(c):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try: run_cli_train(["method=bcl", "seed=1.5", "--dry-run"])
        except SystemExit as e: raise CDAError(f"exit {e.code}: {err.getvalue().strip()}")
    return "accepted"

@case("CLI", "cda-train with a config file that is not YAML", ("refused", "not valid YAML"))
def _(c):
    (c.tmp/"c.yaml").write_text("method: [bcl\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try: run_cli_train([str(c.tmp/"c.yaml"), "--dry-run"])
        except SystemExit as e: raise CDAError(f"exit {e.code}: {err.getvalue().strip()}")

@case("notebook", "papermill -p iter 3 (typo of iters) -p iters 2", ("refused", "did you mean 'iters'"))
def _(c):
    r = subprocess.run([sys.executable, "-m", "papermill", str(ROOT/"nbs/train.ipynb"), str(c.tmp/"out.ipynb"),
                        "-p", "iter", "3", "-p", "iters", "2", "-p", "data_root", str(c.data), "-p", "out_dir", str(c.out)],
                       capture_output=True, text=True, timeout=600, cwd=c.tmp)
    if r.returncode: raise CDAError([l for l in r.stderr.splitlines() if "CDAError" in l][-1] + nothing_written(c))
    return "ran"

# ---------------------------------------------------------------- data files
@case("data", "truncated val label", ("refused", "truncated"))
def _(c):
    v = c.val_label(); v.write_bytes(v.read_bytes()[:-30]); Trainer(**c.p())

@case("data", "source image that is not a PNG (a text file)", ("refused", "not a PNG"))
def _(c):
    (c.data/"gta5/images/00001.png").write_text("<html>404</html>"); Trainer(**c.p())

@case("data", "empty (0-byte) target-train image", ("refused", "not a PNG"))
def _(c):
    c.train_image().write_bytes(b""); Trainer(**c.p(method="self_training"))

@case("data", "source image without its label", ("refused", "have no label"))
def _(c):
    (c.data/"gta5/labels/00003.png").unlink(); Trainer(**c.p())

@case("data", "a failed check leaves no run folder", ("refused", "truncated"))
def _(c):
    v = c.val_label(); v.write_bytes(v.read_bytes()[:-30])
    try: Trainer(**c.p())
    except CDAError as e: raise CDAError(str(e) + (" -- no run folder was made" if not c.out.exists() else " -- A RUN FOLDER WAS MADE"))

@case("data", "source label with a damaged middle (header and end intact)", ("refused", "cannot be read"))
def _(c):
    lab = c.data/"gta5/labels/00002.png"; b = bytearray(lab.read_bytes())
    i = b.index(b"IDAT") + 8; b[i:i + 40] = bytes(40); lab.write_bytes(bytes(b))
    train(**c.p())

@case("data", "source label half the image size", ("ok", None))
def _(c):
    g = c.data/"gta5/labels/00002.png"; write_gta5_label(read_gta5_label(g)[::2, ::2], g)
    with warnings.catch_warnings(): warnings.simplefilter("ignore"); m = train(**c.p())
    return f"trained; resized (nearest) with a warning; metrics.json data_warnings.source = {m['data_warnings']['source']}"

@case("data", "val label with ids outside the class table", ("ok", None))
def _(c):
    v = c.val_label(); ids = read_cityscapes_label(v); ids[:5, :5] = 200; write_cityscapes_label(ids, v)
    with warnings.catch_warnings(): warnings.simplefilter("ignore"); m = train(**c.p())
    return f"trained; mapped to ignore with a warning; metrics.json data_warnings.val = {m['data_warnings']['val']}"

@case("data", "no target-train labels (gtFine/train absent), self_training", ("ok", None))
def _(c):
    shutil.rmtree(c.data/"cityscapes/gtFine/train")
    with warnings.catch_warnings(): warnings.simplefilter("ignore"); m = train(**c.p(method="self_training"))
    assert (c.run("self_training")/"metrics.json").exists()
    return f"trained and evaluated (mIoU {m['miou']:.3f}); analysis_skipped: {m['analysis_skipped'][:60]}..."

@case("data", "corrupt target-train label, bcl (read by the analysis only)", ("ok", None))
def _(c):
    t = c.train_label(); t.write_bytes(t.read_bytes()[:60])
    with warnings.catch_warnings(): warnings.simplefilter("ignore"); m = train(**c.p(method="bcl"))
    saved = json.loads((c.run("bcl")/"metrics.json").read_text())
    return f"metrics.json complete (mIoU {saved['miou']:.3f}); analysis_error: {saved['analysis_error'][:70]}..."

@case("data", "poisoned target-train labels (all 'car'), self_training", ("ok", None))
def _(c):
    a = train(**c.p(method="self_training", analysis=False, out_dir=str(c.tmp/"a")))
    for t in (c.data/"cityscapes/gtFine/train").rglob("*.png"): write_cityscapes_label(np.full((64, 128), 26, np.uint8), t)
    b = train(**c.p(method="self_training", analysis=False, out_dir=str(c.tmp/"b")))
    assert a["miou"] == b["miou"] and a["per_class_iou"] == b["per_class_iou"]
    return "bit-identical metrics: training never reads target-train labels"

# ---------------------------------------------------------------- checkpoints
@case("checkpoints", "malicious checkpoint.pt in the run folder (resume)", ("refused", "was refused"))
def _(c):
    c.run().mkdir(parents=True); torch.save({"step": 1, "model": Evil(c.tmp/"pwned")}, c.run()/"checkpoint.pt")
    try: Trainer(**c.p())
    finally: assert not (c.tmp/"pwned").exists(), "the pickle ran"

@case("checkpoints", "malicious init=evil.pt", ("refused", "was refused"))
def _(c):
    torch.save({"model": Evil(c.tmp/"pwned")}, c.tmp/"evil.pt")
    try: Trainer(**c.p(init=str(c.tmp/"evil.pt")))
    finally: assert not (c.tmp/"pwned").exists(), "the pickle ran"

@case("checkpoints", "malicious checkpoint given to cda-eval", ("refused", "was refused"))
def _(c):
    train(**c.p()); torch.save({"model": Evil(c.tmp/"pwned")}, c.run()/"checkpoint.pt")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try: run_cli_eval([str(c.run()), "--no-progress"])
        except SystemExit as e: raise CDAError(f"exit {e.code}: {err.getvalue().strip()}")
        finally: assert not (c.tmp/"pwned").exists(), "the pickle ran"

@case("checkpoints", "malicious model_kwargs.pretrained weights", ("refused", "was refused"))
def _(c):
    torch.save({"state_dict": Evil(c.tmp/"pwned")}, c.tmp/"r101.pth")
    try: Trainer(**c.p(model_kwargs={"pretrained": str(c.tmp/"r101.pth")}))
    finally: assert not (c.tmp/"pwned").exists(), "the pickle ran"

@case("checkpoints", "truncated checkpoint.pt", ("refused", "resume=False"))
def _(c):
    train(**c.p()); ck = c.run()/"checkpoint.pt"; ck.write_bytes(ck.read_bytes()[:1000]); Trainer(**c.p())

@case("checkpoints", "checkpoint.pt of random bytes", ("refused", "resume=False"))
def _(c):
    train(**c.p()); (c.run()/"checkpoint.pt").write_bytes(os.urandom(4096)); Trainer(**c.p())

@case("checkpoints", "finished 3-step run rerun with iters=2", ("refused", "iters=3"))
def _(c): train(**c.p(iters=3)); Trainer(**c.p(iters=2))

@case("checkpoints", "finished 3-step run rerun with iters=6", ("refused", "resume=False"))
def _(c): train(**c.p(iters=3)); Trainer(**c.p(iters=6))

@case("checkpoints", "resume with another lr", ("refused", "other settings"))
def _(c): train(**c.p()); Trainer(**c.p(lr=0.5))

@case("checkpoints", "resume=False over a finished run", ("ok", None))
def _(c):
    train(**c.p(iters=3)); m = train(**c.p(iters=2, resume=False))
    return f"started afresh: metrics.json now says iters={m['iters']}"

@case("checkpoints", "run stopped after step 3 (killed), then rerun", ("ok", None))
def _(c):
    ref = train(**c.p(iters=4, out_dir=str(c.tmp/"ref")))
    Trainer(**c.p(iters=4)).fit(stop_at=3); t = Trainer(**c.p(iters=4)); s = t.step; m = t.fit()
    assert m["miou"] == ref["miou"] and m["per_class_iou"] == ref["per_class_iou"]
    return f"resumed from step {s}; final metrics identical to an uninterrupted run"

@case("checkpoints", "rerun of a finished run", ("ok", None))
def _(c):
    train(**c.p()); p = c.run()/"metrics.json"; m = json.loads(p.read_text()); m["peak_rss_mb"] = 999.0; p.write_text(json.dumps(m))
    m2 = train(**c.p())
    assert m2["peak_rss_mb"] == 999.0
    return "re-evaluated only (no step trained); peak_rss_mb of the training kept"

@case("checkpoints", "cda-eval: config.json names another model", ("refused", "disagrees with"))
def _(c):
    train(**c.p()); cf = json.loads((c.run()/"config.json").read_text()); cf["model_kwargs"] = {"width": 8}
    (c.run()/"config.json").write_text(json.dumps(cf))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try: run_cli_eval([str(c.run()), "--no-progress"])
        except SystemExit as e: raise CDAError(f"exit {e.code}: {err.getvalue().strip()}")

@case("checkpoints", "cda-eval: checkpoint without config.json", ("refused", "config.json"))
def _(c):
    train(**c.p()); (c.run()/"config.json").unlink()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try: run_cli_eval([str(c.run()), "--no-progress"])
        except SystemExit as e: raise CDAError(f"exit {e.code}: {err.getvalue().strip()}")

@case("checkpoints", "cda-eval: no checkpoint", ("refused", "checkpoint not found"))
def _(c):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try: run_cli_eval([str(c.tmp/"nope"), "--no-progress"])
        except SystemExit as e: raise CDAError(f"exit {e.code}: {err.getvalue().strip()}")

# ---------------------------------------------------------------- faults during training
@contextlib.contextmanager
def registered(cls):
    "A test-only method, known to the trainer for one case (so that it is never listed elsewhere)."
    register(cls)
    try: yield
    finally: METHODS.pop(cls.key, None)

class _NaN(Method):
    key = "_nan"
    def losses(self, src, tgt, step):
        return {"ce_src": seg_ce(self.run.model(src["image"]).logits, src["label"]) * (float("nan") if step == 2 else 1.)}

class _InfBN(Method):
    key = "_inf_bn"
    def losses(self, src, tgt, step): return {"ce_src": seg_ce(self.run.model(src["image"]).logits, src["label"])}
    def after_step(self, step):
        if step == 0: next(m for m in self.run.model.modules() if isinstance(m, torch.nn.BatchNorm2d)).running_var.fill_(float("inf"))

@case("faults", "NaN loss at step 2 (checkpoints every 2 steps)", ("refused", "was left as it was"))
def _(c):
    with registered(_NaN): Trainer(**c.p(method="_nan", iters=4, ckpt_every=2)).fit()

@case("faults", "NaN loss at step 2 before any checkpoint", ("refused", "no checkpoint was written"))
def _(c):
    with registered(_NaN): Trainer(**c.p(method="_nan", iters=4, ckpt_every=4)).fit()

@case("faults", "BatchNorm statistic becomes inf (loss stays finite)", ("refused", "non-finite weights or buffers"))
def _(c):
    try:
        with registered(_InfBN): Trainer(**c.p(method="_inf_bn")).fit()
    finally: assert not (c.run("_inf_bn")/"checkpoint.pt").exists(), "an inf checkpoint was written"

@case("faults", "disk full while writing metrics.json (ENOSPC)", ("refused", "disk is full", OSError))
def _(c):
    real = os.fsync
    def full(fd): raise OSError(28, "No space left on device")
    os.fsync = full
    try: atomic_write_json(c.tmp/"metrics.json", {"miou": 0.5})
    finally:
        os.fsync = real
        assert not list(c.tmp.glob(".metrics.json.*")), "a temp file was left"

@case("faults", "files written under umask 022", ("ok", None))
def _(c):
    old = os.umask(0o022)
    try: train(**c.p())
    finally: os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in c.run().iterdir() if p.is_file()}
    assert set(modes.values()) == {"0o644"}, modes
    return f"all run files 0644 ({', '.join(sorted(modes))})"

# ---------------------------------------------------------------- more cases, one file per area
# Each `reports/robustness_<area>.py` is run here, in this script's namespace (it uses `case`, `Ctx` and the imports
# above), in name order; its cases follow the ones above.
for _f in sorted(Path(__file__).resolve().parent.glob("robustness_*.py")):
    exec(compile(_f.read_text(), str(_f), "exec"), globals())

# ---------------------------------------------------------------- runner
def short(s, c):
    s = str(s).replace(str(c.tmp), "<tmp>").replace(str(ROOT), "<repo>").replace("\n", " ")
    return (s[:230] + "...") if len(s) > 233 else s

def main(out=ROOT/"reports"/"robustness.md"):
    t0 = time.time(); base = Path(tempfile.mkdtemp(prefix="cda_robust-"))
    template = write_tiny(base/"template")
    rows, bad = [], 0
    for i, (group, what, expect, fn) in enumerate(CASES, 1):
        c = Ctx(base, template); t = time.time()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore"); res = fn(c)
            got, ok = f"completed: {short(res, c)}" if res else "completed", expect[0] == "ok"
        except (Exception, SystemExit) as e:
            exc = expect[2] if len(expect) > 2 else CDAError
            got = f"`{type(e).__name__}`: {short(e, c)}"
            ok = expect[0] == "refused" and isinstance(e, exc) and expect[1] in str(e)
        bad += not ok
        rows.append(f"| {i} | {group} | {what} | {got.replace('|', '/')} | {'✓' if ok else '✗ UNEXPECTED'} |")
        print(f"{i:3d} {'ok ' if ok else 'BAD'} {time.time() - t:5.1f}s {what}", flush=True)
        shutil.rmtree(c.tmp, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    head = ["# Robustness: bad inputs and faults", "",
            f"Generated by `python reports/robustness.py` ({len(CASES)} cases on tiny data, {time.time() - t0:.0f} s on "
            f"{os.cpu_count()} CPU cores, torch {torch.__version__}). Each case starts from a fresh copy of the tests' "
            "tiny GTA5 → Cityscapes fixture, does one bad thing, and records what the kit did: the error it raised "
            "(type and message; paths shortened to `<tmp>`) or what it completed. `as expected` checks the outcome "
            "against the case's expectation (the script exits 1 otherwise).", "",
            "| # | area | input or fault | what the kit does | as expected |", "|---|---|---|---|---|"]
    atomic_write_text(out, "\n".join(head + rows) + "\n")
    print(f"{len(CASES)} cases, {bad} unexpected, {time.time() - t0:.0f}s -> {out}")
    return bad

if __name__ == "__main__":
    # `--only AREA` (repeatable) runs the cases of those areas alone and writes no report (for working on one area)
    only = [a for k, a in zip(sys.argv[1:], sys.argv[2:]) if k == "--only"]
    if only:
        CASES[:] = [c for c in CASES if c[0] in only]
        sys.exit(1 if main(out=Path(tempfile.mkdtemp())/"robustness.md") else 0)
    sys.exit(1 if main() else 0)
