"""Issue 23 (hardening round 2), run folders: each numbered example of the issue as a test that fails on the main it
was filed against (417eecb) and passes now: identity checked on resume / re-run / start, the run-folder lock, finished
results never lost, no writes through planted links, temporaries cleaned, names and checkpoint files with named errors."""
import json, os, shutil, signal, subprocess, sys
from pathlib import Path
import pytest, torch
from conftest import ROOT, write_tiny
from cda_nb.core import CDAError
try: from cda_nb.core import run_finished
except ImportError:                       # the main these tests were written against: a folder was finished by its files
    run_finished = lambda d: {} if (Path(d)/"metrics.json").is_file() else None
from cda_nb.training.trainer import Trainer, METHODS, make_config, train, prepare_start
from cda_nb.training.starts import plan_start, COMMITTED_RUNS
from cda_nb.methods.base import Method, register
from cda_nb.losses import seg_ce
from cda_nb.cli import run_cli_eval

def tiny(root, out, **kw):
    d = dict(data_root=str(root), out_dir=str(out), iters=2, batch_size=2, crop=(32, 32), log_every=1, ckpt_every=1,
             progress=False, figures=False, init="none", eval_batch_size=4)
    d.update(kw); return d

def run_of(out, method="source_only", tag=""): return Path(out)/"minicity"/(method + (f"-{tag}" if tag else ""))/"seed0"

# ---- 1. identity ---------------------------------------------------------------------------------------------------

def test_1a_source_of_other_data_and_settings_is_not_used(tiny_root, tmp_path):
    other = write_tiny(tmp_path/"other", seed=1)
    train(**tiny(other, tmp_path/"runs", lr=0.5))                         # source_only: 2 steps at lr 0.5 on other data
    s = plan_start(make_config(**tiny(tiny_root, tmp_path/"runs", method="self_training", init="", init_iters=2)))
    assert s.train_first is not None and s.path != run_of(tmp_path/"runs")/"checkpoint.pt"

def test_1b_resume_on_another_data_root_is_refused(tiny_root, tmp_path):
    Trainer(**tiny(tiny_root, tmp_path, iters=4)).fit(stop_at=3)
    other = write_tiny(tmp_path/"other", seed=1)
    with pytest.raises(CDAError, match="data.source"): Trainer(**tiny(other, tmp_path, iters=4))
    assert json.loads((run_of(tmp_path)/"config.json").read_text())["data_root"] == str(tiny_root)

def test_1c_finished_run_rerun_on_another_data_root_keeps_its_metrics(tiny_root, tmp_path):
    train(**tiny(tiny_root, tmp_path)); before = (run_of(tmp_path)/"metrics.json").read_bytes()
    other = write_tiny(tmp_path/"other", seed=1)
    with pytest.raises(CDAError, match="cannot re-evaluate it"): train(**tiny(other, tmp_path))
    assert (run_of(tmp_path)/"metrics.json").read_bytes() == before

def test_1d_resume_after_source_deleted_does_not_retrain_it(tiny_root, tmp_path):
    cfg = make_config(**tiny(tiny_root, tmp_path, method="self_training", init="", init_iters=2, iters=4))
    Trainer(cfg, start=prepare_start(cfg)).fit(stop_at=2)
    shutil.rmtree(tmp_path/"minicity"/"source_only")
    with pytest.raises(CDAError, match="starts from it"): train(cfg)
    assert not (tmp_path/"minicity"/"source_only").exists()

def test_1e_committed_source_only_is_reused_by_the_readme_command(tmp_path):
    d = COMMITTED_RUNS/"minicity/source_only/seed0"
    assert "warmup_iters" not in json.loads((d/"config.json").read_text())    # predates the field: its default counts
    s = plan_start(make_config(method="bcl", out_dir=str(tmp_path)))
    assert s.train_first is None and s.path == d/"checkpoint.pt"

# ---- 2. the lock ---------------------------------------------------------------------------------------------------

HOLD = """
import sys, time; from pathlib import Path
from cda_nb.methods.base import Method, register
from cda_nb.losses import seg_ce
from cda_nb.training.trainer import train
go = Path(sys.argv[1])
class Hold(Method):
    key = "source_only"
    def losses(self, src, tgt, step): return {"ce_src": seg_ce(self.run.model(src["image"]).logits, src["label"])}
    def before_step(self, step):
        if step == 1:
            print("step1", flush=True)
            while not go.exists(): time.sleep(0.05)
import cda_nb.methods.base as b; orig = b.METHODS["source_only"]; Hold.default_init = orig.default_init; register(Hold)
train(**__import__("json").loads(sys.argv[2]))
print("done", flush=True)
"""

