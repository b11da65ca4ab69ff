"""Paper mode reproduces the official recipes (issue 21): each mechanism DAFormer's recipe needs, tested on what it does,
and the paper configs that switch them on. Fair mode (and MiniCity) keeps them off."""
import json
from pathlib import Path
from types import SimpleNamespace
import numpy as np, pytest, torch

ROOT = Path(__file__).resolve().parents[1]

def _cfg(name):
    from cda_nb.cli import load_run_config
    return load_run_config(ROOT/"configs"/name)

@pytest.mark.parametrize("name", ["gta5_cityscapes/dacs.yaml", "gta5_cityscapes/cluda.yaml", "synthia_cityscapes/dacs.yaml"])
def test_paper_configs_follow_daformer(name):
    "No random rescaling, the 75 % crop redraw, no photometric change in the pipeline, LayerNorms without decay, the croppl margins, RCS's crop redraw, the ImageNet-encoder feature distance, fp32, evaluation every 4,000 iterations."
    c = _cfg(name); mp = c.method_params
    assert tuple(c.scale) == (1.0, 1.0) and tuple(c.crop) == (512, 512) and tuple(c.tgt_resize) == (512, 1024)
    assert c.cat_max_ratio == 0.75 and c.aug == "geometric" and c.no_decay == ["layernorm"]
    assert (c.optimizer, c.lr, c.weight_decay, c.warmup_iters, c.poly_power, c.batch_size, c.iters) == ("adamw", 6e-5, 0.01, 1500, 1.0, 2, 40000)
    assert mp["strong"] == "dacs" and list(mp["pl_margins"]) == [15, 120, 0, 0] and mp["rcs_min_crop_pixels"] == 1500
    assert mp["fd_features"] == "encoder" and mp["fd_reference"] == "imagenet"
    assert c.amp is False and c.eval_every == 4000 and c.init == "none"

def test_hrda_paper_config_has_hrda_margins_and_crop_ratio():
    c = _cfg("gta5_cityscapes/cluda_hrda.yaml")
    assert list(c.method_params["pl_margins"]) == [30, 240, 30, 30] and c.method_params["rcs_min_crop_pixels"] == 6000
    assert tuple(c.scale) == (1.0, 1.0) and tuple(c.crop) == (1024, 1024)

def test_fair_and_minicity_keep_the_shared_policy():
    from cda_nb.methods.base import METHODS
    for name in ["gta5_cityscapes/fair/dacs.yaml", "synthia_cityscapes/fair/cluda.yaml", "minicity/dacs.yaml"]:
        c = _cfg(name); hp = {**METHODS[c.method].defaults, **c.method_params}
        assert c.cat_max_ratio == 1.0 and c.no_decay == [] and c.aug == "photometric"
        assert hp["strong"] == "shared" and list(hp["pl_margins"]) == [0, 0, 0, 0] and hp["rcs_min_crop_pixels"] == 0
    fair = [_cfg(str(p.relative_to(ROOT/"configs"))) for p in sorted((ROOT/"configs/gta5_cityscapes/fair").glob("*.yaml"))]
    policy = lambda c: (c.model, c.batch_size, c.iters, tuple(c.crop), tuple(c.scale), c.aug, json.dumps(c.aug_params), c.optimizer, c.weight_decay)
    assert len({policy(c) for c in fair}) == 1 and len(fair) == 10   # one policy, every method

def test_crop_redraw_at_75_percent():
    "A crop dominated by one class is redrawn (mmseg RandomCrop cat_max_ratio); the default draws once."
    from cda_nb.data import JointTransform
    img = np.zeros((64, 64, 3), np.uint8); lab = np.zeros((64, 64), np.uint8); lab[:, 44:] = 1
    def dominated(ratio):
        out = []
        for s in range(40):
            torch.manual_seed(s); _, l = JointTransform(crop=(32, 32), cat_max_ratio=ratio)(img, lab)
            out.append(float((l == 0).float().mean()) >= 0.75)
        return np.mean(out)
    assert dominated(1.0) > 0.5 and dominated(0.75) < 0.05

