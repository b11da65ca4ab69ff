"""The full-scale path on a CPU: device placement of every method (no GPU needed), loader and precision defaults,
checkpoints that stay small, and the reduced full-scale rehearsal (true image sizes, the small network)."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
import torch
from cda_nb.devcheck import DeviceCheck
from cda_nb.training.trainer import METHODS, Trainer

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(iters=2, init_iters=2, batch_size=2, crop=(48, 48), log_every=100, ckpt_every=100, progress=False, figures=False,
            eval_batch_size=4, analysis=False, aug_params={"blur": 1.0})   # blur on: the step-0 CUDA crash of four paper configs

@pytest.mark.parametrize("method", sorted(m for m in METHODS if not m.startswith("_")))
def test_every_tensor_follows_the_device(method, tiny_root, tmp_path):
    "Setup, two training steps and the evaluation of every method: no op mixes a host-born tensor with the run's tensors."
    kw = dict(TINY, data_root=str(tiny_root), out_dir=str(tmp_path))
    if METHODS[method].default_init == "source_only": Trainer(method="source_only", **kw).fit()
    with DeviceCheck() as dc:
        t = dc.watch(Trainer(method=method, **kw))
        t.fit()
    assert dc.problems == [], "\n".join(sorted(set(dc.problems)))


@pytest.mark.parametrize("method", sorted(m for m in METHODS if not m.startswith("_")))
def test_at_most_four_syncs_per_step(method, tiny_root, tmp_path):
    """A non-logging step of every method makes at most 4 host-device synchronisations on the accelerator's code path
    (DeviceCheck takes it on a CPU: core.host_forms). sdca with diagonal statistics, as its paper configs: a full
    covariance keeps its per-class loop (its one-pass form would cost a DxD product per pixel and class)."""
    kw = dict(TINY, iters=20, data_root=str(tiny_root), out_dir=str(tmp_path))   # step 3: no refresh, teacher copy or analysis
    if method == "sdca": kw["method_params"] = {"diagonal": True}
    with DeviceCheck() as dc:
        t = dc.watch(Trainer(method=method, **kw)); t.fit(stop_at=4)
    assert dc.step_syncs(3) <= 4, "\n".join(f"{v} {k}" for k, v in sorted(dc.sites[3].items()))


def test_static_labels_beside_the_checkpoint(tiny_root, tmp_path):
    "self_training's labels live in a sidecar written once per refresh; the checkpoint refers to it; resume reads it back."
    from cda_nb.training.checkpoints import checkpoint_bytes
    from cda_nb.core import CDAError
    kw = dict(TINY, iters=6, ckpt_every=2, data_root=str(tiny_root), out_dir=str(tmp_path))
    Trainer(method="source_only", **kw).fit()
    kw["method_params"] = {"refresh_every": 4}
    t = Trainer(method="self_training", **kw); t.fit(stop_at=2)          # refreshed at 0, checkpoint at 2 writes the labels
    d = t.dir
    v0 = d/"checkpoint-static_labels-v0.pt"
    mtime, size = v0.stat().st_mtime_ns, v0.stat().st_size
    t.fit(stop_at=4)                                                        # checkpoint at 4: no refresh since, labels not rewritten
    assert v0.stat().st_mtime_ns == mtime and v0.stat().st_size == size
    ck = torch.load(d/"checkpoint.pt", weights_only=True)
    ref = ck["method"]["store"]["labels"]
    assert ref["__sidecar__"] == "static_labels" and ref["version"] == 0 and (d/ref["file"]).is_file()
    assert sorted(p.name for p in d.glob("checkpoint-*")) == ["checkpoint-static_labels-v0.pt"]
    t2 = Trainer(method="self_training", **kw)                            # resume: labels read back from the sidecar
    assert t2.step == 4 and set(t2.method.store.labels) == set(t.method.store.labels)
    assert all(torch.equal(t2.method.store.labels[i], t.method.store.labels[i]) for i in t.method.store.labels)
    t2.fit()                                                                 # refresh at 4: a new version replaces the old
    assert sorted(p.name for p in d.glob("checkpoint-*")) == ["checkpoint-static_labels-v4.pt"]
    assert checkpoint_bytes(d) == (d/"checkpoint.pt").stat().st_size + (d/"checkpoint-static_labels-v4.pt").stat().st_size
    assert (d/"checkpoint.pt").stat().st_size < 2 * sum(p.numel() * p.element_size() for p in t2.model.state_dict().values()) + 10**5
    (d/"checkpoint-static_labels-v4.pt").unlink()
    with pytest.raises(CDAError, match="checkpoint-static_labels-v4.pt"):
        Trainer(method="self_training", **kw)


def test_sdca_statistics_not_recomputed_on_resume(tiny_root, tmp_path, monkeypatch):
    "sdca's class statistics over the source set (Alg. 1, line 2) are computed once, before step 0, and come back from the checkpoint on a resume."
    from cda_nb.methods.sdca import SDCA
    calls = []
    orig = SDCA.init_statistics
    monkeypatch.setattr(SDCA, "init_statistics", lambda self: (calls.append(self.run._run.step), orig(self))[1])
    kw = dict(TINY, iters=4, ckpt_every=2, data_root=str(tiny_root), out_dir=str(tmp_path))
    Trainer(method="source_only", **kw).fit()
    t = Trainer(method="sdca", **kw)
    assert calls == [] and int(t.method.feat_stats.count.sum()) == 0     # nothing in the constructor
    t.fit(stop_at=2)
    assert calls == [0] and int(t.method.feat_stats.count.sum()) > 0
    t2 = Trainer(method="sdca", **kw); t2.fit()
    assert calls == [0] and t2.step == 4                                  # the resume read them from the checkpoint


def test_source_model_depends_on_settings_not_launch_order(tiny_root, tmp_path, capsys):
    "Two adapting runs whose source-only settings differ never share a source model; each gets one trained with exactly its settings."
    import json
    from cda_nb.training.trainer import source_config, source_identity, config_diff
    kw = dict(TINY, data_root=str(tiny_root), out_dir=str(tmp_path))
    a = Trainer(method="self_training", **kw)                                   # trains source_only/ with crop 48
    b = Trainer(method="self_training", **{**kw, "crop": (40, 40), "tag": "c40"})  # another crop: its own source model
    assert a.init_from != b.init_from and "source_only-s" in str(b.init_from)
    assert "trained with other settings" in capsys.readouterr().out
    for t in (a, b):
        stored = json.loads((Path(t.init_from).parent/"config.json").read_text())
        assert config_diff(stored, source_identity(source_config(t.cfg))) == {}
    c = Trainer(method="self_training", **{**kw, "crop": (40, 40), "tag": "again"})   # found again, not retrained
    assert c.init_from == b.init_from

def test_resume_never_retrains_a_deleted_source_run(tiny_root, tmp_path):
    "A resume takes the start its config.json recorded: a deleted source run is named, never silently retrained."
    import shutil
    from cda_nb.core import CDAError
    kw = dict(TINY, iters=4, ckpt_every=2, data_root=str(tiny_root), out_dir=str(tmp_path))
    t = Trainer(method="self_training", **kw); t.fit(stop_at=2)
    src = Path(t.init_from).parent
    shutil.copytree(src, tmp_path/"kept"); shutil.rmtree(src)
    with pytest.raises(CDAError, match="restore that checkpoint.pt"):
        Trainer(method="self_training", **kw)
    assert not src.exists()                                                     # nothing retrained
    shutil.copytree(tmp_path/"kept", src)
    t2 = Trainer(method="self_training", **kw)                                  # restored: the resume goes on
    assert t2.step == 2 and t2.init_from == t.init_from

def test_committed_source_run_counts_absent_fields_as_defaults(tmp_path):
    "A committed config.json written before a field existed (warmup_iters) still identifies its run."
    import json
    from cda_nb.training import trainer as trainers
    from cda_nb.training.trainer import make_config, source_config, source_identity, committed_source_run
    cfg = make_config(method="bcl")
    d = tmp_path/"minicity/source_only/seed0"; d.mkdir(parents=True)
    stored = {**source_identity(source_config(cfg)), "minicity_version": trainers.MINICITY_VERSION}
    stored.pop("warmup_iters")
    (d/"config.json").write_text(json.dumps(stored))
    for f in ("metrics.json", "checkpoint.pt"): (d/f).write_text("{}")
    from cda_nb.core import write_finished
    write_finished(d)                                                       # finished by its marker (issue 23)
    assert committed_source_run(cfg, root=tmp_path) == d
    stored["lr"] = 0.5; (d/"config.json").write_text(json.dumps(stored))
    assert committed_source_run(cfg, root=tmp_path) is None


def test_compile_in_place(tiny_root, tmp_path):
    "compile='eager' (TorchDynamo tracing, no compiler): the same losses as the plain run, checkpoint keys unchanged, the teacher a plain copy."
    from cda_nb.core import CDAError
    kw = dict(TINY, iters=3, ckpt_every=2, log_every=1, data_root=str(tiny_root), out_dir=str(tmp_path), aug_params={})
    Trainer(method="source_only", **kw).fit()
    runs = {}
    for mode in ("", "eager"):
        t = Trainer(method="dacs", tag=mode or "plain", compile=mode, **kw); t.fit()
        runs[mode] = [json.loads(l)["loss"] for l in open(t.dir/"log.jsonl") if '"loss"' in l]
        keys = set(torch.load(t.dir/"checkpoint.pt", weights_only=True)["model"])
        assert keys == set(t.model.state_dict()) and not any("_orig_mod" in k for k in keys)
        assert (t.model._compiled_call_impl is not None) == bool(mode) and t.method.teacher._compiled_call_impl is None
    assert runs["eager"] == pytest.approx(runs[""], rel=1e-5)
    with pytest.raises(CDAError, match="compile"): Trainer(method="dacs", compile="fast", **kw)
