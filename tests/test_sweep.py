"""`cda-sweep` (issue 22): a tiny grid through submitit's local executor, then skipped; a run killed mid-way and finished
by the next sweep, and a run preempted (checkpointed, requeued), both bit-identical to uninterrupted runs; the MiniCity
plan lists exactly the committed runs, all finished.

Nothing here waits on timing: the run to interrupt is held at a step boundary by a hook (a `sitecustomize` on the
jobs' PYTHONPATH) until the test has sent its signal, so it can neither finish nor be interrupted elsewhere."""
import json, os, shutil, signal, subprocess, sys, threading, time
from pathlib import Path
import pytest, torch, yaml
from conftest import ROOT, write_tiny
from cda_nb.core import read_jsonl
from cda_nb.experiments import load_experiments
from cda_nb.sweep import sweep, plan, cda_sweep

RUNS, ITERS, HOLD = ["source_only", "dacs", "adabn"], 16, 7        # checkpoints every 4 steps: the last before step 7 is 4

HOOK = '''
import os, sys
_hold = os.environ.get("CDA_TEST_HOLD")                # "<run>:<step>:<marker>": hold that run's training process in step <step>
_argv = getattr(sys, "orig_argv", [])
if _hold and "cda_nb.sweep" in _argv and "run" in _argv and _hold.split(":")[0] in _argv:
    _run, _step, _marker = _hold.split(":", 2)
    import cda_nb.training.trainer
    from cda_nb.methods.base import METHODS
    _cls = METHODS[_run]; _orig = _cls.before_step
    def before_step(self, step):
        _orig(self, step)
        if step + 1 != int(_step) or os.path.exists(_marker): return      # once: not again when the run resumes
        import json, signal, time
        with open(_marker + ".tmp", "w") as f: json.dump({"pid": os.getpid(), "ppid": os.getppid(), "step": step + 1}, f)
        os.replace(_marker + ".tmp", _marker)
        req, t = getattr(signal.getsignal(signal.SIGUSR1), "__self__", None), time.time()   # the trainer's PreemptRequest
        while time.time() - t < 300 and getattr(req, "signum", None) is None: time.sleep(0.02)
    _cls.before_step = before_step
'''

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    write_tiny(d/"data")
    (d/"hook").mkdir(); (d/"hook/sitecustomize.py").write_text(HOOK)
    return d

def _grid(base, name, runs=RUNS):
    "An experiments file of tiny runs whose folders go to `base/name/runs`."
    train = dict(data_root=str(base/"data"), out_dir=str(base/name/"runs"), iters=ITERS, init_iters=ITERS, batch_size=2, crop=[48, 48],
                 log_every=1, ckpt_every=4, progress=False, figures=False, analysis=False, eval_batch_size=4)
    f = base/name/"grid.yaml"; f.parent.mkdir()
    f.write_text(yaml.safe_dump({"benchmark": "tiny", "train": train, "seeds": [0], "runs": [{"run": r} for r in runs]}))
    return load_experiments(f), base/name

def _run(d, key): return d/"runs/minicity"/key/"seed0"

def _same(a, b):
    "Run folders `a` and `b` end the same: metrics, weights, and a log of every step once."
    ma, mb = (json.loads((x/"metrics.json").read_text()) for x in (a, b))
    assert (ma["miou"], ma["per_class_iou"]) == (mb["miou"], mb["per_class_iou"])
    wa, wb = (torch.load(x/"checkpoint.pt", weights_only=True)["model"] for x in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["step"] for r in read_jsonl(b/"log.jsonl") if "loss" in r] == list(range(1, ITERS + 1))

