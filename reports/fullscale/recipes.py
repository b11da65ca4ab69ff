"""The official recipes of the papers the kit reproduces, as data, against the kit's paper configs (issue 21).

    python reports/fullscale/recipes.py        # from the repo root; writes reports/fullscale/recipes.md

Each row: a setting, the official value with the file (and line or key) it is read from, the kit key(s) that hold it,
the kit value that would match (`want`; None: not comparable by value), and the published cost of a difference where a
paper prices it. The kit's values are resolved live from `configs/<dataset>/<method>.yaml` (and `fair/<method>.yaml`)
with the kit's own resolver, so the table follows the configs. A kit key that does not exist prints `—`.
"""
import dataclasses, inspect, math, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from cda_nb.cli import read_yaml_config                       # noqa: E402  (the kit's `base:` resolver)

# Official sources: short name -> repository@commit (the snapshots read for this table)
REPOS = {"DAFormer": "lhoyer/DAFormer@e6f6e041e7", "HRDA": "lhoyer/HRDA@c370b5b0fe", "MIC": "lhoyer/MIC@2f932a98b5",
         "CLUDA": "user0407/CLUDA@bad6ed0724", "SDCA": "BIT-DA/SDCA@d00e7badc6", "DASS": "cvlab-yonsei/DASS@f544686cc3",
         "AdaptSegNet": "wasidennis/AdaptSegNet@fca9ff0f09"}
P = "shared/papers/"                                          # the papers' text files (project shared folder)
DCFG = "DAFormer configs/daformer/gta2cs_uda_warm_fdthings_rcs_croppl_a999_daformer_mitb5_s0.py"
DDS = "DAFormer configs/_base_/datasets/uda_gta_to_cityscapes_512x512.py"
DUDA = "DAFormer configs/_base_/uda/dacs.py"
DTR = "DAFormer mmseg/models/utils/dacs_transforms.py"
DM = "DAFormer mmseg/models/uda/dacs.py"
HCFG = "HRDA configs/hrda/gtaHR2csHR_hrda.py"
HDS = "HRDA configs/_base_/datasets/uda_gtaHR_to_cityscapesHR_1024x1024.py"
NOT_PRICED = "not priced in shared/papers (DAFormer/HRDA papers not there)"


class OneOf(tuple):
    "A `want` met by any of these kit values (e.g. a default that resolves to the official value at run time)."


def R(setting, key, official, src, want=None, cost="", syn=None):
    """One row: `key` is a kit key ('crop', 'method_params.alpha', 'model_kwargs.embed_dim'), alternatives split by '|';
    `syn`: (want, official, src) where SYNTHIA -> Cityscapes differs."""
    return dict(setting=setting, key=key, official=official, src=src, want=want, cost=cost, syn=syn)


def merge(*lists):
    "Rows of several recipes; a later row replaces an earlier one of the same setting, in its place."
    out = {}
    for rows in lists:
        for r in rows: out[r["setting"]] = r
    return list(out.values())


