"""Fair baselines and honest evaluation: one augmentation policy shared by every method, and a `test` split that is
evaluated after training only."""
from pathlib import Path
import numpy as np
import pytest
import torch
from cda_nb.training.trainer import Trainer, train, has_test_labels
from cda_nb.minicity import make_minicity

SMALL = dict(iters=2, batch_size=2, crop=(48, 48), log_every=1, ckpt_every=2, progress=False, figures=False,
             analysis=False, eval_batch_size=4, init="none")

@pytest.fixture(scope="module")
def mc_root(tmp_path_factory):
    return make_minicity(tmp_path_factory.mktemp("mc")/"mc", seed=0, n_source=6, n_train=4, n_val=2, n_test=2, progress=False)

def _first_inputs(method, root, out, **kw):
    "The batches a method's network sees in its first training step (forward pre-hook on the student)."
    tr = Trainer(method=method, data_root=str(root), out_dir=str(out), **{**SMALL, **kw})
    seen = []
    tr.model.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach().clone()))
    tr.fit(stop_at=1)
    return seen

def test_policy_is_shared_between_methods(mc_root, tmp_path):
    "Same seed, same source sampling: source_only and dacs feed the network identically augmented source images."
    a = _first_inputs("source_only", mc_root, tmp_path/"a")
    b = _first_inputs("dacs", mc_root, tmp_path/"b", source_sampling="uniform")
    assert torch.equal(a[0], b[0])
    geo = _first_inputs("source_only", mc_root, tmp_path/"c", aug="geometric")
    assert geo[0].shape == a[0].shape and not torch.equal(geo[0], a[0])          # the photometric policy does act
    other = _first_inputs("source_only", mc_root, tmp_path/"d", seed=1)
    assert not torch.equal(other[0], a[0])

def test_policy_is_validated(mc_root, tmp_path):
    from cda_nb.core import CDAError
    with pytest.raises(CDAError, match="aug"): Trainer(method="source_only", data_root=str(mc_root), out_dir=str(tmp_path), aug="strong", **SMALL)
    with pytest.raises(CDAError, match="valid: contrast"):
        Trainer(method="source_only", data_root=str(mc_root), out_dir=str(tmp_path), aug_params={"hue": 0.1}, **SMALL)

def test_test_split_is_reported_beside_val(mc_root, tmp_path, tiny_root):
    m = train(method="source_only", data_root=str(mc_root), out_dir=str(tmp_path), **SMALL)
    assert 0 <= m["miou_test"] <= 1 and set(m["test"]["per_class_iou"]) == set(m["per_class_iou"])
    assert m["augmentation"]["policy"] == "photometric"
    assert has_test_labels(mc_root/"cityscapes") and not has_test_labels(tiny_root/"cityscapes")   # no test split

def test_void_test_labels_are_not_a_test_split(tmp_path):
    "Cityscapes' public test labels are all void: such a split is not evaluated."
    from cda_nb.data import write_cityscapes_label
    from PIL import Image
    root = tmp_path/"cs"
    for d in ("leftImg8bit/test/x", "gtFine/test/x"): (root/d).mkdir(parents=True)
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(root/"leftImg8bit/test/x/x_000000_000000_leftImg8bit.png")
    write_cityscapes_label(np.zeros((8, 16), np.uint8), root/"gtFine/test/x/x_000000_000000_gtFine_labelIds.png")
    assert not has_test_labels(root)

def test_test_labels_never_reach_training(mc_root, tmp_path):
    "Relabelling the test split changes the test score and nothing else: weights and val are bit-identical."
    import shutil
    from cda_nb.data import write_cityscapes_label
    root = tmp_path/"mc"; shutil.copytree(mc_root, root)
    kw = dict(SMALL, init="none")
    m1 = train(method="dacs", data_root=str(root), out_dir=str(tmp_path/"a"), **kw)
    rng = np.random.default_rng(0)
    for f in sorted((root/"cityscapes/gtFine/test").rglob("*_labelIds.png")):
        write_cityscapes_label(rng.choice([7, 8, 11, 21, 23], (128, 256)).astype(np.uint8), f)
    m2 = train(method="dacs", data_root=str(root), out_dir=str(tmp_path/"b"), **kw)
    assert m1["miou"] == m2["miou"] and m1["miou_test"] != m2["miou_test"]
    w1 = torch.load(tmp_path/"a/minicity/dacs/seed0/checkpoint.pt", weights_only=True)["model"]
    w2 = torch.load(tmp_path/"b/minicity/dacs/seed0/checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