def _toy_run(model, pretrained=None, aug=lambda x, name: x + 0.25):
    return SimpleNamespace(model=model, device=torch.device("cpu"), pretrained_model=lambda: pretrained,
                           generator=lambda name: torch.Generator().manual_seed(1), augment_images=aug, model_name="small")

def _batch(B=2, H=32, W=32):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 19, (B, H, W), generator=g); x = torch.rand(B, 3, H, W, generator=g)
    t = torch.rand(B, 3, H, W, generator=g)
    return {"image": x, "image_plain": x, "label": y}, {"image": t, "image_plain": t}

def test_pseudo_label_crop_zeroes_margins_of_target_pixels(monkeypatch):
    "croppl: pixel weights of target pixels in the top/bottom margins are 0; pasted source pixels keep 1."
    import cda_nb.methods.dacs as dm
    from cda_nb.models import build_model
    seen = []
    real = dm.seg_loss
    monkeypatch.setattr(dm, "seg_loss", lambda out, y, w=None: (seen.append(w), real(out, y, w))[1])
    torch.manual_seed(0)
    m = dm.DACS(pl_margins=[3, 5, 0, 0], threshold=0.0, lambda_fd=0.0); m.setup(_toy_run(build_model("small")))
    src, tgt = _batch()
    terms, o = m.step_outputs(src, tgt, 0)
    w = seen[-1]; tgt_px = ~o["mask"]
    assert (w[:, :3][tgt_px[:, :3]] == 0).all() and (w[:, -5:][tgt_px[:, -5:]] == 0).all()
    assert (w[:, 3:-5][tgt_px[:, 3:-5]] > 0).all() and (w[o["mask"]] == 1).all()

def test_feature_distance_reads_the_last_encoder_stage_of_a_frozen_imagenet_encoder(monkeypatch):
    "fd_features=encoder, fd_reference=imagenet: the student's stride-32 MiT stage against a frozen ImageNet network's (DAFormer `calc_feat_dist`)."
    import cda_nb.methods.dacs as dm
    from cda_nb.models import build_model
    torch.manual_seed(0); student = build_model("daformer", variant="b0", embed_dim=32)
    torch.manual_seed(1); imnet = build_model("daformer", variant="b0", embed_dim=32).eval()
    for p in imnet.parameters(): p.requires_grad_(False)
    got = {}
    monkeypatch.setattr(dm, "feature_distance", lambda f, r, y: got.update(f=f, r=r) or f.sum() * 0)
    m = dm.DACS(fd_features="encoder", fd_reference="imagenet"); m.setup(_toy_run(student, imnet))
    assert m.fd_ref is imnet                                         # not a copy of the network as the run starts
    src, tgt = _batch(H=64, W=64)
    m.step_outputs(src, tgt, 0)
    assert got["f"].shape == (2, 256, 2, 2)                          # MiT-B0's last stage: 256 channels at stride 32
    torch.testing.assert_close(got["r"], imnet.encoder(imnet.norm(src["image"]))[-1])
    assert got["f"].requires_grad and not got["r"].requires_grad

def test_feature_distance_default_is_decoder_features_of_the_start():
    import cda_nb.methods.dacs as dm
    from cda_nb.models import build_model
    net = build_model("small"); m = dm.DACS(); m.setup(_toy_run(net))
    assert m.fd_ref is not net and all(torch.equal(a, b) for a, b in zip(m.fd_ref.state_dict().values(), net.state_dict().values()))
    out = net(torch.rand(1, 3, 32, 32)); assert dm.fd_features(out) is out.feats