DAFORMER_ROWS = [  # DAFormer's recipe: dacs.yaml, and the DAFormer part of cluda.yaml
    R("network", "model", "DAFormer: MiT-B5 + context-aware fusion (sep. ASPP d=1,6,12,18)", f"{DCFG}:9; _base_/models/daformer_sepaspp_mitb5.py:15-19", "daformer"),
    R("decoder embed dim", "model_kwargs.embed_dim|model_kwargs.base_kwargs.embed_dim", "256 (embed_dims, channels)", "DAFormer configs/_base_/models/daformer_conv1_mitb5.py:20,26", 256),
    R("start", "init", "ImageNet MiT-B5 (pretrained/mit_b5.pth), decoder random", "DAFormer daformer_conv1_mitb5.py:14", "none"),
    R("source resize", "src_resize", "(1280, 720), keep_ratio: 1914x1052 -> 1280x704", f"{DDS}:15 (mmseg Resize keep_ratio=True)", (720, 1280),
      "GTA5: kit stretches to 1280x720 (+2.3% height); not priced",
      syn=((760, 1280), "(1280, 760)", "DAFormer configs/_base_/datasets/uda_synthia_to_cityscapes_512x512.py:15")),
    R("Cityscapes resize", "tgt_resize", "(1024, 512)", f"{DDS}:27", (512, 1024)),
    R("crop", "crop", "512x512", f"{DDS}:11,16,28", (512, 512)),
    R("random rescaling", "scale", "none (single img_scale, no ratio_range)", f"{DDS}:15,27", (1.0, 1.0), NOT_PRICED),
    R("source crop cat_max_ratio", "cat_max_ratio", "0.75 (<=10 redraws; target: none)", f"{DDS}:16,28; transforms.py RandomCrop:547-556", 0.75, NOT_PRICED),
    R("flip", "flip", "p 0.5", f"{DDS}:17,29", True),
    R("photometric aug in the pipeline", "aug", "none (PhotoMetricDistortion commented out)", f"{DDS}:18,30", "geometric",
      "kit 'photometric' jitters every image; not priced"),
    R("strong transform", "method_params.strong", "mixed image only: ColorJitter b=c=s=h=0.2 when U>0.2 (p 0.8); blur when U>0.5 (p 0.5), sigma U(0.15,1.15), kernel ~0.1*side (odd)",
      f"{DUDA}:17-19; {DTR}:52-87; {DM}:223-231", "dacs", NOT_PRICED),
    R("ClassMix", "method_params.mix", "mix='class': half of each source image's classes pasted", f"{DUDA}:16; {DTR}:90-99", True),
    R("EMA alpha", "method_params.alpha", "0.999 (min(1-1/(t+1), alpha))", f"{DCFG}:24; {DM}:105", 0.999),
    R("pseudo-label threshold", "method_params.threshold", "0.968; weight = share of confident pixels", f"{DUDA}:10; {DM}:272-278", 0.968),
    R("teacher BatchNorm", "method_params.teacher_bn", "EMA model in train mode (only dropout/DropPath off)", f"{DM}:264-270", "train"),
    R("pseudo-label crop [top, bottom, left, right]", "method_params.pl_margins", "top 15, bottom 120 (on the 512 crop)", f"{DCFG}:30-31; {DM}:280-286",
      [15, 120, 0, 0], NOT_PRICED),
    R("RCS temperature", "method_params.rcs_temperature", "class_temp 0.01", f"{DCFG}:36", 0.01),
    R("RCS image pool", "method_params.rcs_min_share", "min_pixels 3000 on full-size labels (3000/1914/1052 = 0.0015)",
      f"{DCFG}:36; DAFormer mmseg/datasets/uda_dataset.py:80; tools/convert_datasets/gta.py:41-47", 0.0015,
      syn=(round(3000 / (1280 * 760), 4), "min_pixels 3000 on SYNTHIA's 1280x760 labels (share 0.0031)",
           f"{DCFG}:36 (DAFormer's SYNTHIA runs: experiments.py); tools/convert_datasets/synthia.py")),
    R("RCS crop redraw", "method_params.rcs_min_crop_pixels|method_params.rcs_min_crop_ratio",
      "min_crop_ratio 0.5: <=10 redraws until the crop holds > 3000*0.5 = 1500 px of the class", f"{DCFG}:36; uda_dataset.py:95-105", 1500, NOT_PRICED),
    R("feature distance lambda", "method_params.lambda_fd", "0.005", f"{DCFG}:26", 0.005),
    R("FD features", "method_params.fd_features", "encoder's last stage (extract_feat(img)[-1])", f"{DM}:164-184 (lay = -1)", "encoder", NOT_PRICED),
    R("FD reference", "method_params.fd_reference", "a separate ImageNet network (imnet_model, eval)", f"{DM}:82-83,166-169", "imagenet"),
    R("FD classes / min ratio", None, "things [6,7,11..18], scale_min_ratio 0.75", f"{DCFG}:27-28", None, "kit: THING_CLASSES, min_ratio 0.75 (fixed)"),
    R("optimizer", "optimizer", "AdamW betas (0.9, 0.999)", "DAFormer configs/_base_/schedules/adamw.py:4-5", "adamw"),
    R("lr", "lr", "6e-5 (head lr_mult 10 -> 6e-4)", f"{DCFG}:40-43", 6e-5),
    R("weight decay", "weight_decay", "0.01", "DAFormer adamw.py:5", 0.01),
    R("no decay", "no_decay", "custom_keys pos_block/norm decay_mult 0: mmcv matches name substrings, first of (pos_block, head, norm); "
      "decoder params match 'head' first (decay kept, BN named 'bn'); MiT LayerNorms (norm, norm1, norm2, attn.norm) get 0",
      f"{DCFG}:41-45; mmcv DefaultOptimizerConstructor", ["layernorm"]),
    R("warm-up", "warmup_iters", "linear, 1500 iters, ratio 1e-6", "DAFormer configs/_base_/schedules/poly10warm.py:8-11", 1500),
    R("poly power / min lr", "poly_power", "1.0, min_lr 0", "DAFormer poly10warm.py:12-13", 1.0),
    R("iterations", "iters", "40k", f"{DCFG}:47", 40000),
    R("batch", "batch_size", "2 source + 2 target, 1 GPU", f"{DDS}:54; {DCFG}:46", 2),
    R("evaluation interval", "eval_every", "4000", f"{DCFG}:50", 4000),
    R("checkpoint", "ckpt_every", "once, at 40k (max_keep_ckpts 1)", f"{DCFG}:49", None, "kit checkpoints more often to resume (no effect on results)"),
    R("precision", "amp", "fp32 (no fp16 cfg; optimizer_config None)", f"{DCFG}:38", False, "not priced"),
    R("test", "eval_size", "whole image at 1024x512, no flip, scored at full label size", f"{DDS}:36-51", (512, 1024)),
]

