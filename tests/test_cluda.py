"""dacs and cluda (nbs/methods/dacs.ipynb, nbs/methods/cluda.ipynb): rare-class sampling, feature distance, the pixel
InfoNCE against a brute-force reference, the Table 3 switches, exact resume after SIGKILL, and the shipped configs."""
import json, math
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from cda_nb.methods.dacs import RareClassChoice, rcs_probs, feature_distance, downscale_labels
from cda_nb.methods.cluda import pixel_infonce, cluda_contrast, PAIRS
from cda_nb.training.trainer import METHODS, Trainer, train
from test_no_target_labels import SMALL, _same, _weights

def _brute(z, y, tau, allowed):
    "Eq. 2 written as loops: anchor i, each positive p != i, the negatives j (y_j != y_i), pairs limited by `allowed`."
    out = []
    for i in range(len(z)):
        pos = [p for p in range(len(z)) if p != i and y[p] == y[i] and allowed(i, p)]
        neg = [j for j in range(len(z)) if y[j] != y[i] and allowed(i, j)]
        if not pos: out.append(None); continue
        s = lambda j: math.exp(float(z[i] @ z[j]) / tau)
        out.append(sum(-math.log(s(p) / (s(p) + sum(s(j) for j in neg))) for p in pos) / len(pos))
    return out

@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 12), st.sampled_from([0.1, 0.5, 1.0]), st.booleans())
def test_pixel_infonce_matches_brute_force(seed, n, tau, separate):
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(n, 5, generator=g, dtype=torch.float64), dim=1)
    y = torch.randint(0, 4, (n,), generator=g)
    grp = y >= 2                                                           # classes 2, 3 play "things"
    allowed = (grp[:, None] == grp[None]) if separate else None
    l, has = pixel_infonce(z, y, z, y, tau, allowed, torch.eye(n, dtype=torch.bool))
    ref = _brute(z, y.tolist(), tau, (lambda i, j: bool(grp[i] == grp[j])) if separate else (lambda i, j: True))
    for i, r in enumerate(ref):
        assert bool(has[i]) == (r is not None)
        if r is not None: assert abs(float(l[i]) - r) < 1e-9 * max(1, abs(r))

def test_cluda_contrast_caps_and_weights():
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(2, 8, 16, 16, generator=g), dim=1); y = torch.randint(0, 19, (2, 16, 16), generator=g)
    a = cluda_contrast(z, y, g=torch.Generator().manual_seed(1), max_anchors=50, max_keys=200)
    b = cluda_contrast(z, y, g=torch.Generator().manual_seed(1), max_anchors=50, max_keys=200)
    assert torch.equal(a, b) and a > 0                                                    # seeded
    assert torch.isclose(cluda_contrast(z, y, torch.full((2, 16, 16), 0.5), g=torch.Generator().manual_seed(1),
                                        max_anchors=50, max_keys=200), 0.5 * a)          # weights scale anchors
    assert cluda_contrast(z, torch.full((2, 16, 16), 255), g=g) == 0                       # nothing valid: no loss
    with pytest.raises(Exception, match="pairs"): cluda_contrast(z, y, pairs="ST")
    zz = z.clone().requires_grad_(); cluda_contrast(zz, y, pairs="stuff", g=g).backward()
    thing = torch.isin(y, torch.tensor([6, 7, 11, 12, 13, 14, 15, 16, 17, 18]))
    assert zz.grad.permute(0, 2, 3, 1)[thing].abs().sum() == 0                             # S-S: thing pixels untouched

def test_rcs_and_feature_distance():
    counts = np.array([[1000, 0, 5], [990, 10, 0], [1000, 0, 0]])
    ch = RareClassChoice(counts, 0.01, min_share=0.004, seed=3)
    draws = [ch._draw(i) for i in range(200)]
    assert {i for k, i in draws if k == 1} == {1} and {i for k, i in draws if k == 2} == {0}
    assert abs(rcs_probs(counts, 0.01).sum() - 1) < 1e-12
    y = torch.full((1, 8, 8), 13); y[0, :, :4] = 0
    f = torch.randn(1, 4, 2, 2); assert feature_distance(f, f, y) == 0
    assert torch.equal(downscale_labels(y, (2, 2)), torch.tensor([[[0, 13], [0, 13]]]))

@pytest.mark.parametrize("method,params", [("dacs", {}), ("dacs", {"teacher_bn": "eval", "rcs_temperature": 0.0, "lambda_fd": 0.0}),
                                           ("cluda", {}), ("cluda", {"gamma": False, "pairs": "all"}), ("cluda", {"pairs": "stuff"})])
def test_short_runs_log_their_terms(tiny_root, tmp_path, method, params):
    m = train(method=method, data_root=str(tiny_root), out_dir=str(tmp_path), method_params=params, analysis=False, **SMALL)
    log = [json.loads(l) for l in (tmp_path/"minicity"/method/"seed0/log.jsonl").read_text().splitlines() if '"loss"' in l]
    keys = {"ce_src", "ce_mix"} | ({"fd"} if params.get("lambda_fd", 1) else set()) | ({"cl_src", "cl_mix"} if method == "cluda" else set())
    assert keys <= set(log[0]) and all(math.isfinite(r["loss"]) for r in log)
    assert 0 <= m["miou"] <= 1

def test_cluda_needs_levels_or_feats(tiny_root, tmp_path):
    from cda_nb.core import CDAError
    with pytest.raises(CDAError, match="teacher_bn"): Trainer(method="dacs", data_root=str(tiny_root), out_dir=str(tmp_path),
                                                              method_params={"teacher_bn": "batch"}, **SMALL)
    tr = Trainer(method="cluda", data_root=str(tiny_root), out_dir=str(tmp_path), method_params={"features": "feats"}, **SMALL)
    assert tr.method.fusion is None and tr.method.parameters() == []

@pytest.mark.parametrize("method", ["dacs", "cluda"])
def test_sigkill_and_resume(tiny_root, tmp_path, method):
    "As tests/test_resume.py, for dacs and cluda: a run killed mid-way and resumed ends with the same weights, teacher and fusion module."
    from conftest import kill_and_resume
    ref, run = kill_and_resume(tiny_root, tmp_path, method)
    a = json.loads((ref/"metrics.json").read_text()); b = json.loads((run/"metrics.json").read_text())
    assert a["miou"] == b["miou"] and a["per_class_iou"] == b["per_class_iou"]
    assert _same(_weights(tmp_path/"ref", method), _weights(tmp_path/"killed", method))

@pytest.mark.parametrize("dataset", ["minicity", "gta5_cityscapes", "synthia_cityscapes"])
@pytest.mark.parametrize("method", ["dacs", "cluda"])
def test_shipped_configs(dataset, method):
    from conftest import ROOT
    from cda_nb.cli import load_run_config
    cfg = load_run_config(ROOT/"configs"/dataset/f"{method}.yaml")
    assert (cfg.method, cfg.dataset) == (method, dataset)
    if dataset != "minicity" and method == "cluda":
        assert (cfg.model, cfg.optimizer, cfg.lr, cfg.warmup_iters, cfg.iters, cfg.batch_size) == ("daformer", "adamw", 6e-5, 1500, 40000, 2)
        assert cfg.crop == (512, 512) and cfg.weight_decay == 0.01 and cfg.method_params["features"] == "feats"
