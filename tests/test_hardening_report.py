"""Issue 23, the report: only finished run folders count (the `finished.json` marker), the others are listed; one run
never switches the report's split; seeds of different data or settings are not averaged; a file that does not read
names itself; no symbolic link is followed when reading runs or written through in the report folder.

Each test copies 2 rows x 3 seeds of the committed MiniCity runs (metrics.json, config.json, finished.json,
target_bn.json, the predictions figure) into a temporary folder and damages them."""
import json, os, shutil
from pathlib import Path
import pytest
from conftest import ROOT
from cda_nb.core import CDAError, write_finished
from cda_nb.report import write_report

ROWS, SEEDS = ("source_only", "bcl"), (0, 1, 2)
FILES = ("metrics.json", "config.json", "finished.json", "target_bn.json", "figures/predictions.png")

@pytest.fixture
def runs(tmp_path):
    "A copy of the committed runs of `ROWS` (seeds 0-2), without logs and checkpoints; returns <runs>/minicity."
    base = tmp_path/"runs"/"minicity"
    for k in ROWS:
        for s in SEEDS:
            src, dst = ROOT/"reports/runs/minicity"/k/f"seed{s}", base/k/f"seed{s}"
            (dst/"figures").mkdir(parents=True)
            for f in FILES: shutil.copyfile(src/f, dst/f)
    return base

def report(base, **kw):
    "write_report over the copied runs into <tmp>/rep; the README text."
    return write_report(base.parent, "minicity", base.parent.parent/"rep", **kw).read_text()

def edit_json(p, **change):
    p.write_text(json.dumps({**json.loads(p.read_text()), **change}))

def drop_test(d, finish=True):
    "Run folder `d` as the trainer leaves it between its val and test writes (no miou_test), marked finished or not."
    m = json.loads((d/"metrics.json").read_text()); m.pop("miou_test"); m.pop("test", None)
    (d/"metrics.json").write_text(json.dumps(m))
    if finish: write_finished(d)
    else: (d/"finished.json").unlink()

def seeds_of(txt, row):
    "The seeds column of `row` in the headline table."
    line = next(l for l in txt.splitlines() if l.startswith(f"| {row} |"))
    head = next(l for l in txt.splitlines() if l.startswith("| method |")).split(" | ")
    return int(line.split(" | ")[head.index("seeds")])

# ---- 1: one run killed between its val and test writes
def test_killed_between_val_and_test_is_left_out_and_the_report_stays_on_test(runs):
    drop_test(runs/"bcl/seed2", finish=False)
    txt = report(runs)
    assert "mIoU test" in txt.splitlines()[4]                    # the headline stays on test
    assert seeds_of(txt, "bcl") == 2 and seeds_of(txt, "source_only") == 3
    assert "## Run folders left out" in txt and "bcl/seed2" in txt and "rerun the run's command" in txt

def test_a_finished_run_without_test_beside_runs_with_test_is_refused(runs):
    drop_test(runs/"bcl/seed1")                                   # marked finished, but no test results
    with pytest.raises(CDAError, match="no target-test results") as e: report(runs)
    assert "bcl/seed1" in str(e.value)

def test_no_run_with_test_reports_on_val_and_says_so(runs):
    for k in ROWS:
        for s in SEEDS: drop_test(runs/k/f"seed{s}")
    txt = report(runs)
    assert "mIoU val" in txt.splitlines()[4] and "mIoU test" not in txt
    assert "no run has target-test results" in txt

# ---- 2: seeds (and rows) of different data
def test_seeds_of_different_minicity_versions_are_not_averaged(runs):
    edit_json(runs/"bcl/seed1/config.json", minicity_version=1)
    with pytest.raises(CDAError, match="minicity_version") as e: report(runs)
    assert "bcl/seed1 has 1" in str(e.value) and "bcl/seed0 has 2" in str(e.value) and "Rerun" in str(e.value)

def test_rows_on_different_data_roots_are_refused(runs):
    for s in SEEDS: edit_json(runs/f"bcl/seed{s}/config.json", data_root="/data/other_minicity")
    with pytest.raises(CDAError, match="different data \\(data_root\\)") as e: report(runs)
    assert "source_only/seed0" in str(e.value) and "bcl/seed0" in str(e.value)