HRDA_ROWS = [  # HRDA on top of DAFormer: cluda_hrda.yaml
    R("network", "model", "HRDAEncoderDecoder, DAFormer head per scale", f"{HCFG}:24-28", "hrda"),
    R("base", "model_kwargs.base", "DAFormer (MiT-B5)", f"{HCFG}:10", "daformer"),
    R("scales", "model_kwargs.scale", "[1, 0.5] (context at 0.5)", f"{HCFG}:35", 0.5),
    R("detail crop", "model_kwargs.crop", "hr_crop_size 512x512", f"{HCFG}:37", [512, 512]),
    R("scale attention", "model_kwargs.classwise", "classwise", f"{HCFG}:30", True),
    R("attention head", "model_kwargs.attention", "a DAFormer head (attention_embed_dim 256, 1x1-conv fusion)", "HRDA mmseg/models/decode_heads/hrda_head.py:40,49-58", "daformer",
      "kit default 'conv' head; not priced"),
    R("detail loss weight", "model_kwargs.hr_loss_weight", "0.1", f"{HCFG}:32", 0.1),
    R("feature distance scale", None, "feature_scale 0.5 (LR features)", f"{HCFG}:39", None, "kit: LR path (lr_feats)"),
    R("source resize", "src_resize", "(2560, 1440), keep_ratio: 1914x1052 -> 2560x1407", f"{HDS}:15", (1440, 2560),
      syn=((1520, 2560), "(2560, 1520)", "HRDA configs/_base_/datasets/uda_synthiaHR_to_cityscapesHR_1024x1024.py:15")),
    R("Cityscapes resize", "tgt_resize", "(2048, 1024)", f"{HDS}:27", (1024, 2048)),
    R("crop", "crop", "1024x1024", f"{HDS}:11", (1024, 1024)),
    R("random rescaling", "scale", "none", f"{HDS}:15,27", (1.0, 1.0)),
    R("source crop cat_max_ratio", "cat_max_ratio", "0.75", f"{HDS}:16", 0.75),
    R("RCS crop redraw", "method_params.rcs_min_crop_pixels|method_params.rcs_min_crop_ratio", "min_crop_ratio 2.0 -> 6000 px", f"{HCFG}:57-58", 6000),
    R("pseudo-label crop [top, bottom, left, right]", "method_params.pl_margins", "[30, 240, 30, 30] masked on the full image before the crop (crop_pseudo_margins)",
      f"{HCFG}:64; HRDA mmseg/datasets/cityscapes.py:40-67", [30, 240, 30, 30],
      "kit masks the crop's borders: same for top/bottom (crop = full height), left/right always 30 px"),
    R("pseudo labels", None, "hr_slide_inference: sliding detail windows", f"{HCFG}:44", None, "kit: sliding windows (hrda._infer)"),
    R("test", "eval_size", "2048x1024, slide 1024x1024 stride 512, batched", f"{HCFG}:46-50; {HDS}:40", (1024, 2048),
      "size as official; windows differ in a kit run's own evaluation: the LR context sees the whole image, not each 1024x1024 "
      "window (cda-eval --released --window 1024 1024 --stride 512 512 follows HRDA); not priced"),
    R("test batch", "eval_batch_size", "1 image (mmseg test loader)", "HRDA mmseg/apis/test.py", None, "kit batches images, windows bounded by eval_pixels"),
    R("seed", "seed", "1", f"{HCFG}:21", None),
]

