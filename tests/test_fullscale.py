"""The full-scale path on a CPU: device placement of every method (no GPU needed), loader and precision defaults,
checkpoints that stay small, and the reduced full-scale rehearsal (true image sizes, the small network)."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
import torch
from cda_nb.devcheck import DeviceCheck
from cda_nb.trainers import METHODS, Trainer

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