def test_strong_transform_touches_only_the_mixed_image():
    "strong=dacs: the student's source input and the teacher's target input are the loader's images; only the mix is jittered."
    import cda_nb.methods.dacs as dm
    from cda_nb.data import dacs_strong
    from cda_nb.models import build_model
    torch.manual_seed(0); net = build_model("small")
    inputs = []; net.register_forward_pre_hook(lambda mod, a: inputs.append(a[0].clone()))
    called = []
    m = dm.DACS(strong="dacs", lambda_fd=0.0); m.setup(_toy_run(net, aug=lambda x, name: called.append(name) or x))
    src, tgt = _batch()
    t_inputs = []; m.teacher.register_forward_pre_hook(lambda mod, a: t_inputs.append(a[0].clone()))
    _, o = m.step_outputs(src, tgt, 0)
    assert not called                                                 # the shared policy is not used at all
    torch.testing.assert_close(inputs[0], src["image_plain"]); torch.testing.assert_close(t_inputs[0], tgt["image_plain"])
    plain_mix = dm.mix(o["mask"], src["image_plain"], tgt["image_plain"])
    torch.testing.assert_close(inputs[-1], dacs_strong(plain_mix, torch.Generator().manual_seed(1)))   # (the teacher, a copy, kept the hook too)
    assert not torch.equal(inputs[-1], plain_mix)

def test_layernorms_train_without_weight_decay():
    "no_decay=[layernorm]: every MiT LayerNorm parameter in a group of weight decay 0, lr_mult kept; decoder BatchNorms keep decay."
    from cda_nb.models import build_model
    from cda_nb.training.trainer import decay_groups
    net = build_model("daformer", variant="b0", embed_dim=32)
    gs = decay_groups(net, net.param_groups(), ["layernorm"])
    opt = torch.optim.AdamW(gs, lr=6e-5, weight_decay=0.01)
    wd = {id(p): (g["weight_decay"], g["lr_mult"]) for g in opt.param_groups for p in g["params"]}
    for name, mod in net.named_modules():
        for p in mod.parameters(recurse=False):
            if isinstance(mod, torch.nn.LayerNorm): assert wd[id(p)] == (0.0, 1.0), name
            if isinstance(mod, torch.nn.BatchNorm2d): assert wd[id(p)] == (0.01, 10.0), name
    assert len(wd) == len(list(net.parameters()))
    assert sum(1 for g in opt.param_groups if g["weight_decay"] == 0) == 1

def test_trainer_builds_the_decay_free_groups(tmp_path):
    "The trainer's optimiser carries `no_decay` through (and an empty one leaves the groups as they were)."
    from conftest import write_tiny
    from cda_nb.training.trainer import Trainer
    data = write_tiny(tmp_path/"d")
    kw = dict(method="source_only", data_root=str(data), iters=1, batch_size=1, crop=[32, 32], progress=False, figures=False,
              model="daformer", model_kwargs={"variant": "b0", "embed_dim": 32}, optimizer="adamw", weight_decay=0.01)
    a = Trainer(out_dir=str(tmp_path/"a"), **kw); b = Trainer(out_dir=str(tmp_path/"b"), no_decay=["layernorm"], **kw)
    assert [g["weight_decay"] for g in a.opt.param_groups] == [0.01, 0.01]
    assert [g["weight_decay"] for g in b.opt.param_groups] == [0.01, 0.0, 0.01]

def test_pretrained_model_needs_weights(tmp_path):
    from conftest import write_tiny
    from cda_nb.core import CDAError
    from cda_nb.training.trainer import Trainer
    data = write_tiny(tmp_path/"d")
    with pytest.raises(CDAError, match="fd_reference"):
        Trainer(method="dacs", data_root=str(data), iters=1, batch_size=1, crop=[32, 32], progress=False, init="none",
                out_dir=str(tmp_path/"r"), method_params={"fd_reference": "imagenet"})