CLUDA_ROWS = [  # CLUDA's own terms (user0407/CLUDA, HRDA-based code; the paper §5.1, §7)
    R("decoder embed dim", "model_kwargs.embed_dim|model_kwargs.base_kwargs.embed_dim", "512", "CLUDA configs/_base_/models/daformer_conv1_mitb5.py:22", 512,
      f"C 256 vs 512: 69.0 vs 69.2 (Swin-L; {P}cluda_contrastive_uda.txt Table 5)"),
    R("features contrasted", "method_params.features", "decoder's fused features before cls_seg (return_fused)", "CLUDA mmseg/models/decode_heads/daformer_head.py:178-180", "feats"),
    R("feature grid", "method_params.fm_size", "65x65 (bilinear, align_corners)", "CLUDA mmseg/models/uda/dacs.py:258,322-324", 65),
    R("anchors / keys", "method_params.max_anchors", "all 65x65 x batch pixels (8450), no sampling", "CLUDA mmseg/models/losses/contrastive_loss.py:49-99", 8450,
      "kit samples max_anchors"),
    R("keys", "method_params.max_keys", "all pixels (8450)", "CLUDA contrastive_loss.py:9-47", 8450),
    R("temperature", "method_params.tau", "none (tau = 1: raw cosine logits)", "CLUDA contrastive_loss.py:9-47, 101-102", 1.0),
    R("loss weight", "method_params.lambda_cl", "1 (0.5 x mean over anchors of LR + LR-HR terms)", "CLUDA dacs.py:342,436; contrastive_loss.py:98", 1.0),
    R("stuff/thing pairs", "method_params.pairs", "imnet_mask multiplies the positive mask only: stuff-thing negatives stay in the denominator",
      "CLUDA contrastive_loss.py:58-62,31-47", None, f"paper S-S+T-T 69.9 vs all pairs 67.4 ({P}cluda_contrastive_uda.txt Table 3b)"),
    R("mixed-image weight Gamma", "method_params.gamma", "pseudo_weight outer product (confident share)", "CLUDA contrastive_loss.py:64-67,90-91", True,
      f"unweighted 58.6 vs weighted 69.9 (Table 3a)"),
    R("detail crop on mixed images", None, "max-entropy crop after 12k iterations (is_mix)", "CLUDA dacs.py:398-406; hrda_encoder_decoder.py:310-330", None,
      "random 74.41 vs entropy 74.39 (Table 4): no cost"),
    R("multi-res weight", "method_params.mr_cl", "a separate DAFormer head `feat_weighter` (1 channel, sigmoid)", "CLUDA mmseg/models/decode_heads/hrda_head.py:99-105,212", "weighted",
      "LR only 72.2 / LR+HR 72.9 / weighted 74.4 (Table 2b)"),
]

