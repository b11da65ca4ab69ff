"""No target labels in training, ever (except `oracle`).

Corrupting the target *training* labels on disk must leave a short training run of every method bit-identical;
the same corruption must change an `oracle` run, which shows the test can see label use at all."""
import json, shutil
from pathlib import Path
import numpy as np
import pytest
import torch
from cda_nb.training.trainer import METHODS, Trainer, train

SMALL = dict(iters=3, init_iters=3, batch_size=2, crop=(48, 48), log_every=1, ckpt_every=3, progress=False, figures=False, eval_batch_size=4)

def _weights(out, method):
    ck = torch.load(Path(out)/"minicity"/method/"seed0"/"checkpoint.pt", weights_only=True)
    return ck["model"], ck["method"]

def _same(a, b):
    if isinstance(a, dict): return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if torch.is_tensor(a): return torch.equal(a, b)
    return a == b

def _corrupt(root, garbage_bytes):
    rng = np.random.default_rng(1)
    files = sorted((Path(root)/"cityscapes/gtFine/train").rglob("*_labelIds.png"))
    assert files
    for f in files:
        if garbage_bytes: f.write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
        else:
            from cda_nb.data import write_cityscapes_label
            write_cityscapes_label(rng.integers(0, 34, (64, 128)).astype(np.uint8), f)

@pytest.mark.parametrize("garbage", [True, False], ids=["garbage-bytes", "wrong-ids"])
@pytest.mark.parametrize("method", [m for m in METHODS if m != "oracle" and not m.startswith("_")])
def test_target_labels_never_read(method, garbage, tiny_root, tmp_path):
    """Garbage bytes: not even a PNG (so the post-training pseudo-label analysis, which reads target-train labels
    *after* the last step by design, is switched off). Wrong ids: valid PNGs, analysis on."""
    kw = dict(SMALL, analysis=not garbage)
    m1 = train(method=method, data_root=str(tiny_root), out_dir=str(tmp_path/"a"), **kw)
    _corrupt(tiny_root, garbage_bytes=garbage)
    m2 = train(method=method, data_root=str(tiny_root), out_dir=str(tmp_path/"b"), **kw)
    assert m1["miou"] == m2["miou"] and m1["per_class_iou"] == m2["per_class_iou"]
    assert _same(_weights(tmp_path/"a", method), _weights(tmp_path/"b", method))
    if not garbage and "pseudo_labels" in m1:        # the analysis does see the labels: it must differ
        assert m1["pseudo_labels"] != m2["pseudo_labels"]

def test_only_oracle_builds_labelled_target(tiny_root, tmp_path):
    for key, cls in METHODS.items():
        if key.startswith("_"): continue
        tr = Trainer(method=key, data_root=str(tiny_root), out_dir=str(tmp_path/key), **SMALL)
        if "target" in tr.data:
            assert tr.data["target"].labels == (key == "oracle"), key
            stream = tr.method.target_stream(tr.context)                         # what the target batches come from
            base = getattr(stream, "ds", stream)                         # PseudoLabeled wraps the unlabelled set
            assert base.labels == (key == "oracle"), key
            assert ("label" in stream[0]) == (key == "oracle"), key
        assert cls.target_labels == (key == "oracle"), key

def test_corruption_is_visible_to_oracle(tiny_root, tmp_path):
    "The control: the same kind of corruption (valid PNGs, wrong ids) changes an oracle run."
    m1 = train(method="oracle", data_root=str(tiny_root), out_dir=str(tmp_path/"a"), **SMALL)
    _corrupt(tiny_root, garbage_bytes=False)
    m2 = train(method="oracle", data_root=str(tiny_root), out_dir=str(tmp_path/"b"), **SMALL)
    assert not _same(_weights(tmp_path/"a", "oracle"), _weights(tmp_path/"b", "oracle"))
