"""clst (nbs/methods/clst.ipynb): the temporal-ensemble store (EMA math, bounded bytes, exact state round trip), the
class-mean contrastive loss, and short runs: no target labels, exact resume."""
import json
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
import cda_nb.methods.clst                     # (registered by cda_nb.training.config as well)
from cda_nb.methods.clst import (EnsembleStore, class_mean_contrast, crop_cells, coord_map, Located, COORD_BASE,
                                 grid_shape)
from cda_nb.data import JointTransform
from cda_nb.training.trainer import METHODS, Trainer, train
from test_no_target_labels import SMALL, _corrupt, _same, _weights

def _reference(visits, C, G, m):
    "Float EMA per cell of a list of (cells (N,), probs (C,N)) visits (means over the pixels of a cell first)."
    Z = torch.zeros(C, G); seen = torch.zeros(G, dtype=torch.bool)
    for cells, p in visits:
        for u in cells.unique().tolist():
            z = p[:, cells == u].mean(1)
            Z[:, u] = m * Z[:, u] + (1 - m) * z if seen[u] else z
            seen[u] = True
    return Z, seen

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), m=st.floats(0.0, 0.95), n_visits=st.integers(1, 12), dtype=st.sampled_from(["uint8", "float16"]))
def test_store_is_a_quantised_ema(seed, m, n_visits, dtype):
    g = torch.Generator().manual_seed(seed)
    C, H, W, s = 5, 6, 10, 2
    gh, gw = grid_shape((H, W), s); G = gh * gw
    store, visits = EnsembleStore(C, momentum=m, stride=s, dtype=dtype), []
    for _ in range(n_visits):
        cells = torch.randint(0, G, (1, 3, 4), generator=g)
        cells[0, 0, 0] = -1                                               # one padded pixel
        p = torch.rand(1, C, 3, 4, generator=g).softmax(1)
        y, conf = store.visit([3], [[H, W]], cells, p)
        ok = cells[0] >= 0
        visits.append((cells[0][ok], p[0][:, ok]))
        assert y[0, 0, 0] == 255 and conf[0, 0, 0] == 0
    Z, seen = _reference(visits, C, G, m)
    got = store.decode(store.maps[3]).view(C, G)
    bound = 0.5 / 255 / (1 - m) + 1e-5 if dtype == "uint8" else 1e-3 / (1 - m)
    assert (got[:, seen] - Z[:, seen]).abs().max() <= bound
    assert (got[:, ~seen] == 0).all()                                     # never visited: empty
    assert store.nbytes() == store.bytes_per_image((H, W))

def test_store_bytes_are_bounded_by_images():
    g = torch.Generator().manual_seed(0)
    store = EnsembleStore(19, stride=8)
    for t in range(60):
        store.visit([t % 4], [[64, 128]], torch.randint(0, 128, (1, 16, 16), generator=g), torch.rand(1, 19, 16, 16, generator=g))
    assert len(store) == 4 and store.nbytes() == 4 * 19 * 8 * 16
    assert EnsembleStore(19, stride=8).bytes_per_image((512, 1024)) == 155_648     # the Cityscapes training size
    assert EnsembleStore(19, stride=8, dtype="float16").bytes_per_image((512, 1024)) == 2 * 155_648

def test_store_state_round_trip_is_exact(tmp_path):
    g = torch.Generator().manual_seed(1)
    a = EnsembleStore(19, stride=4)
    for t in range(10): a.visit([t % 3], [[32, 32]], torch.randint(0, 64, (1, 8, 8), generator=g), torch.rand(1, 19, 8, 8, generator=g).softmax(1))
    torch.save(a.state_dict(), tmp_path/"s.pt")
    b = EnsembleStore(19, stride=4); b.load_state_dict(torch.load(tmp_path/"s.pt", weights_only=True))
    for t in range(5):
        c, p = torch.randint(0, 64, (1, 8, 8), generator=g), torch.rand(1, 19, 8, 8, generator=g).softmax(1)
        ya, yb = a.visit([t], [[32, 32]], c, p), b.visit([t], [[32, 32]], c, p)
        assert all(torch.equal(x, y) for x, y in zip(ya, yb))
    assert a.maps.keys() == b.maps.keys() and all(torch.equal(a.maps[i], b.maps[i]) for i in a.maps)

def test_coordinates_follow_the_training_transform():
    "Under random scale/crop/flip, the image crop equals the resized image sampled at the crop's coordinates."
    torch.manual_seed(3)
    img = torch.rand(3, 16, 24)
    tf = JointTransform(scale=(1.0, 1.0), crop=(8, 8), flip=True)
    for _ in range(5):
        x, cm = tf(img, coord_map(16, 24))
        flat = (cm - COORD_BASE).flatten()
        assert torch.equal(x.flatten(1), img.flatten(1)[:, flat])
    cells = crop_cells(cm[None], torch.tensor([[16, 24]]), 8)
    assert cells.min() >= 0 and cells.max() < 2 * 3