SDCA = "SDCA configs/deeplabv2_r101_sdca.yaml"
SDCA_ROWS = [
    R("network", "model", "DeepLab-V2 ResNet-101", f"{SDCA}:2", "deeplabv2"),
    R("weights", "model_kwargs.pretrained", "torchvision ImageNet resnet101-5d3b4d8f.pth", f"{SDCA}:3", None, "kit: a local file"),
    R("start", "init", "the source-only model (resume model_best.pth of train_src.py)", "SDCA train_with_ssl.sh:37-40", OneOf(("source_only", ""))),
    R("frozen BatchNorm", "model_kwargs.freeze_bn", "FREEZE_BN True (adaptation), False (SSL)", f"{SDCA}:4; SDCA configs/deeplabv2_r101_ssl.yaml:4", True),
    R("optimizer", "optimizer", "SGD momentum 0.9, classifier lr x10", "SDCA train_sdca.py:76-82,140-143", "sgd"),
    R("lr", "lr", "2.5e-4", f"{SDCA}:20", 2.5e-4),
    R("weight decay", "weight_decay", "5e-4 (defaults, not overridden); paper: 1e-4", "SDCA core/configs/defaults.py:59; "
      f"{P}sdca_semantic_distribution_contrastive.txt:1397", 5e-4, "code and paper differ; not priced"),
    R("schedule", "iters", "poly 0.9 over MAX_ITER 62.5k, stopped at 40k", f"{SDCA}:21-22", None, "kit poly runs to 0 at its iters"),
    R("batch", "batch_size", "8 = 4 source + 4 target (4 GPUs x 1+1)", f"{SDCA}:23; train_sdca.py:56-60", 4),
    R("source input", "src_resize", "whole image resized to 1280x720, no crop, no flip", f"{SDCA}:10; SDCA core/datasets/build.py:50-53", (720, 1280),
      syn=((760, 1280), "whole image resized to 1280x760", "SDCA configs/deeplabv2_r101_sdca_synthia.yaml")),
    R("crop", "crop", "none (whole images)", "SDCA build.py:52-53 (INPUT_SCALES_TRAIN (1,1))", "whole",
      "", syn=("whole", "none (whole images)", "SDCA build.py:52-53")),
    R("random rescaling", "scale", "none (INPUT_SCALES_TRAIN (1.0, 1.0))", "SDCA defaults.py:18", (1.0, 1.0)),
    R("flip", "flip", "none (HORIZONTAL_FLIP_PROB_TRAIN 0)", "SDCA defaults.py:41", False),
    R("target input", "tgt_resize", "1024x512, no augmentation", "SDCA defaults.py:16; build.py:31", (512, 1024)),
    R("source photometric", "aug_params", "always ColorJitter(0.5,0.5,0.5,0.2), grayscale p 0.2, blur 3x3 sigma U(0.1,2)", f"{SDCA}:12-18; build.py:31-49; transform.py:249-276",
      None, "kit: shared policy with blur"),
    R("delta", "method_params.delta", "0.9 on the target softmax", f"{SDCA}:24; train_sdca.py:176-178", 0.9),
    R("delta on", "method_params.delta_on", "softmax probabilities", "SDCA train_sdca.py:156,176", "softmax"),
    R("tau", "method_params.tau", "100, on L2-normalised features, means and variances", "SDCA defaults.py:79; core/utils/loss.py:36-45", 100.0),
    R("variance", "method_params.diagonal", "diagonal (C x A)", "SDCA loss.py:16-17; semantic_dist_estimator.py:34", True),
    R("statistics", "method_params.init_images", "initialised offline from the source model (semantic_dist_init.py), then updated every step from source features",
      "SDCA train_with_ssl.sh:39; semantic_dist_estimator.py:18-36,38-80; train_sdca.py:185,203", None),
    R("lambda_lov / feat / out", "method_params.lambda_lovasz", "0.75 / 1.0 / 1.0", f"{SDCA}:25-27", 0.75),
    R("SSL stage", "method_params.ssl_iters", "separate run from ImageNet, lr 5e-4, 20k of 31.25k, batch 8 target, scale 0.5-1.5, crop 1024x512, flip",
      "SDCA configs/deeplabv2_r101_ssl.yaml:9-23", 20000, f"SSL +4.5 (48.4 -> 52.9, {P}sdca_semantic_distribution_contrastive.txt Table 6)"),
    R("SSL labels", "method_params.ssl_median|method_params.ssl_cap", "class-wise median confidence, capped at 0.9", "SDCA core/utils/pseudo_label.py:35-45; pseudo_label.py:111", 0.5),
    R("output-level term", "method_params.lambda_out", "1.0 (MULTI_LEVEL)", f"{SDCA}:27", 1.0, "feat only 46.7 vs multi-level 48.4 (Table 6)"),
]

