"""The figures a person reads (issue 22): training curves keep loss terms, diagnostics and the learning rate apart with
every legend outside the data; the gains chart pairs runs by seed."""
import json
from pathlib import Path
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from cda_nb import viz
from cda_nb.data import CLASSES19

ROOT = Path(__file__).resolve().parents[1]
XI = [c for c in CLASSES19 if c not in ("wall", "bus", "train", "motorcycle")]          # bcl's 15 logged classes

def _bcl_records(n=30):
    "A bcl-like log: loss = sum of terms, 15 `xi_norm/<class>`, eval records with `val_miou`, written in the trainer's order."
    rng = np.random.default_rng(0); out = []
    for s in range(10, 10 * n + 1, 10):
        t = {"ce_src": 0.4 + 0.05 * rng.random(), "ce_tgt": 0.3 * rng.random(), "ent_src": 0.03, "ent_tgt": 0.05, "fcl": 0.1, "bcl": 0.2}
        out.append({"step": s, "loss": sum(t.values()), **t, "lr": 0.006 * (1 - s / (10 * n + 1)), "seconds": s * 0.8,
                    "data_seconds": s * 0.1, **{f"xi_norm/{c}": 1 + i * 0.3 - s * 1e-4 for i, c in enumerate(XI)}})
        if s % 100 == 0: out.append({"step": s, "val_miou": 0.3 + s * 1e-4})
    return out

def _labels(ax): return [l.get_label() for l in ax.get_lines() if not l.get_label().startswith("_")]

def _legends_clear(fig):
    "[(axes title, overlaps)] for each legend of `fig`: True where a legend box overlaps its axes' data area."
    fig.draw_without_rendering()
    return [(a.get_title(), a.get_legend().get_window_extent().overlaps(a.get_window_extent())) for a in fig.axes if a.get_legend()]

def test_curves_put_losses_diagnostics_and_lr_on_separate_axes():
    fig = viz.plot_curves(_bcl_records())
    assert len(fig.axes) >= 3
    titles = [a.get_title() for a in fig.axes]
    loss_ax = next(a for a in fig.axes if "loss" in a.get_title())
    xi_ax = next(a for a in fig.axes if "ξ" in a.get_title())
    assert loss_ax is not xi_ax
    assert set(_labels(loss_ax)) == {"total loss", "ce_src", "ce_tgt", "ent_src", "ent_tgt", "fcl", "bcl"}
    assert not any(l in XI for l in _labels(loss_ax))                      # no ξ norm among the losses
    assert set(_labels(xi_ax)) == set(XI)
    for a in fig.axes:                                                     # timings are neither losses nor diagnostics
        assert not any("seconds" in l for l in _labels(a)), a.get_title()
    assert "learning rate" in titles and "target val mIoU" in titles
    val_ax = fig.axes[titles.index("target val mIoU")]
    assert np.allclose(val_ax.get_lines()[0].get_ydata(), [100 * (0.3 + s * 1e-4) for s in (100, 200, 300)])
    assert loss_ax.get_yscale() == "log"                                    # 0.03 next to ~1: ranges differ by >10x
    plt.close(fig)

def test_curves_legends_stay_outside_the_data():
    fig = viz.plot_curves(_bcl_records())
    legs = _legends_clear(fig)
    assert len(legs) >= 2 and not any(o for _, o in legs), legs
    plt.close(fig)
    fig, ax = plt.subplots(); ax.plot([0, 1], label="x"); ax.legend()       # the check itself sees an inside legend
    assert _legends_clear(fig)[0][1]; plt.close(fig)

@pytest.mark.parametrize("method", ["bcl", "dacs", "ucda", "sdca", "clst", "source_only"])
def test_curves_of_committed_logs(method):
    from cda_nb.core import read_jsonl
    recs = read_jsonl(ROOT/f"reports/runs/minicity/{method}/seed0/log.jsonl")
    keys = viz.split_log_keys(recs)
    for r in recs: assert abs(sum(r[k] for k in keys["loss"][1:]) - r["loss"]) < 1e-4   # the terms are what sums to the loss
    fig = viz.plot_curves(recs)
    loss_ax = fig.axes[0]
    assert not any(k in _labels(loss_ax) for k in keys["diagnostics"] + ["lr", "seconds"])
    assert not any(o for _, o in _legends_clear(fig))
    plt.close(fig)

