"""Experiments as data (issue 22): the MiniCity grid file describes exactly the committed runs, and each committed
config.json agrees with its entry."""
import json
from pathlib import Path
import pytest
from cda_nb.core import CDAError
from cda_nb.experiments import load_experiments, check_committed, config_mismatch, waves, RunSpec

ROOT = Path(__file__).resolve().parents[1]

def test_minicity_file_describes_exactly_the_committed_runs():
    exp = load_experiments(ROOT/"experiments/minicity.yaml")
    assert check_committed(exp, ROOT/"reports/runs") == []
    committed = {f"{m.parent.parent.name}/{m.parent.name}" for m in (ROOT/"reports/runs/minicity").glob("*/seed*/metrics.json")}
    assert {s.name for s in exp.runs()} == committed

def test_an_undescribed_or_disagreeing_run_is_reported(tmp_path):
    exp = load_experiments(ROOT/"experiments/minicity.yaml")
    d = tmp_path/"minicity"/"bcl-new"/"seed0"; d.mkdir(parents=True)
    (d/"metrics.json").write_text(json.dumps({"miou": 0.1}))
    assert any("does not describe" in p for p in check_committed(exp, tmp_path))
    stored = json.loads((ROOT/"reports/runs/minicity/bcl/seed0/config.json").read_text())
    assert config_mismatch(exp, RunSpec("bcl", "bcl", "", 0, {"threshold": 0.5}), stored)["method_params.threshold"] == (0.9, 0.5)
    stored["lr"] = 1.0
    assert "lr" in config_mismatch(exp, RunSpec("bcl", "bcl", "", 0), stored)

def test_waves_put_source_runs_first():
    exp = load_experiments(ROOT/"experiments/minicity.yaml")
    ws = waves(exp)
    first = {s.name for s in ws[0]}
    for later in ws[1:]:
        for s in later:
            need = f"{s.start or 'source_only'}/seed{s.seed}"
            assert need in first

def test_bad_file_names_the_entry(tmp_path):
    p = tmp_path/"g.yaml"; p.write_text("benchmark: x\nruns:\n  - run: bcl\n    parms: {}\n")
    with pytest.raises(CDAError, match=r"g.yaml: runs\[0\] \(bcl\): unknown field"): load_experiments(p)