DASS = "DASS config/damnet_config_upsize.yml"
BCL_ROWS = [  # the public DASS code (damnet.py reads damnet_config_upsize.yml) and the paper §4.1
    R("start", "init", "gta5_source_only_adaptation_3.pth", f"{DASS}:76", OneOf(("source_only", ""))),
    R("lr", "lr", "7.5e-5, halved every round", f"{DASS}:40; trainer/damnet_trainer.py:227", 7.5e-5),
    R("optimizer per round", "method_params.reset_optimizer", "SGD re-created each round (momentum reset)", "DASS damnet_trainer.py:182-187", None),
    R("schedule", "poly_power", "poly 0.9 within a round over 1.2 x 2 x 5000 steps (never reaches 0)", "DASS utils/optimize.py:4-9", 0.9),
    R("rounds x steps", "iters", "10 rounds x 2 epochs x ~5000 steps (~100k)", f"{DASS}:41-46; damnet_trainer.py:172-223", 100000),
    R("label refresh", "method_params.refresh_every", "each round (~10k steps), written to disk as PNGs", "DASS damnet_trainer.py:176-179,295-340", OneOf((0, 10000)), "kit 0 = iters // 10"),
    R("batch", "batch_size", "2 (paper: 4)", f"{DASS}:61; {P}bcl_bidirectional_contrastive.txt:141", 4, "code and paper differ"),
    R("weight decay", "weight_decay", "5e-4", f"{DASS}:43", 5e-4),
    R("frozen BatchNorm", "model_kwargs.freeze_bn", "fixbn True", f"{DASS}:7", True),
    R("resize / crop", "crop", "shorter side 850, crop 730", f"{DASS}:65-68", (730, 730)),
    R("scale", "scale", "0.8-1.2, mirror", f"{DASS}:69-71", (0.8, 1.2)),
    R("target CE weight", "method_params.lambda_seg_t", "lambt 0.3 (paper: 1)", f"{DASS}:20; damnet_trainer.py:138", 1.0, "code and paper differ"),
    R("entropy weight", "method_params.lambda_ent_s", "lamb 0.4 x (ent_s + 0.3 ent_t)", f"{DASS}:15; damnet_trainer.py:140-141", 0.4),
    R("class-balanced share", "method_params.cbst_p", "cb_prop 0.1", f"{DASS}:12", 0.2, "kit default 0.2"),
    R("contrastive weights", "method_params.lambda_fc", "lamb_metric1/2 0.2 (damnet_config.yml: 0.1; paper 0.5)", f"{DASS}:16-17", 0.5, "paper supplement Fig. 1 grid"),
    R("model selection", "eval_every", "best of validations every val_freq steps on Cityscapes val", f"{DASS}:55; damnet_trainer.py:211-219", None,
      "selection on the test split; kit reports the last model"),
]