def test_rows_on_different_shiftcity_versions_are_refused(runs):
    "The generator version of ShiftCity counts as data like MiniCity's: rows made from two versions are not compared."
    for k, v in zip(ROWS, (1, 2)):
        for s in SEEDS: edit_json(runs/f"{k}/seed{s}/config.json", shiftcity_version=v)
    with pytest.raises(CDAError, match="different data \\(shiftcity_version\\)"): report(runs)

def test_seeds_with_different_iters_are_not_averaged(runs):
    edit_json(runs/"source_only/seed2/config.json", iters=50)
    with pytest.raises(CDAError, match="differ in more than their seed.*iters") as e: report(runs)
    assert "source_only/seed2 has 50" in str(e.value)

# ---- 3: files that do not read
def test_truncated_metrics_json_is_left_out_and_named(runs):
    p = runs/"bcl/seed0/metrics.json"; p.write_bytes(p.read_bytes()[:200])
    txt = report(runs)
    assert seeds_of(txt, "bcl") == 2 and "bcl/seed0" in txt.split("## Run folders left out")[1]
    assert "does not match metrics.json" in txt

def test_truncated_config_json_of_a_finished_run_is_left_out_and_named(runs):
    p = runs/"source_only/seed1/config.json"; p.write_bytes(p.read_bytes()[:100])
    txt = report(runs)
    assert seeds_of(txt, "source_only") == 2 and "config.json is not valid JSON" in txt

def test_truncated_target_bn_cache_names_the_file(runs):
    p = runs/"bcl/seed0/target_bn.json"; p.write_text('{"metrics_sha256": "ab')
    with pytest.raises(CDAError, match="target_bn.json is not valid JSON.*delete it"): report(runs, target_bn=True)

# ---- 4: symbolic links
def test_a_figure_that_is_a_symlink_is_never_copied(runs, tmp_path):
    secret = tmp_path/"secret.txt"; secret.write_text("root:x:0:0:SECRET\n")
    f = runs/"bcl/seed0/figures/predictions.png"; f.unlink(); f.symlink_to(secret)
    txt = report(runs)
    for p in (tmp_path/"rep").rglob("*"):
        assert not p.is_file() or b"SECRET" not in p.read_bytes(), p
    assert "symbolic link" in txt and seeds_of(txt, "bcl") == 2

def test_a_run_folder_or_metrics_json_that_is_a_symlink_is_left_out(runs, tmp_path):
    elsewhere = tmp_path/"elsewhere"; shutil.move(runs/"bcl/seed2", elsewhere); (runs/"bcl/seed2").symlink_to(elsewhere)
    m = runs/"source_only/seed1/metrics.json"; shutil.move(m, tmp_path/"m.json"); m.symlink_to(tmp_path/"m.json")
    txt = report(runs)
    assert seeds_of(txt, "bcl") == 2 and seeds_of(txt, "source_only") == 2
    left = txt.split("## Run folders left out")[1]
    assert "bcl/seed2" in left and "source_only/seed1" in left

def test_report_figures_folder_that_is_a_symlink_is_refused(runs, tmp_path):
    target = tmp_path/"target"; target.mkdir(); (tmp_path/"rep/minicity").mkdir(parents=True)
    (tmp_path/"rep/minicity/figures").symlink_to(target)
    with pytest.raises(CDAError, match="figures is a symbolic link"): report(runs)
    assert not list(target.iterdir())

def test_report_readme_that_is_a_symlink_is_replaced_not_written_through(runs, tmp_path):
    target = tmp_path/"precious.md"; target.write_text("keep me\n"); (tmp_path/"rep/minicity").mkdir(parents=True)
    (tmp_path/"rep/minicity/README.md").symlink_to(target)
    report(runs)
    assert target.read_text() == "keep me\n"
    readme = tmp_path/"rep/minicity/README.md"
    assert not readme.is_symlink() and "| bcl |" in readme.read_text()
