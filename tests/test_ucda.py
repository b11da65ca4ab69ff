"""ucda (nbs/methods/ucda.ipynb): eq. 1 against a per-pair reference, anchor sampling, window prototypes, label
expansion, and short runs: the teacher copy, the optimised head, no target labels, exact resume."""
import json
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from cda_nb.methods.ucda import (pair_contrast, sample_per_class, sample_memory, batch_thresholds, WindowPrototypes, expand_labels, adaptive_labels,
                                 multiscale_probs, UCDA)
from cda_nb.training.trainer import METHODS, Trainer, train
from test_no_target_labels import SMALL, _corrupt, _same, _weights

def _reference(anchors, labels, keys, key_labels, tau, w):
    "Eq. 1 pair by pair: mean over an anchor's positives of -log(e^p / (e^p + sum_neg w e^n)), then over anchors."
    a, k = F.normalize(anchors.double(), dim=1), F.normalize(keys.double(), dim=1)
    per_anchor = []
    for i in range(len(a)):
        s = (k @ a[i]) / tau
        pos, neg = s[key_labels == labels[i]], s[key_labels != labels[i]] + w[key_labels != labels[i]].double().log()
        if len(pos) == 0: continue
        per_anchor.append(torch.stack([-(p - torch.logsumexp(torch.cat([p[None], neg]), 0)) for p in pos]).mean())
    return torch.stack(per_anchor).mean() if per_anchor else torch.tensor(0.0, dtype=torch.float64)

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 12), m=st.integers(1, 20), tau=st.floats(0.05, 1.0))
def test_pair_contrast_matches_the_per_pair_reference(seed, n, m, tau):
    g = torch.Generator().manual_seed(seed)
    a, k = torch.randn(n, 8, generator=g), torch.randn(m, 8, generator=g)
    la, lk = torch.randint(0, 4, (n,), generator=g), torch.randint(0, 4, (m,), generator=g)
    w = torch.rand(m, generator=g) * 5 + 0.1
    assert torch.allclose(pair_contrast(a, la, k, lk, tau).double(), _reference(a, la, k, lk, tau, torch.ones(m)), atol=1e-4, rtol=1e-4)
    assert torch.allclose(pair_contrast(a, la, k, lk, tau, key_weights=w).double(), _reference(a, la, k, lk, tau, w), atol=1e-4, rtol=1e-4)

@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), k=st.integers(1, 6))
def test_anchor_sampling_is_capped_per_class(seed, k):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 5, (60,), generator=g); y[torch.rand(60, generator=g) < 0.2] = 255
    idx = sample_per_class(y, k, g)
    assert len(set(idx.tolist())) == len(idx)
    counts = torch.bincount(y[idx], minlength=5); avail = torch.bincount(y[y != 255], minlength=5)
    assert torch.equal(counts, avail.clamp(max=k))                    # exactly min(k, available) of every class

def test_sampled_memory_sum_is_unbiased():
    "The weighted sum over sampled keys (eq. 1's negatives) estimates the sum over the whole memory without bias."
    from cda_nb.prototypes import ClassQueue
    g = torch.Generator().manual_seed(0)
    q = ClassQueue(3, 4, size=20); q.push(torch.randn(33, 4, generator=g), torch.tensor([0] * 20 + [1] * 7 + [2] * 6))
    v = F.normalize(torch.randn(4, generator=g), dim=0)
    f, y = q.get(); full = torch.exp(F.normalize(f, dim=1) @ v / 0.5).sum()
    est = []
    for _ in range(3000):
        kf, ky, kw = sample_memory(q, 3, g)
        est.append((kw * torch.exp(F.normalize(kf, dim=1) @ v / 0.5)).sum())
    assert abs(torch.stack(est).mean() / full - 1) < 0.02

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(0, 300), p=st.floats(0.01, 1.0), cap=st.floats(0.1, 1.0))
def test_batch_thresholds_equal_class_thresholds(seed, n, p, cap):
    from cda_nb.expansion import class_thresholds
    g = torch.Generator().manual_seed(seed)
    conf = (torch.rand(n, generator=g) * 20).round() / 20                  # ties included
    pred = torch.randint(0, 7, (n,), generator=g)
    assert torch.equal(batch_thresholds(conf, pred, 8, p, cap), class_thresholds(conf, pred, 8, p, cap))

def test_window_prototypes_follow_complete_windows():
    "Window of 3 steps: before the first is complete, the partial sums; then always the last complete window."
    wp, g = WindowPrototypes(2, 3, window=3), torch.Generator().manual_seed(0)
    per_step = []
    for step in range(8):
        f = torch.randn(1, 3, 2, 2, generator=g); y = torch.randint(0, 2, (1, 2, 2), generator=g); w = torch.rand(1, 2, 2, generator=g)
        wp.add(f, y, w)
        u = F.normalize(f.double(), dim=1)[0].permute(1, 2, 0).reshape(-1, 3)
        per_step.append(torch.zeros(2, 3, dtype=torch.float64).index_add_(0, y.reshape(-1), u * w.reshape(-1, 1).double()))
        wp.end_step(step)
        done = (step + 1) // 3                                        # complete windows so far
        ref = sum(per_step) if done == 0 else sum(per_step[3 * (done - 1): 3 * done])
        p, present = wp.protos()
        assert present.all()
        assert torch.allclose(F.normalize(p.double(), dim=1), F.normalize(ref, dim=1), atol=1e-6), step

