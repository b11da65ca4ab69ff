"""bcl on the small network with DeepLab-V2's branched classifier (`model_kwargs: {aspp_rates: [...]}`, nbs/03_models.ipynb):
its prototypes live in the 76-d concatenation of the branch outputs (the official code's representation), FCL's gradient
reaches every branch, and the checkpoint of such a run reloads into the same network."""
import torch
from cda_nb.models import build_model
from cda_nb.training.trainer import Trainer
from test_no_target_labels import SMALL

BR = dict(SMALL, model_kwargs={"aspp_rates": [2, 4, 6, 8]})

def test_bcl_contrasts_the_branch_concatenation(tiny_root, tmp_path):
    tr = Trainer(method="bcl", data_root=str(tiny_root), out_dir=str(tmp_path), **BR)
    assert tr.method.src_bank.protos.shape == (19, 76) and tr.method.tgt_bank.protos.shape == (19, 76)
    grads = {}
    orig = tr.method.losses
    def spy(src, tgt, step):                       # the gradient of FCL alone, branch by branch
        terms = orig(src, tgt, step)
        if "fcl" in terms and not grads:
            convs = tr.model.classifier.conv2d_list
            g = torch.autograd.grad(terms["fcl"], [c.weight for c in convs], retain_graph=True, allow_unused=True)
            grads.update({i: gi for i, gi in enumerate(g)})
        return terms
    tr.method.losses = spy
    tr.fit(stop_at=2)
    assert len(grads) == 4 and all(g is not None and g.abs().sum() > 0 for g in grads.values())
    assert tr.method.src_bank.initialized.any()     # the banks took 76-d batch prototypes

def test_branched_checkpoint_reloads(tiny_root, tmp_path):
    tr = Trainer(method="source_only", data_root=str(tiny_root), out_dir=str(tmp_path), **BR)
    tr.fit()
    ck = torch.load(tmp_path/"minicity"/"source_only"/"seed0"/"checkpoint.pt", weights_only=True)
    net = build_model("small", aspp_rates=(2, 4, 6, 8)); net.load_state_dict(ck["model"])
    try: build_model("small").load_state_dict(ck["model"]); raise AssertionError("a 1x1-classifier network accepted branched weights")
    except RuntimeError: pass