def _hold(monkeypatch, base, d, run, action):
    "Hold `run`'s training process in step HOLD; once it is held, `action(pids)` (in a thread)."
    marker = d/"held.json"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(base/"hook"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("CDA_TEST_HOLD", f"{run}:{HOLD}:{marker}")
    def go():
        t = time.time()
        while not marker.exists() and time.time() - t < 300: time.sleep(0.05)
        if marker.exists(): action(json.loads(marker.read_text()))
    th = threading.Thread(target=go, daemon=True); th.start()
    return th

@pytest.fixture(scope="module")
def ref(base):
    "The grid swept once (the uninterrupted runs), then again."
    exp, d = _grid(base, "ref")
    rep = sweep(exp, folder=d/"logs", max_parallel=2, log=lambda s: None)
    jobs = len(list((d/"logs").glob("*_submitted.pkl")))
    rep2 = sweep(exp, folder=d/"logs", max_parallel=2, log=lambda s: None)
    return exp, d, rep, rep2, jobs, len(list((d/"logs").glob("*_submitted.pkl")))

def test_a_grid_runs_through_the_local_executor_and_a_second_sweep_skips_it(ref):
    exp, d, rep, rep2, jobs, jobs2 = ref
    assert [(r["name"], r["status"], r["requeues"]) for r in rep] == [(f"{k}/seed0", "done", 0) for k in RUNS]
    assert [r.wave for r in plan(exp)] == [0, 1, 1]
    for k in ("dacs", "adabn"):                                   # wave 1 started from wave 0's checkpoint
        assert json.loads((_run(d, k)/"config.json").read_text())["init_from"] == str(_run(d, "source_only")/"checkpoint.pt")
    assert [r["status"] for r in rep2] == ["skipped"] * 3 and (jobs, jobs2) == (3, 3)   # nothing submitted the second time

def test_a_killed_run_is_failed_then_resumed_by_the_next_sweep_bit_identical(ref, base, monkeypatch, capsys):
    exp, d = _grid(base, "killed")
    th = _hold(monkeypatch, base, d, "source_only", lambda p: os.kill(p["pid"], signal.SIGKILL))
    with pytest.raises(SystemExit) as e: cda_sweep([str(exp.path), "--folder", str(d/"logs"), "--max-parallel", "2"])
    th.join(5)
    assert e.value.code == 1                                      # a run is not finished: non-zero exit
    out = capsys.readouterr().out.splitlines()
    failed = next(l for l in out if l.startswith("failed") and " log " in l)     # the report's line
    assert "source_only/seed0" in failed and "status -9" in failed
    assert Path(failed.rsplit("log ", 1)[1]).is_file()            # the job's log, named
    assert sum(l.startswith("blocked") and "source_only/seed0 is not finished" in l for l in out) == 2        # its dependents did not start without it
    assert torch.load(_run(d, "source_only")/"checkpoint.pt", weights_only=True)["step"] == 4
    assert [r.status for r in plan(exp)] == ["resume", "new", "new"]
    rep = sweep(exp, folder=d/"logs", max_parallel=2, log=lambda s: None)
    assert [r["status"] for r in rep] == ["done"] * 3
    for k in RUNS: _same(_run(ref[1], k), _run(d, k))

def test_a_preempted_run_is_checkpointed_requeued_and_ends_bit_identical(ref, base, monkeypatch):
    exp, d = _grid(base, "preempted")
    shutil.copytree(_run(ref[1], "source_only"), _run(d, "source_only"))           # wave 0 finished already
    th = _hold(monkeypatch, base, d, "dacs", lambda p: os.kill(p["ppid"], signal.SIGUSR2))   # submitit's signal, to the job
    rep = sweep(exp, folder=d/"logs", log=lambda s: None)
    th.join(5)
    assert [(r["name"], r["status"], r["requeues"]) for r in rep] == [("source_only/seed0", "skipped", 0), ("dacs/seed0", "done", 1),
                                                                       ("adabn/seed0", "done", 0)]
    dacs = next(r for r in rep if r["name"] == "dacs/seed0")
    err, out = Path(dacs["log"]).read_text(), Path(dacs["log"]).with_suffix(".out").read_text()
    assert f"preempted at step {HOLD} " in err and "run the same command again to resume" in err   # the checkpoint of that step
    assert "attempt 1" in out and "attempt 2" in out                # requeued by submitit: the same job again
    for k in ("dacs", "adabn"): _same(_run(ref[1], k), _run(d, k))

def test_dry_run_lists_exactly_the_committed_minicity_runs_as_finished():
    logs = ROOT/"runs/_sweep/minicity"; existed = logs.exists()
    exe = Path(sys.executable).parent/"cda-sweep"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-c", "from cda_nb.sweep import cda_sweep; cda_sweep()"]
    r = subprocess.run(cmd + ["experiments/minicity.yaml", "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    *lines, counts = r.stdout.strip().splitlines()
    committed = {f"{m.parent.parent.name}/{m.parent.name}" for m in (ROOT/"reports/runs/minicity").glob("*/seed*/metrics.json")}
    rows = [l.split() for l in lines]
    assert len(rows) == len(committed) == 107
    assert {n for _, n, _ in rows} == committed and {s for s, _, _ in rows} == {"finished"}
    assert all(f == f"reports/runs/minicity/{n.replace('/', '/')}" for _, n, f in rows)
    assert counts.startswith("107 runs in 2 waves: 107 finished, 0 resume, 0 new")
    assert logs.exists() == existed                               # nothing submitted, no log folder made