def test_expansion_only_adds_labels_and_keeps_confident_ones():
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(2, 5, 8, 8, generator=g).softmax(1)
    y, thr = adaptive_labels(probs, top=0.1, tau0=0.9)
    feats, protos = torch.randn(2, 4, 4, 4, generator=g), torch.randn(5, 4, generator=g)
    for rule in ("weight", "distance"):
        e = expand_labels(y, feats, protos, torch.ones(5, dtype=torch.bool), thr, rule, sim=0.5)
        assert torch.equal(e[y != 255], y[y != 255]) and (e != 255).sum() >= (y != 255).sum()
    assert (y != 255).float().mean() < 1                                 # the thresholds leave pixels out

def test_multiscale_is_the_mean_of_the_scales():
    "Softmax of each scale on the scale-1 output grid, averaged, then upsampled once to the crop."
    from cda_nb.models import build_model
    torch.manual_seed(0); net = build_model("small").eval(); x = torch.rand(1, 3, 32, 32)
    lg = {s: net(x if s == 1 else F.interpolate(x, scale_factor=s, mode="bilinear")).logits for s in (0.75, 1.0, 1.25)}
    grid = lg[1.0].shape[-2:]
    ref = sum(F.interpolate(v, size=grid, mode="bilinear").softmax(1) for v in lg.values()) / 3
    got, feats = multiscale_probs(net, x, (1.25, 0.75, 1.0))                # any order: scale 1 sets the grid
    assert torch.allclose(got, F.interpolate(ref, size=(32, 32), mode="bilinear"), atol=1e-6)
    assert torch.equal(feats, net(x).feats)

def test_teacher_copies_and_head_is_optimised(tiny_root, tmp_path):
    kw = dict(SMALL, iters=3, analysis=False, method_params={"teacher_every": 2})
    tr = Trainer(method="ucda", data_root=str(tiny_root), out_dir=str(tmp_path), **kw)
    head0 = [p.detach().clone() for p in tr.method.head.parameters()]
    opt_ids = {id(p) for g in tr.opt.param_groups for p in g["params"]}
    assert all(id(p) in opt_ids for p in tr.method.head.parameters())      # parameters() reaches the optimiser
    start = {k: v.clone() for k, v in tr.method.teacher.state_dict().items()}
    tr.fit(stop_at=1)
    assert _same(start, tr.method.teacher.state_dict())                     # step 0: the teacher stays the start model
    tr.fit(stop_at=2)                                                        # after step 1 (2 steps): the copy
    assert _same({k: v for k, v in tr.model.state_dict().items()}, tr.method.teacher.state_dict())
    assert any(not torch.equal(a, b) for a, b in zip(head0, tr.method.head.parameters()))
    sd = tr.method.state_dict()["mem"]
    assert sd["src_pix.feats"].shape == (19, 1000, 128)                      # bounded: C x K x P whatever the run length

def test_ucda_never_reads_target_labels(tiny_root, tmp_path):
    "test_no_target_labels for ucda, with the analysis on (valid PNGs, wrong ids): training is bit-identical."
    kw = dict(SMALL, analysis=True)
    m1 = train(method="ucda", data_root=str(tiny_root), out_dir=str(tmp_path/"a"), **kw)
    _corrupt(tiny_root, garbage_bytes=False)
    m2 = train(method="ucda", data_root=str(tiny_root), out_dir=str(tmp_path/"b"), **kw)
    assert m1["miou"] == m2["miou"] and _same(_weights(tmp_path/"a", "ucda"), _weights(tmp_path/"b", "ucda"))
    assert m1["pseudo_labels"] != m2["pseudo_labels"]          # the analysis does read them, after training
    tr = Trainer(method="ucda", data_root=str(tiny_root), out_dir=str(tmp_path/"c"), **SMALL)
    ts = tr.method.target_stream(tr.context)
    assert ts.labels is False and "label" not in ts[0]

@pytest.mark.parametrize("params", [{}, {"expansion": False, "in_domain": False}, {"multiscale": False, "adaptive": False, "cross_domain": False},
                                    {"in_domain": False, "cross_domain": False, "expand_rule": "distance"}])
def test_ucda_resume_is_bit_identical(tiny_root, tmp_path, params):
    kw = dict(data_root=str(tiny_root), iters=5, init_iters=3, batch_size=2, crop=(48, 48), log_every=1, ckpt_every=1,
              progress=False, figures=False, analysis=False, eval_batch_size=4,
              method_params={"teacher_every": 2, "expand_window": 2, **params})
    full = train(method="ucda", out_dir=str(tmp_path/"full"), **kw)
    Trainer(method="ucda", out_dir=str(tmp_path/"cut"), **kw).fit(stop_at=3)
    res = Trainer(method="ucda", out_dir=str(tmp_path/"cut"), **kw)
    assert res.step == 3
    assert res.fit()["miou"] == full["miou"]
    a, b = _weights(tmp_path/"full", "ucda"), _weights(tmp_path/"cut", "ucda")
    assert _same(a, b)                                        # model, teacher, head, memories, window prototypes
    log = [json.loads(l) for l in (tmp_path/"cut/minicity/ucda/seed0/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    contrast = params.get("in_domain", True) or params.get("cross_domain", True)
    assert (a[1]["head"] is not None) == contrast and (a[1]["mem"] is not None) == contrast

@pytest.mark.parametrize("dataset", ["minicity", "gta5_cityscapes", "synthia_cityscapes"])
def test_shipped_configs(dataset):
    from conftest import ROOT
    from cda_nb.cli import load_run_config
    cfg = load_run_config(ROOT/"configs"/dataset/"ucda.yaml")
    assert (cfg.method, cfg.dataset) == ("ucda", dataset)
    assert (cfg.init or METHODS["ucda"].default_init) == "source_only"
    if dataset != "minicity": assert cfg.model == "deeplabv2" and cfg.batch_size == 2
