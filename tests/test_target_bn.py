"The target-BatchNorm control and the post-hoc AdaBN re-scoring agree, and the re-scoring never reads target-train labels."
import json, shutil
from cda_nb.training.trainer import train
from cda_nb.report import target_bn_eval, cached_target_bn_eval

KW = dict(iters=3, init_iters=3, batch_size=2, crop=(48, 48), log_every=1, progress=False, figures=False, analysis=False)

def test_recompute_run_matches_post_hoc_rescoring(tiny_root, tmp_path):
    m = train(method="adabn", data_root=str(tiny_root), out_dir=str(tmp_path), method_params={"recompute": True}, **KW)
    d = tmp_path/"minicity/adabn/seed0"
    r = target_bn_eval(d)                       # re-estimating the statistics of a re-estimated model changes nothing
    assert abs(r["val"] - m["miou"]) < 1e-6
    assert (r["test"] is None) == (m.get("miou_test") is None) and (r["test"] is None or abs(r["test"] - m["miou_test"]) < 1e-6)
    c = cached_target_bn_eval(d)
    assert json.loads((d/"target_bn.json").read_text())["val"] == c["val"] == r["val"]
    (d/"target_bn.json").write_text(json.dumps({**c, "val": -1.0}))
    assert cached_target_bn_eval(d)["val"] == -1.0                       # reused while metrics.json is unchanged
    (d/"metrics.json").write_text((d/"metrics.json").read_text() + " ")
    assert cached_target_bn_eval(d)["val"] == r["val"]                   # recomputed once the run changed

def test_rescoring_reads_no_target_train_label(tiny_root, tmp_path):
    root = tmp_path/"copy"; shutil.copytree(tiny_root, root)
    train(method="source_only", data_root=str(root), out_dir=str(tmp_path/"runs"), **KW)
    for f in (root/"cityscapes/gtFine/train").rglob("*_labelTrainIds.png"): f.write_bytes(b"garbage")
    for f in (root/"cityscapes/gtFine/train").rglob("*_labelIds.png"): f.write_bytes(b"garbage")
    r = target_bn_eval(tmp_path/"runs/minicity/source_only/seed0")
    assert 0 <= r["val"] <= 1