ADAPTSEG = "AdaptSegNet train_gta2cityscapes_multi.py"
SRC_ROWS = [
    R("weights", "model_kwargs.pretrained", "DeepLab_resnet_pretrained_init-f81d91e8.pth (COCO-trained DeepLab init)", f"{ADAPTSEG}:44", None),
    R("batch", "batch_size", "1", f"{ADAPTSEG}:27", 1, "kit batch 4 (bcl paper); not priced"),
    R("source input", "src_resize", "whole image resized to 1280x720 (no crop, no scale, no flip by default)", f"{ADAPTSEG}:33; dataset/gta5_dataset.py:53-55", (720, 1280),
      syn=((760, 1280), "no SYNTHIA script (the literature: 1280x760)", "—")),
    R("crop", "crop", "none (whole 1280x720 image)", "AdaptSegNet dataset/gta5_dataset.py:53-55", "whole",
      "", syn=("whole", "no SYNTHIA script", "—")),
    R("random rescaling / flip", "scale", "off by default (--random-scale, --random-mirror flags)", f"{ADAPTSEG}:115-118,222-224", (1.0, 1.0)),
    R("lr", "lr", "2.5e-4, classifier x10", f"{ADAPTSEG}:37", 2.5e-4),
    R("momentum / decay", "weight_decay", "0.9 / 5e-4", f"{ADAPTSEG}:38,48", 5e-4),
    R("schedule", "iters", "poly 0.9 over 250k, stopped at 150k", f"{ADAPTSEG}:40-42", None),
    R("BatchNorm", "model_kwargs.freeze_bn", "affine frozen (requires_grad False)", "AdaptSegNet model/deeplab_multi.py:30-64", True),
    R("test", "eval_size", "1024x512 input, upsampled to 2048x1024", "AdaptSegNet evaluate_cityscapes.py:117-122", (512, 1024)),
]

NO_CODE = [R("official code", None, "none found (paper gives no URL; code-index search for the title)", "—", None)]

RECIPES = {  # kit method -> (official recipe, rows)
    "dacs": ("DAFormer (dacs on DAFormer's recipe)", DAFORMER_ROWS),
    "cluda": ("DAFormer + CLUDA", merge(DAFORMER_ROWS, CLUDA_ROWS[:-2])),
    "cluda_hrda": ("HRDA + CLUDA", merge(DAFORMER_ROWS, HRDA_ROWS, CLUDA_ROWS)),
    "sdca": ("SDCA", SDCA_ROWS),
    "bcl": ("bcl (DASS)", BCL_ROWS),
    "self_training": ("the bcl paper's baseline (DASS without the contrastive terms)", [r for r in BCL_ROWS if "contrastive" not in r["setting"]]),
    "source_only": ("AdaptSegNet's DeepLab-V2 source-only recipe", SRC_ROWS),
    "oracle": ("AdaptSegNet's DeepLab-V2 recipe on Cityscapes labels", SRC_ROWS),
    "ucda": ("ucda (no public code)", NO_CODE),
    "clst": ("clst (no public code)", NO_CODE),
}


