"""HRDA (nbs/03c_hrda.ipynb) under dacs and multi-resolution cluda (eqs. 7-8, nbs/methods/cluda.ipynb), on CPU with tiny
crops: the three `mr_cl` rows of Table 4b, gradients into the scale attention and delta, exact resume after SIGKILL,
no target labels, the error messages and the shipped configs."""
import json, math
import pytest
import torch
from cda_nb.hrda import HRDA, MultiResOutput
from cda_nb.training.trainer import Trainer, train
from test_no_target_labels import SMALL, _same, _weights

HR = dict(SMALL, model="hrda", model_kwargs={"base": "small", "crop": [32, 32]})

def _log(tmp_path, method):
    return [json.loads(l) for l in (tmp_path/"minicity"/method/"seed0/log.jsonl").read_text().splitlines() if '"loss"' in l]

@pytest.mark.parametrize("method,params", [("dacs", {}), ("cluda", {}), ("cluda", {"mr_cl": "sum"}), ("cluda", {"mr_cl": "lr"})])
def test_short_hrda_runs(tiny_root, tmp_path, method, params):
    m = train(method=method, data_root=str(tiny_root), out_dir=str(tmp_path), method_params=params, analysis=False, **HR)
    log = _log(tmp_path, method)
    assert all(math.isfinite(r["loss"]) for r in log) and 0 <= m["miou"] <= 1
    assert ("mr_delta" in log[0]) == (method == "cluda" and params.get("mr_cl", "weighted") == "weighted")
    if method == "cluda": assert all(r["cl_src"] > 0 for r in log)

def test_hrda_step_uses_both_scales(tiny_root, tmp_path):
    "One cluda step on an HRDA model: the outputs are multi-resolution, the detail box is aligned, and every learned part gets a gradient."
    tr = Trainer(method="cluda", data_root=str(tiny_root), out_dir=str(tmp_path), **HR)
    assert isinstance(tr.model, HRDA) and tr.method.delta is not None
    seen = {}
    orig = tr.method.step_outputs
    def spy(src, tgt, step):
        terms, o = orig(src, tgt, step); seen.update(o); return terms, o
    tr.method.step_outputs = spy
    before = {n: p.detach().clone() for n, p in [("att", tr.model.attention[0].weight), ("delta", tr.method.delta[0].weight)]}
    tr.fit(stop_at=1)
    o = seen["out_s"]
    assert isinstance(o, MultiResOutput) and all(v % 16 == 0 for v in o.box) and (o.box[1] - o.box[0], o.box[3] - o.box[2]) == (32, 32)
    assert not torch.equal(before["att"], tr.model.attention[0].weight) and not torch.equal(before["delta"], tr.method.delta[0].weight)

def test_hrda_sigkill_and_resume(tiny_root, tmp_path):
    "Detail crops come from seeded generators: a killed and resumed multi-resolution cluda run ends where an uninterrupted one does."
    from conftest import kill_and_resume
    ref, run = kill_and_resume(tiny_root, tmp_path, "cluda", extra="model='hrda', model_kwargs={'base': 'small', 'crop': [32, 32]}, ")
    a = json.loads((ref/"metrics.json").read_text()); b = json.loads((run/"metrics.json").read_text())
    assert a["miou"] == b["miou"] and a["per_class_iou"] == b["per_class_iou"]
    assert _same(_weights(tmp_path/"ref", "cluda"), _weights(tmp_path/"killed", "cluda"))

def test_hrda_errors(tiny_root, tmp_path):
    from cda_nb.core import CDAError
    with pytest.raises(CDAError, match="multiple of 16"):
        train(method="dacs", data_root=str(tiny_root), out_dir=str(tmp_path), **dict(HR, model_kwargs={"base": "small", "crop": [24, 24]}))
    with pytest.raises(CDAError, match="mr_cl"):
        Trainer(method="cluda", data_root=str(tiny_root), out_dir=str(tmp_path/"b"), method_params={"mr_cl": "hr"}, **HR)

@pytest.mark.parametrize("dataset", ["gta5_cityscapes", "synthia_cityscapes"])
def test_hrda_configs(dataset):
    from conftest import ROOT
    from cda_nb.cli import load_run_config
    cfg = load_run_config(ROOT/"configs"/dataset/"cluda_hrda.yaml")
    assert (cfg.method, cfg.model, cfg.crop, cfg.scale) == ("cluda", "hrda", (1024, 1024), (1.0, 1.0))
    mk = cfg.model_kwargs
    assert (mk["base"], mk["scale"], tuple(mk["crop"]), mk["hr_loss_weight"]) == ("daformer", 0.5, (512, 512), 0.1)
    net = HRDA(base="daformer", base_kwargs={"variant": "b0", "embed_dim": 32}, crop=(64, 64))    # the same wrapper, tiny
    net.eval()
    with torch.no_grad(): assert net(torch.rand(1, 3, 128, 256)).logits.shape == (1, 19, 32, 64)

def test_source_only_hrda_trains_detail_and_resumes(tiny_root, tmp_path):
    "source_only on model hrda: HRDA eq. 7 (the detail path gets a gradient), crops reseeded every step, so a killed run resumes exactly."
    tr = Trainer(method="source_only", data_root=str(tiny_root), out_dir=str(tmp_path/"a"), init="none", **HR)
    w = tr.model.attention[0].weight.detach().clone(); tr.fit(stop_at=1)
    assert not torch.equal(w, tr.model.attention[0].weight)
    from conftest import kill_and_resume
    ref, run = kill_and_resume(tiny_root, tmp_path, "source_only", extra="model='hrda', model_kwargs={'base': 'small', 'crop': [32, 32]}, init='none', ")
    a = json.loads((ref/"metrics.json").read_text()); b = json.loads((run/"metrics.json").read_text())
    assert a["miou"] == b["miou"] and _same(_weights(tmp_path/"ref", "source_only"), _weights(tmp_path/"killed", "source_only"))

@pytest.mark.parametrize("method", ["dacs", "cluda"])
def test_hrda_target_labels_never_read(method, tiny_root, tmp_path):
    "tests/test_no_target_labels.py on `model: hrda` (its sliding-window teacher and detail crops read no target label)."
    from test_no_target_labels import _corrupt
    m1 = train(method=method, data_root=str(tiny_root), out_dir=str(tmp_path/"a"), analysis=False, **HR)
    _corrupt(tiny_root, garbage_bytes=True)
    m2 = train(method=method, data_root=str(tiny_root), out_dir=str(tmp_path/"b"), analysis=False, **HR)
    assert m1["miou"] == m2["miou"] and _same(_weights(tmp_path/"a", method), _weights(tmp_path/"b", method))