def test_source_only_and_sdca_paper_configs_train_whole_images():
    "AdaptSegNet (source_only, oracle) and SDCA train whole resized images, unflipped, on a poly schedule stopped early."
    so, sd = _cfg("gta5_cityscapes/source_only.yaml"), _cfg("gta5_cityscapes/sdca.yaml")
    assert (so.batch_size, so.crop, tuple(so.scale), so.flip, so.iters) == (1, "whole", (1.0, 1.0), False, 150000)
    assert abs(so.poly_horizon * so.iters - 250000) < 1e-6 and _cfg("gta5_cityscapes/oracle.yaml").crop == "whole"
    assert (sd.crop, sd.flip, sd.weight_decay, sd.method_params["form"], sd.method_params["tau"]) == ("whole", False, 5e-4, "official", 100.0)
    assert _cfg("gta5_cityscapes/bcl.yaml").crop == (730, 730) and _cfg("gta5_cityscapes/bcl.yaml").batch_size == 4   # bcl keeps its paper's recipe
    assert _cfg("synthia_cityscapes/dacs.yaml").method_params["rcs_min_share"] == 0.0031

def test_whole_crop_gives_whole_resized_images(tmp_path):
    from conftest import write_tiny
    from cda_nb.training.streams import build_data, train_crop
    from cda_nb.training.config import make_config, METHODS
    data = write_tiny(tmp_path/"d")
    c = make_config(method="source_only", data_root=str(data), crop="whole", scale=[1.0, 1.0], flip=False)
    assert train_crop(c) is None
    ds = build_data(c, METHODS["source_only"])["source"]
    from PIL import Image
    first = Image.open(ds.images[0]); assert ds[0]["image"].shape[-2:] == (first.height, first.width)

def test_poly_horizon_stops_the_schedule_early(tmp_path):
    "poly_horizon h: the lr at the last step is poly(iters / (h iters)), not 0 (AdaptSegNet: 250k schedule stopped at 150k)."
    from conftest import write_tiny
    from cda_nb.training.trainer import Trainer, poly_lr
    data = write_tiny(tmp_path/"d")
    t = Trainer(method="source_only", data_root=str(data), iters=4, batch_size=1, crop=[32, 32], progress=False, figures=False,
                analysis=False, out_dir=str(tmp_path/"r"), poly_horizon=2.0, lr=0.01, log_every=1)
    t.fit()
    lrs = [r["lr"] for r in map(json.loads, open(t.dir/"log.jsonl")) if "lr" in r]
    assert lrs and abs(lrs[-1] - poly_lr(0.01, 3, 8.0)) < 1e-9 and lrs[-1] > 0.004

def test_recipes_table_is_current(tmp_path):
    "reports/fullscale/recipes.md is what recipes.py writes from today's configs: regenerate it after a config change."
    import shutil, subprocess, sys
    committed = (ROOT/"reports/fullscale/recipes.md").read_text()
    try:
        subprocess.run([sys.executable, "reports/fullscale/recipes.py"], cwd=ROOT, check=True, capture_output=True, timeout=300)
        assert (ROOT/"reports/fullscale/recipes.md").read_text() == committed, "run python reports/fullscale/recipes.py and commit recipes.md"
    finally:
        (ROOT/"reports/fullscale/recipes.md").write_text(committed)

@pytest.mark.parametrize("nb", sorted((ROOT/"nbs/methods").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_fidelity_table_has_a_paper_config_column(nb):
    "Each method notebook opens with its fidelity table, whose header names a paper config column beside the fair one."
    first = "".join(json.loads(nb.read_text())["cells"][0]["source"])
    header = next(l for l in first.splitlines() if l.startswith("| choice"))
    cols = [c.strip().lower() for c in header.strip("|").split("|")]
    assert any(c.startswith("paper config") for c in cols) and any("fair config" in c for c in cols), (nb.name, cols)
    rows = [l for l in first.splitlines() if l.startswith("|")]
    assert all(l.count("|") == header.count("|") for l in rows), nb.name      # every row has the new column