def resolve(path: Path):
    "A config file as the kit resolves it: `base:` files, then `make_config` (dataset and method defaults); None if absent."
    if not path.is_file(): return None
    d = read_yaml_config(path)
    try:
        from cda_nb.training.config import make_config
        c = dataclasses.asdict(make_config(**{**d, "device": "cpu"}))
    except Exception as e:                                     # a field another engineer is adding: fall back to the raw file
        c = dict(d, _error=f"{type(e).__name__}: {e}")
    try:
        from cda_nb.methods.base import METHODS
        c["method_params"] = {**METHODS[c.get("method", "source_only")].defaults, **(c.get("method_params") or {})}
    except Exception: pass
    try:
        from cda_nb.models import MODELS
        sig = inspect.signature(MODELS[c["model"]])
        c["model_kwargs"] = {**{k: p.default for k, p in sig.parameters.items() if p.default is not inspect._empty}, **(c.get("model_kwargs") or {})}
    except Exception: pass
    return c


MISSING = object()

def kit_value(cfg, key):
    "The value of `key` (dotted, alternatives split by '|') in a resolved config; MISSING when the kit has no such setting."
    if cfg is None or not key: return MISSING
    for k in key.split("|"):
        v = cfg
        for part in k.split("."):
            v = v.get(part, MISSING) if isinstance(v, dict) else MISSING
        if v is not MISSING: return v
    return MISSING


def same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)): return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and math.isclose(a, b, rel_tol=1e-6)
    return a == b


def show(v):
    if v is MISSING: return "—"
    if isinstance(v, str) and v.startswith("/path/"): return "(a local file)"
    return str(list(v) if isinstance(v, tuple) else v).replace("|", "\\|")


def table(method, dataset):
    title, rows = RECIPES[method]
    paper, fair = (resolve(ROOT / "configs" / dataset / f) for f in (f"{method}.yaml", f"fair/{method}.yaml"))
    if paper is None: return [], []
    out = [f"### `configs/{dataset}/{method}.yaml` vs {title}", ""]
    if "_error" in paper: out += [f"(resolved without `make_config`: {paper['_error']})", ""]
    out += ["| setting | official value | official file | kit paper config | kit fair config | difference cost / reason |", "|---|---|---|---|---|---|"]
    diffs, notes = [], []
    for r in rows:
        want, official, src = r["syn"] if r["syn"] and dataset == "synthia_cityscapes" else (r["want"], r["official"], r["src"])
        kv = kit_value(paper, r["key"])
        fv = kit_value(fair, r["key"]) if fair is not None else None
        ok = want is None or (any(same(kv, w) for w in want) if isinstance(want, OneOf) else same(kv, want))
        mark = "" if ok else " ✗"
        out.append(f"| {r['setting']} | {official} | {src} | {show(kv)}{mark} | {'' if fv is None else show(fv)} | {r['cost']} |")
        if not ok: diffs.append(f"- **{r['setting']}**: kit `{r['key'].split('|')[0]}` = {show(kv)}, official {official}"
                                + (f" — {r['cost']}" if r["cost"] else ""))
        elif want is None and r["cost"]: notes.append(f"- {r['setting']} (not compared by value): {r['cost']}")
    out += ["", "What does not match (✗) and why:", ""] + (diffs or ["- nothing compared by value differs"]) + notes + [""]
    return out, diffs


def main():
    lines = ["# Official recipes against the kit's paper configs (issue 21)", "",
             "Generated by `python reports/fullscale/recipes.py` (run from the repo root; it resolves the configs with the kit, "
             "so rerun it after a config change). Official files are read from these snapshots: "
             + ", ".join(f"{k} = `{v}`" for k, v in REPOS.items()) + ". A file path without a repository name continues the row's "
             "previous one. `—`: the kit has no such setting; ✗: the kit's paper config differs from the official value; "
             "the fair column is `configs/<dataset>/fair/<method>.yaml` where it exists.", ""]
    for dataset in ("gta5_cityscapes", "synthia_cityscapes"):
        lines += [f"## {dataset}", ""]
        for m in RECIPES: lines += table(m, dataset)[0]
    out = ROOT / "reports" / "fullscale" / "recipes.md"
    out.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
