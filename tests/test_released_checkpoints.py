"Released DAFormer/HRDA/MIC mmseg checkpoints and Hugging Face MiT files, with key sets built from the official definitions."
import pytest, torch
from cda_nb.core import CDAError
from cda_nb.models import build_model
from cda_nb.daformer import DAFormerNet, load_mit, load_released, mit_config
import cda_nb.hrda  # registers MODELS["hrda"]

def official_mit(dims, depths, sr=(8, 4, 2, 1), mlp=4):
    "mmseg mix_transformer.py (DAFormer repo): MixVisionTransformer's state dict keys and shapes (qkv_bias=True, no head)."
    out, ci = {}, 3
    for s in range(4):
        d, k = dims[s], 7 if s == 0 else 3
        out |= {f"patch_embed{s+1}.proj.weight": (d, ci, k, k), f"patch_embed{s+1}.proj.bias": (d,),
                f"patch_embed{s+1}.norm.weight": (d,), f"patch_embed{s+1}.norm.bias": (d,)}
        for i in range(depths[s]):
            b = f"block{s+1}.{i}."
            out |= {b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "attn.q.weight": (d, d), b + "attn.q.bias": (d,),
                    b + "attn.kv.weight": (2 * d, d), b + "attn.kv.bias": (2 * d,), b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,),
                    b + "norm2.weight": (d,), b + "norm2.bias": (d,), b + "mlp.fc1.weight": (mlp * d, d), b + "mlp.fc1.bias": (mlp * d,),
                    b + "mlp.dwconv.dwconv.weight": (mlp * d, 1, 3, 3), b + "mlp.dwconv.dwconv.bias": (mlp * d,),
                    b + "mlp.fc2.weight": (d, mlp * d), b + "mlp.fc2.bias": (d,)}
            if sr[s] > 1: out |= {b + "attn.sr.weight": (d, d, sr[s], sr[s]), b + "attn.sr.bias": (d,), b + "attn.norm.weight": (d,), b + "attn.norm.bias": (d,)}
        out |= {f"norm{s+1}.weight": (d,), f"norm{s+1}.bias": (d,)}; ci = d
    return out

def bn(p, c): return {f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,), f"{p}.running_var": (c,), f"{p}.num_batches_tracked": ()}

def official_daformer_head(dims, e=256, n=19, fusion="aspp", dil=(1, 6, 12, 18)):
    "daformer_head.py DAFormerHead + mmcv ConvModule (conv, bn; no bias) / DepthwiseSeparableConvModule (depthwise_conv, pointwise_conv)."
    out = {}
    for i, c in enumerate(dims): out |= {f"embed_layers.{i}.proj.weight": (e, c), f"embed_layers.{i}.proj.bias": (e,)}
    ci = 4 * e
    if fusion == "aspp":
        for j, d in enumerate(dil):
            m = f"fuse_layer.aspp_modules.{j}"
            if d == 1: out |= {f"{m}.conv.weight": (e, ci, 1, 1), **bn(f"{m}.bn", e)}
            else: out |= {f"{m}.depthwise_conv.conv.weight": (ci, 1, 3, 3), **bn(f"{m}.depthwise_conv.bn", ci),
                          f"{m}.pointwise_conv.conv.weight": (e, ci, 1, 1), **bn(f"{m}.pointwise_conv.bn", e)}
        out |= {"fuse_layer.bottleneck.conv.weight": (e, len(dil) * e, 3, 3), **bn("fuse_layer.bottleneck.bn", e)}
    else: out |= {"fuse_layer.conv.weight": (e, ci, 1, 1), **bn("fuse_layer.bn", e)}
    return out | {"conv_seg.weight": (n, e, 1, 1), "conv_seg.bias": (n,)}

def materialise(shapes, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(7) if s == () else torch.randn(s, generator=g)) for k, s in shapes.items()}

def release(seg_s, seg_t, imnet=None):
    sd = {"model." + k: v for k, v in seg_s.items()} | {"ema_model." + k: v for k, v in seg_t.items()}
    if imnet: sd |= {"imnet_model." + k: v for k, v in imnet.items()}
    return {"meta": {"CLASSES": ("road",) * 19, "iter": 40000}, "state_dict": sd}

B5 = mit_config("b5")

