"Cross-check cda_nb.metrics against the official Cityscapes pixel-level evaluation (cityscapesscripts)."
import importlib, math, os, sys
import numpy as np
import pytest
import torch
from PIL import Image

from cda_nb.data import CS_LABELS, ID2TRAIN, SYNTHIA16, SYNTHIA13, CLASSES19
from cda_nb.metrics import ConfusionMeter, confusion_matrix, iou_per_class, mean_iou

pytest.importorskip("cityscapesscripts")


# `cs_eval` (cityscapesscripts' evaluation module) is a shared fixture in conftest.py


def _random_pair(rng, h=23, w=31):
    "GT and prediction in Cityscapes ids (0..33), with void regions, ignored-id predictions and blocky structure."
    all_ids = np.array([l.id for l in CS_LABELS if l.id >= 0])
    gt = rng.choice(all_ids, size=(h, w)).astype(np.uint8)
    gt[: h // 3, : w // 2] = rng.choice(all_ids)                 # a uniform block
    gt[-3:, :] = 0                                                # unlabeled strip (ignored)
    gt[:, -2:] = 1                                                # ego vehicle (ignored)
    pred = gt.copy()
    flip = rng.random((h, w)) < 0.4
    pred[flip] = rng.choice(all_ids, size=int(flip.sum()))       # errors, incl. predictions of ignored ids (FN only)
    return gt, pred


def _official(cs_eval, pairs, tmp_path):
    args = cs_eval.args
    cm = cs_eval.generateMatrix(args)
    for k, (gt, pred) in enumerate(pairs):
        g, p = tmp_path / f"c_{k:06d}_000019_gtFine_labelIds.png", tmp_path / f"c_{k:06d}_000019_pred.png"
        Image.fromarray(gt, mode="L").save(g); Image.fromarray(pred, mode="L").save(p)
        cs_eval.evaluatePair(str(p), str(g), cm, {}, {}, args)
    scores = {l.name: cs_eval.getIouScoreForLabel(l.id, cm, args) for l in CS_LABELS if l.id >= 0 and not l.ignore_in_eval}
    return cm, scores, cs_eval.getScoreAverage(scores, args)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iou_matches_cityscapesscripts(cs_eval, tmp_path, seed):
    rng = np.random.default_rng(seed)
    pairs = [_random_pair(rng) for _ in range(3)]
    cm_off, scores, miou_off = _official(cs_eval, pairs, tmp_path)
    assert cm_off.sum() == sum(g.size for g, _ in pairs)          # the official matrix was filled

    meter = ConfusionMeter(19)
    for gt, pred in pairs:
        meter.update(torch.from_numpy(ID2TRAIN[pred]), torch.from_numpy(ID2TRAIN[gt]))
    ours = meter.iou()
    theirs = np.array([scores[c] for c in CLASSES19])
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours[~np.isnan(ours)], theirs[~np.isnan(theirs)], atol=1e-6)
    assert abs(meter.miou() - miou_off) < 1e-6
    # predictions of ignored ids must have happened, otherwise the FN-only rule was not exercised
    assert int(meter.cm[:, 19].sum()) > 0


def test_absent_class_is_nan_in_both(cs_eval, tmp_path):
    gt = np.full((8, 8), 7, np.uint8); gt[:, 4:] = 0               # road + unlabeled only
    pred = np.full((8, 8), 7, np.uint8); pred[:, 6:] = 26            # car predicted on unlabeled: not a FP
    _, scores, miou_off = _official(cs_eval, [(gt, pred)], tmp_path)
    cm = confusion_matrix(ID2TRAIN[pred], ID2TRAIN[gt])
    ours = iou_per_class(cm)
    assert scores["road"] == 1.0 and ours[0] == 1.0
    assert math.isnan(scores["car"]) and math.isnan(ours[13])
    assert miou_off == mean_iou(cm) == 1.0


def test_subset_means(cs_eval, tmp_path):
    rng = np.random.default_rng(7)
    pairs = [_random_pair(rng) for _ in range(2)]
    _, scores, _ = _official(cs_eval, pairs, tmp_path)
    meter = ConfusionMeter(19)
    for gt, pred in pairs: meter.update(ID2TRAIN[pred], ID2TRAIN[gt])
    for subset in (SYNTHIA16, SYNTHIA13):
        vals = [scores[CLASSES19[i]] for i in subset if not math.isnan(scores[CLASSES19[i]])]
        assert abs(meter.miou(subset) - float(np.mean(vals))) < 1e-6
