"""Experiment tracking (`training/08_tracking`): a tiny MiniCity run with `tensorboard=True, mlflow=True`, read back with
TensorBoard's and MLflow's own readers; both off by default; the switches are plumbing, not a run's identity; a resumed
run continues the same MLflow run."""
import os, sys
from unittest import mock
import pytest
from cda_nb.core import CDAError, read_jsonl

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
mlflow_tracking = pytest.importorskip("mlflow.tracking")

SMALL = dict(method="bcl", init="none", iters=4, batch_size=2, crop=(48, 48), log_every=1, ckpt_every=2, eval_every=2,
             progress=False, analysis=False, eval_batch_size=4)
FIGURES = {"predictions.png", "curves.png", "per_class_iou.png"}

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    "A tiny MiniCity instance with a labelled test split (so that the final metrics have val and test)."
    from cda_nb.minicity import make_minicity
    return make_minicity(tmp_path_factory.mktemp("mc")/"tiny", seed=0, n_source=8, n_train=6, n_val=2, n_test=2, progress=False)

@pytest.fixture(scope="module")
def tracked(tiny, tmp_path_factory):
    "(run folder, metrics) of a 4-step bcl run (xi_norm/<class> among its scalars) with both trackers on."
    from cda_nb.training.trainer import train
    out = tmp_path_factory.mktemp("tracked")
    m = train(data_root=str(tiny), out_dir=str(out), tensorboard=True, mlflow=True, **SMALL)
    return out/"minicity/bcl/seed0", m

def _tb(d): return event_accumulator.EventAccumulator(str(d/"tensorboard")).Reload()

def _ml(d):
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")           # MLflow 3: the local file store is opt-in
    return mlflow_tracking.MlflowClient(tracking_uri=(d/"mlruns").resolve().as_uri()), (d/"mlflow_run_id.txt").read_text().strip()

def _numbers(log):
    "Every number-valued key of a log.jsonl (what the trackers must receive), the step aside."
    return {k for r in log for k, v in r.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}

def test_tensorboard_holds_losses_lr_method_scalars_miou_and_figures(tracked):
    d, m = tracked
    log, ea = read_jsonl(d/"log.jsonl"), _tb(d)
    tags = set(ea.Tags()["scalars"])
    assert _numbers(log) <= tags, _numbers(log) - tags               # every loss term, lr, timings, method scalars
    assert {"loss", "ce_src", "ce_tgt", "fcl", "bcl", "lr"} <= tags and any(t.startswith("xi_norm/") for t in tags)
    train_recs = [r for r in log if "loss" in r]
    assert [(e.step, e.value) for e in ea.Scalars("loss")] == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in train_recs]
    assert [(e.step, e.value) for e in ea.Scalars("lr")] == [(r["step"], pytest.approx(r["lr"], rel=1e-6)) for r in train_recs]
    val = [(e.step, e.value) for e in ea.Scalars("val_miou")]          # the periodic eval (step 2), then the final one (step 4)
    assert val == [(2, pytest.approx(log[[i for i, r in enumerate(log) if "val_miou" in r][0]]["val_miou"], rel=1e-6)),
                   (4, pytest.approx(m["miou"], rel=1e-6))]
    assert ea.Scalars("test_miou")[-1].value == pytest.approx(m["miou_test"], rel=1e-6)
    c, v = next((c, v) for c, v in m["per_class_iou"].items() if v is not None)
    assert ea.Scalars(f"val_iou/{c}")[-1].value == pytest.approx(v, rel=1e-6)
    assert {f"figures/{f}" for f in FIGURES} <= set(ea.Tags()["images"])

def test_mlflow_holds_losses_final_metrics_and_figures(tracked):
    d, m = tracked
    client, rid = _ml(d)
    run = client.get_run(rid)
    assert run.info.status == "FINISHED" and run.info.run_name == "minicity/bcl/seed0"
    log = [r for r in read_jsonl(d/"log.jsonl") if "loss" in r]
    for key in ("loss", "ce_tgt", "bcl", "lr"):
        assert [(h.step, h.value) for h in client.get_metric_history(rid, key)] == [(r["step"], r[key]) for r in log]
    assert _numbers(read_jsonl(d/"log.jsonl")) <= set(run.data.metrics)
    assert any(k.startswith("xi_norm/") for k in run.data.metrics)
    assert run.data.metrics["val_miou"] == m["miou"] and run.data.metrics["test_miou"] == m["miou_test"]
    per = {c: v for c, v in m["per_class_iou"].items() if v is not None}
    assert per and all(run.data.metrics[f"val_iou/{c}"] == v for c, v in per.items())
    assert all(run.data.metrics[f"test_iou/{c}"] == v for c, v in m["test"]["per_class_iou"].items() if v is not None)
    assert [h.step for h in client.get_metric_history(rid, "val_miou")] == [2, 4]
    assert {os.path.basename(a.path) for a in client.list_artifacts(rid, "figures")} == FIGURES

def test_off_by_default(tiny, tmp_path):
    from cda_nb.training.trainer import train, TrainConfig
    assert (TrainConfig().tensorboard, TrainConfig().mlflow) == (False, False)
    train(data_root=str(tiny), out_dir=str(tmp_path), **{**SMALL, "method": "source_only", "iters": 2, "eval_every": 0})
    d = tmp_path/"minicity/source_only/seed0"
    assert (d/"metrics.json").is_file()
    assert not any((d/n).exists() for n in ("tensorboard", "mlruns", "mlflow_run_id.txt"))

def test_switches_are_plumbing_not_identity():
    from cda_nb.training.starts import source_identity, config_diff
    from cda_nb.training.config import make_config
    on, off = make_config(tensorboard=True, mlflow=True), make_config()
    assert source_identity(on) == source_identity(off)
    assert not {"tensorboard", "mlflow"} & set(source_identity(on))
    assert config_diff({**source_identity(off)}, source_identity(on)) == {}   # a committed run still fits

def test_cli_syntax_switches_them_on():
    from cda_nb.cli import load_run_config
    c = load_run_config(None, ["tensorboard=true", "mlflow=true"])
    assert (c.tensorboard, c.mlflow) == (True, True)

def test_missing_library_names_the_fix(tiny, tmp_path):
    from cda_nb.training.trainer import Trainer
    with mock.patch.dict(sys.modules, {"mlflow": None, "mlflow.tracking": None}):
        with pytest.raises(CDAError, match="pip install mlflow-skinny"):
            Trainer(data_root=str(tiny), out_dir=str(tmp_path), mlflow=True, **{**SMALL, "method": "source_only"})

def test_resume_continues_the_same_mlflow_run(tiny, tmp_path):
    from cda_nb.training.trainer import Trainer
    params = dict(data_root=str(tiny), out_dir=str(tmp_path), tensorboard=True, mlflow=True, **SMALL)
    assert Trainer(**params).fit(stop_at=2) is None                   # stopped after the checkpoint at step 2, as a killed run
    d = tmp_path/"minicity/bcl/seed0"
    client, first = _ml(d)
    assert client.get_run(first).info.status == "RUNNING"
    tr = Trainer(**params); assert tr.step == 2                       # resumed from the checkpoint
    tr.fit()
    client, again = _ml(d)
    assert again == first
    assert [h.step for h in client.get_metric_history(first, "loss")] == [1, 2, 3, 4]
    assert client.get_run(first).info.status == "FINISHED"
    assert len(client.search_runs([client.get_run(first).info.experiment_id])) == 1
    assert len(list((d/"tensorboard").iterdir())) == 2                # a new event file per session, in one folder
    assert [e.step for e in _tb(d).Scalars("loss")] == [1, 2, 3, 4]