def test_b5_release_true_names_and_shapes(tmp_path):
    shapes = {"backbone." + k: s for k, s in official_mit(B5["embed_dims"], B5["depths"]).items()}
    shapes |= {"decode_head." + k: s for k, s in official_daformer_head(B5["embed_dims"]).items()}
    net = DAFormerNet(variant="b5")                                        # the papers' network: B5, embed 256, 19 classes
    assert len([k for k in shapes if not k.endswith("num_batches_tracked")]) == len([k for k in net.state_dict() if not k.endswith("num_batches_tracked")])
    stu = materialise(shapes, 0)
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in stu.items()}
    torch.save(release(stu, ema, {k: v for k, v in stu.items() if k.startswith("backbone.")}), tmp_path/"daformer_gta.pth")
    rep = load_released(net, tmp_path/"daformer_gta.pth")
    sd = net.state_dict()
    assert rep.layout == "mmseg_uda_student" and len(rep.loaded) == len([k for k in sd if not k.endswith("num_batches_tracked")])
    for off, ours in [("backbone.block3.39.attn.kv.weight", "encoder.stages.2.blocks.39.attn.kv.weight"),
                      ("backbone.block1.2.attn.norm.bias", "encoder.stages.0.blocks.2.attn.sr_norm.bias"),
                      ("decode_head.fuse_layer.aspp_modules.3.depthwise_conv.bn.running_var", "decode_head.fuse.branches.3.0.1.running_var"),
                      ("decode_head.fuse_layer.bottleneck.conv.weight", "decode_head.fuse.bottleneck.0.weight"),
                      ("decode_head.conv_seg.weight", "decode_head.classifier.weight")]:
        assert torch.equal(sd[ours], stu[off]), off
    assert all(k.startswith(("ema_model.", "imnet_model.")) or k.endswith("num_batches_tracked") for k in rep.unexpected)
    load_released(net, tmp_path/"daformer_gta.pth", weights="ema")
    assert torch.equal(net.state_dict()["decode_head.classifier.weight"], ema["decode_head.conv_seg.weight"])

@pytest.fixture
def b0_release(tmp_path):
    c = mit_config("b0")
    shapes = {"backbone." + k: s for k, s in official_mit(c["embed_dims"], c["depths"]).items()}
    shapes |= {"decode_head." + k: s for k, s in official_daformer_head(c["embed_dims"], e=32).items()}
    sd = materialise(shapes, 1)
    return sd, tmp_path

def test_b0_release_loads_and_breaks_loudly(b0_release):
    sd, tmp = b0_release
    net = DAFormerNet(variant="b0", embed_dim=32)
    torch.save(release(sd, sd), tmp/"ok.pth"); load_released(net, tmp/"ok.pth")
    assert torch.equal(net.state_dict()["encoder.stages.3.norm.weight"], sd["backbone.norm4.weight"])
    cases = {"missing": ({k: v for k, v in sd.items() if k != "decode_head.embed_layers.2.proj.bias"}, "decode_head.embed.2.bias"),
             "extra": (sd | {"decode_head.aux.weight": torch.zeros(1)}, "model.decode_head.aux.weight"),
             "shape": (sd | {"backbone.block2.0.attn.q.weight": torch.zeros(64, 32)}, "model.backbone.block2.0.attn.q.weight")}
    for name, (bad, key) in cases.items():
        torch.save(release(bad, sd), tmp/f"{name}.pth")
        with pytest.raises(CDAError) as e: load_released(DAFormerNet(variant="b0", embed_dim=32), tmp/f"{name}.pth")
        assert key in str(e.value) and f"{name}.pth" in str(e.value), (name, str(e.value))

