"DAFormer (MiT encoder + context-aware fusion decoder): shapes, parameter groups, official-layout weight loading."
import warnings
import pytest
import torch
from cda_nb.core import CDAError
from cda_nb.models import build_model, MODELS
from cda_nb.daformer import DAFormerNet, MiT, mit_config, load_mit, official_mit_state_dict, mit_key

TINY = dict(variant="b0", embed_dims=(8, 16, 24, 32), num_heads=(1, 2, 3, 4), depths=(1, 2, 1, 1), embed_dim=16)

@pytest.fixture
def net():
    torch.manual_seed(0)
    return DAFormerNet(n_classes=5, **TINY).eval()

def test_registered():
    assert MODELS["daformer"] is DAFormerNet

def test_stage_shapes_and_strides(net):
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad(): out = net(x)
    assert [tuple(l.shape) for l in out.levels] == [(2, 8, 24, 32), (2, 16, 12, 16), (2, 24, 6, 8), (2, 32, 3, 4)]
    assert [96 // l.shape[-2] for l in out.levels] == [4, 8, 16, 32]
    assert [128 // l.shape[-1] for l in out.levels] == [4, 8, 16, 32]

def test_logits_at_stride_4(net):
    with torch.no_grad(): out = net(torch.rand(1, 3, 64, 96))
    assert out.logits.shape == (1, 5, 16, 24)
    assert out.feats.shape == (1, 16, 16, 24) and net.feat_dim == 16 and net.n_classes == 5

def test_param_groups(net):
    groups = net.param_groups()
    assert [g["lr_mult"] for g in groups] == [1.0, 10.0]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in net.parameters()}
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in net.encoder.parameters()}
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in net.decode_head.parameters()}

def test_train_step_and_eval_determinism(net):
    net.train(); net(torch.rand(2, 3, 64, 64)).logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval(); x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(): assert torch.equal(net(x).logits, net(x).logits)

def test_missing_file_message(tmp_path):
    with pytest.raises(CDAError) as e: DAFormerNet(n_classes=5, pretrained=str(tmp_path/"mit_b5.pth"), **TINY)
    msg = str(e.value)
    assert str(tmp_path/"mit_b5.pth") in msg and "mit_b5.pth" in msg and "SegFormer" in msg and "pretrained=''" in msg

def test_nothing_fits(tmp_path, net):
    torch.save({"conv1.weight": torch.zeros(4, 3, 7, 7)}, tmp_path/"r.pth")
    with pytest.raises(CDAError, match="no tensor of this file fits"): load_mit(net, tmp_path/"r.pth")

def test_official_layout_round_trip(tmp_path, net):
    fake = official_mit_state_dict(net.encoder)
    assert "block1.0.attn.kv.weight" in fake and "block1.0.attn.sr.weight" in fake and "norm1.weight" in fake
    assert "block1.0.mlp.dwconv.dwconv.weight" in fake and "patch_embed1.proj.weight" in fake
    fake["head.weight"], fake["head.bias"] = torch.randn(1000, 32), torch.zeros(1000)
    torch.save({"state_dict": fake}, tmp_path/"mit_tiny.pth")
    torch.manual_seed(1); other = DAFormerNet(n_classes=5, **TINY).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                     # an exact fit does not warn (head.* is expected)
        rep = load_mit(other, tmp_path/"mit_tiny.pth")
    assert rep.layout == "mit_official"
    assert sorted(rep.loaded) == sorted("encoder." + k for k in other.encoder.state_dict())
    assert rep.missing == [] and rep.mismatched == [] and rep.unexpected == ["head.weight", "head.bias"]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(net.encoder(x), other.encoder(x)): assert torch.equal(a, b)

def test_b5_key_mapping_is_a_bijection():
    enc = MiT(**mit_config("b5"))
    keys = list(enc.state_dict())
    off = official_mit_state_dict(enc)
    assert len(off) == len(keys) and all(mit_key(k) in keys for k in off)
    assert 81e6 < sum(p.numel() for p in enc.parameters()) < 83e6

def test_build_model():
    m = build_model("daformer", 19, variant="b0")
    assert isinstance(m, DAFormerNet) and m.n_classes == 19 and m.encoder.embed_dims == (32, 64, 160, 256)
    with torch.no_grad(): out = m.eval()(torch.rand(1, 3, 64, 64))
    assert out.logits.shape == (1, 19, 16, 16) and out.feats.shape == (1, 256, 16, 16)
