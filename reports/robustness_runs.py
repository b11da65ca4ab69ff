# Cases of issue 23 for run folders: identity, the lock, finished results, planted links, temporaries, names and
# checkpoint files. Run inside reports/robustness.py's namespace (`case`, `Ctx`, `train`, `Trainer`, ... come from there).
import signal as _signal
from cda_nb.core import run_finished
from cda_nb.training.runfolder import RunLock, stored_identity
from cda_nb.training.starts import plan_start, COMMITTED_RUNS

def _other_data(c, seed=1):
    "Another tiny data set (other images, same layout) beside the case's own."
    return write_tiny(c.tmp/f"other{seed}", seed=seed)

def _cli(fn, args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try: fn(args)
        except SystemExit as e: raise CDAError(f"exit {e.code}: {err.getvalue().strip()}")

def _holder(folder):
    "A process holding the lock of `folder` (as a training run would); returns it once it holds the lock."
    p = subprocess.Popen([sys.executable, "-c", f"from cda_nb.training.runfolder import RunLock; import time; "
                          f"RunLock({str(folder)!r}).acquire(); print('held', flush=True); time.sleep(120)"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p

def _with_test_split(c):
    "The case's data with a labelled test split (a copy of val), as MiniCity has."
    for k in ("leftImg8bit", "gtFine"): shutil.copytree(c.data/"cityscapes"/k/"val", c.data/"cityscapes"/k/"test")

def _interrupt_test_eval():
    "Trainer.evaluate raising KeyboardInterrupt on the test split (Ctrl-C during the test evaluation)."
    real = Trainer.evaluate
    def ev(self, ds=None):
        if ds is not None and ds is self.data.get("test"): raise KeyboardInterrupt
        return real(self, ds)
    return real, ev

# ---------------------------------------------------------------- identity
@case("run identity", "run stopped at step 3, resumed on another data_root", ("refused", "data.source"))
def _(c):
    Trainer(**c.p(iters=4)).fit(stop_at=3); Trainer(**c.p(iters=4, data_root=str(_other_data(c))))

@case("run identity", "finished run re-run on another data_root (metrics.json kept)", ("refused", "cannot re-evaluate it"))
def _(c):
    train(**c.p()); before = (c.run()/"metrics.json").read_bytes()
    try: train(**c.p(data_root=str(_other_data(c))))
    finally: assert (c.run()/"metrics.json").read_bytes() == before, "metrics.json changed"

@case("run identity", "finished run re-run on a copy of its data in another folder", ("ok", None))
def _(c):
    train(**c.p()); cp = c.tmp/"copy"; shutil.copytree(c.data, cp)
    m = train(**c.p(data_root=str(cp)))
    return f"same files (names and sizes): re-evaluated, mIoU {m['miou']:.3f}"

@case("run identity", "source_only at lr 0.5 on another data_root, then self_training (default init)", ("ok", None))
def _(c):
    train(**c.p(data_root=str(_other_data(c)), lr=0.5))
    s = plan_start(make_config(**c.p(method="self_training", init="", init_iters=2)))
    assert s.train_first is not None and s.path.parent.parent.name != "source_only", s
    return f"not started from it: trains its own source model into {s.path.parent.parent.name}/"

@case("run identity", "adapting run resumed after its source-only folder was deleted", ("refused", "starts from it"))
def _(c):
    from cda_nb.training.trainer import prepare_start
    cfg = make_config(**c.p(method="self_training", init="", init_iters=2, iters=4))
    Trainer(cfg, start=prepare_start(cfg)).fit(stop_at=2)
    shutil.rmtree(c.out/"minicity"/"source_only")
    try: train(cfg)
    finally: assert not (c.out/"minicity"/"source_only").exists(), "the source run was trained again"

@case("run identity", "README main command: the committed source-only run is reused", ("ok", None))
def _(c):
    s = plan_start(make_config(method="bcl", out_dir=str(c.out)))
    assert s.train_first is None and s.path == COMMITTED_RUNS/"minicity/source_only/seed0/checkpoint.pt", s
    return "bcl starts from reports/runs/minicity/source_only/seed0 (its config.json predates warmup_iters: default 0)"

@case("run identity", "source-only data changed under the same data_root, then an adapting run", ("refused", "trained on other data"))
def _(c):
    train(**c.p(iters=2, init=""))                     # exactly the source run self_training starts from
    other = _other_data(c); shutil.copy(other/"gta5/images/00000.png", c.data/"gta5/images/00000.png")   # another image
    Trainer(**c.p(method="self_training", init="", init_iters=2))

@case("run identity", "the checkpoint an adapting run started from was replaced, then resume", ("refused", "weights it started from changed"))
def _(c):
    train(**c.p(out_dir=str(c.tmp/"a"))); train(**c.p(out_dir=str(c.tmp/"b"), lr=0.5))
    init = c.tmp/"init.pt"; shutil.copy(c.tmp/"a/minicity/source_only/seed0/checkpoint.pt", init)
    Trainer(**c.p(method="self_training", init=str(init), iters=4)).fit(stop_at=2)
    shutil.copy(c.tmp/"b/minicity/source_only/seed0/checkpoint.pt", init)
    Trainer(**c.p(method="self_training", init=str(init), iters=4))

@case("run identity", "resume with another method hyper-parameter", ("refused", "other settings"))
def _(c):
    Trainer(**c.p(method="self_training", iters=4)).fit(stop_at=2)
    Trainer(**c.p(method="self_training", iters=4, method_params={"cbst_p": 0.5}))

@case("run identity", "resume of a folder written before identities (config.json without one)", ("ok", None))
def _(c):
    Trainer(**c.p(iters=4)).fit(stop_at=2)
    cf = json.loads((c.run()/"config.json").read_text()); cf.pop("identity"); cf.pop("warmup_iters")
    (c.run()/"config.json").write_text(json.dumps(cf))
    m = Trainer(**c.p(iters=4)).fit()
    return f"resumed from step 2 (missing fields count as their defaults): mIoU {m['miou']:.3f}"

@case("run identity", "resume with a truncated config.json", ("refused", "config.json cannot be read"))
def _(c):
    Trainer(**c.p(iters=4)).fit(stop_at=2); (c.run()/"config.json").write_text('{"method": "sou')
    train(**c.p(iters=4))

# ---------------------------------------------------------------- the lock
@case("lock", "the same command while another process writes the run folder", ("refused", "being written by another process"))
def _(c):
    h = _holder(c.run())
    try: train(**c.p())
    finally: h.kill(); h.wait()

@case("lock", "self_training while another process trains the shared source-only run", ("refused", "being written by another process"))
def _(c):
    h = _holder(c.run("source_only"))
    try: train(**c.p(method="self_training", init="", init_iters=2))
    finally: h.kill(); h.wait()

@case("lock", "stale lock of a killed process (SIGKILL)", ("ok", None))
def _(c):
    h = _holder(c.run()); h.send_signal(_signal.SIGKILL); h.wait()
    m = train(**c.p())
    return f"lock taken over (the kernel freed it with its process); trained, mIoU {m['miou']:.3f}"

@case("lock", "lock file naming a dead pid, left on disk", ("ok", None))
def _(c):
    c.run().mkdir(parents=True); (c.run()/".lock").write_text('{"pid": 999999, "host": "elsewhere", "since": "2026-01-01"}')
    train(**c.p())
    return f"taken over: now {json.loads((c.run()/'.lock').read_text())['pid'] == os.getpid() and 'this process'}"

@case("lock", "the lock file is a symbolic link", ("refused", "symbolic link"))
def _(c):
    c.run().mkdir(parents=True); os.symlink(c.tmp/"elsewhere", c.run()/".lock"); train(**c.p())

# ---------------------------------------------------------------- finished results
@case("finished", "re-run of a finished run, Ctrl-C during its test evaluation", ("ok", None))
def _(c):
    _with_test_split(c); train(**c.p(method="self_training")); before = (c.run("self_training")/"metrics.json").read_bytes()
    real, ev = _interrupt_test_eval(); Trainer.evaluate = ev
    try: train(**c.p(method="self_training"))
    except KeyboardInterrupt: pass
    finally: Trainer.evaluate = real
    assert (c.run("self_training")/"metrics.json").read_bytes() == before and run_finished(c.run("self_training"))
    return "metrics.json (with miou_test, test, pseudo_labels) and its marker unchanged"

@case("finished", "first finish, Ctrl-C during the test evaluation", ("ok", None))
def _(c):
    _with_test_split(c); real, ev = _interrupt_test_eval(); Trainer.evaluate = ev
    try: train(**c.p())
    except KeyboardInterrupt: pass
    finally: Trainer.evaluate = real
    assert run_finished(c.run()) is None and not (c.run()/"metrics.json").exists()
    m = train(**c.p()); assert "miou_test" in m and run_finished(c.run())
    return "not finished (no metrics.json, no marker); the rerun evaluated only and finished it"

@case("finished", "finished run re-run with analysis=False", ("ok", None))
def _(c):
    train(**c.p(method="self_training")); m = train(**c.p(method="self_training", analysis=False))
    saved = json.loads((c.run("self_training")/"metrics.json").read_text())
    assert "pseudo_labels" in saved, sorted(saved)
    return f"pseudo_labels kept (kept_from_previous_evaluation: {saved['kept_from_previous_evaluation']})"

@case("finished", "resume=False over a finished run, crash before the first checkpoint", ("ok", None))
def _(c):
    train(**c.p(iters=3))
    with registered(_NaN):
        try: Trainer(**c.p(method="_nan", iters=4, ckpt_every=4, resume=False, tag="")).fit()
        except CDAError: pass
    train(**c.p(iters=3, tag="x"))                                              # (another folder, untouched)
    t = Trainer(**c.p(iters=2, resume=False)); t.fit(stop_at=1)                 # crash before its first checkpoint...
    left = sorted(p.name for p in c.run().iterdir())
    assert run_finished(c.run()) is None and "metrics.json" not in left, left
    sup = next((c.run()/"superseded").iterdir())
    return f"not finished; the old run moved to superseded/ ({', '.join(sorted(p.name for p in sup.iterdir()))})"

@case("finished", "metrics.json edited after the run finished, then rerun", ("ok", None))
def _(c):
    train(**c.p()); p = c.run()/"metrics.json"; m = json.loads(p.read_text()); m["miou"] = 0.99; p.write_text(json.dumps(m))
    assert run_finished(c.run()) is None
    m2 = train(**c.p()); assert m2["miou"] != 0.99 and run_finished(c.run())
    return "no longer finished (its marker does not match); the rerun re-evaluated it"

@case("finished", "finished run without its checkpoint (as committed), rerun", ("refused", "nothing to resume or re-evaluate"))
def _(c):
    train(**c.p()); (c.run()/"checkpoint.pt").unlink(); before = (c.run()/"metrics.json").read_bytes()
    try: train(**c.p())
    finally: assert (c.run()/"metrics.json").read_bytes() == before

@case("finished", "finished run without its checkpoint, rerun with resume=False", ("ok", None))
def _(c):
    train(**c.p()); (c.run()/"checkpoint.pt").unlink(); train(**c.p(resume=False))
    sup = next((c.run()/"superseded").iterdir())
    assert (sup/"metrics.json").is_file() and run_finished(c.run())
    return "trained again; the earlier results kept in superseded/"

@case("finished", "sweep status of a run killed between metrics.json and its marker", ("ok", None))
def _(c):
    from cda_nb.sweep import run_status
    train(**c.p()); (c.run()/"finished.json").unlink()
    s = run_status(c.run()); assert s == "resume", s
    return "resume (metrics.json alone is not finished)"

# ---------------------------------------------------------------- planted links and temporaries
@case("links", "figures/predictions.png is a link to a file outside, then a resume", ("refused", "symbolic link"))
def _(c):
    Trainer(**c.p(iters=4, figures=True)).fit(stop_at=2); victim = c.tmp/"victim.txt"; victim.write_text("keep me")
    (c.run()/"figures").mkdir(exist_ok=True); os.symlink(victim, c.run()/"figures/predictions.png")
    try: train(**c.p(iters=4, figures=True))
    finally: assert victim.read_text() == "keep me", "written through the link"

@case("links", "figures/ is a link to a folder outside", ("refused", "symbolic link"))
def _(c):
    Trainer(**c.p(iters=4)).fit(stop_at=2); (c.tmp/"elsewhere").mkdir(); shutil.rmtree(c.run()/"figures")
    os.symlink(c.tmp/"elsewhere", c.run()/"figures")
    try: train(**c.p(iters=4, figures=True))
    finally: assert not list((c.tmp/"elsewhere").iterdir()), "figures written into the link's target"

@case("links", "log.jsonl is a link to a file outside, then a resume", ("refused", "symbolic link"))
def _(c):
    Trainer(**c.p(iters=4)).fit(stop_at=2); victim = c.tmp/"victim.txt"; victim.write_text("keep me")
    (c.run()/"log.jsonl").unlink(); os.symlink(victim, c.run()/"log.jsonl")
    try: train(**c.p(iters=4))
    finally: assert victim.read_text() == "keep me", "appended through the link"

@case("links", "append_jsonl onto a link", ("refused", "symbolic link"))
def _(c):
    from cda_nb.core import append_jsonl
    victim = c.tmp/"v.txt"; victim.write_text("x"); os.symlink(victim, c.tmp/"log.jsonl")
    try: append_jsonl(c.tmp/"log.jsonl", {"a": 1})
    finally: assert victim.read_text() == "x"

@case("temporaries", "full-size checkpoint temporary left by a SIGKILL during a write", ("ok", None))
def _(c):
    Trainer(**c.p(iters=4)).fit(stop_at=2)
    tmp = c.run()/".checkpoint.pt.k1l1ed.tmp"; shutil.copy(c.run()/"checkpoint.pt", tmp)
    train(**c.p(iters=4)); assert not tmp.exists()
    return "removed at the next start (under the run folder's lock)"

# ---------------------------------------------------------------- names
for _what, _kw, _msg in [
    ("seed=2**64", dict(seed=2**64), "seeds are integers in [0, 2**32 - 1]"),
    ("benchmark_seed=2**40", dict(benchmark_seed=2**40), "too large"),
    ("a 300-character tag", dict(tag="x" * 300), "at most 100"),
    ("tag with a space", dict(tag="my run"), "letters, digits"),
    ("tag '.hidden'", dict(tag=".hidden"), "not starting with '.'"),
    ("tag with a newline", dict(tag="a\nb"), "letters, digits"),
    ("out_dir with a NUL character", dict(out_dir="runs\x00x"), "NUL"),
    ("out_dir empty", dict(out_dir=""), "out_dir is empty"),
]:
    case("names", _what, ("refused", _msg))(lambda c, kw=_kw: make_config(**kw))

@case("names", "out_dir is a file", ("refused", "is a file, not a folder (out_dir)"))
def _(c):
    c.out.parent.mkdir(parents=True, exist_ok=True); c.out.write_text("x"); train(**c.p())

@case("names", "a file where the method folder goes", ("refused", "is a file, not a folder"))
def _(c):
    (c.out/"minicity").mkdir(parents=True); (c.out/"minicity"/"source_only").write_text("x"); train(**c.p())

@case("names", "cda-eval --split '../../x'", ("refused", "split='../../x' is not valid"))
def _(c):
    train(**c.p()); _cli(run_cli_eval, [str(c.run()), "--split", "../../x", "--no-progress"])

# ---------------------------------------------------------------- checkpoint files
def _edit_ckpt(c, fn):
    ck = torch.load(c.run()/"checkpoint.pt", weights_only=True); ck = fn(ck); torch.save(ck, c.run()/"checkpoint.pt")

@case("checkpoints", "checkpoint.pt without 'config'", ("refused", "lacks ['config']"))
def _(c): Trainer(**c.p(iters=4)).fit(stop_at=2); _edit_ckpt(c, lambda k: {x: v for x, v in k.items() if x != "config"}); Trainer(**c.p(iters=4))

@case("checkpoints", "checkpoint.pt without 'rng'", ("refused", "lacks ['rng']"))
def _(c): Trainer(**c.p(iters=4)).fit(stop_at=2); _edit_ckpt(c, lambda k: {x: v for x, v in k.items() if x != "rng"}); Trainer(**c.p(iters=4))

@case("checkpoints", "checkpoint.pt that is a plain state dict", ("refused", "cannot be resumed"))
def _(c): Trainer(**c.p(iters=4)).fit(stop_at=2); _edit_ckpt(c, lambda k: k["model"]); Trainer(**c.p(iters=4))

@case("checkpoints", "init= a plain state dict (as the refusal message recommends)", ("ok", None))
def _(c):
    train(**c.p()); torch.save(torch.load(c.run()/"checkpoint.pt", weights_only=True)["model"], c.tmp/"sd.pt")
    m = train(**c.p(method="self_training", init=str(c.tmp/"sd.pt")))
    return f"started from its weights; mIoU {m['miou']:.3f}"

@case("checkpoints", "init= a file holding neither weights nor a checkpoint", ("refused", "holds no model weights"))
def _(c): torch.save({"epoch": 3, "notes": "x"}, c.tmp/"x.pt"); train(**c.p(method="self_training", init=str(c.tmp/"x.pt")))

@case("checkpoints", "init= weights on the meta device", ("refused", "meta device"))
def _(c):
    train(**c.p()); sd = torch.load(c.run()/"checkpoint.pt", weights_only=True)["model"]
    torch.save({k: v.to("meta") for k, v in sd.items()}, c.tmp/"meta.pt"); train(**c.p(method="self_training", init=str(c.tmp/"meta.pt")))

@case("checkpoints", "checkpoint.pt whose weights are on the meta device (resume)", ("refused", "meta device"))
def _(c):
    Trainer(**c.p(iters=4)).fit(stop_at=2); _edit_ckpt(c, lambda k: {**k, "model": {n: v.to("meta") for n, v in k["model"].items()}})
    Trainer(**c.p(iters=4))

@case("checkpoints", "init= weights of another width", ("refused", "of another shape"))
def _(c):
    train(**c.p(model_kwargs={"width": 8})); train(**c.p(method="self_training", init=str(c.run()/"checkpoint.pt"), out_dir=str(c.tmp/"o")))

@case("checkpoints", "cda-eval on a truncated config.json", ("refused", "config.json cannot be read"))
def _(c): train(**c.p()); (c.run()/"config.json").write_text('{"model": "sm'); _cli(run_cli_eval, [str(c.run()), "--no-progress"])

@case("checkpoints", "cda-eval on a config.json that is a list", ("refused", "not a run's settings"))
def _(c): train(**c.p()); (c.run()/"config.json").write_text('[1, 2]'); _cli(run_cli_eval, [str(c.run()), "--no-progress"])

@case("checkpoints", "cda-eval on a checkpoint with meta tensors", ("refused", "meta device"))
def _(c):
    train(**c.p()); _edit_ckpt(c, lambda k: {**k, "model": {n: v.to("meta") for n, v in k["model"].items()}})
    _cli(run_cli_eval, [str(c.run()), "--no-progress"])

# ---------------------------------------------------------------- preemption (a scheduler's signal)
class _SignalAt3(Method):
    "source_only that sends itself `sig` inside step 3 (as a scheduler would, mid-step)."
    key = "_signal3"; sig = _signal.SIGTERM; armed = True
    def losses(self, src, tgt, step): return {"ce_src": seg_ce(self.run.model(src["image"]).logits, src["label"])}
    def before_step(self, step):
        if step == 2 and type(self).armed: type(self).armed = False; os.kill(os.getpid(), type(self).sig)

for _sig in (_signal.SIGTERM, _signal.SIGUSR1):
    @case("preemption", f"{_sig.name} during step 3 (checkpoints every 5 steps)", ("refused", "preempted at step 3"))
    def _(c, sig=_sig):
        _SignalAt3.sig, _SignalAt3.armed = sig, True
        with registered(_SignalAt3):
            try: Trainer(**c.p(method="_signal3", iters=6, ckpt_every=5)).fit()
            finally:
                ck = torch.load(c.run("_signal3")/"checkpoint.pt", weights_only=True)
                assert ck["step"] == 3 and not (c.run("_signal3")/"metrics.json").exists(), ck["step"]

@case("preemption", "SIGTERM during step 3, then the same command again", ("ok", None))
def _(c):
    _SignalAt3.sig = _signal.SIGTERM
    with registered(_SignalAt3):
        _SignalAt3.armed = False; ref = Trainer(**c.p(method="_signal3", iters=6, ckpt_every=5, out_dir=str(c.tmp/"ref"))).fit()
        _SignalAt3.armed = True
        try: Trainer(**c.p(method="_signal3", iters=6, ckpt_every=5)).fit()
        except CDAError as e: assert "preempted at step 3" in str(e)
        m = Trainer(**c.p(method="_signal3", iters=6, ckpt_every=5)).fit()
    assert m["miou"] == ref["miou"] and m["per_class_iou"] == ref["per_class_iou"]
    return f"resumed from its step-3 checkpoint: final metrics identical to an uninterrupted run (cda-train exits 75 when preempted)"

# ---------------------------------------------------------------- planted files of the wrong kind
@case("links", "the run folder's .lock is a folder", ("refused", "not a regular file"))
def _(c): (c.run()/".lock").mkdir(parents=True); train(**c.p())

@case("links", "figures is a file in the run folder", ("refused", "figures is a file"))
def _(c): Trainer(**c.p(iters=4)).fit(stop_at=2); shutil.rmtree(c.run()/"figures"); (c.run()/"figures").write_text("x"); train(**c.p(iters=4))

@case("links", "superseded is a file, then resume=False", ("refused", "superseded is a file"))
def _(c): train(**c.p()); (c.run()/"superseded").write_text("x"); train(**c.p(resume=False))

@case("links", "checkpoint.pt is a link to another run's checkpoint", ("refused", "symbolic link"))
def _(c):
    train(**c.p(out_dir=str(c.tmp/"other"))); Trainer(**c.p(iters=4)).fit(stop_at=2); (c.run()/"checkpoint.pt").unlink()
    os.symlink(c.tmp/"other/minicity/source_only/seed0/checkpoint.pt", c.run()/"checkpoint.pt"); Trainer(**c.p(iters=4))

@case("run identity", "adapting run whose finished source-only run lost its checkpoint", ("refused", "is finished but has no checkpoint.pt"))
def _(c):
    train(**c.p(init="")); (c.run()/"checkpoint.pt").unlink(); train(**c.p(method="self_training", init="", init_iters=2))