def test_hrda_release_official_names(b0_release):
    sd, tmp = b0_release
    c = mit_config("b0")
    shapes = {"backbone." + k: s for k, s in official_mit(c["embed_dims"], c["depths"]).items()}
    shapes |= {"decode_head.head." + k: s for k, s in official_daformer_head(c["embed_dims"], e=32).items()}
    shapes |= {"decode_head.scale_attention." + k: s for k, s in official_daformer_head(c["embed_dims"], e=32, fusion="conv").items()}
    hsd = materialise(shapes, 2)
    torch.save(release(hsd, hsd), tmp/"hrda.pth")
    net = build_model("hrda", base="daformer", base_kwargs=dict(variant="b0", embed_dim=32), attention="daformer", attention_embed_dim=32, crop=(512, 512))
    rep = load_released(net, tmp/"hrda.pth")
    s = net.state_dict()
    assert torch.equal(s["attention.fuse.0.weight"], hsd["decode_head.scale_attention.fuse_layer.conv.weight"])
    assert torch.equal(s["base.decode_head.fuse.branches.1.1.0.weight"], hsd["decode_head.head.fuse_layer.aspp_modules.1.pointwise_conv.conv.weight"])
    assert len(rep.loaded) == len([k for k in s if not k.endswith("num_batches_tracked")])

def test_hf_layout_equals_official(b0_release):
    sd, tmp = b0_release
    off = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    hf = {}                                  # transformers modeling_segformer.py names, key/value split as convert_segformer_original_to_pytorch.py
    for k, v in off.items():
        if k.startswith("norm"): hf[f"segformer.encoder.layer_norm.{int(k[4]) - 1}.{k.split('.')[1]}"] = v; continue
        s = k
        for a, b in [("patch_embed", "patch_embeddings."), ("attn.proj", "attention.output.dense"), ("attn.q", "attention.self.query"),
                     ("attn.sr", "attention.self.sr"), ("attn.norm", "attention.self.layer_norm"), ("norm1", "layer_norm_1"), ("norm2", "layer_norm_2"),
                     ("fc1", "dense1"), ("fc2", "dense2")]: s = s.replace(a, b)
        s = s.replace("patch_embeddings..", "patch_embeddings.")
        for i in range(1, 5):
            s = s.replace(f"patch_embeddings.{i}.", f"patch_embeddings.{i-1}.").replace(f"block{i}.", f"block.{i-1}.")
            if s.startswith(f"norm{i}."): s = s.replace(f"norm{i}.", f"layer_norm.{i-1}.")
        s = s.replace("patch_embeddings.0.norm", "patch_embeddings.0.layer_norm")
        for i in range(4): s = s.replace(f"patch_embeddings.{i}.norm", f"patch_embeddings.{i}.layer_norm")
        if ".attn.kv." in s:
            d = v.shape[0] // 2
            hf["segformer.encoder." + s.replace("attn.kv", "attention.self.key")] = v[:d]
            hf["segformer.encoder." + s.replace("attn.kv", "attention.self.value")] = v[d:]
        else: hf["segformer.encoder." + s] = v
    hf["classifier.weight"], hf["classifier.bias"] = torch.zeros(1000, 256), torch.zeros(1000)
    assert "segformer.encoder.block.0.1.attention.self.layer_norm.weight" in hf and "segformer.encoder.layer_norm.3.bias" in hf
    torch.save(hf, tmp/"pytorch_model.bin"); torch.save(off, tmp/"mit_b0.pth")
    a, b = DAFormerNet(variant="b0"), DAFormerNet(variant="b0")
    ra, rb = load_mit(a, tmp/"pytorch_model.bin"), load_mit(b, tmp/"mit_b0.pth")
    assert ra.layout == "hf_segformer" and ra.missing == [] and sorted(ra.unexpected) == ["classifier.bias", "classifier.weight"]
    for k, v in b.encoder.state_dict().items(): assert torch.equal(a.encoder.state_dict()[k], v), k

def test_deeplab_refuses_torchvision_weights_in_caffe_layout(tmp_path):
    from cda_nb.models import DeepLabV2
    kw = dict(layers=(1, 1, 1, 1), width=4)
    tv = {k: v for k, v in DeepLabV2(**kw, style="torchvision").state_dict().items() if not k.startswith("layer5")}
    torch.save(tv, tmp_path/"resnet101-5d3b4d8f.pth")
    with pytest.raises(CDAError) as e: DeepLabV2(pretrained=str(tmp_path/"resnet101-5d3b4d8f.pth"), **kw)
    assert "style='torchvision'" in str(e.value) and "DeepLab_resnet_pretrained_init-f81d91e8.pth" in str(e.value)
    m = DeepLabV2(pretrained=str(tmp_path/"resnet101-5d3b4d8f.pth"), style="torchvision", **kw)
    assert m.layer2[0].conv2.stride == (2, 2) and m.load_report.layout == "torchvision"