@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), tau=st.floats(0.05, 1.0))
def test_contrast_is_lower_on_own_prototype(seed, tau):
    g = torch.Generator().manual_seed(seed)
    C, D = 6, 16
    P = F.normalize(torch.randn(C, D, generator=g), dim=1)
    y = torch.randint(0, C, (1, 4, 5), generator=g)
    present = torch.ones(C, dtype=torch.bool)
    noise = 0.05 * torch.randn(1, D, 4, 5, generator=g)
    own = P[y[0]].permute(2, 0, 1)[None] + noise
    other = P[(y[0] + 1) % C].permute(2, 0, 1)[None] + noise
    assert class_mean_contrast(own, y, P, present, tau) < class_mean_contrast(other, y, P, present, tau)

def test_clst_never_reads_target_labels(tiny_root, tmp_path):
    "test_no_target_labels for clst, with the analysis on (valid PNGs, wrong ids): training is bit-identical."
    kw = dict(SMALL, analysis=True)
    m1 = train(method="clst", data_root=str(tiny_root), out_dir=str(tmp_path/"a"), **kw)
    _corrupt(tiny_root, garbage_bytes=False)
    m2 = train(method="clst", data_root=str(tiny_root), out_dir=str(tmp_path/"b"), **kw)
    assert m1["miou"] == m2["miou"] and _same(_weights(tmp_path/"a", "clst"), _weights(tmp_path/"b", "clst"))
    assert m1["pseudo_labels"] != m2["pseudo_labels"]          # the analysis does read them, after training
    tr = Trainer(method="clst", data_root=str(tiny_root), out_dir=str(tmp_path/"c"), **SMALL)
    ts = tr.method.target_stream(tr.context)                             # what the trainer draws target batches from
    assert isinstance(ts, Located) and ts.ds.labels is False
    assert "label" not in ts[0]

@pytest.mark.parametrize("params", [{}, {"contrast": False}, {"ensemble": False, "conf_weight": True}])
def test_clst_resume_is_bit_identical(tiny_root, tmp_path, params):
    kw = dict(data_root=str(tiny_root), iters=5, init_iters=3, batch_size=2, crop=(48, 48), log_every=1, ckpt_every=1,
              progress=False, figures=False, analysis=False, eval_batch_size=4, method_params=params)
    full = train(method="clst", out_dir=str(tmp_path/"full"), **kw)
    Trainer(method="clst", out_dir=str(tmp_path/"cut"), **kw).fit(stop_at=3)
    res = Trainer(method="clst", out_dir=str(tmp_path/"cut"), **kw)
    assert res.step == 3
    assert res.fit()["miou"] == full["miou"]
    a, b = _weights(tmp_path/"full", "clst"), _weights(tmp_path/"cut", "clst")
    assert _same(a, b)                                        # model weights and the method's store, head, prototypes
    log = [json.loads(l) for l in (tmp_path/"cut/minicity/clst/seed0/log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    assert (a[1]["head"] is not None) == params.get("contrast", True)
    assert (len(a[1]["store"]["maps"]) > 0) == params.get("ensemble", True)

@pytest.mark.parametrize("dataset", ["minicity", "gta5_cityscapes", "synthia_cityscapes"])
def test_shipped_configs(dataset):
    from conftest import ROOT
    from cda_nb.cli import load_run_config
    cfg = load_run_config(ROOT/"configs"/dataset/"clst.yaml")
    from cda_nb.training.trainer import METHODS
    assert (cfg.method, cfg.dataset) == ("clst", dataset)
    assert (cfg.init or METHODS["clst"].default_init) == "source_only"       # configs say only what differs from the defaults
    if dataset != "minicity": assert cfg.model == "deeplabv2" and cfg.batch_size == 2 and cfg.tgt_resize == (512, 1024)

def test_clst_sigkill_and_resume(tiny_root, tmp_path):
    "As tests/test_resume.py, for clst: a run killed (SIGKILL) mid-way and resumed ends with the same weights and store."
    from conftest import kill_and_resume
    ref, run = kill_and_resume(tiny_root, tmp_path, "clst")
    a = json.loads((ref/"metrics.json").read_text()); b = json.loads((run/"metrics.json").read_text())
    assert a["miou"] == b["miou"] and a["ensemble_store"] == b["ensemble_store"]
    assert _same(_weights(tmp_path/"ref", "clst"), _weights(tmp_path/"killed", "clst"))