def _runs(spec):
    "{method: [metrics]} from {method: {seed: (val mIoU, test mIoU or None)}}."
    return {k: [{"seed": s, "miou": v, **({"miou_test": t} if t is not None else {})} for s, (v, t) in sorted(d.items())]
            for k, d in spec.items()}

def test_paired_gains_pair_by_seed_only():
    runs = _runs({"source_only": {0: (.20, .20), 1: (.30, .30), 2: (.25, .25)},
                  "adabn": {1: (.32, .33), 2: (.27, .26), 3: (.5, .5)},
                  "m": {0: (.40, .41), 2: (.30, .31), 3: (.90, .90), 4: (.9, .9)}})
    g = viz.paired_gains(runs, "test")
    assert set(g) == {"adabn", "m"}
    assert g["m"]["vs source_only"] == pytest.approx({0: 21.0, 2: 6.0})          # seed 1: no m run; seeds 3, 4: no baseline
    assert g["m"]["vs adabn"] == pytest.approx({2: 5.0, 3: 40.0})
    assert g["adabn"] == {"vs source_only": pytest.approx({1: 3.0, 2: 1.0})}
    # pairing by seed, not by position: the unpaired mean would be different
    assert np.mean(list(g["m"]["vs source_only"].values())) == pytest.approx(13.5)
    gv = viz.paired_gains(runs, "val", baselines=("source_only",))
    assert gv["m"]["vs source_only"] == pytest.approx({0: 20.0, 2: 5.0})

def test_paired_gains_skip_runs_without_the_split():
    runs = _runs({"source_only": {0: (.2, .2), 1: (.2, None)}, "m": {0: (.3, None), 1: (.4, .4)}})
    assert viz.paired_gains(runs, "test", baselines=("source_only",)) == {}      # seed 0: m has no test; seed 1: the baseline has none
    assert viz.paired_gains(runs, "val", baselines=("source_only",))["m"]["vs source_only"] == pytest.approx({0: 10.0, 1: 20.0})

def test_plot_gains_draws_each_seed_and_the_mean():
    gains = {"a": {"vs source_only": {0: 1.0, 2: 3.0}, "vs adabn": {0: -1.0}}, "b": {"vs source_only": {1: 5.0, 2: 7.0, 3: 6.0}}}
    fig = viz.plot_gains(gains)
    ax0, ax1 = fig.axes
    assert [t.get_text() for t in ax0.get_yticklabels()] == ["b", "a"]          # sorted by the mean gain over the first baseline
    assert [round(p.get_width(), 3) for p in ax0.patches] == [6.0, 2.0]
    dots = [c for c in ax0.collections if c.get_offsets().shape[0] in (2, 3) and c.get_offsets()[:, 1].std() == 0]
    assert sorted(map(len, (c.get_offsets() for c in dots))) == [2, 3]          # one dot per seed
    assert any(np.allclose(l.get_xdata(), 0) for l in ax0.get_lines())          # the zero line
    assert [round(p.get_width(), 3) for p in ax1.patches] == [-1.0]
    assert ax0.get_xlim() == ax1.get_xlim()
    plt.close(fig)

def test_gains_of_committed_runs():
    from cda_nb.report import collect_runs
    runs = collect_runs(ROOT/"reports/runs", "minicity")
    g = viz.paired_gains(runs, "test", methods=["adabn", "bcl", "dacs"])
    so = {m["seed"]: m["miou_test"] for m in runs["source_only"]}
    for m in runs["bcl"]: assert g["bcl"]["vs source_only"][m["seed"]] == pytest.approx(100 * (m["miou_test"] - so[m["seed"]]))
    plt.close(viz.plot_gains(g))