def _holding_run(params, go):
    "A source_only run in another process, held inside step 1 until `go` exists."
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(go), json.dumps(params)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "CDA_NB_PROGRESS": "off"})
    line = p.stdout.readline()
    assert line.strip() == "step1", line
    return p

def test_2a_same_command_twice_is_refused_while_the_first_runs(tiny_root, tmp_path):
    params = tiny(tiny_root, tmp_path, iters=3)
    p = _holding_run(params, tmp_path/"go")
    try:
        with pytest.raises(CDAError, match=f"being written by another process \\(pid {p.pid}"): train(**params)
    finally: (tmp_path/"go").touch(); out = p.communicate(timeout=300)[0]
    assert p.returncode == 0 and "done" in out
    steps = [json.loads(l)["step"] for l in (run_of(tmp_path)/"log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]                                              # trained once

def test_2b_adapting_run_does_not_share_a_source_run_in_training(tiny_root, tmp_path):
    params = tiny(tiny_root, tmp_path, iters=2, init="")                   # exactly the source run self_training starts from
    p = _holding_run(params, tmp_path/"go")                                # the shared source-only run, mid-training
    try:
        with pytest.raises(CDAError, match="being written by another process"):
            train(**tiny(tiny_root, tmp_path, method="self_training", init="", init_iters=2))
        assert not run_of(tmp_path, "self_training").exists()
    finally: (tmp_path/"go").touch(); p.communicate(timeout=300)

def test_2_stale_lock_of_a_killed_process_is_recovered(tiny_root, tmp_path):
    params = tiny(tiny_root, tmp_path, iters=3)
    p = _holding_run(params, tmp_path/"never")
    p.send_signal(signal.SIGKILL); p.wait()
    m = train(**params)                                                    # resumes what the killed run left
    assert run_finished(run_of(tmp_path)) and m["iters"] == 3

# ---- 3. finished results -------------------------------------------------------------------------------------------

def _interrupting_test_eval(monkeypatch):
    real = Trainer.evaluate
    def ev(self, ds=None):
        if ds is not None and ds is self.data.get("test"): raise KeyboardInterrupt
        return real(self, ds)
    monkeypatch.setattr(Trainer, "evaluate", ev)

def _with_test_split(root):
    "The tiny fixture with a labelled test split (a copy of val), as MiniCity has."
    for k in ("leftImg8bit", "gtFine"): shutil.copytree(root/"cityscapes"/k/"val", root/"cityscapes"/k/"test")
    return root

def test_3a_ctrl_c_during_test_evaluation_of_a_rerun_keeps_the_results(tiny_root, tmp_path, monkeypatch):
    _with_test_split(tiny_root)
    train(**tiny(tiny_root, tmp_path, method="self_training"))
    d = run_of(tmp_path, "self_training"); before = json.loads((d/"metrics.json").read_text())
    assert {"miou_test", "test", "pseudo_labels"} <= set(before)
    _interrupting_test_eval(monkeypatch)
    with pytest.raises(KeyboardInterrupt): train(**tiny(tiny_root, tmp_path, method="self_training"))
    assert json.loads((d/"metrics.json").read_text()) == before and run_finished(d)

def test_3b_rerun_with_analysis_off_keeps_pseudo_labels(tiny_root, tmp_path):
    train(**tiny(tiny_root, tmp_path, method="self_training"))
    train(**tiny(tiny_root, tmp_path, method="self_training", analysis=False))
    saved = json.loads((run_of(tmp_path, "self_training")/"metrics.json").read_text())
    assert "pseudo_labels" in saved and "pseudo_labels" in saved["kept_from_previous_evaluation"]

def test_3c_fresh_start_then_crash_leaves_no_finished_looking_folder(tiny_root, tmp_path):
    train(**tiny(tiny_root, tmp_path, iters=3))
    Trainer(**tiny(tiny_root, tmp_path, iters=2, ckpt_every=2, resume=False)).fit(stop_at=1)   # killed before its first checkpoint
    d = run_of(tmp_path)
    assert not (d/"metrics.json").exists() and not (d/"checkpoint.pt").exists() and run_finished(d) is None
    from cda_nb.report import collect_runs
    assert "source_only" not in collect_runs(tmp_path, "minicity")
    old = next((d/"superseded").iterdir())
    assert json.loads((old/"metrics.json").read_text())["iters"] == 3        # nothing finished is lost

# ---- 5. links, 7. temporaries ----------------------------------------------------------------------------------------

def test_5a_resume_does_not_write_through_a_planted_figure_link(tiny_root, tmp_path):
    Trainer(**tiny(tiny_root, tmp_path, iters=4, figures=True)).fit(stop_at=2)
    victim = tmp_path/"victim.txt"; victim.write_text("keep me")
    os.symlink(victim, run_of(tmp_path)/"figures"/"predictions.png")
    with pytest.raises(CDAError, match="symbolic link"): train(**tiny(tiny_root, tmp_path, iters=4, figures=True))
    assert victim.read_text() == "keep me"

def test_7_checkpoint_temporary_of_a_killed_write_is_removed(tiny_root, tmp_path):
    Trainer(**tiny(tiny_root, tmp_path, iters=4)).fit(stop_at=2)
    t = run_of(tmp_path)/".checkpoint.pt.x8k2m1.tmp"; shutil.copy(run_of(tmp_path)/"checkpoint.pt", t)
    train(**tiny(tiny_root, tmp_path, iters=4))
    assert not t.exists()

# ---- 8. named errors -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["config", "rng"])
def test_8_checkpoint_without_a_key_names_the_file(tiny_root, tmp_path, key):
    Trainer(**tiny(tiny_root, tmp_path, iters=4)).fit(stop_at=2)
    p = run_of(tmp_path)/"checkpoint.pt"; ck = torch.load(p, weights_only=True); del ck[key]; torch.save(ck, p)
    with pytest.raises(CDAError, match=f"checkpoint.pt cannot be resumed: it lacks \\['{key}'\\]"): Trainer(**tiny(tiny_root, tmp_path, iters=4))

def test_8_init_plain_state_dict_is_accepted(tiny_root, tmp_path):
    train(**tiny(tiny_root, tmp_path))
    torch.save(torch.load(run_of(tmp_path)/"checkpoint.pt", weights_only=True)["model"], tmp_path/"sd.pt")
    m = train(**tiny(tiny_root, tmp_path/"b", method="self_training", init=str(tmp_path/"sd.pt")))
    assert 0 <= m["miou"] <= 1

def test_8_cda_eval_truncated_config_names_the_file(tiny_root, tmp_path, capsys):
    train(**tiny(tiny_root, tmp_path)); (run_of(tmp_path)/"config.json").write_text('{"model": "sm')
    with pytest.raises(SystemExit) as e: run_cli_eval([str(run_of(tmp_path)), "--no-progress"])
    assert e.value.code == 2 and "config.json cannot be read" in capsys.readouterr().err

def test_8_meta_tensors_and_other_width_are_named(tiny_root, tmp_path):
    Trainer(**tiny(tiny_root, tmp_path, iters=4)).fit(stop_at=2)
    p = run_of(tmp_path)/"checkpoint.pt"; ck = torch.load(p, weights_only=True)
    torch.save({**ck, "model": {k: v.to("meta") for k, v in ck["model"].items()}}, p)
    with pytest.raises(CDAError, match="meta device"): Trainer(**tiny(tiny_root, tmp_path, iters=4))
    train(**tiny(tiny_root, tmp_path/"w8", model_kwargs={"width": 8}))
    with pytest.raises(CDAError, match="of another shape"):
        train(**tiny(tiny_root, tmp_path/"w", method="self_training", init=str(run_of(tmp_path/"w8")/"checkpoint.pt")))

@pytest.mark.parametrize("kw,msg", [(dict(seed=2**64), "2\\*\\*32 - 1"), (dict(tag="x" * 300), "at most 100")])
def test_8_seed_and_tag_bounds(kw, msg):
    with pytest.raises(CDAError, match=msg): make_config(**kw)

def test_8_out_dir_a_file(tiny_root, tmp_path):
    (tmp_path/"out").write_text("x")
    with pytest.raises(CDAError, match="is a file, not a folder \\(out_dir\\)"): train(**tiny(tiny_root, tmp_path/"out"))

def test_adapting_run_from_a_finished_source_without_weights_is_named(tiny_root, tmp_path):
    "A finished source-only folder whose checkpoint is gone (committed without weights) is named, never trained over unasked."
    train(**tiny(tiny_root, tmp_path, init=""))
    (run_of(tmp_path)/"checkpoint.pt").unlink(); before = (run_of(tmp_path)/"metrics.json").read_bytes()
    with pytest.raises(CDAError, match="is finished but has no checkpoint.pt"):
        train(**tiny(tiny_root, tmp_path, method="self_training", init="", init_iters=2))
    assert (run_of(tmp_path)/"metrics.json").read_bytes() == before
